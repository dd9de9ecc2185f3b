//! One reconcile of one CodexAgent: its credentials Secret, its workspace
//! PVC and its pod brought in line with the spec, suspension and resumption,
//! and a status (with events) that tells a person what is going on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde_json::json;
use tracing::{info, warn};

use super::children::{self, controlled_by, foreign_controller, Children};
use super::login::{LoginKeeper, LoginProblem};
use super::metrics::{OperatorMetrics, ReconcileOutcome};
use super::pod;
use super::settings::{resolve, Defaults, SpecError};
use super::status::{is_true, set_condition};
use crate::api::crd::{condition, reason, CodexAgent, CodexAgentStatus, Condition, Phase};
use crate::api::layout;

/// The one field manager for everything the operator writes.
pub const FIELD_MANAGER: &str = "codex-mcp-operator";

/// Event reasons.
pub mod event {
    pub const CREATED: &str = "Created";
    pub const SUSPENDED: &str = "Suspended";
    pub const RESUMED: &str = "Resumed";
    pub const FAILED: &str = "Failed";
    pub const POD_REPLACED: &str = "PodReplaced";
    pub const POD_RESIZED: &str = "PodResized";
    pub const WORKSPACE_NOT_GROWN: &str = "WorkspaceNotGrown";
    pub const POD_RECREATED: &str = "PodRecreated";
    pub const CREDENTIALS_FAILED: &str = "CredentialsFailed";
}

/// How soon to look again, by phase, when nothing else triggers a reconcile.
pub(super) const RECHECK_STARTING: Duration = Duration::from_secs(10);
pub(super) const RECHECK_PENDING: Duration = Duration::from_secs(15);
pub(super) const RECHECK_FAILED: Duration = Duration::from_secs(30);
pub(super) const RECHECK_STEADY: Duration = Duration::from_secs(600);
/// An idle agent kept up by a run in its pod: asked again this often, so
/// it is suspended soon after the run ends.
pub(super) const RECHECK_LIVE_RUN: Duration = Duration::from_secs(30);
pub(super) const RECHECK_TERMINATING: Duration = Duration::from_secs(2);

pub struct Context {
    pub client: Client,
    pub defaults: Defaults,
    pub recorder: Recorder,
    pub metrics: Arc<OperatorMetrics>,
    /// The one refresher of shared ChatGPT logins.
    pub logins: LoginKeeper,
    /// The resourceVersion of this operator's last write to each agent (by
    /// uid). See [`Context::is_stale`].
    pub written: Mutex<HashMap<String, u64>>,
}

impl Context {
    pub fn new(
        client: Client,
        defaults: Defaults,
        recorder: Recorder,
        metrics: Arc<OperatorMetrics>,
        logins: LoginKeeper,
    ) -> Self {
        Self {
            client,
            defaults,
            recorder,
            metrics,
            logins,
            written: Mutex::default(),
        }
    }

    /// Whether the cached agent predates this operator's own last write to
    /// it. A reconcile queued while another ran gets the object from the
    /// watch cache, which may not have caught up with that run's writes; acting
    /// on it would undo them (resume an agent just suspended, count a pod
    /// ready twice). resourceVersions are etcd revisions, so they compare as
    /// numbers; were one ever not a number, the check is skipped.
    fn is_stale(&self, agent: &CodexAgent) -> bool {
        let (Some(uid), Some(seen)) = (agent.metadata.uid.as_ref(), version(agent)) else {
            return false;
        };
        let written = self
            .written
            .lock()
            .map(|w| w.get(uid).copied())
            .unwrap_or(None);
        written.is_some_and(|w| seen < w)
    }

    pub(super) fn wrote(&self, written: &CodexAgent) {
        if let (Some(uid), Some(v)) = (written.metadata.uid.clone(), version(written)) {
            if let Ok(mut w) = self.written.lock() {
                let entry = w.entry(uid).or_insert(v);
                *entry = (*entry).max(v);
            }
        }
    }

    fn forget(&self, agent: &CodexAgent) {
        if let (Some(uid), Ok(mut w)) = (agent.metadata.uid.as_ref(), self.written.lock()) {
            w.remove(uid);
        }
    }
}

fn version(agent: &CodexAgent) -> Option<u64> {
    agent.metadata.resource_version.as_deref()?.parse().ok()
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("the CodexAgent has no namespace")]
    NoNamespace,
    #[error("reading the referenced credentials Secret {0} failed: {1}")]
    GetSourceSecret(String, #[source] kube::Error),
    #[error("reading the credentials Secret {0} failed: {1}")]
    GetSecret(String, #[source] kube::Error),
    #[error("applying the credentials Secret {0} failed: {1}")]
    ApplySecret(String, #[source] kube::Error),
    #[error("reading the workspace claim {0} failed: {1}")]
    GetPvc(String, #[source] kube::Error),
    #[error("applying the workspace claim {0} failed: {1}")]
    ApplyPvc(String, #[source] kube::Error),
    #[error("reading the pod {0} failed: {1}")]
    GetPod(String, #[source] kube::Error),
    #[error("applying the pod {0} failed: {1}")]
    ApplyPod(String, #[source] kube::Error),
    #[error("resizing the pod {0} in place failed: {1}")]
    ResizePod(String, #[source] kube::Error),
    #[error("deleting the pod {0} failed: {1}")]
    DeletePod(String, #[source] kube::Error),
    #[error("marking CodexAgent {0} suspended failed: {1}")]
    MarkSuspended(String, #[source] kube::Error),
    #[error("writing the status of CodexAgent {0} failed: {1}")]
    ApplyStatus(String, #[source] kube::Error),
    #[error(transparent)]
    Credentials(#[from] LoginProblem),
}

/// The status fields the operator owns; the gateway's are never written here.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct OwnedStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) phase: Option<Phase>,
    pub(super) conditions: Vec<Condition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) pod_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) pod_template_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) observed_generation: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) message: Option<String>,
}

impl OwnedStatus {
    fn of(status: &CodexAgentStatus) -> Self {
        Self {
            phase: status.phase,
            conditions: status.conditions.clone(),
            pod_name: status.pod_name.clone(),
            pod_template_hash: status.pod_template_hash.clone(),
            observed_generation: status.observed_generation,
            message: status.message.clone(),
        }
    }
}

/// The state of one reconcile: the old status, the new one being built and
/// the events to publish once it is written.
pub(super) struct Pass<'a> {
    pub(super) agent: &'a CodexAgent,
    pub(super) ctx: &'a Context,
    pub(super) now: DateTime<Utc>,
    pub(super) created: DateTime<Utc>,
    pub(super) old: CodexAgentStatus,
    pub(super) new: OwnedStatus,
    pub(super) events: Vec<(EventType, &'static str, String)>,
    /// When the agent's ChatGPT login must be refreshed next.
    pub(super) refresh_at: Option<DateTime<Utc>>,
    /// Come back no later than this (a decision that waits on the pod).
    pub(super) recheck_at: Option<DateTime<Utc>>,
}

impl Pass<'_> {
    pub(super) fn condition(
        &mut self,
        type_: &str,
        status: bool,
        reason: &str,
        message: impl Into<String>,
    ) {
        set_condition(
            &mut self.new.conditions,
            type_,
            status,
            reason,
            message,
            self.now,
            self.created,
        );
    }

    pub(super) fn phase(&mut self, phase: Phase, message: impl Into<String>) {
        self.new.phase = Some(phase);
        let message = message.into();
        self.new.message = (!message.is_empty()).then_some(message);
    }

    pub(super) fn event(
        &mut self,
        type_: EventType,
        reason: &'static str,
        note: impl Into<String>,
    ) {
        self.events.push((type_, reason, note.into()));
    }

    /// Failed, with a Warning event the first time.
    pub(super) fn fail(&mut self, why: &str, message: String) {
        if self.old.phase != Some(Phase::Failed) || self.old.message.as_deref() != Some(&message) {
            self.event(EventType::Warning, event::FAILED, message.clone());
        }
        self.condition(condition::READY, false, why, message.clone());
        self.phase(Phase::Failed, message);
    }
}

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
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile_agent(agent: &CodexAgent, ctx: &Context) -> Result<Action, ReconcileError> {
    let namespace = agent.namespace().ok_or(ReconcileError::NoNamespace)?;
    if agent.metadata.deletion_timestamp.is_some() {
        // Children go with it through their owner references.
        ctx.forget(agent);
        return Ok(Action::await_change());
    }
    if ctx.is_stale(agent) {
        return Ok(Action::requeue(Duration::from_millis(300)));
    }
    let now = Utc::now();
    let created = agent
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(|t| DateTime::from_timestamp(t.0.as_second(), 0))
        .unwrap_or(now);
    let old = agent.status.clone().unwrap_or_default();
    let mut pass = Pass {
        agent,
        ctx,
        now,
        created,
        new: OwnedStatus::of(&old),
        old,
        events: Vec::new(),
        refresh_at: None,
        recheck_at: None,
    };
    pass.new.observed_generation = agent.metadata.generation;
    let children = Children::new(&ctx.client, &namespace);
    let mut requeue = converge(&mut pass, &children).await?;
    if let Some(at) = pass.refresh_at.into_iter().chain(pass.recheck_at).min() {
        let until = (at - Utc::now()).to_std().unwrap_or_default();
        requeue = requeue.min(until.max(Duration::from_secs(1)));
    }
    write_status(&mut pass).await?;
    publish_events(&pass).await;
    Ok(Action::requeue(requeue))
}

/// Brings the children in line and fills in the new status; returns when to
/// look again.
async fn converge(pass: &mut Pass<'_>, children: &Children) -> Result<Duration, ReconcileError> {
    let agent = pass.agent;
    let name = agent.name_any();
    let uid = agent.metadata.uid.clone().unwrap_or_default();
    if name.len() > 63 {
        pass.fail(
            reason::INVALID_SPEC,
            SpecError::NameTooLong(name).to_string(),
        );
        return Ok(RECHECK_STEADY);
    }
    let settings = match resolve(&agent.spec, &pass.ctx.defaults) {
        Ok(s) => s,
        Err(e) => {
            pass.fail(reason::INVALID_SPEC, e.to_string());
            return Ok(RECHECK_STEADY);
        }
    };
    if !pass
        .new
        .conditions
        .iter()
        .any(|c| c.type_ == condition::READY)
    {
        pass.condition(
            condition::READY,
            false,
            reason::POD_STARTING,
            "not started yet",
        );
    }

    let credentials_ok = children::sync_credentials(pass, children, &settings, &uid).await?;
    let pvc_existed = match children::sync_workspace(pass, children, &settings, &uid).await? {
        Some(existed) => existed,
        None => return Ok(RECHECK_PENDING),
    };
    if !pvc_existed && pass.old.phase.is_none() {
        pass.event(
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
    let pod = children::get(&children.pods, &pod_name, ReconcileError::GetPod).await?;
    if let Some(p) = &pod {
        if let Some(other) = foreign_controller(&p.metadata, &uid) {
            pass.phase(
                Phase::Pending,
                format!("waiting for pod {pod_name}, controlled by {other}, to go"),
            );
            return Ok(RECHECK_PENDING);
        }
    }
    let ours = pod.filter(|p| controlled_by(&p.metadata, &uid));

    if let Some(suspend_reason) = pod::suspension(pass, &settings).await? {
        if let Some(p) = ours
            .as_ref()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
        {
            children::delete_pod(&children.pods, p).await?;
        }
        pod::suspend(pass, suspend_reason);
        return Ok(RECHECK_STEADY);
    }
    if is_true(&pass.old, condition::SUSPENDED) {
        pass.condition(condition::SUSPENDED, false, reason::RESUMED, "resumed");
        pass.event(
            EventType::Normal,
            event::RESUMED,
            "resumed: starting the pod on the kept workspace",
        );
        pass.ctx.metrics.resumed();
    } else if !pass
        .new
        .conditions
        .iter()
        .any(|c| c.type_ == condition::SUSPENDED)
    {
        pass.condition(condition::SUSPENDED, false, reason::ACTIVE, "");
    }

    pod::sync_pod(pass, children, &settings, ours, credentials_ok).await
}
/// Applies the operator's status fields when they changed.
async fn write_status(pass: &mut Pass<'_>) -> Result<(), ReconcileError> {
    for c in &mut pass.new.conditions {
        c.observed_generation = pass.agent.metadata.generation;
    }
    if pass.new == OwnedStatus::of(&pass.old) {
        return Ok(());
    }
    let agent = pass.agent;
    let name = agent.name_any();
    let api: Api<CodexAgent> = Api::namespaced(
        pass.ctx.client.clone(),
        &agent.namespace().unwrap_or_default(),
    );
    let body = json!({
        "apiVersion": CodexAgent::api_version(&()),
        "kind": CodexAgent::kind(&()),
        "metadata": {"name": name},
        "status": pass.new,
    });
    let written = api
        .patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|e| ReconcileError::ApplyStatus(name.clone(), e))?;
    pass.ctx.wrote(&written);
    if pass.new.phase != pass.old.phase {
        info!(agent = %name, namespace = ?agent.namespace(), phase = ?pass.new.phase, message = ?pass.new.message, "phase changed");
    }
    Ok(())
}

/// Events are best effort: failing to publish one never fails a reconcile.
async fn publish_events(pass: &Pass<'_>) {
    let reference = pass.agent.object_ref(&());
    for (type_, reason, note) in &pass.events {
        let event = Event {
            type_: *type_,
            reason: (*reason).into(),
            note: Some(note.clone()),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = pass.ctx.recorder.publish(&event, &reference).await {
            warn!(agent = %pass.agent.name_any(), "publishing event {reason} failed: {e}");
        }
    }
}
