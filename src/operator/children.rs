//! The reconciler's IO on an agent's children: reading, applying (server-side
//! apply with the operator's one field manager) and deleting them, and
//! keeping the credentials Secret and the workspace claim in line.

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, ResourceRequirements, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Client, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;

use super::desired;
use super::reconcile::{event, Pass, ReconcileError, FIELD_MANAGER};
use super::settings::Resolved;
use super::status::get_condition;
use crate::api::crd::{condition, reason, Phase};
use crate::api::layout;
use kube::runtime::events::EventType;

/// The namespaced APIs a reconcile of one agent works with.
pub struct Children {
    pub secrets: Api<Secret>,
    pub pvcs: Api<PersistentVolumeClaim>,
    pub pods: Api<Pod>,
}

impl Children {
    pub fn new(client: &Client, namespace: &str) -> Self {
        Self {
            secrets: Api::namespaced(client.clone(), namespace),
            pvcs: Api::namespaced(client.clone(), namespace),
            pods: Api::namespaced(client.clone(), namespace),
        }
    }
}

/// Reads an object; absent is `None`, not an error.
pub async fn get<K>(
    api: &Api<K>,
    name: &str,
    step: fn(String, kube::Error) -> ReconcileError,
) -> Result<Option<K>, ReconcileError>
where
    K: Clone + DeserializeOwned + Debug,
{
    api.get_opt(name)
        .await
        .map_err(|e| step(name.to_string(), e))
}

/// Server-side applies `object`, taking ownership of every field it sets
/// (`force`: this operator is the only writer of its children's fields).
pub async fn apply<K>(
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

/// Asks for new resources of the agent container of a running pod, through
/// its `resize` subresource (the only way a running pod's resources change).
pub async fn resize_pod(
    pods: &Api<Pod>,
    pod: &Pod,
    resources: &ResourceRequirements,
) -> Result<(), ReconcileError> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    // The uid makes it fail rather than resize a successor of the same name.
    let body = serde_json::json!({
        "metadata": {"uid": pod.metadata.uid},
        "spec": {"containers": [{"name": layout::CONTAINER_NAME, "resources": resources}]},
    });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    pods.patch_subresource("resize", &name, &params, &Patch::Strategic(&body))
        .await
        .map(|_| ())
        .map_err(|e| ReconcileError::ResizePod(name, e))
}

/// Deletes the pod with exactly this uid; a pod already gone (or replaced
/// by another with the same name) is success.
pub async fn delete_pod(pods: &Api<Pod>, pod: &Pod) -> Result<(), ReconcileError> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
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

/// The controller of an object when it is not the agent with `uid`: such an
/// object is someone else's and must not be changed or deleted.
pub fn foreign_controller(meta: &ObjectMeta, uid: &str) -> Option<String> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true) && o.uid != uid)
        .map(|o| format!("{} {}", o.kind, o.name))
}

/// Whether the object is controlled by the agent with `uid`.
pub fn controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

/// Gives the agent its own Secret with the credential chosen from the
/// referenced one (a ChatGPT login refreshed first when due). False
/// when the reference cannot be used (the status says why).
pub(super) async fn sync_credentials(
    pass: &mut Pass<'_>,
    children: &Children,
    settings: &Resolved,
    uid: &str,
) -> Result<bool, ReconcileError> {
    let agent = pass.agent;
    let name = layout::secret_name(agent);
    let existing = get(&children.secrets, &name, ReconcileError::GetSecret).await?;
    if let Some(other) = existing
        .as_ref()
        .and_then(|s| foreign_controller(&s.metadata, uid))
    {
        let message = format!("the Secret {name} is controlled by {other}");
        pass.condition(
            condition::CREDENTIALS_READY,
            false,
            reason::SECRET_NOT_FOUND,
            message,
        );
        return Ok(false);
    }
    let (data, ok) = match &agent.spec.credentials {
        None => {
            pass.condition(
                condition::CREDENTIALS_READY,
                false,
                reason::NOT_CONFIGURED,
                "no credentials Secret referenced: each run must bring its credentials",
            );
            (Default::default(), true)
        }
        Some(c) => {
            let source = get(
                &children.secrets,
                &c.secret_ref.name,
                ReconcileError::GetSourceSecret,
            )
            .await?;
            let logins = &pass.ctx.logins;
            match logins
                .agent_credentials(&children.secrets, &c.secret_ref, source)
                .await
            {
                Ok(creds) => {
                    pass.condition(
                        condition::CREDENTIALS_READY,
                        true,
                        creds.reason,
                        creds.message,
                    );
                    pass.refresh_at = creds.refresh_at;
                    (creds.data, true)
                }
                Err(problem) => {
                    let Some(why) = problem.reason() else {
                        return Err(ReconcileError::Credentials(problem));
                    };
                    let message = problem.to_string();
                    let old = get_condition(&pass.old, condition::CREDENTIALS_READY);
                    if old.is_none_or(|c| c.status != "False" || c.reason != why) {
                        pass.event(
                            EventType::Warning,
                            event::CREDENTIALS_FAILED,
                            message.clone(),
                        );
                    }
                    pass.condition(condition::CREDENTIALS_READY, false, why, message);
                    if why == reason::REFRESH_UNREACHABLE {
                        pass.refresh_at = Some(pass.now + chrono::Duration::seconds(30));
                    }
                    // Keep what an existing Secret holds: a running agent
                    // keeps working while its source is fixed.
                    if existing.is_some() {
                        return Ok(false);
                    }
                    (Default::default(), false)
                }
            }
        }
    };
    let secret = desired::desired_secret(agent, settings, data);
    apply(
        &children.secrets,
        &name,
        &secret,
        ReconcileError::ApplySecret,
    )
    .await?;
    Ok(ok)
}

/// Applies the workspace claim. `Some(existed before)`, or `None` when the
/// agent must wait (a previous claim of that name is still going away).
pub(super) async fn sync_workspace(
    pass: &mut Pass<'_>,
    children: &Children,
    settings: &Resolved,
    uid: &str,
) -> Result<Option<bool>, ReconcileError> {
    let agent = pass.agent;
    let name = layout::pvc_name(agent);
    let existing = get(&children.pvcs, &name, ReconcileError::GetPvc).await?;
    if let Some(pvc) = &existing {
        let blocked = if pvc.metadata.deletion_timestamp.is_some() {
            Some("is being deleted".to_string())
        } else {
            foreign_controller(&pvc.metadata, uid).map(|o| format!("is controlled by {o}"))
        };
        if let Some(why) = blocked {
            let message = format!("waiting for the workspace claim {name}: it {why}");
            pass.condition(
                condition::WORKSPACE_BOUND,
                false,
                reason::WAITING_FOR_VOLUME,
                message.clone(),
            );
            pass.phase(Phase::Pending, message);
            return Ok(None);
        }
    }
    let growth = desired::workspace_growth(existing.as_ref(), settings);
    let desired = desired::desired_pvc(agent, settings, existing.as_ref(), true);
    let applied = match apply(&children.pvcs, &name, &desired, ReconcileError::ApplyPvc).await {
        // Only volumes of a class that allows expansion grow; the claim
        // stays as it is, and the workspace keeps working.
        Err(ReconcileError::ApplyPvc(_, kube::Error::Api(e)))
            if growth.is_some() && (e.code == 403 || e.code == 422) =>
        {
            let note = format!(
                "the workspace claim {name} cannot grow to {}: {}",
                growth.unwrap_or_default(),
                e.message
            );
            let old = get_condition(&pass.old, condition::WORKSPACE_BOUND);
            if old.is_none_or(|c| c.message != note) {
                pass.event(EventType::Warning, event::WORKSPACE_NOT_GROWN, note.clone());
            }
            let unchanged = desired::desired_pvc(agent, settings, existing.as_ref(), false);
            let applied =
                apply(&children.pvcs, &name, &unchanged, ReconcileError::ApplyPvc).await?;
            workspace_condition(pass, &applied);
            if let Some(c) = pass
                .new
                .conditions
                .iter_mut()
                .find(|c| c.type_ == condition::WORKSPACE_BOUND)
            {
                c.message = note;
            }
            return Ok(Some(true));
        }
        other => other?,
    };
    workspace_condition(pass, &applied);
    Ok(Some(existing.is_some()))
}

fn workspace_condition(pass: &mut Pass<'_>, pvc: &PersistentVolumeClaim) {
    let phase = pvc.status.as_ref().and_then(|s| s.phase.clone());
    let name = pvc.name_any();
    match phase.as_deref() {
        Some("Bound") => {
            let volume = pvc
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.clone())
                .unwrap_or_default();
            pass.condition(
                condition::WORKSPACE_BOUND,
                true,
                reason::BOUND,
                format!("claim {name} bound to volume {volume}"),
            );
        }
        Some("Lost") => pass.condition(
            condition::WORKSPACE_BOUND,
            false,
            reason::VOLUME_LOST,
            format!("claim {name} lost its volume"),
        ),
        _ => pass.condition(
            condition::WORKSPACE_BOUND,
            false,
            reason::WAITING_FOR_VOLUME,
            format!("claim {name} is waiting for a volume"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn owned_by(uid: &str, controller: bool) -> ObjectMeta {
        ObjectMeta {
            owner_references: Some(vec![OwnerReference {
                kind: "CodexAgent".into(),
                name: "a".into(),
                uid: uid.into(),
                controller: Some(controller),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn ownership() {
        assert!(controlled_by(&owned_by("u1", true), "u1"));
        assert!(!controlled_by(&owned_by("u1", false), "u1"));
        assert_eq!(foreign_controller(&owned_by("u1", true), "u1"), None);
        assert_eq!(
            foreign_controller(&owned_by("u0", true), "u1").as_deref(),
            Some("CodexAgent a")
        );
        assert_eq!(foreign_controller(&ObjectMeta::default(), "u1"), None);
    }
}
