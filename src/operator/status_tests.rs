use super::*;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateWaiting, ContainerStatus, PodCondition, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
}

fn ready_since(at: i64) -> CodexAgentStatus {
    let mut s = CodexAgentStatus::default();
    set_condition(
        &mut s.conditions,
        condition::READY,
        true,
        reason::POD_READY,
        "",
        t(at),
        t(at),
    );
    s
}

#[test]
fn transition_time_moves_only_with_the_status() {
    let mut c = Vec::new();
    set_condition(&mut c, "Ready", false, "PodStarting", "a", t(5), t(0));
    assert_eq!(c[0].last_transition_time, t(0), "first seen at creation");
    set_condition(&mut c, "Ready", false, "PodStarting", "b", t(10), t(0));
    assert_eq!(c[0].last_transition_time, t(0));
    assert_eq!(c[0].message, "b");
    set_condition(&mut c, "Ready", true, "PodReady", "", t(20), t(0));
    assert_eq!(c[0].last_transition_time, t(20));
    assert_eq!(c[0].status, "True");
    assert_eq!(c.len(), 1);
}

#[test]
fn idle_counts_from_the_later_of_activity_and_readiness() {
    let mut s = ready_since(0);
    assert_eq!(idle_decision(&s, 60, t(30)), IdleDecision::RecheckAt(t(60)));
    assert_eq!(idle_decision(&s, 60, t(60)), IdleDecision::Suspend);
    s.last_activity = Some(t(50));
    assert_eq!(
        idle_decision(&s, 60, t(60)),
        IdleDecision::RecheckAt(t(110))
    );
    // Old activity does not shorten a fresh readiness (after a resume).
    let mut resumed = ready_since(1000);
    resumed.last_activity = Some(t(0));
    assert_eq!(
        idle_decision(&resumed, 60, t(1030)),
        IdleDecision::RecheckAt(t(1060))
    );
}

#[test]
fn idle_suspension_is_off_when_not_ready_or_disabled() {
    assert_eq!(
        idle_decision(&ready_since(0), 0, t(99_999)),
        IdleDecision::Never
    );
    let mut s = ready_since(0);
    set_condition(
        &mut s.conditions,
        condition::READY,
        false,
        reason::NO_POD,
        "",
        t(5),
        t(0),
    );
    assert_eq!(idle_decision(&s, 60, t(99_999)), IdleDecision::Never);
}

#[test]
fn a_run_in_progress_holds_off_suspension_until_its_marker_is_stale() {
    let mut s = ready_since(0);
    s.last_activity = Some(t(100));
    s.active_runs = Some(1);
    // Past the idle deadline (160) but the marker is trusted for 10 minutes.
    assert_eq!(
        idle_decision(&s, 60, t(200)),
        IdleDecision::RecheckAt(t(700))
    );
    assert_eq!(idle_decision(&s, 60, t(700)), IdleDecision::Suspend);
    // With a long timeout the trust is twice the timeout.
    assert_eq!(
        idle_decision(&s, 3600, t(4000)),
        IdleDecision::RecheckAt(t(7300))
    );
    s.active_runs = Some(0);
    assert_eq!(idle_decision(&s, 60, t(200)), IdleDecision::Suspend);
}

#[test]
fn time_to_ready_counts_creation_and_resume_but_not_restarts() {
    // First start: Ready False since creation.
    let mut s = CodexAgentStatus::default();
    set_condition(
        &mut s.conditions,
        condition::READY,
        false,
        reason::POD_STARTING,
        "",
        t(1),
        t(0),
    );
    assert_eq!(
        time_to_ready(&s, t(0), t(7)),
        Some((StartTrigger::Created, 7.0))
    );
    // No status at all yet counts from creation too.
    assert_eq!(
        time_to_ready(&CodexAgentStatus::default(), t(0), t(3)),
        Some((StartTrigger::Created, 3.0))
    );

    // Ready, then the pod crashed at 50: recovering is not a start.
    set_condition(
        &mut s.conditions,
        condition::READY,
        true,
        reason::POD_READY,
        "",
        t(7),
        t(0),
    );
    set_condition(
        &mut s.conditions,
        condition::READY,
        false,
        reason::POD_STARTING,
        "",
        t(50),
        t(0),
    );
    assert_eq!(time_to_ready(&s, t(0), t(60)), None);

    // Suspended at 100, resumed at 200, ready at 204.
    set_condition(
        &mut s.conditions,
        condition::READY,
        false,
        reason::NO_POD,
        "",
        t(100),
        t(0),
    );
    set_condition(
        &mut s.conditions,
        condition::SUSPENDED,
        true,
        reason::REQUESTED,
        "",
        t(100),
        t(0),
    );
    set_condition(
        &mut s.conditions,
        condition::SUSPENDED,
        false,
        reason::RESUMED,
        "",
        t(200),
        t(0),
    );
    assert_eq!(
        time_to_ready(&s, t(0), t(204)),
        Some((StartTrigger::Resumed, 4.0))
    );

    // Already ready: nothing to count.
    assert_eq!(time_to_ready(&ready_since(5), t(0), t(9)), None);
}

fn pod_with(phase: &str, ready: bool, waiting: Option<&str>) -> Pod {
    Pod {
        status: Some(PodStatus {
            phase: Some(phase.into()),
            container_statuses: Some(vec![ContainerStatus {
                name: "agent".into(),
                ready,
                state: waiting.map(|r| ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some(r.into()),
                        message: Some(format!("{r} details")),
                    }),
                    ..ContainerState::default()
                }),
                ..ContainerStatus::default()
            }]),
            ..PodStatus::default()
        }),
        ..Pod::default()
    }
}

#[test]
fn pod_states() {
    assert_eq!(pod_state(&pod_with("Running", true, None)), PodState::Ready);
    assert!(matches!(
        pod_state(&pod_with("Running", false, None)),
        PodState::Starting(_)
    ));
    assert_eq!(
        pod_state(&pod_with("Pending", false, Some("ErrImageNeverPull"))),
        PodState::Stuck {
            reason: "ErrImageNeverPull".into(),
            message: "ErrImageNeverPull details".into()
        }
    );
    assert!(matches!(
        pod_state(&pod_with("Pending", false, Some("ContainerCreating"))),
        PodState::Starting(_)
    ));
    assert!(matches!(
        pod_state(&pod_with("Failed", false, None)),
        PodState::Ended(_)
    ));
    let mut gone = pod_with("Running", true, None);
    gone.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
    assert_eq!(pod_state(&gone), PodState::Terminating);

    let mut unschedulable = pod_with("Pending", false, None);
    unschedulable.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
        type_: "PodScheduled".into(),
        status: "False".into(),
        message: Some("0/1 nodes are available: 1 Insufficient cpu.".into()),
        ..PodCondition::default()
    }]);
    match pod_state(&unschedulable) {
        PodState::Starting(m) => assert!(m.contains("Insufficient cpu"), "{m}"),
        other => panic!("{other:?}"),
    }
}
