//! `decide` on the spec, the credentials Secret, the workspace claim and
//! the status it writes.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;

use super::*;
use crate::api::crd::{CredentialsSpec, SecretRef};
use crate::operator::login::AgentCredentials;
use crate::operator::observe::asks_for_runs;

fn with_credentials(spec: &mut CodexAgentSpec) {
    spec.credentials = Some(CredentialsSpec {
        secret_ref: SecretRef {
            name: "openai".into(),
            ..SecretRef::default()
        },
    });
}

#[test]
fn a_new_agent_gets_its_secret_claim_and_pod() {
    let w = World::new();
    let mut plan = w.decide();
    assert_eq!(steps(&plan), ["ApplySecret", "ApplyPvc", "ApplyPod"]);
    assert_eq!(events(&plan), ["Created"]);
    assert_eq!(
        event_note(&plan, "Created").note,
        "created workspace claim alice-workspace and credentials Secret alice-credentials"
    );
    assert_eq!(
        phase(&plan),
        (Some(Phase::Starting), Some("starting the pod"))
    );
    assert_eq!(plan.outcome.requeue, RECHECK_STARTING);
    let c = condition(&plan, condition::CREDENTIALS_READY);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", reason::NOT_CONFIGURED)
    );
    let ready = condition(&plan, condition::READY);
    assert_eq!(
        (ready.reason.as_str(), ready.message.as_str()),
        (reason::POD_STARTING, "pod created")
    );
    assert_eq!(ready.last_transition_time, t(0), "first seen at creation");
    assert_eq!(plan.outcome.status.pod_name.as_deref(), Some("alice"));
    assert!(plan.outcome.status.pod_template_hash.is_some());
    assert_eq!(plan.outcome.status.observed_generation, Some(1));
    match &plan.steps[0] {
        Step::ApplySecret(s) => {
            assert_eq!(s.metadata.name.as_deref(), Some("alice-credentials"));
            assert_eq!(s.data.as_ref().map(BTreeMap::len), Some(0));
        }
        other => panic!("{other:?}"),
    }

    // The claim's answer puts WorkspaceBound where the claim's decision was.
    up_to_pod(&mut plan, &w.claim());
    let types: Vec<_> = plan
        .outcome
        .status
        .conditions
        .iter()
        .map(|c| c.type_.as_str())
        .collect();
    assert_eq!(
        types,
        [
            condition::READY,
            condition::CREDENTIALS_READY,
            condition::WORKSPACE_BOUND,
            condition::SUSPENDED
        ]
    );
    let bound = condition(&plan, condition::WORKSPACE_BOUND);
    assert_eq!(bound.message, "claim alice-workspace bound to volume pv-1");
    let written = plan.status_to_write(Some(1)).unwrap();
    assert!(written
        .conditions
        .iter()
        .all(|c| c.observed_generation == Some(1)));
}

#[test]
fn the_claims_binding_says_whether_the_workspace_is_bound() {
    let w = World::new();
    for (phase, bound, why, message) in [
        (
            Some("Lost"),
            "False",
            reason::VOLUME_LOST,
            "claim alice-workspace lost its volume",
        ),
        (
            Some("Pending"),
            "False",
            reason::WAITING_FOR_VOLUME,
            "claim alice-workspace is waiting for a volume",
        ),
        (
            None,
            "False",
            reason::WAITING_FOR_VOLUME,
            "claim alice-workspace is waiting for a volume",
        ),
    ] {
        let mut claim = w.claim();
        claim.status = phase.map(|p| PersistentVolumeClaimStatus {
            phase: Some(p.into()),
            ..PersistentVolumeClaimStatus::default()
        });
        let mut plan = w.decide();
        up_to_pod(&mut plan, &claim);
        let c = condition(&plan, condition::WORKSPACE_BOUND);
        assert_eq!(
            (c.status.as_str(), c.reason.as_str(), c.message.as_str()),
            (bound, why, message)
        );
    }
}

#[test]
fn a_claim_that_cannot_grow_keeps_its_size_with_a_warning_once() {
    let w = World::new().made().pod(ready).settled().spec(|s| {
        s.storage = Some(crate::api::crd::StorageSpec {
            size: Some("20Gi".into()),
            ..Default::default()
        })
    });
    let mut plan = w.decide();
    let growth = match &plan.steps[1] {
        Step::ApplyPvc {
            claim,
            growth: Some(growth),
        } => {
            let size = &claim
                .spec
                .as_ref()
                .unwrap()
                .resources
                .as_ref()
                .unwrap()
                .requests
                .as_ref()
                .unwrap()["storage"];
            assert_eq!(size.0, "20Gi");
            assert_eq!(growth.size, "20Gi");
            growth.clone()
        }
        other => panic!("{other:?}"),
    };
    let unchanged = &growth
        .unchanged
        .spec
        .as_ref()
        .unwrap()
        .resources
        .as_ref()
        .unwrap()
        .requests
        .as_ref()
        .unwrap()["storage"];
    assert_eq!(unchanged.0, "10Gi");
    plan.steps.pop_front();
    plan.steps.pop_front();
    plan.on_growth_refused(&growth, "only dynamically provisioned pvc can be resized");
    plan.workspace_applied(&w.claim());
    let note = "the workspace claim alice-workspace cannot grow to 20Gi: only dynamically provisioned pvc can be resized";
    assert_eq!(event_note(&plan, event::WORKSPACE_NOT_GROWN).note, note);
    assert_eq!(
        event_note(&plan, event::WORKSPACE_NOT_GROWN).type_,
        EventType::Warning
    );
    let c = condition(&plan, condition::WORKSPACE_BOUND);
    assert_eq!((c.status.as_str(), c.message.as_str()), ("True", note));
    assert!(!events(&plan).contains(&event::CREATED));

    // Told once: the condition already says so.
    let w = w.status(|s| {
        s.conditions
            .iter_mut()
            .find(|c| c.type_ == condition::WORKSPACE_BOUND)
            .unwrap()
            .message = note.into();
    });
    let mut plan = w.decide();
    plan.on_growth_refused(&growth, "only dynamically provisioned pvc can be resized");
    assert!(events(&plan).is_empty(), "{:?}", plan.outcome.events);
}

#[test]
fn a_name_too_long_or_an_invalid_spec_fails_without_touching_anything() {
    let mut w = World::new();
    w.agent.metadata.name = Some("a".repeat(64));
    let plan = w.decide();
    assert!(plan.steps.is_empty());
    assert_eq!(plan.outcome.status.phase, Some(Phase::Failed));
    assert!(plan
        .outcome
        .status
        .message
        .as_deref()
        .unwrap()
        .contains("longer than 63 characters"));
    assert_eq!(
        condition(&plan, condition::READY).reason,
        reason::INVALID_SPEC
    );
    assert_eq!(events(&plan), [event::FAILED]);
    assert_eq!(plan.outcome.requeue, RECHECK_STEADY);

    let w = World::new().spec(|s| {
        s.resources = Some(crate::api::crd::AgentResources {
            limits: Some(crate::api::crd::CpuMemory {
                cpu: Some("1".into()),
                memory: None,
            }),
            requests: Some(crate::api::crd::CpuMemory {
                cpu: Some("2".into()),
                memory: None,
            }),
        })
    });
    let plan = w.decide();
    assert!(plan.steps.is_empty());
    assert_eq!(
        phase(&plan),
        (
            Some(Phase::Failed),
            Some("the cpu request 2 exceeds its limit 1")
        )
    );
    assert_eq!(events(&plan), [event::FAILED]);
    // Said once.
    let plan = w.settled().decide();
    assert!(events(&plan).is_empty());
    assert_eq!(plan.outcome.status.phase, Some(Phase::Failed));
}

#[test]
fn missing_credentials_are_reported_once_and_hold_the_pod_back() {
    let mut w = World::new().spec(with_credentials);
    let message = "the Secret \"openai\" does not exist; create it with `codex-mcp auth import`";
    w.seen.credentials = Some(Verdict::Unusable {
        reason: reason::SECRET_NOT_FOUND,
        message: message.into(),
    });
    let plan = w.decide();
    // An empty Secret (the pod's mount never dangles), the claim, no pod.
    assert_eq!(steps(&plan), ["ApplySecret", "ApplyPvc"]);
    assert_eq!(events(&plan), [event::CREDENTIALS_FAILED, event::CREATED]);
    let c = condition(&plan, condition::CREDENTIALS_READY);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str(), c.message.as_str()),
        ("False", reason::SECRET_NOT_FOUND, message)
    );
    assert_eq!(
        phase(&plan),
        (
            Some(Phase::Pending),
            Some("waiting for usable credentials before starting the pod")
        )
    );
    assert_eq!(plan.outcome.status.pod_name, None);
    assert_eq!(plan.outcome.requeue, RECHECK_PENDING);

    let mut w = w.settled();
    w.seen.secret = World::new().made().seen.secret;
    let plan = w.decide();
    assert!(
        events(&plan).is_empty(),
        "told once: {:?}",
        plan.outcome.events
    );
    // The existing Secret keeps what it holds.
    assert_eq!(steps(&plan), ["ApplyPvc"]);
}

#[test]
fn a_login_problem_keeps_a_running_agent_going() {
    let mut w = World::new().spec(with_credentials).ready();
    w.seen.credentials = Some(Verdict::Unusable {
        reason: reason::REFRESH_UNREACHABLE,
        message: "the token endpoint could not be reached; retrying".into(),
    });
    let plan = w.decide();
    assert_eq!(steps(&plan), ["ApplyPvc"]);
    assert_eq!(events(&plan), [event::CREDENTIALS_FAILED]);
    assert_eq!(
        condition(&plan, condition::CREDENTIALS_READY).reason,
        reason::REFRESH_UNREACHABLE
    );
    assert_eq!(plan.outcome.status.phase, Some(Phase::Ready));
    assert_eq!(
        plan.outcome.refresh_at,
        Some(w.now + chrono::Duration::seconds(30))
    );
    assert_eq!(plan.requeue_after(w.now), Duration::from_secs(30));
}

#[test]
fn usable_credentials_fill_the_secret_and_say_when_to_refresh() {
    let mut w = World::new().spec(with_credentials);
    let data = BTreeMap::from([("auth.json".to_string(), ByteString(b"{}".to_vec()))]);
    w.seen.credentials = Some(Verdict::Usable(AgentCredentials {
        data: data.clone(),
        reason: reason::LOGIN_COPIED,
        message: "ChatGPT login from Secret openai".into(),
        refresh_at: Some(w.now + chrono::Duration::seconds(90)),
    }));
    let plan = w.decide();
    assert_eq!(steps(&plan), ["ApplySecret", "ApplyPvc", "ApplyPod"]);
    match &plan.steps[0] {
        Step::ApplySecret(s) => assert_eq!(s.data.as_ref(), Some(&data)),
        other => panic!("{other:?}"),
    }
    let c = condition(&plan, condition::CREDENTIALS_READY);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", reason::LOGIN_COPIED)
    );
    assert_eq!(plan.outcome.requeue, RECHECK_STARTING);
    assert_eq!(plan.requeue_after(w.now), RECHECK_STARTING);
    assert_eq!(
        plan.requeue_after(w.now + chrono::Duration::seconds(85)),
        Duration::from_secs(5)
    );
    // Never sooner than a second.
    assert_eq!(
        plan.requeue_after(w.now + chrono::Duration::seconds(95)),
        Duration::from_secs(1)
    );
}

#[test]
fn someone_elses_secret_claim_or_pod_is_left_alone() {
    let mut w = World::new().spec(with_credentials);
    let mut secret = Secret::default();
    foreign(&mut secret.metadata);
    w.seen.secret = Some(secret);
    let plan = w.decide();
    assert_eq!(steps(&plan), ["ApplyPvc"]);
    let c = condition(&plan, condition::CREDENTIALS_READY);
    assert_eq!(
        (c.reason.as_str(), c.message.as_str()),
        (
            reason::SECRET_NOT_FOUND,
            "the Secret alice-credentials is controlled by Deployment other"
        )
    );
    assert_eq!(plan.outcome.status.phase, Some(Phase::Pending));
    assert_eq!(events(&plan), [event::CREATED]);

    let mut w = World::new();
    let mut claim = w.claim();
    foreign(&mut claim.metadata);
    w.seen.pvc = Some(claim);
    let plan = w.decide();
    assert_eq!(steps(&plan), ["ApplySecret"]);
    let message =
        "waiting for the workspace claim alice-workspace: it is controlled by Deployment other";
    assert_eq!(phase(&plan), (Some(Phase::Pending), Some(message)));
    assert_eq!(
        condition(&plan, condition::WORKSPACE_BOUND).reason,
        reason::WAITING_FOR_VOLUME
    );
    assert_eq!(plan.outcome.requeue, RECHECK_PENDING);
    assert!(events(&plan).is_empty());

    let w = World::new().made().pod(|p| foreign(&mut p.metadata));
    let plan = w.decide();
    assert_eq!(steps(&plan), ["ApplySecret", "ApplyPvc"]);
    assert_eq!(
        phase(&plan),
        (
            Some(Phase::Pending),
            Some("waiting for pod alice, controlled by Deployment other, to go")
        )
    );
    assert_eq!(plan.outcome.requeue, RECHECK_PENDING);
}

#[test]
fn a_claim_being_deleted_makes_the_agent_wait() {
    let mut w = World::new().ready();
    w.seen.pvc.as_mut().unwrap().metadata.deletion_timestamp = Some(time(NOW - 5));
    let plan = w.decide();
    assert_eq!(steps(&plan), ["ApplySecret"]);
    assert_eq!(
        phase(&plan),
        (
            Some(Phase::Pending),
            Some("waiting for the workspace claim alice-workspace: it is being deleted")
        )
    );
    let c = condition(&plan, condition::WORKSPACE_BOUND);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", reason::WAITING_FOR_VOLUME)
    );
    assert_eq!(c.last_transition_time, w.now, "it was bound");
    assert_eq!(plan.outcome.requeue, RECHECK_PENDING);
}

#[test]
fn observe_reads_no_further_than_decide_goes() {
    let w = World::new().ready().later(4000);
    let settings = resolve(&w.agent.spec, &w.defaults).unwrap();
    let old = w.agent.status.clone().unwrap();
    assert!(asks_for_runs(&w.agent, &old, &settings, w.now));
    assert!(!asks_for_runs(
        &w.agent,
        &old,
        &settings,
        w.now - chrono::Duration::seconds(3000)
    ));
    let suspended = w.clone().spec(|s| s.suspended = true);
    assert!(!asks_for_runs(&suspended.agent, &old, &settings, w.now));
    let mut blocked = World::new().claim();
    blocked.metadata.deletion_timestamp = Some(time(1));
    assert_eq!(
        claim_blocked(&blocked, "uid-1").as_deref(),
        Some("is being deleted")
    );
    assert_eq!(
        claim_blocked(&World::new().made().seen.pvc.unwrap(), "uid-1"),
        None
    );
    let mut long = World::new();
    long.agent.metadata.name = Some("a".repeat(64));
    assert!(checked_settings(&long.agent, &long.defaults).is_err());
}

#[test]
fn only_a_changed_status_is_written() {
    let w = World::new().ready().later(60);
    let mut plan = w.decide();
    assert!(plan.outcome.events.is_empty());
    up_to_pod(&mut plan, &w.claim());
    assert!(plan.steps.is_empty());
    assert_eq!(plan.status_to_write(Some(1)), None);
    let mut plan = w.decide();
    up_to_pod(&mut plan, &w.claim());
    assert!(
        plan.status_to_write(Some(2)).is_some(),
        "a new generation is news"
    );
}
