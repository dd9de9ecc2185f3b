//! `decide` on the pod: its states, changes of the spec, suspension and
//! resumption, the source's clone, and the answers to a refused pod or
//! resize.

use k8s_openapi::api::core::v1::ContainerStateTerminated;

use super::*;
use crate::api::crd::{AgentResources, CpuMemory, GitSource, SourceSpec};

fn idle_timeout(seconds: i64) -> impl FnOnce(&mut CodexAgentSpec) {
    move |s| s.idle_timeout_seconds = Some(seconds)
}

#[test]
fn a_pod_that_becomes_ready_makes_the_agent_ready_and_starts_its_idle_clock() {
    let w = World::new()
        .spec(idle_timeout(120))
        .made()
        .pod(|_| {})
        .settled()
        .later(7)
        .pod(ready);
    let plan = w.decide();
    assert!(steps(&plan).iter().all(|s| *s != "ApplyPod"));
    let c = condition(&plan, condition::READY);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str(), c.message.as_str()),
        ("True", reason::POD_READY, "pod alice is ready")
    );
    assert_eq!(c.last_transition_time, w.now);
    assert_eq!(phase(&plan), (Some(Phase::Ready), None));
    assert_eq!(plan.outcome.requeue, Duration::from_secs(120));
    assert_eq!(
        plan.outcome.counts,
        [Count::ReadyAfter("created", (NOW + 7) as f64)]
    );

    // Ready since: looked at again when the idle timeout would pass.
    let plan = w.settled().later(30).decide();
    assert_eq!(plan.outcome.requeue, Duration::from_secs(90));
    assert!(plan.outcome.counts.is_empty(), "counted once");
    assert!(plan.outcome.events.is_empty());
}

#[test]
fn a_starting_pod_says_where_it_is() {
    let w = World::new().made().pod(|p| {
        p.status.as_mut().unwrap().phase = Some("Running".into());
    });
    let plan = w.decide();
    assert_eq!(
        phase(&plan),
        (Some(Phase::Starting), Some("pod running, not ready yet"))
    );
    assert_eq!(plan.outcome.requeue, RECHECK_STARTING);
}

#[test]
fn changed_resources_resize_in_place_when_allowed_and_replace_otherwise() {
    let grown = |s: &mut CodexAgentSpec| {
        s.resources = Some(AgentResources {
            limits: Some(CpuMemory {
                cpu: Some("2".into()),
                memory: None,
            }),
            requests: None,
        })
    };
    let w = World::new().spec(idle_timeout(0)).ready().spec(grown);
    let plan = w.decide();
    assert_eq!(steps(&plan), ["ApplySecret", "ApplyPvc", "ResizePod"]);
    match &plan.steps[2] {
        Step::ResizePod {
            name,
            uid,
            resources,
        } => {
            assert_eq!(name, "alice");
            assert_eq!(uid.as_deref(), Some("pod-uid-1"));
            assert_eq!(resources.limits.as_ref().unwrap()["cpu"].0, "2");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(events(&plan), [event::POD_RESIZED]);
    assert_eq!(
        event_note(&plan, event::POD_RESIZED).note,
        "the resources changed: resizing pod alice in place to cpu 100m/2, memory 256Mi/2048Mi"
    );
    assert_eq!(
        phase(&plan),
        (Some(Phase::Ready), Some("resizing the pod in place"))
    );
    assert_eq!(plan.outcome.requeue, RECHECK_FAILED, "the backstop");

    let mut w = w;
    w.defaults.resize_in_place = false;
    let plan = w.decide();
    assert_eq!(steps(&plan), ["ApplySecret", "ApplyPvc", "DeletePod"]);
    assert_eq!(events(&plan), [event::POD_REPLACED]);
    assert_eq!(
        event_note(&plan, event::POD_REPLACED).note,
        "the resources changed: replacing pod alice; the workspace is kept"
    );
    assert_eq!(
        phase(&plan),
        (
            Some(Phase::Starting),
            Some("replacing the pod: the resources changed")
        )
    );
    assert_eq!(
        condition(&plan, condition::READY).reason,
        reason::POD_REPLACING
    );
    assert_eq!(plan.outcome.status.pod_template_hash, None);
    assert_eq!(plan.outcome.requeue, RECHECK_TERMINATING);
}

#[test]
fn a_changed_spec_replaces_the_pod() {
    let w = World::new()
        .ready()
        .spec(|s| s.image = Some("codex:2".into()));
    let plan = w.decide();
    assert_eq!(steps(&plan), ["ApplySecret", "ApplyPvc", "DeletePod"]);
    match &plan.steps[2] {
        Step::DeletePod { name, uid } => {
            assert_eq!(
                (name.as_str(), uid.as_deref()),
                ("alice", Some("pod-uid-1"))
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        event_note(&plan, event::POD_REPLACED).note,
        "the spec changed: replacing pod alice; the workspace is kept"
    );
}

#[test]
fn a_refused_resize_replaces_the_pod_instead() {
    let w = World::new().ready().spec(|s| {
        s.resources = Some(AgentResources {
            limits: Some(CpuMemory {
                cpu: Some("2".into()),
                memory: None,
            }),
            requests: None,
        })
    });
    let mut plan = w.decide();
    up_to_pod(&mut plan, &w.claim());
    let Some(Step::ResizePod { name, uid, .. }) = plan.steps.pop_front() else {
        panic!("{:?}", plan.steps);
    };
    plan.on_resize_refused(
        name,
        uid,
        "the server could not find the requested resource",
    );
    assert_eq!(steps(&plan), ["DeletePod"]);
    assert_eq!(events(&plan), [event::POD_REPLACED]);
    let why = "the in-place resize was refused (the server could not find the requested resource)";
    assert_eq!(
        event_note(&plan, event::POD_REPLACED).note,
        format!("{why}: replacing pod alice; the workspace is kept")
    );
    assert_eq!(
        phase(&plan),
        (
            Some(Phase::Starting),
            Some(format!("replacing the pod: {why}").as_str())
        )
    );
    assert_eq!(plan.outcome.status.pod_template_hash, None);
    assert_eq!(plan.outcome.requeue, RECHECK_TERMINATING);
    // The claim's answer survives going back.
    assert_eq!(
        condition(&plan, condition::WORKSPACE_BOUND).reason,
        reason::BOUND
    );
}

#[test]
fn a_refused_pod_fails_the_agent_with_the_reason() {
    let w = World::new();
    let mut plan = w.decide();
    up_to_pod(&mut plan, &w.claim());
    assert!(matches!(plan.steps.pop_front(), Some(Step::ApplyPod(_))));
    plan.on_pod_refused("Pod \"alice\" is invalid: spec.nodeSelector: bad");
    let message = "the pod was refused: Pod \"alice\" is invalid: spec.nodeSelector: bad";
    assert!(plan.steps.is_empty());
    assert_eq!(events(&plan), [event::CREATED, event::FAILED]);
    assert_eq!(phase(&plan), (Some(Phase::Failed), Some(message)));
    let c = condition(&plan, condition::READY);
    assert_eq!(
        (c.reason.as_str(), c.message.as_str()),
        (reason::POD_FAILED, message)
    );
    assert_eq!(plan.outcome.status.pod_name, None);
    assert_eq!(plan.outcome.status.pod_template_hash, None);
    assert_eq!(plan.outcome.requeue, RECHECK_FAILED);
    assert_eq!(
        condition(&plan, condition::WORKSPACE_BOUND).reason,
        reason::BOUND
    );
}

#[test]
fn a_terminating_pod_is_waited_for() {
    let w = World::new()
        .ready()
        .pod(|p| p.metadata.deletion_timestamp = Some(time(NOW - 1)));
    let plan = w.decide();
    assert_eq!(steps(&plan), ["ApplySecret", "ApplyPvc"]);
    assert_eq!(
        condition(&plan, condition::READY).reason,
        reason::POD_REPLACING
    );
    assert_eq!(
        phase(&plan),
        (
            Some(Phase::Starting),
            Some("waiting for the old pod to terminate")
        )
    );
    assert_eq!(plan.outcome.requeue, RECHECK_TERMINATING);
}

#[test]
fn an_ended_pod_is_deleted_and_recreated_with_a_warning() {
    let w = World::new().ready().pod(|p| {
        let status = p.status.as_mut().unwrap();
        status.phase = Some("Failed".into());
        status.reason = Some("Evicted".into());
    });
    let plan = w.decide();
    assert_eq!(steps(&plan), ["ApplySecret", "ApplyPvc", "DeletePod"]);
    let note = event_note(&plan, event::POD_RECREATED);
    assert_eq!(note.type_, EventType::Warning);
    assert_eq!(note.note, "pod alice ended (Evicted): recreating it");
    assert_eq!(
        phase(&plan),
        (
            Some(Phase::Starting),
            Some("pod ended (Evicted); recreating it")
        )
    );
    assert_eq!(plan.outcome.status.pod_template_hash, None);
    assert_eq!(plan.outcome.requeue, RECHECK_TERMINATING);

    // Gone next time: recreated, said without a warning.
    let mut w = w.settled();
    w.seen.pod = None;
    let plan = w.decide();
    assert!(!events(&plan).contains(&event::POD_RECREATED));
    assert_eq!(steps(&plan), ["ApplySecret", "ApplyPvc", "ApplyPod"]);
    // A pod lost while the status still had its hash is news.
    let mut lost = World::new().ready();
    lost.seen.pod = None;
    let plan = lost.decide();
    let note = event_note(&plan, event::POD_RECREATED);
    assert_eq!(
        (note.type_, note.note.as_str()),
        (EventType::Normal, "pod alice was gone: recreated it")
    );
}

#[test]
fn a_stuck_pod_fails_the_agent_with_one_warning() {
    let w = World::new().made().pod(stuck);
    let plan = w.decide();
    let message = "pod alice cannot start: ImagePullBackOff: Back-off pulling image";
    assert_eq!(phase(&plan), (Some(Phase::Failed), Some(message)));
    assert_eq!(
        condition(&plan, condition::READY).reason,
        reason::POD_FAILED
    );
    let note = event_note(&plan, event::FAILED);
    assert_eq!(
        (note.type_, note.note.as_str()),
        (EventType::Warning, message)
    );
    assert_eq!(plan.outcome.requeue, RECHECK_FAILED);

    let plan = w.settled().later(30).decide();
    assert!(events(&plan).is_empty(), "{:?}", plan.outcome.events);
    assert_eq!(phase(&plan), (Some(Phase::Failed), Some(message)));
}

#[test]
fn suspending_by_spec_deletes_the_pod_and_keeps_the_workspace() {
    let w = World::new().ready().spec(|s| s.suspended = true);
    let plan = w.decide();
    assert_eq!(steps(&plan), ["ApplySecret", "ApplyPvc", "DeletePod"]);
    let message = "suspended by spec.suspended; clear it to resume";
    assert_eq!(phase(&plan), (Some(Phase::Suspended), Some(message)));
    let c = condition(&plan, condition::SUSPENDED);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", reason::REQUESTED)
    );
    let c = condition(&plan, condition::READY);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", reason::NO_POD)
    );
    assert_eq!(
        event_note(&plan, event::SUSPENDED).note,
        format!("{message} (pod deleted, workspace kept)")
    );
    assert_eq!(plan.outcome.counts, [Count::Suspended(reason::REQUESTED)]);
    assert_eq!(plan.outcome.status.pod_name, None);
    assert_eq!(plan.outcome.status.pod_template_hash, None);
    assert_eq!(plan.outcome.requeue, RECHECK_STEADY);

    // Next time the pod is going: nothing more to do, nothing more to say.
    let w = w
        .settled()
        .pod(|p| p.metadata.deletion_timestamp = Some(time(NOW)));
    let plan = w.decide();
    assert_eq!(steps(&plan), ["ApplySecret", "ApplyPvc"]);
    assert!(plan.outcome.events.is_empty() && plan.outcome.counts.is_empty());
}

#[test]
fn an_agent_idle_past_its_timeout_is_marked_suspended() {
    let mut w = World::new().ready().later(3601);
    w.seen.runs_going = Some(false);
    let plan = w.decide();
    assert_eq!(
        steps(&plan),
        ["ApplySecret", "ApplyPvc", "MarkSuspended", "DeletePod"]
    );
    assert_eq!(
        plan.steps[2],
        Step::MarkSuspended {
            resource_version: Some("100".into())
        }
    );
    let c = condition(&plan, condition::SUSPENDED);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", reason::IDLE_TIMEOUT)
    );
    assert!(event_note(&plan, event::SUSPENDED).note.contains("idle"));
    assert_eq!(
        plan.outcome.counts,
        [Count::Suspended(reason::IDLE_TIMEOUT)]
    );

    // Marked: the next reconcile sees spec.suspended, and keeps the reason.
    let plan = w.settled().spec(|s| s.suspended = true).decide();
    assert_eq!(
        condition(&plan, condition::SUSPENDED).reason,
        reason::IDLE_TIMEOUT
    );
    assert!(!steps(&plan).contains(&"MarkSuspended"));
}

#[test]
fn a_run_going_on_in_the_pod_holds_off_suspension() {
    let mut w = World::new().ready().later(3601);
    w.seen.runs_going = Some(true);
    let plan = w.decide();
    assert_eq!(steps(&plan), ["ApplySecret", "ApplyPvc"]);
    assert_eq!(plan.outcome.status.phase, Some(Phase::Ready));
    assert_eq!(
        plan.outcome.recheck_at,
        Some(w.now + chrono::Duration::seconds(30))
    );
    assert_eq!(plan.requeue_after(w.now), RECHECK_LIVE_RUN);
    assert!(plan.outcome.events.is_empty());
}

#[test]
fn clearing_suspended_resumes_the_agent() {
    let w = World::new().ready().spec(|s| s.suspended = true).settled();
    let mut w = w.spec(|s| s.suspended = false).later(60);
    w.seen.pod = None;
    let plan = w.decide();
    assert_eq!(steps(&plan), ["ApplySecret", "ApplyPvc", "ApplyPod"]);
    assert_eq!(events(&plan), [event::RESUMED]);
    assert_eq!(
        event_note(&plan, event::RESUMED).note,
        "resumed: starting the pod on the kept workspace"
    );
    let c = condition(&plan, condition::SUSPENDED);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str(), c.message.as_str()),
        ("False", reason::RESUMED, "resumed")
    );
    assert_eq!(plan.outcome.counts, [Count::Resumed]);
    assert_eq!(plan.outcome.status.phase, Some(Phase::Starting));

    // Ready again: counted as a resume, from when it resumed.
    let w = w.settled().later(5).pod(ready);
    let plan = w.decide();
    assert_eq!(plan.outcome.counts, [Count::ReadyAfter("resumed", 5.0)]);
}

fn with_source(spec: &mut CodexAgentSpec) {
    spec.source = Some(SourceSpec {
        git: GitSource {
            url: "https://git.example/r".into(),
            ..GitSource::default()
        },
    });
}

fn source_ended(code: i32, message: &str) -> impl FnOnce(&mut Pod) {
    let message = message.to_string();
    move |p| {
        ready(p);
        p.status.as_mut().unwrap().init_container_statuses = Some(vec![ContainerStatus {
            name: layout::SOURCE_CONTAINER_NAME.into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: code,
                    message: Some(message),
                    ..ContainerStateTerminated::default()
                }),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }]);
    }
}

#[test]
fn the_source_clone_gates_readiness() {
    let w = World::new().spec(with_source).made().pod(|_| {});
    let plan = w.decide();
    let c = condition(&plan, condition::SOURCE_READY);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str(), c.message.as_str()),
        (
            "False",
            crate::api::source_ready::reason::CLONING,
            "cloning https://git.example/r into the workspace"
        )
    );
    assert_eq!(
        phase(&plan),
        (
            Some(Phase::Starting),
            Some("cloning https://git.example/r into the workspace")
        )
    );
    assert_eq!(plan.outcome.requeue, RECHECK_STARTING);

    let w = w.pod(source_ended(
        0,
        "Cloned: cloned https://git.example/r at commit abc",
    ));
    let plan = w.decide();
    let c = condition(&plan, condition::SOURCE_READY);
    assert_eq!(
        (c.status.as_str(), c.message.as_str()),
        ("True", "cloned https://git.example/r at commit abc")
    );
    assert_eq!(plan.outcome.status.phase, Some(Phase::Ready));

    let w = w.pod(source_ended(
        1,
        "AuthRefused: fetching https://git.example/r failed: Authentication failed",
    ));
    let plan = w.decide();
    let c = condition(&plan, condition::SOURCE_READY);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", crate::api::source_ready::reason::AUTH_REFUSED)
    );
    assert_eq!(
        condition(&plan, condition::READY).reason,
        reason::SOURCE_FAILED
    );
    assert_eq!(
        phase(&plan),
        (
            Some(Phase::Failed),
            Some("cloning https://git.example/r failed (AuthRefused): fetching https://git.example/r failed: Authentication failed")
        )
    );
    assert_eq!(events(&plan), [event::FAILED]);
    assert_eq!(plan.outcome.requeue, RECHECK_FAILED);
}

#[test]
fn an_agent_without_a_source_has_no_source_condition() {
    let plan = World::new().ready().decide();
    assert!(plan
        .outcome
        .status
        .conditions
        .iter()
        .all(|c| c.type_ != condition::SOURCE_READY));
}
