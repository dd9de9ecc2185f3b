//! The `CodexAgent` custom resource: one agent's durable, isolated
//! environment on Kubernetes.
//!
//! Validation lives in the schema, so the API server refuses a bad spec with
//! a message naming the field, before the operator ever sees it: OpenAPI
//! validation (patterns, enums, ranges) here, and CEL rules for fixed fields
//! and fields that must agree in `crd_schema.rs`, which builds the CRD
//! (`definition`, `crd_yaml`) from these types. Doc comments say which
//! rule a field is under, so `kubectl explain` shows it.
//!
//! The status is written by two parties with disjoint fields. The operator
//! owns `phase`, `conditions`, `podName`, `podTemplateHash`,
//! `observedGeneration` and `message`. The gateway owns `threadId`,
//! `lastActivity`, `activeRuns`, `recentRuns` and the run and token counters: it raises
//! `activeRuns` when a run starts, lowers it when the run ends, and refreshes
//! `lastActivity` when a run starts or ends and at least once a minute while
//! one is in progress. That is how the operator knows whether an agent is
//! idle (see `status::idle_decision`).

use chrono::{DateTime, Utc};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use super::crd_source::{GitSecretRef, GitSource, SourceSpec};

pub const GROUP: &str = "codexmcp.dev";
pub const VERSION: &str = "v1alpha1";
pub const KIND: &str = "CodexAgent";

/// A CPU quantity: whole or decimal cores (`2`, `0.5`) or millicores (`500m`).
pub const CPU_PATTERN: &str = r"^([0-9]+(\.[0-9]{1,3})?|[0-9]+m)$";
/// A byte quantity with an optional decimal or binary suffix (`512Mi`, `10Gi`,
/// `1G`). Signs, exponents and the milli suffix (`2048m` would mean 2.048
/// bytes) are refused.
pub const BYTES_PATTERN: &str = r"^[0-9]+(\.[0-9]+)?(k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$";
/// A DNS-1123 label.
pub const DNS_LABEL_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// A Codex provider id, as the gateway accepts it.
pub const PROVIDER_PATTERN: &str = r"^[A-Za-z0-9_-]+$";
/// An environment variable name.
pub const ENV_NAME_PATTERN: &str = r"^[A-Za-z_][A-Za-z0-9_]*$";

/// One agent: a pod with resource limits, a PVC workspace and a credentials
/// Secret, suspended when idle and resumed on demand.
// Printer columns repeat `type_ = ...`, which clippy takes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "codexmcp.dev",
    version = "v1alpha1",
    kind = "CodexAgent",
    plural = "codexagents",
    shortname = "cxa",
    category = "codex",
    namespaced,
    status = "CodexAgentStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "An agent's isolated Codex environment: a pod, a PVC workspace and a credentials Secret.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Pod", type_ = "string", json_path = ".status.podName"),
    printcolumn(name = "Runs", type_ = "integer", json_path = ".status.runs"),
    printcolumn(name = "Active", type_ = "integer", json_path = ".status.activeRuns"),
    printcolumn(
        name = "Input Tokens",
        type_ = "integer",
        json_path = ".status.inputTokens",
        priority = 1
    ),
    printcolumn(
        name = "Output Tokens",
        type_ = "integer",
        json_path = ".status.outputTokens",
        priority = 1
    ),
    printcolumn(
        name = "Last Activity",
        type_ = "date",
        json_path = ".status.lastActivity"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct CodexAgentSpec {
    /// Container image holding `codex` and `codex-mcp`; the operator's
    /// `--agent-image` when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// When the image is pulled; the operator's `--image-pull-policy` when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// CPU and memory for the agent's pod. A change is applied to the
    /// running pod in place (no restart, runs go on) when it keeps the pod's
    /// QoS class; otherwise the pod is replaced, keeping the workspace.
    /// Requests may not exceed limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<AgentResources>,
    /// The workspace volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
    /// Where the agent's Codex credentials come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<CredentialsSpec>,
    /// How Codex runs for this agent (read by the gateway for each run; a
    /// change does not restart the pod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codex: Option<CodexSettings>,
    /// Suspend the agent: its pod is deleted, its workspace and Secret kept.
    /// The operator sets it when the agent has been idle for
    /// `idleTimeoutSeconds`; clearing it resumes the agent.
    #[serde(default)]
    pub suspended: bool,
    /// Seconds without activity after which the agent is suspended; 0 never
    /// suspends. The operator's `SESSION_TIMEOUT` when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub idle_timeout_seconds: Option<i64>,
    /// The tenant the agent belongs to (a DNS label); `default` when empty.
    /// Fixed at creation: the API server refuses a change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63), pattern(DNS_LABEL_PATTERN))]
    pub tenant: Option<String>,
    /// Scheduling and environment adjustments for the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodOverrides>,
    /// The repository the agent works on, cloned into its workspace on
    /// first start; an empty workspace when unset. May be set on an agent
    /// whose workspace is still empty; cannot be changed or removed once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentResources {
    /// Upper bounds; each defaults to the operator's `CONTAINER_CPU_LIMIT` /
    /// `CONTAINER_MEMORY_LIMIT`. Lowering the memory limit below what the
    /// agent uses leaves the resize pending until usage drops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<CpuMemory>,
    /// What the scheduler reserves; each defaults to the operator's request
    /// defaults, capped at the limit. A request set beside its limit may not
    /// exceed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<CpuMemory>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CpuMemory {
    /// CPU cores (`2`, `0.5`) or millicores (`500m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(CPU_PATTERN))]
    pub cpu: Option<String>,
    /// Memory in bytes with a suffix (`512Mi`, `2Gi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(BYTES_PATTERN))]
    pub memory: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Size of the workspace volume (`10Gi`); the operator's default when
    /// empty. May grow but never shrink or be removed once set (the API
    /// server refuses it); growing expands the volume when its storage class
    /// allows expansion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(BYTES_PATTERN))]
    pub size: Option<String>,
    /// Storage class of the volume; the cluster's default when empty. Fixed
    /// at creation: the API server refuses a change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub storage_class_name: Option<String>,
    /// What happens to the workspace volume when the CodexAgent is deleted.
    #[serde(default)]
    pub when_deleted: VolumePolicy,
}

/// The fate of the workspace volume when its CodexAgent is deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum VolumePolicy {
    /// The volume is garbage-collected with the CodexAgent.
    #[default]
    Delete,
    /// The volume stays; a CodexAgent created later with the same name
    /// adopts it, workspace and conversation included.
    Retain,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSpec {
    /// A Secret in the agent's namespace holding an API key, a ChatGPT
    /// login (`auth.json`), or both. Its keys are copied into the agent's
    /// own Secret, which the pod mounts read-only.
    pub secret_ref: SecretRef,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key holding the OpenAI API key.
    #[serde(default = "default_api_key_key")]
    #[schemars(length(min = 1, max = 253))]
    pub api_key_key: String,
    /// The key holding Codex's `auth.json` (ChatGPT login).
    #[serde(default = "default_auth_json_key")]
    #[schemars(length(min = 1, max = 253))]
    pub auth_json_key: String,
}

pub fn default_api_key_key() -> String {
    "OPENAI_API_KEY".into()
}

pub fn default_auth_json_key() -> String {
    "auth.json".into()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CodexSettings {
    /// Model for every run; the gateway's `CODEX_MODEL` when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub model: Option<String>,
    /// Model provider id; the gateway's `CODEX_PROVIDER` when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63), pattern(PROVIDER_PATTERN))]
    pub provider: Option<String>,
    /// Sandbox for tools that write; the gateway's `CODEX_APPROVAL_MODE`
    /// when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_mode: Option<ApprovalMode>,
    /// Extra Codex config overrides: key to TOML value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

/// The original server's `CODEX_APPROVAL_MODE` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalMode {
    Suggest,
    AutoEdit,
    FullAuto,
    DangerFullAccess,
    External,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodOverrides {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// As in a pod: a toleration without a key needs operator `Exists`,
    /// which takes no value, and `tolerationSeconds` needs effect
    /// `NoExecute`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Extra environment variables. Names the agent's environment relies on
    /// (`HOME`, `CODEX_HOME`, `TMPDIR`, `CODEX_MCP_*`) are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Identity adjustments; the pod always runs non-root, read-only,
    /// without privileges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityTweaks>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Toleration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<TolerationOperator>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<TaintEffect>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TolerationOperator {
    Exists,
    Equal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    #[schemars(length(min = 1, max = 253), pattern(ENV_NAME_PATTERN))]
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecurityTweaks {
    /// Non-root uid to run as (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2147483647))]
    pub run_as_user: Option<i64>,
    /// Non-root gid to run as (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2147483647))]
    pub run_as_group: Option<i64>,
    /// Group owning the workspace volume (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2147483647))]
    pub fs_group: Option<i64>,
    /// `OnRootMismatch` skips re-owning a large workspace on every start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_group_change_policy: Option<FsGroupChangePolicy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum FsGroupChangePolicy {
    OnRootMismatch,
    Always,
}

/// Where an agent is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// Waiting for something outside the pod (e.g. the credentials Secret).
    Pending,
    /// The pod is being created, replaced or is not ready yet.
    Starting,
    /// The pod is ready for runs.
    Ready,
    /// No pod; the workspace is kept.
    Suspended,
    /// The agent cannot start; `message` says why.
    Failed,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::Pending,
        Phase::Starting,
        Phase::Ready,
        Phase::Suspended,
        Phase::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Starting => "Starting",
            Self::Ready => "Ready",
            Self::Suspended => "Suspended",
            Self::Failed => "Failed",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CodexAgentStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The agent's pod, while it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    /// Hash of the pod template the current pod was built from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// What is going on, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Written by the gateway: the Codex conversation the next run continues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// Written by the gateway: when a run last started, ended or reported
    /// progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity: Option<DateTime<Utc>>,
    /// Written by the gateway: runs in progress now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_runs: Option<i64>,
    /// Written by the gateway: runs finished, failed ones included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_runs: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<i64>,
    /// Written by the gateway: the agent's last runs (a running one
    /// included), newest last, and how each ended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_runs: Vec<super::run_log::RunEntry>,
}

/// A condition in the usual Kubernetes shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    /// Left out when empty: a 1.20 API server's server-side apply turns an
    /// empty string into null, which the schema then refuses.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    pub last_transition_time: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Condition types.
pub mod condition {
    /// The pod is ready for runs.
    pub const READY: &str = "Ready";
    /// The workspace PVC is bound to a volume.
    pub const WORKSPACE_BOUND: &str = "WorkspaceBound";
    /// The agent's credentials Secret holds usable credentials.
    pub const CREDENTIALS_READY: &str = "CredentialsReady";
    /// The agent is suspended (no pod).
    pub const SUSPENDED: &str = "Suspended";
    /// The workspace holds the agent's `spec.source` repository; set only
    /// on agents with a source. False names why the clone failed (the
    /// reasons in `super::source_ready::reason`).
    pub const SOURCE_READY: &str = "SourceReady";
}

/// Condition reasons.
pub mod reason {
    pub const POD_READY: &str = "PodReady";
    pub const POD_STARTING: &str = "PodStarting";
    pub const POD_REPLACING: &str = "PodReplacing";
    pub const POD_FAILED: &str = "PodFailed";
    /// The pod's `source` init container could not clone the repository.
    pub const SOURCE_FAILED: &str = "SourceFailed";
    pub const NO_POD: &str = "NoPod";
    pub const BOUND: &str = "Bound";
    pub const WAITING_FOR_VOLUME: &str = "WaitingForVolume";
    pub const VOLUME_LOST: &str = "VolumeLost";
    pub const SECRET_COPIED: &str = "SecretCopied";
    pub const NOT_CONFIGURED: &str = "NotConfigured";
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    pub const KEYS_MISSING: &str = "KeysMissing";
    /// The ChatGPT login in the source Secret is not valid JSON or has no tokens.
    pub const LOGIN_UNREADABLE: &str = "LoginUnreadable";
    /// The token endpoint refused to refresh the ChatGPT login (revoked,
    /// reused or expired refresh token): someone must log in again.
    pub const REFRESH_FAILED: &str = "RefreshFailed";
    /// The token endpoint could not be reached; retried.
    pub const REFRESH_UNREACHABLE: &str = "RefreshUnreachable";
    /// The agent's Secret holds a fresh ChatGPT login (without its refresh token).
    pub const LOGIN_COPIED: &str = "LoginCopied";
    pub const REQUESTED: &str = "Requested";
    pub const IDLE_TIMEOUT: &str = "IdleTimeout";
    pub const RESUMED: &str = "Resumed";
    pub const ACTIVE: &str = "Active";
    pub const INVALID_SPEC: &str = "InvalidSpec";
}
