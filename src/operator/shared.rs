//! What every step of a reconcile shares: the operator's field manager, the
//! reasons of the events it publishes, how soon it looks at an agent again,
//! and the error of a reconcile, named after the step that failed. The
//! bottom of the reconciler: observe, decide and act use it, it uses none
//! of them.

use std::time::Duration;

use super::login::LoginProblem;

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
pub const RECHECK_STARTING: Duration = Duration::from_secs(10);
pub const RECHECK_PENDING: Duration = Duration::from_secs(15);
pub const RECHECK_FAILED: Duration = Duration::from_secs(30);
pub const RECHECK_STEADY: Duration = Duration::from_secs(600);
/// An idle agent kept up by a run in its pod: asked again this often, so
/// it is suspended soon after the run ends.
pub const RECHECK_LIVE_RUN: Duration = Duration::from_secs(30);
pub const RECHECK_TERMINATING: Duration = Duration::from_secs(2);
/// A reconcile that saw a cache older than the operator's own last write.
pub const RECHECK_STALE: Duration = Duration::from_millis(300);
/// After a failed reconcile (which is logged; reconciles are idempotent,
/// so retrying from the start is safe).
pub const RETRY_FAILED: Duration = Duration::from_secs(5);

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
