//! One reconcile of one CodexAgent: `observe` reads what it needs, `decide`
//! makes the plan (its credentials Secret, its workspace claim and its pod
//! brought in line with the spec, suspension and resumption, and a status
//! with events that tells a person what is going on), `act` carries it
//! out. The controller's entry points, `reconcile` and `error_policy`.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use kube::runtime::controller::Action;
use kube::ResourceExt;
use tracing::warn;

use super::act::act;
use super::decide::decide;
use super::metrics::ReconcileOutcome;
use super::observe::observe;
use super::shared::{RECHECK_STALE, RETRY_FAILED};
// `run` takes these from here; they live below observe, decide and act,
// which use them too.
pub use super::context::Context;
pub use super::shared::{ReconcileError, FIELD_MANAGER};

use crate::api::crd::CodexAgent;

/// Reconciles one agent, recording the outcome and duration.
pub async fn reconcile(
    agent: Arc<CodexAgent>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let result = reconcile_agent(&agent, &ctx).await;
    let outcome = match &result {
        Ok(_) => ReconcileOutcome::Ok,
        Err(_) => ReconcileOutcome::Error,
    };
    ctx.metrics
        .reconciled(outcome, started.elapsed().as_secs_f64());
    result
}

/// Retries a failed reconcile soon; the error is logged, and reconciles
/// are idempotent, so retrying from the start is safe.
pub fn error_policy(agent: Arc<CodexAgent>, error: &ReconcileError, _ctx: Arc<Context>) -> Action {
    warn!(agent = %agent.name_any(), namespace = ?agent.namespace(), "reconcile failed: {error}");
    Action::requeue(RETRY_FAILED)
}

async fn reconcile_agent(agent: &CodexAgent, ctx: &Context) -> Result<Action, ReconcileError> {
    let namespace = agent.namespace().ok_or(ReconcileError::NoNamespace)?;
    if agent.metadata.deletion_timestamp.is_some() {
        // Children go with it through their owner references.
        ctx.written.forget(agent);
        return Ok(Action::await_change());
    }
    if ctx.written.is_stale(agent) {
        return Ok(Action::requeue(RECHECK_STALE));
    }
    let now = Utc::now();
    let observed = observe(agent, ctx, &namespace, now).await?;
    let plan = decide(agent, &observed, &ctx.defaults, now);
    act(agent, ctx, &namespace, plan).await
}
