//! What the agent's pod says about its `spec.source`: the `source` init
//! container's state and termination message, as the `SourceReady`
//! condition. Pure, unit-tested without a cluster.

use k8s_openapi::api::core::v1::{ContainerState, Pod};

use crate::api::layout::SOURCE_CONTAINER_NAME;
use crate::api::source_ready::{reason, Outcome};

/// The source's state in one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceState {
    /// The init container has not ended yet (or not started).
    Cloning,
    /// It ended well; the message names the commit.
    Ready(String),
    /// It failed (and the kubelet retries it, backing off); why.
    Failed(Outcome),
}

pub fn source_state(pod: &Pod) -> SourceState {
    let status = pod
        .status
        .as_ref()
        .and_then(|s| s.init_container_statuses.as_ref())
        .and_then(|all| all.iter().find(|c| c.name == SOURCE_CONTAINER_NAME));
    let Some(status) = status else {
        return SourceState::Cloning;
    };
    let ended = |state: Option<&ContainerState>| {
        state
            .and_then(|s| s.terminated.as_ref())
            .map(|t| (t.exit_code, t.message.clone().unwrap_or_default()))
    };
    // A retry under way keeps the last attempt's verdict in lastState.
    let (code, message) =
        match ended(status.state.as_ref()).or_else(|| ended(status.last_state.as_ref())) {
            Some(e) => e,
            None => return SourceState::Cloning,
        };
    let outcome = Outcome::parse(message.lines().last().unwrap_or_default());
    match (code, outcome) {
        (0, Some(o)) if o.is_success() => SourceState::Ready(o.message),
        (0, _) => SourceState::Ready("cloned".into()),
        (_, Some(o)) if !o.is_success() => SourceState::Failed(o),
        (code, _) => SourceState::Failed(Outcome::new(
            reason::CLONE_FAILED,
            format!(
                "the source init container exited with code {code}: {}",
                last_line(&message)
            ),
        )),
    }
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, PodStatus,
    };

    fn pod(state: ContainerState, last: Option<ContainerState>) -> Pod {
        Pod {
            status: Some(PodStatus {
                init_container_statuses: Some(vec![ContainerStatus {
                    name: SOURCE_CONTAINER_NAME.into(),
                    state: Some(state),
                    last_state: last,
                    ..ContainerStatus::default()
                }]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    fn ended(code: i32, message: &str) -> ContainerState {
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                message: Some(message.into()),
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        }
    }

    #[test]
    fn a_clean_exit_is_ready_with_its_message() {
        let p = pod(ended(0, "Cloned: cloned https://h/r at commit abc"), None);
        assert_eq!(
            source_state(&p),
            SourceState::Ready("cloned https://h/r at commit abc".into())
        );
        assert_eq!(source_state(&Pod::default()), SourceState::Cloning);
    }

    #[test]
    fn a_failure_keeps_its_reason_through_the_backoff() {
        let waiting = ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some("CrashLoopBackOff".into()),
                ..ContainerStateWaiting::default()
            }),
            ..ContainerState::default()
        };
        let p = pod(
            waiting,
            Some(ended(
                1,
                "AuthRefused: fetching https://h/r failed: Authentication failed",
            )),
        );
        match source_state(&p) {
            SourceState::Failed(o) => {
                assert_eq!(o.reason, reason::AUTH_REFUSED);
                assert!(o.message.starts_with("fetching https://h/r failed"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_crash_without_our_message_is_a_clone_failure_with_its_last_line() {
        // FallbackToLogsOnError puts the log's tail there.
        let p = pod(ended(139, "starting\nsegmentation fault\n"), None);
        match source_state(&p) {
            SourceState::Failed(o) => {
                assert_eq!(o.reason, reason::CLONE_FAILED);
                assert!(o.message.contains("code 139") && o.message.contains("segmentation fault"));
            }
            other => panic!("{other:?}"),
        }
    }
}
