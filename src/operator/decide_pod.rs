//! The pod's part of `decide`, pure: create it, resize it in place or
//! replace it when the spec changes it, recreate it when it is lost, wait
//! for the source's clone, and report the pod's state; and what suspending
//! the agent means for its status.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::runtime::events::EventType;

use super::desired;
use super::plan::{Count, Plan, Step};
use super::resize::{self, PodChange};
use super::settings::Resolved;
use super::shared::{
    event, RECHECK_FAILED, RECHECK_PENDING, RECHECK_STARTING, RECHECK_STEADY, RECHECK_TERMINATING,
};
use super::source_state::{source_state, SourceState};
use super::status::{idle_decision, is_true, pod_state, time_to_ready, IdleDecision, PodState};
use crate::api::crd::{condition, reason, CodexAgent, Phase};
use crate::api::{layout, source_ready};

/// The status of an agent suspended for `why` (its pod deleted).
pub(super) fn suspend(plan: &mut Plan, why: &'static str) {
    let message = if why == reason::IDLE_TIMEOUT {
        "suspended after the idle timeout; clear spec.suspended to resume"
    } else {
        "suspended by spec.suspended; clear it to resume"
    };
    if !is_true(&plan.old, condition::SUSPENDED) {
        plan.event(
            EventType::Normal,
            event::SUSPENDED,
            format!("{message} (pod deleted, workspace kept)"),
        );
        plan.count(Count::Suspended(why));
    }
    plan.condition(condition::SUSPENDED, true, why, message);
    plan.condition(condition::READY, false, reason::NO_POD, "suspended: no pod");
    plan.outcome.status.pod_name = None;
    plan.outcome.status.pod_template_hash = None;
    plan.phase(Phase::Suspended, message);
}

/// Creates, resizes, replaces or recreates the pod as needed and reports
/// its state. `pod` is the agent's own pod, if it has one.
pub(super) fn decide_pod(
    plan: &mut Plan,
    agent: &CodexAgent,
    settings: &Resolved,
    pod: Option<&Pod>,
    credentials_ok: bool,
    resize_in_place: bool,
) {
    let desired = desired::desired_pod(agent, settings);
    let hash = desired::pod_hash(&desired).map(str::to_string);
    let name = layout::pod_name(agent);
    let Some(pod) = pod else {
        if !credentials_ok {
            let message = "waiting for usable credentials before starting the pod";
            plan.condition(condition::READY, false, reason::POD_STARTING, message);
            plan.phase(Phase::Pending, message);
            plan.outcome.status.pod_name = None;
            plan.outcome.requeue = RECHECK_PENDING;
            return;
        }
        plan.before_pod_step();
        plan.step(Step::ApplyPod(desired));
        if plan.old.pod_template_hash.is_some() {
            plan.event(
                EventType::Normal,
                event::POD_RECREATED,
                format!("pod {name} was gone: recreated it"),
            );
        }
        plan.outcome.status.pod_name = Some(name);
        plan.outcome.status.pod_template_hash = hash;
        plan.condition(condition::READY, false, reason::POD_STARTING, "pod created");
        plan.phase(Phase::Starting, "starting the pod");
        plan.outcome.requeue = RECHECK_STARTING;
        return;
    };
    plan.outcome.status.pod_name = Some(name.clone());
    let state = pod_state(pod);
    if state == PodState::Terminating {
        plan.condition(
            condition::READY,
            false,
            reason::POD_REPLACING,
            "waiting for the old pod to terminate",
        );
        plan.phase(Phase::Starting, "waiting for the old pod to terminate");
        plan.outcome.requeue = RECHECK_TERMINATING;
        return;
    }
    let mut resizing = None;
    match resize::pod_change(&desired, pod, resize_in_place) {
        PodChange::None => {}
        PodChange::Replace(why) => {
            plan.replace_pod(
                pod.metadata.name.clone().unwrap_or_default(),
                pod.metadata.uid.clone(),
                &why,
            );
            return;
        }
        PodChange::Resizing(what) => resizing = Some(what),
        PodChange::Resize(resources) => {
            plan.before_pod_step();
            plan.event(
                EventType::Normal,
                event::POD_RESIZED,
                format!(
                    "the resources changed: resizing pod {name} in place to {}",
                    describe(&resources)
                ),
            );
            plan.step(Step::ResizePod {
                name: pod.metadata.name.clone().unwrap_or_default(),
                uid: pod.metadata.uid.clone(),
                resources,
            });
            resizing = Some("resizing the pod in place".into());
        }
    }
    plan.outcome.status.pod_template_hash = hash;
    if let Some(recheck) = source_condition(plan, agent, pod) {
        plan.outcome.requeue = recheck;
        return;
    }
    plan.outcome.requeue = match state {
        PodState::Ready => {
            plan.condition(
                condition::READY,
                true,
                reason::POD_READY,
                format!("pod {name} is ready"),
            );
            plan.phase(Phase::Ready, resizing.clone().unwrap_or_default());
            if let Some((trigger, seconds)) = time_to_ready(&plan.old, plan.created, plan.now) {
                plan.count(Count::ReadyAfter(trigger.as_str(), seconds));
            }
            match idle_decision(&plan.old, settings.idle_timeout_secs, plan.now) {
                IdleDecision::RecheckAt(at) => (at - plan.now)
                    .to_std()
                    .unwrap_or(Duration::from_secs(1))
                    .clamp(Duration::from_secs(1), RECHECK_STEADY),
                // Just became ready: its idle clock starts now.
                _ if !is_true(&plan.old, condition::READY) => Duration::from_secs(
                    u64::try_from(settings.idle_timeout_secs)
                        .unwrap_or(0)
                        .max(1),
                )
                .min(RECHECK_STEADY),
                // The kubelet's verdict on a resize changes the pod, which
                // triggers a reconcile; this is a backstop.
                _ if resizing.is_some() => RECHECK_FAILED,
                _ => RECHECK_STEADY,
            }
        }
        PodState::Starting(detail) => {
            plan.condition(
                condition::READY,
                false,
                reason::POD_STARTING,
                detail.clone(),
            );
            plan.phase(Phase::Starting, detail);
            RECHECK_STARTING
        }
        PodState::Stuck {
            reason: why,
            message,
        } => {
            let text = if message.is_empty() {
                why.clone()
            } else {
                format!("{why}: {message}")
            };
            plan.fail(
                reason::POD_FAILED,
                format!("pod {name} cannot start: {text}"),
            );
            RECHECK_FAILED
        }
        PodState::Ended(why) => {
            plan.step(Step::delete_pod(pod));
            plan.outcome.status.pod_template_hash = None;
            plan.event(
                EventType::Warning,
                event::POD_RECREATED,
                format!("pod {name} ended ({why}): recreating it"),
            );
            plan.condition(
                condition::READY,
                false,
                reason::POD_STARTING,
                format!("pod ended ({why})"),
            );
            plan.phase(Phase::Starting, format!("pod ended ({why}); recreating it"));
            RECHECK_TERMINATING
        }
        PodState::Terminating => RECHECK_TERMINATING,
    };
}

/// Sets `SourceReady` for an agent with a source; while the clone is not
/// done, the agent is not ready either, and the decisions end here.
fn source_condition(plan: &mut Plan, agent: &CodexAgent, pod: &Pod) -> Option<Duration> {
    let url = &agent.spec.source.as_ref()?.git.url;
    match source_state(pod) {
        SourceState::Ready(message) => {
            plan.condition(
                condition::SOURCE_READY,
                true,
                source_ready::reason::CLONED,
                message,
            );
            None
        }
        SourceState::Cloning => {
            let message = format!("cloning {url} into the workspace");
            plan.condition(
                condition::SOURCE_READY,
                false,
                source_ready::reason::CLONING,
                message.clone(),
            );
            plan.condition(
                condition::READY,
                false,
                reason::POD_STARTING,
                message.clone(),
            );
            plan.phase(Phase::Starting, message);
            Some(RECHECK_STARTING)
        }
        SourceState::Failed(outcome) => {
            plan.condition(
                condition::SOURCE_READY,
                false,
                outcome.reason,
                outcome.message.clone(),
            );
            plan.fail(
                reason::SOURCE_FAILED,
                format!(
                    "cloning {url} failed ({}): {}",
                    outcome.reason, outcome.message
                ),
            );
            Some(RECHECK_FAILED)
        }
    }
}

/// `cpu 500m/1, memory 256Mi/1Gi` (request/limit), for events.
fn describe(resources: &ResourceRequirements) -> String {
    let get = |m: &Option<std::collections::BTreeMap<String, Quantity>>, r: &str| {
        m.as_ref()
            .and_then(|m| m.get(r))
            .map_or_else(|| "-".to_string(), |q| q.0.clone())
    };
    ["cpu", "memory"]
        .map(|r| {
            format!(
                "{r} {}/{}",
                get(&resources.requests, r),
                get(&resources.limits, r)
            )
        })
        .join(", ")
}
