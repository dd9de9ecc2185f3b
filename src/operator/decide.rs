//! The second step of a reconcile, pure: from the agent and what `observe`
//! found, the [`Plan`]: its credentials Secret, its workspace claim,
//! suspension and resumption, and (in `decide_pod`) its pod. No client, no
//! IO; unit-tested with hand-built observations (`decide_tests.rs`).

use chrono::{DateTime, Utc};
use kube::runtime::events::EventType;
use kube::ResourceExt;

use super::decide_pod::{decide_pod, suspend};
use super::desired;
use super::login::LoginProblem;
use super::observe::{
    checked_settings, claim_blocked, controlled_by, foreign_controller, Observed, Verdict,
};
use super::plan::{Count, Growth, Plan, Step};
use super::settings::{Defaults, Resolved};
use super::shared::{event, RECHECK_LIVE_RUN, RECHECK_PENDING, RECHECK_STEADY};
use super::status::{get_condition, idle_decision, is_true, IdleDecision};
use crate::api::crd::{condition, reason, CodexAgent, Phase};
use crate::api::layout;

/// What to do about `agent`, given what was observed at `now`.
pub fn decide(
    agent: &CodexAgent,
    observed: &Observed,
    defaults: &Defaults,
    now: DateTime<Utc>,
) -> Plan {
    let mut plan = Plan::new(agent, now);
    let settings = match checked_settings(agent, defaults) {
        Ok(s) => s,
        Err(message) => {
            plan.fail(reason::INVALID_SPEC, message);
            plan.outcome.requeue = RECHECK_STEADY;
            return plan;
        }
    };
    let uid = agent.metadata.uid.clone().unwrap_or_default();
    if !plan
        .outcome
        .status
        .conditions
        .iter()
        .any(|c| c.type_ == condition::READY)
    {
        plan.condition(
            condition::READY,
            false,
            reason::POD_STARTING,
            "not started yet",
        );
    }

    let credentials_ok = credentials(&mut plan, agent, observed, &settings, &uid);
    let Some(pvc_existed) = workspace(&mut plan, agent, observed, &settings, &uid) else {
        plan.outcome.requeue = RECHECK_PENDING;
        return plan;
    };
    if !pvc_existed && plan.old.phase.is_none() {
        plan.event(
            EventType::Normal,
            event::CREATED,
            format!(
                "created workspace claim {} and credentials Secret {}",
                layout::pvc_name(agent),
                layout::secret_name(agent)
            ),
        );
    }

    let pod_name = layout::pod_name(agent);
    if let Some(other) = observed
        .pod
        .as_ref()
        .and_then(|p| foreign_controller(&p.metadata, &uid))
    {
        plan.phase(
            Phase::Pending,
            format!("waiting for pod {pod_name}, controlled by {other}, to go"),
        );
        plan.outcome.requeue = RECHECK_PENDING;
        return plan;
    }
    let ours = observed
        .pod
        .as_ref()
        .filter(|p| controlled_by(&p.metadata, &uid));

    if let Some(why) = suspension(&mut plan, agent, observed, &settings) {
        if let Some(p) = ours.filter(|p| p.metadata.deletion_timestamp.is_none()) {
            plan.step(Step::delete_pod(p));
        }
        suspend(&mut plan, why);
        plan.outcome.requeue = RECHECK_STEADY;
        return plan;
    }
    if is_true(&plan.old, condition::SUSPENDED) {
        plan.condition(condition::SUSPENDED, false, reason::RESUMED, "resumed");
        plan.event(
            EventType::Normal,
            event::RESUMED,
            "resumed: starting the pod on the kept workspace",
        );
        plan.count(Count::Resumed);
    } else if !plan
        .outcome
        .status
        .conditions
        .iter()
        .any(|c| c.type_ == condition::SUSPENDED)
    {
        plan.condition(condition::SUSPENDED, false, reason::ACTIVE, "");
    }

    decide_pod(
        &mut plan,
        agent,
        &settings,
        ours,
        credentials_ok,
        defaults.resize_in_place,
    );
    plan
}

/// Gives the agent its own Secret with the credential chosen from the
/// referenced one. False when the reference cannot be used (the status
/// says why).
fn credentials(
    plan: &mut Plan,
    agent: &CodexAgent,
    observed: &Observed,
    settings: &Resolved,
    uid: &str,
) -> bool {
    let name = layout::secret_name(agent);
    let existing = observed.secret.as_ref();
    if let Some(other) = existing.and_then(|s| foreign_controller(&s.metadata, uid)) {
        let message = format!("the Secret {name} is controlled by {other}");
        plan.condition(
            condition::CREDENTIALS_READY,
            false,
            reason::SECRET_NOT_FOUND,
            message,
        );
        return false;
    }
    let (data, ok) = match (&agent.spec.credentials, &observed.credentials) {
        (None, _) => {
            plan.condition(
                condition::CREDENTIALS_READY,
                false,
                reason::NOT_CONFIGURED,
                "no credentials Secret referenced: each run must bring its credentials",
            );
            (Default::default(), true)
        }
        (Some(_), Some(Verdict::Usable(creds))) => {
            plan.condition(
                condition::CREDENTIALS_READY,
                true,
                creds.reason,
                creds.message.clone(),
            );
            plan.outcome.refresh_at = creds.refresh_at;
            (creds.data.clone(), true)
        }
        (Some(c), unusable) => {
            let (why, message) = match unusable {
                Some(Verdict::Unusable { reason, message }) => (*reason, message.clone()),
                // Not asked: as if the Secret were missing.
                _ => (
                    reason::SECRET_NOT_FOUND,
                    LoginProblem::SecretNotFound(c.secret_ref.name.clone()).to_string(),
                ),
            };
            let old = get_condition(&plan.old, condition::CREDENTIALS_READY);
            if old.is_none_or(|c| c.status != "False" || c.reason != why) {
                plan.event(
                    EventType::Warning,
                    event::CREDENTIALS_FAILED,
                    message.clone(),
                );
            }
            plan.condition(condition::CREDENTIALS_READY, false, why, message);
            if why == reason::REFRESH_UNREACHABLE {
                plan.outcome.refresh_at = Some(plan.now + chrono::Duration::seconds(30));
            }
            // Keep what an existing Secret holds: a running agent keeps
            // working while its source is fixed.
            if existing.is_some() {
                return false;
            }
            (Default::default(), false)
        }
    };
    plan.step(Step::ApplySecret(desired::desired_secret(
        agent, settings, data,
    )));
    ok
}

/// Applies the workspace claim. `Some(existed before)`, or `None` when the
/// agent must wait (a previous claim of that name is still going away, or
/// it is someone else's).
fn workspace(
    plan: &mut Plan,
    agent: &CodexAgent,
    observed: &Observed,
    settings: &Resolved,
    uid: &str,
) -> Option<bool> {
    let name = layout::pvc_name(agent);
    let existing = observed.pvc.as_ref();
    if let Some(why) = existing.and_then(|pvc| claim_blocked(pvc, uid)) {
        let message = format!("waiting for the workspace claim {name}: it {why}");
        plan.condition(
            condition::WORKSPACE_BOUND,
            false,
            reason::WAITING_FOR_VOLUME,
            message.clone(),
        );
        plan.phase(Phase::Pending, message);
        return None;
    }
    let growth = desired::workspace_growth(existing, settings).map(|size| Growth {
        size,
        unchanged: desired::desired_pvc(agent, settings, existing, false),
    });
    plan.apply_claim(
        desired::desired_pvc(agent, settings, existing, true),
        growth,
    );
    Some(existing.is_some())
}

/// Why the agent should be suspended now, if it should. Idle suspension is
/// recorded by setting `spec.suspended`, so that it survives operator
/// restarts and clearing the flag is the one way to resume.
fn suspension(
    plan: &mut Plan,
    agent: &CodexAgent,
    observed: &Observed,
    settings: &Resolved,
) -> Option<&'static str> {
    if agent.spec.suspended {
        let idle_before = get_condition(&plan.old, condition::SUSPENDED)
            .is_some_and(|c| c.status == "True" && c.reason == reason::IDLE_TIMEOUT);
        return Some(if idle_before {
            reason::IDLE_TIMEOUT
        } else {
            reason::REQUESTED
        });
    }
    if idle_decision(&plan.old, settings.idle_timeout_secs, plan.now) != IdleDecision::Suspend {
        return None;
    }
    if plan.old.pod_name.is_some() && observed.runs_going == Some(true) {
        plan.outcome.recheck_at =
            Some(plan.now + chrono::Duration::from_std(RECHECK_LIVE_RUN).expect("short"));
        return None;
    }
    // The resourceVersion makes it conditional: had the gateway just
    // recorded activity, the patch fails and the next reconcile sees it.
    plan.step(Step::MarkSuspended {
        resource_version: agent.resource_version(),
    });
    Some(reason::IDLE_TIMEOUT)
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
