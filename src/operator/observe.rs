//! The first step of a reconcile: reading what deciding about one agent
//! needs, and nothing else. Its own Secret, the login keeper's verdict on the
//! referenced credentials (which may refresh a ChatGPT login: that is IO,
//! its answer is a fact), the workspace claim, the pod and, only when the
//! agent is idle past its timeout, whether a run still goes on in the pod.
//! What it found is plain data ([`Observed`]) for `decide`.
//!
//! What it reads depends on what it found, the way the decisions stop: a
//! Secret someone else controls is not looked behind, and a claim that is
//! going away or a foreign pod leave nothing more to read. The predicates
//! for that are here, pure, and `decide` stops on the same ones.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::ResourceExt;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use tracing::info;

use super::context::Context;
use super::live_runs::runs_going;
use super::login::AgentCredentials;
use super::settings::{resolve, Defaults, Resolved, SpecError};
use super::shared::ReconcileError;
use super::status::{idle_decision, IdleDecision};
use crate::api::crd::{CodexAgent, CodexAgentStatus};
use crate::api::layout;

/// What a reconcile found. `None` is "absent" or "not read" alike: `decide`
/// stops where `observe` stopped reading, so it never tells them apart.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The agent's own Secret.
    pub secret: Option<Secret>,
    /// The verdict on the referenced credentials Secret; `None` without a
    /// reference or when the agent's own Secret is someone else's.
    pub credentials: Option<Verdict>,
    pub pvc: Option<PersistentVolumeClaim>,
    pub pod: Option<Pod>,
    /// Whether a run goes on in the pod the status names; asked only when
    /// the agent is idle past its timeout.
    pub runs_going: Option<bool>,
}

/// The login keeper's verdict on the referenced credentials.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Usable(AgentCredentials),
    /// For the CredentialsReady condition: its reason and the message.
    Unusable {
        reason: &'static str,
        message: String,
    },
}

/// The agent's settings, or why its spec cannot be run (the status message).
pub fn checked_settings(agent: &CodexAgent, defaults: &Defaults) -> Result<Resolved, String> {
    let name = agent.name_any();
    if name.len() > 63 {
        return Err(SpecError::NameTooLong(name).to_string());
    }
    resolve(&agent.spec, defaults).map_err(|e| e.to_string())
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

/// Why the agent must wait for its workspace claim, if it must: a previous
/// claim of that name is still going away, or it is someone else's.
pub fn claim_blocked(pvc: &PersistentVolumeClaim, uid: &str) -> Option<String> {
    if pvc.metadata.deletion_timestamp.is_some() {
        Some("is being deleted".to_string())
    } else {
        foreign_controller(&pvc.metadata, uid).map(|o| format!("is controlled by {o}"))
    }
}

/// Whether to ask the pod for runs: the agent is idle past its timeout, and
/// its gateway's marker (stale, or gone) is all that says otherwise.
pub fn asks_for_runs(
    agent: &CodexAgent,
    old: &CodexAgentStatus,
    settings: &Resolved,
    now: DateTime<Utc>,
) -> bool {
    !agent.spec.suspended
        && old.pod_name.is_some()
        && idle_decision(old, settings.idle_timeout_secs, now) == IdleDecision::Suspend
}

/// Reads what `decide` needs about `agent`.
pub async fn observe(
    agent: &CodexAgent,
    ctx: &Context,
    namespace: &str,
    now: DateTime<Utc>,
) -> Result<Observed, ReconcileError> {
    let mut seen = Observed::default();
    let Ok(settings) = checked_settings(agent, &ctx.defaults) else {
        return Ok(seen);
    };
    let uid = agent.metadata.uid.clone().unwrap_or_default();
    let children = ctx.children(namespace);

    let name = layout::secret_name(agent);
    seen.secret = get(&children.secrets, &name, ReconcileError::GetSecret).await?;
    let foreign_secret = seen
        .secret
        .as_ref()
        .is_some_and(|s| foreign_controller(&s.metadata, &uid).is_some());
    if let Some(c) = agent.spec.credentials.as_ref().filter(|_| !foreign_secret) {
        let reference = &c.secret_ref;
        let source = get(
            &children.secrets,
            &reference.name,
            ReconcileError::GetSourceSecret,
        )
        .await?;
        let verdict = ctx
            .logins
            .agent_credentials(&children.secrets, reference, source)
            .await;
        seen.credentials = Some(match verdict {
            Ok(creds) => Verdict::Usable(creds),
            Err(problem) => match problem.reason() {
                Some(reason) => Verdict::Unusable {
                    reason,
                    message: problem.to_string(),
                },
                None => return Err(ReconcileError::Credentials(problem)),
            },
        });
    }

    let name = layout::pvc_name(agent);
    seen.pvc = get(&children.pvcs, &name, ReconcileError::GetPvc).await?;
    if seen
        .pvc
        .as_ref()
        .is_some_and(|pvc| claim_blocked(pvc, &uid).is_some())
    {
        return Ok(seen);
    }

    let name = layout::pod_name(agent);
    seen.pod = get(&children.pods, &name, ReconcileError::GetPod).await?;
    if seen
        .pod
        .as_ref()
        .is_some_and(|p| foreign_controller(&p.metadata, &uid).is_some())
    {
        return Ok(seen);
    }

    let old = agent.status.clone().unwrap_or_default();
    if let (true, Some(pod)) = (
        asks_for_runs(agent, &old, &settings, now),
        old.pod_name.as_deref(),
    ) {
        // A run whose gateway went away leaves a stale marker (or none): the
        // pod itself says whether one is still going.
        let going = runs_going(&children.pods, pod).await;
        if going {
            info!(agent = %agent.name_any(), "idle past its timeout, but a run goes on in its pod: not suspending");
        }
        seen.runs_going = Some(going);
    }
    Ok(seen)
}

/// Reads an object; absent is `None`, not an error.
async fn get<K>(
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
