//! The last step of a reconcile: carrying a [`Plan`] out. Its steps in
//! order (server-side apply with the operator's one field manager, the
//! pod's `resize` subresource, deletes guarded by the pod's uid, the
//! conditional mark of suspension), the answers that change the plan handed
//! back to it, then the metrics, the status (only when it changed) and the
//! events (best effort). No decisions here but which answer is which.

use std::fmt::Debug;

use chrono::Utc;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::Event;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use tracing::{debug, info, warn};

use super::context::{Children, Context};
use super::plan::{growth_refused, pod_refused, resize_refused, Count, Plan, Step};
use super::shared::{ReconcileError, FIELD_MANAGER};
use crate::api::crd::CodexAgent;
use crate::api::layout;

/// Carries `plan` out for `agent`; returns when to look again.
pub async fn act(
    agent: &CodexAgent,
    ctx: &Context,
    namespace: &str,
    mut plan: Plan,
) -> Result<Action, ReconcileError> {
    let children = ctx.children(namespace);
    while let Some(step) = plan.steps.pop_front() {
        take(step, agent, ctx, &children, &mut plan).await?;
    }
    let requeue = plan.requeue_after(Utc::now());
    for count in &plan.outcome.counts {
        match count {
            Count::Resumed => ctx.metrics.resumed(),
            Count::Suspended(why) => ctx.metrics.suspended(why),
            Count::ReadyAfter(trigger, seconds) => ctx.metrics.ready_after(trigger, *seconds),
        }
    }
    write_status(agent, ctx, &children, &mut plan).await?;
    publish_events(agent, ctx, &plan).await;
    Ok(Action::requeue(requeue))
}

/// Takes one step; an answer that changes the rest of the plan goes back
/// to it.
async fn take(
    step: Step,
    agent: &CodexAgent,
    ctx: &Context,
    children: &Children,
    plan: &mut Plan,
) -> Result<(), ReconcileError> {
    match step {
        Step::ApplySecret(secret) => {
            let name = secret.name_any();
            apply(
                &children.secrets,
                &name,
                &secret,
                ReconcileError::ApplySecret,
            )
            .await?;
        }
        Step::ApplyPvc { claim, growth } => {
            let name = claim.name_any();
            let applied = match (
                apply(&children.pvcs, &name, &claim, ReconcileError::ApplyPvc).await,
                growth,
            ) {
                (Err(ReconcileError::ApplyPvc(_, kube::Error::Api(e))), Some(growth))
                    if growth_refused(e.code) =>
                {
                    plan.on_growth_refused(&growth, &e.message);
                    let unchanged = &growth.unchanged;
                    apply(&children.pvcs, &name, unchanged, ReconcileError::ApplyPvc).await?
                }
                (applied, _) => applied?,
            };
            plan.workspace_applied(&applied);
        }
        Step::MarkSuspended { resource_version } => {
            let name = agent.name_any();
            let patch = json!({
                "metadata": {"resourceVersion": resource_version},
                "spec": {"suspended": true},
            });
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PatchParams::default()
            };
            let written = children
                .agents
                .patch(&name, &params, &Patch::Merge(&patch))
                .await
                .map_err(|e| ReconcileError::MarkSuspended(name.clone(), e))?;
            ctx.written.wrote(&written);
            info!(agent = %name, "idle past its timeout: suspending");
        }
        Step::DeletePod { name, uid } => delete_pod(&children.pods, name, uid).await?,
        Step::ApplyPod(pod) => {
            let name = pod.name_any();
            match apply(&children.pods, &name, &pod, ReconcileError::ApplyPod).await {
                Ok(_) => debug!(pod = %name, "created the pod"),
                Err(ReconcileError::ApplyPod(_, kube::Error::Api(e))) if pod_refused(e.code) => {
                    plan.on_pod_refused(&e.message);
                }
                Err(e) => return Err(e),
            }
        }
        Step::ResizePod {
            name,
            uid,
            resources,
        } => {
            // The uid makes it fail rather than resize a successor of the
            // same name.
            let body = json!({
                "metadata": {"uid": uid},
                "spec": {"containers": [{"name": layout::CONTAINER_NAME, "resources": resources}]},
            });
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PatchParams::default()
            };
            let resized = children
                .pods
                .patch_subresource("resize", &name, &params, &Patch::Strategic(&body))
                .await;
            match resized {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if resize_refused(e.code) => {
                    plan.on_resize_refused(name, uid, &e.message);
                }
                Err(e) => return Err(ReconcileError::ResizePod(name, e)),
            }
        }
    }
    Ok(())
}

/// Server-side applies `object`, taking ownership of every field it sets
/// (`force`: this operator is the only writer of its children's fields).
async fn apply<K>(
    api: &Api<K>,
    name: &str,
    object: &K,
    step: fn(String, kube::Error) -> ReconcileError,
) -> Result<K, ReconcileError>
where
    K: Clone + DeserializeOwned + Serialize + Debug,
{
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(|e| step(name.to_string(), e))
}

/// Deletes the pod with exactly this uid; a pod already gone (or replaced
/// by another with the same name) is success.
async fn delete_pod(
    pods: &Api<Pod>,
    name: String,
    uid: Option<String>,
) -> Result<(), ReconcileError> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid,
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match pods.delete(&name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(ReconcileError::DeletePod(name, e)),
    }
}

/// Applies the operator's status fields when they changed.
async fn write_status(
    agent: &CodexAgent,
    ctx: &Context,
    children: &Children,
    plan: &mut Plan,
) -> Result<(), ReconcileError> {
    let Some(status) = plan.status_to_write(agent.metadata.generation) else {
        return Ok(());
    };
    let name = agent.name_any();
    let body = json!({
        "apiVersion": CodexAgent::api_version(&()),
        "kind": CodexAgent::kind(&()),
        "metadata": {"name": name},
        "status": status,
    });
    let written = children
        .agents
        .patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|e| ReconcileError::ApplyStatus(name.clone(), e))?;
    ctx.written.wrote(&written);
    let new = &plan.outcome.status;
    if new.phase != plan.old.phase {
        info!(agent = %name, namespace = ?agent.namespace(), phase = ?new.phase, message = ?new.message, "phase changed");
    }
    Ok(())
}

/// Events are best effort: failing to publish one never fails a reconcile.
async fn publish_events(agent: &CodexAgent, ctx: &Context, plan: &Plan) {
    let reference = agent.object_ref(&());
    for note in &plan.outcome.events {
        let event = Event {
            type_: note.type_,
            reason: note.reason.into(),
            note: Some(note.note.clone()),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            warn!(agent = %agent.name_any(), "publishing event {} failed: {e}", note.reason);
        }
    }
}
