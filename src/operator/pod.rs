//! The agent's pod: created, resized in place or replaced when the spec
//! changes it, recreated when it is lost, and deleted while the agent is
//! suspended.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::ResourceExt;
use serde_json::json;
use tracing::{debug, info};

use super::children::{self, Children};
use super::desired;
use super::reconcile::{
    event, Pass, ReconcileError, FIELD_MANAGER, RECHECK_FAILED, RECHECK_LIVE_RUN, RECHECK_PENDING,
    RECHECK_STARTING, RECHECK_STEADY, RECHECK_TERMINATING,
};
use super::resize::{self, PodChange};
use super::settings::Resolved;
use super::source_state::{source_state, SourceState};
use super::status::{idle_decision, is_true, pod_state, time_to_ready, IdleDecision, PodState};
use crate::api::crd::{condition, reason, CodexAgent, Phase};
use crate::api::{layout, source_ready};

/// Why the agent should be suspended now, if it should. Idle suspension is
/// recorded by setting `spec.suspended`, so that it survives operator
/// restarts and clearing the flag is the one way to resume.
pub(super) async fn suspension(
    pass: &mut Pass<'_>,
    settings: &Resolved,
) -> Result<Option<&'static str>, ReconcileError> {
    let agent = pass.agent;
    if agent.spec.suspended {
        let idle_before = super::status::get_condition(&pass.old, condition::SUSPENDED)
            .is_some_and(|c| c.status == "True" && c.reason == reason::IDLE_TIMEOUT);
        return Ok(Some(if idle_before {
            reason::IDLE_TIMEOUT
        } else {
            reason::REQUESTED
        }));
    }
    if idle_decision(&pass.old, settings.idle_timeout_secs, pass.now) != IdleDecision::Suspend {
        return Ok(None);
    }
    // A run whose gateway went away leaves a stale marker (or none): the
    // pod itself says whether one is still going.
    if let Some(pod) = pass.old.pod_name.clone() {
        let pods: Api<Pod> = Api::namespaced(
            pass.ctx.client.clone(),
            &agent.namespace().unwrap_or_default(),
        );
        if super::live_runs::runs_going(&pods, &pod).await {
            info!(agent = %agent.name_any(), "idle past its timeout, but a run goes on in its pod: not suspending");
            pass.recheck_at =
                Some(pass.now + chrono::Duration::from_std(RECHECK_LIVE_RUN).expect("short"));
            return Ok(None);
        }
    }
    let api: Api<CodexAgent> = Api::namespaced(
        pass.ctx.client.clone(),
        &agent.namespace().unwrap_or_default(),
    );
    // The resourceVersion makes this conditional: had the gateway just
    // recorded activity, the patch fails and the next pass sees it.
    let patch = json!({
        "metadata": {"resourceVersion": agent.resource_version()},
        "spec": {"suspended": true},
    });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    let name = agent.name_any();
    let written = api
        .patch(&name, &params, &Patch::Merge(&patch))
        .await
        .map_err(|e| ReconcileError::MarkSuspended(name, e))?;
    pass.ctx.wrote(&written);
    info!(agent = %agent.name_any(), "idle past its timeout: suspending");
    Ok(Some(reason::IDLE_TIMEOUT))
}

pub(super) fn suspend(pass: &mut Pass<'_>, why: &'static str) {
    let message = if why == reason::IDLE_TIMEOUT {
        "suspended after the idle timeout; clear spec.suspended to resume"
    } else {
        "suspended by spec.suspended; clear it to resume"
    };
    if !is_true(&pass.old, condition::SUSPENDED) {
        pass.event(
            EventType::Normal,
            event::SUSPENDED,
            format!("{message} (pod deleted, workspace kept)"),
        );
        pass.ctx.metrics.suspended(why);
    }
    pass.condition(condition::SUSPENDED, true, why, message);
    pass.condition(condition::READY, false, reason::NO_POD, "suspended: no pod");
    pass.new.pod_name = None;
    pass.new.pod_template_hash = None;
    pass.phase(Phase::Suspended, message);
}

/// Creates, replaces or recreates the pod as needed and reports its state.
pub(super) async fn sync_pod(
    pass: &mut Pass<'_>,
    children: &Children,
    settings: &Resolved,
    pod: Option<Pod>,
    credentials_ok: bool,
) -> Result<Duration, ReconcileError> {
    let agent = pass.agent;
    let desired = desired::desired_pod(agent, settings);
    let hash = desired::pod_hash(&desired).map(str::to_string);
    let name = layout::pod_name(agent);
    let Some(pod) = pod else {
        if !credentials_ok {
            let message = "waiting for usable credentials before starting the pod";
            pass.condition(condition::READY, false, reason::POD_STARTING, message);
            pass.phase(Phase::Pending, message);
            pass.new.pod_name = None;
            return Ok(RECHECK_PENDING);
        }
        match children::apply(&children.pods, &name, &desired, ReconcileError::ApplyPod).await {
            Ok(_) => {}
            Err(ReconcileError::ApplyPod(_, kube::Error::Api(e)))
                if e.code == 422 || e.code == 400 =>
            {
                pass.fail(
                    reason::POD_FAILED,
                    format!("the pod was refused: {}", e.message),
                );
                return Ok(RECHECK_FAILED);
            }
            Err(e) => return Err(e),
        }
        if pass.old.pod_template_hash.is_some() {
            pass.event(
                EventType::Normal,
                event::POD_RECREATED,
                format!("pod {name} was gone: recreated it"),
            );
        }
        debug!(pod = %name, "created the pod");
        pass.new.pod_name = Some(name);
        pass.new.pod_template_hash = hash;
        pass.condition(condition::READY, false, reason::POD_STARTING, "pod created");
        pass.phase(Phase::Starting, "starting the pod");
        return Ok(RECHECK_STARTING);
    };
    pass.new.pod_name = Some(name.clone());
    let state = pod_state(&pod);
    if state == PodState::Terminating {
        pass.condition(
            condition::READY,
            false,
            reason::POD_REPLACING,
            "waiting for the old pod to terminate",
        );
        pass.phase(Phase::Starting, "waiting for the old pod to terminate");
        return Ok(RECHECK_TERMINATING);
    }
    let mut resizing = None;
    match resize::pod_change(&desired, &pod, pass.ctx.defaults.resize_in_place) {
        PodChange::None => {}
        PodChange::Replace(why) => return replace(pass, children, &pod, &why).await,
        PodChange::Resizing(what) => resizing = Some(what),
        PodChange::Resize(resources) => {
            match children::resize_pod(&children.pods, &pod, &resources).await {
                Ok(()) => {
                    pass.event(
                        EventType::Normal,
                        event::POD_RESIZED,
                        format!(
                            "the resources changed: resizing pod {name} in place to {}",
                            describe(&resources)
                        ),
                    );
                    resizing = Some("resizing the pod in place".into());
                }
                // Refused (an API server without in-place resize, or a
                // change it will not make in place): replacing still works.
                Err(ReconcileError::ResizePod(_, kube::Error::Api(e)))
                    if matches!(e.code, 400 | 404 | 405 | 422) =>
                {
                    let why = format!("the in-place resize was refused ({})", e.message);
                    return replace(pass, children, &pod, &why).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
    pass.new.pod_template_hash = hash;
    if let Some(recheck) = source_condition(pass, &pod) {
        return Ok(recheck);
    }
    match state {
        PodState::Ready => {
            pass.condition(
                condition::READY,
                true,
                reason::POD_READY,
                format!("pod {name} is ready"),
            );
            pass.phase(Phase::Ready, resizing.clone().unwrap_or_default());
            if let Some((trigger, seconds)) = time_to_ready(&pass.old, pass.created, pass.now) {
                pass.ctx.metrics.ready_after(trigger.as_str(), seconds);
            }
            Ok(
                match idle_decision(&pass.old, settings.idle_timeout_secs, pass.now) {
                    IdleDecision::RecheckAt(at) => (at - pass.now)
                        .to_std()
                        .unwrap_or(Duration::from_secs(1))
                        .clamp(Duration::from_secs(1), RECHECK_STEADY),
                    // Just became ready: its idle clock starts now.
                    _ if !is_true(&pass.old, condition::READY) => Duration::from_secs(
                        u64::try_from(settings.idle_timeout_secs)
                            .unwrap_or(0)
                            .max(1),
                    )
                    .min(RECHECK_STEADY),
                    // The kubelet's verdict on a resize changes the pod,
                    // which triggers a reconcile; this is a backstop.
                    _ if resizing.is_some() => RECHECK_FAILED,
                    _ => RECHECK_STEADY,
                },
            )
        }
        PodState::Starting(detail) => {
            pass.condition(
                condition::READY,
                false,
                reason::POD_STARTING,
                detail.clone(),
            );
            pass.phase(Phase::Starting, detail);
            Ok(RECHECK_STARTING)
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
            pass.fail(
                reason::POD_FAILED,
                format!("pod {name} cannot start: {text}"),
            );
            Ok(RECHECK_FAILED)
        }
        PodState::Ended(why) => {
            children::delete_pod(&children.pods, &pod).await?;
            pass.new.pod_template_hash = None;
            pass.event(
                EventType::Warning,
                event::POD_RECREATED,
                format!("pod {name} ended ({why}): recreating it"),
            );
            pass.condition(
                condition::READY,
                false,
                reason::POD_STARTING,
                format!("pod ended ({why})"),
            );
            pass.phase(Phase::Starting, format!("pod ended ({why}); recreating it"));
            Ok(RECHECK_TERMINATING)
        }
        PodState::Terminating => Ok(RECHECK_TERMINATING),
    }
}

/// Sets `SourceReady` for an agent with a source; while the clone is not
/// done, the agent is not ready either, and the pass ends here.
fn source_condition(pass: &mut Pass<'_>, pod: &Pod) -> Option<Duration> {
    let url = &pass.agent.spec.source.as_ref()?.git.url;
    match source_state(pod) {
        SourceState::Ready(message) => {
            pass.condition(
                condition::SOURCE_READY,
                true,
                source_ready::reason::CLONED,
                message,
            );
            None
        }
        SourceState::Cloning => {
            let message = format!("cloning {url} into the workspace");
            pass.condition(
                condition::SOURCE_READY,
                false,
                source_ready::reason::CLONING,
                message.clone(),
            );
            pass.condition(
                condition::READY,
                false,
                reason::POD_STARTING,
                message.clone(),
            );
            pass.phase(Phase::Starting, message);
            Some(RECHECK_STARTING)
        }
        SourceState::Failed(outcome) => {
            pass.condition(
                condition::SOURCE_READY,
                false,
                outcome.reason,
                outcome.message.clone(),
            );
            pass.fail(
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

/// Deletes the pod for `why`; the next pass builds its successor.
async fn replace(
    pass: &mut Pass<'_>,
    children: &Children,
    pod: &Pod,
    why: &str,
) -> Result<Duration, ReconcileError> {
    let name = pod.name_any();
    children::delete_pod(&children.pods, pod).await?;
    // Recreating it next is expected, not a loss worth an event.
    pass.new.pod_template_hash = None;
    pass.event(
        EventType::Normal,
        event::POD_REPLACED,
        format!("{why}: replacing pod {name}; the workspace is kept"),
    );
    let message = format!("replacing the pod: {why}");
    pass.condition(
        condition::READY,
        false,
        reason::POD_REPLACING,
        message.clone(),
    );
    pass.phase(Phase::Starting, message);
    Ok(RECHECK_TERMINATING)
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
