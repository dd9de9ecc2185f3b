//! Pure decisions about an agent's status: conditions, what its pod's state
//! means, when it is idle, and how long it took to become ready.

use chrono::{DateTime, Duration, Utc};
use k8s_openapi::api::core::v1::Pod;

use crate::api::crd::{condition, reason, CodexAgentStatus, Condition};

/// Sets a condition, keeping its transition time when its status does not
/// change. A condition seen for the first time transitions at `first_seen`
/// (the agent's creation for conditions that hold since then).
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    now: DateTime<Utc>,
    first_seen: DateTime<Utc>,
) {
    let status_str = if status { "True" } else { "False" };
    let message = message.into();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status_str {
                c.status = status_str.into();
                c.last_transition_time = now;
            }
            c.reason = reason.into();
            c.message = message;
        }
        None => conditions.push(Condition {
            type_: type_.into(),
            status: status_str.into(),
            reason: reason.into(),
            message,
            last_transition_time: first_seen,
            observed_generation: None,
        }),
    }
}

pub fn get_condition<'a>(status: &'a CodexAgentStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

pub fn is_true(status: &CodexAgentStatus, type_: &str) -> bool {
    get_condition(status, type_).is_some_and(|c| c.status == "True")
}

/// What the agent's pod is doing, as far as the agent is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodState {
    Ready,
    /// Starting or restarting; the detail says where it is.
    Starting(String),
    /// It will not start by waiting (missing image, crash loop, bad config).
    Stuck {
        reason: String,
        message: String,
    },
    /// Its containers ended for good (evicted, or the node lost it).
    Ended(String),
    /// Being deleted.
    Terminating,
}

/// Container waiting reasons that waiting longer will not cure.
const STUCK_REASONS: &[&str] = &[
    "ErrImageNeverPull",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
    "RunContainerError",
];

pub fn pod_state(pod: &Pod) -> PodState {
    if pod.metadata.deletion_timestamp.is_some() {
        return PodState::Terminating;
    }
    let status = pod.status.clone().unwrap_or_default();
    let phase = status.phase.clone().unwrap_or_else(|| "Pending".into());
    if phase == "Failed" || phase == "Succeeded" {
        let why = status.reason.or(status.message).unwrap_or(phase);
        return PodState::Ended(why);
    }
    let containers = status.container_statuses.clone().unwrap_or_default();
    if phase == "Running" && !containers.is_empty() && containers.iter().all(|c| c.ready) {
        return PodState::Ready;
    }
    let waiting = containers
        .iter()
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
        .find(|w| {
            w.reason
                .as_deref()
                .is_some_and(|r| STUCK_REASONS.contains(&r))
        });
    if let Some(w) = waiting {
        return PodState::Stuck {
            reason: w.reason.clone().unwrap_or_default(),
            message: w.message.clone().unwrap_or_default(),
        };
    }
    let unschedulable = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False");
    match unschedulable {
        Some(c) => PodState::Starting(format!(
            "pod not scheduled: {}",
            c.message.clone().unwrap_or_default()
        )),
        None if phase == "Running" => PodState::Starting("pod running, not ready yet".into()),
        None => PodState::Starting("pod starting".into()),
    }
}

/// Whether an idle agent should be suspended now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdleDecision {
    /// The agent is not subject to idle suspension (not ready, or timeout 0).
    Never,
    /// Idle, but look again at this time.
    RecheckAt(DateTime<Utc>),
    /// Idle past the timeout with no run in progress.
    Suspend,
}

/// Shortest time a run marker is trusted without fresh activity, however
/// short the idle timeout.
const MIN_RUN_MARKER_TRUST: i64 = 600;

/// An agent is idle from the later of its last activity (written by the
/// gateway) and the moment it last became ready, so a resumed agent gets a
/// full timeout before it is suspended again. A run in progress
/// (`activeRuns > 0`) holds off suspension; since a gateway that died mid-run
/// leaves the marker behind, it is trusted only while the last activity is
/// younger than twice the timeout (and at least ten minutes).
pub fn idle_decision(
    status: &CodexAgentStatus,
    idle_timeout_secs: i64,
    now: DateTime<Utc>,
) -> IdleDecision {
    if idle_timeout_secs <= 0 {
        return IdleDecision::Never;
    }
    let Some(ready) = get_condition(status, condition::READY).filter(|c| c.status == "True") else {
        return IdleDecision::Never;
    };
    let idle_since = status
        .last_activity
        .map_or(ready.last_transition_time, |a| {
            a.max(ready.last_transition_time)
        });
    let timeout = Duration::seconds(idle_timeout_secs);
    let deadline = idle_since + timeout;
    if now < deadline {
        return IdleDecision::RecheckAt(deadline);
    }
    if status.active_runs.unwrap_or(0) > 0 {
        let trust = Duration::seconds((2 * idle_timeout_secs).max(MIN_RUN_MARKER_TRUST));
        let stale_at = idle_since + trust;
        if now < stale_at {
            return IdleDecision::RecheckAt(stale_at);
        }
    }
    IdleDecision::Suspend
}

/// What brought an agent up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartTrigger {
    Created,
    Resumed,
}

impl StartTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Resumed => "resumed",
        }
    }
}

/// For an agent becoming ready now: how long it took since it was created
/// or resumed, if this is the first time it is ready since then. Restarts of
/// a pod that was already ready (crash, spec change) are not counted.
///
/// Works from the old status alone: `Ready` has been False since its
/// transition time; if that is no later than the start (creation, or the
/// `Suspended` condition turning False on resume), the agent has not been
/// ready since it started.
pub fn time_to_ready(
    old: &CodexAgentStatus,
    created: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<(StartTrigger, f64)> {
    if is_true(old, condition::READY) {
        return None;
    }
    let (trigger, start) = match get_condition(old, condition::SUSPENDED) {
        Some(s) if s.status == "False" && s.reason == reason::RESUMED => {
            (StartTrigger::Resumed, s.last_transition_time)
        }
        _ => (StartTrigger::Created, created),
    };
    let not_ready_since =
        get_condition(old, condition::READY).map_or(created, |c| c.last_transition_time);
    if not_ready_since > start {
        return None;
    }
    let seconds = (now - start).num_milliseconds().max(0) as f64 / 1000.0;
    Some((trigger, seconds))
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
