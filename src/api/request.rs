//! The wire contract between the gateway and `codex-mcp agent-run`: one JSON
//! request line on stdin, Codex's JSONL events on stdout, one result line last.

use std::fmt;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `type` of the last line `agent-run` prints; Codex's own event types
/// never start with `agent_run.`.
pub const RESULT_LINE_TYPE: &str = "agent_run.result";

/// Token counts from Codex's `turn.completed` events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub cached_input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, other: Usage) {
        self.input_tokens += other.input_tokens;
        self.cached_input_tokens += other.cached_input_tokens;
        self.output_tokens += other.output_tokens;
    }
}

/// Codex's sandbox for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxMode {
    /// Codex may read but not write.
    ReadOnly,
    /// Codex may write inside the workspace.
    WorkspaceWrite,
    /// Codex's sandbox is off but approvals stay on.
    DangerFullAccess,
    /// No Codex sandbox at all: the environment itself (a pod) is the sandbox.
    External,
}

impl SandboxMode {
    /// Maps the original server's `CODEX_APPROVAL_MODE` values (and Codex's
    /// own sandbox names) to the mode used for runs that may write.
    pub fn from_approval_mode(mode: &str) -> Option<Self> {
        match mode.trim().to_ascii_lowercase().as_str() {
            "suggest" | "read-only" | "readonly" => Some(Self::ReadOnly),
            "auto-edit" | "full-auto" | "workspace-write" | "auto" => Some(Self::WorkspaceWrite),
            "danger-full-access" | "danger" => Some(Self::DangerFullAccess),
            "external" | "none" => Some(Self::External),
            _ => None,
        }
    }

    /// The sandbox a run that must not write gets, given the configured one.
    pub fn read_only_variant(self) -> Self {
        match self {
            // Without Codex's sandbox nothing can make the run read-only; the
            // caller checks the workspace afterwards instead.
            Self::External => Self::External,
            _ => Self::ReadOnly,
        }
    }
}

/// A model provider Codex should talk to. With a `base_url` it is defined
/// inline as a custom provider (this is how tests point Codex at a fake
/// model); without, `id` names one of Codex's built-in providers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderConfig {
    pub id: String,
    #[serde(default)]
    pub base_url: Option<String>,
    /// The environment variable Codex reads the API key from.
    #[serde(default)]
    pub env_key: Option<String>,
    /// Authenticate to this provider with the ChatGPT login instead of a key.
    #[serde(default)]
    pub requires_openai_auth: bool,
}

/// Credentials handed to one run. Never logged.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Credentials {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// A complete Codex `auth.json` (API key or ChatGPT form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_json: Option<Value>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("auth_json", &self.auth_json.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// One Codex turn to run in an agent's environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRequest {
    pub prompt: String,
    /// JSON Schema the final message must follow (`codex exec --output-schema`).
    #[serde(default)]
    pub output_schema: Option<Value>,
    /// Continue this Codex thread; `None` starts a new one.
    #[serde(default)]
    pub thread_id: Option<String>,
    pub model: String,
    pub sandbox: SandboxMode,
    #[serde(default)]
    pub provider: Option<ProviderConfig>,
    /// Extra `-c key=value` overrides (TOML values), passed through verbatim.
    #[serde(default)]
    pub config_overrides: Vec<String>,
    #[serde(default)]
    pub credentials: Credentials,
    /// Snapshot the workspace before and after, and report the real changes.
    #[serde(default)]
    pub track_changes: bool,
    pub workspace: PathBuf,
    /// Paths the caller named (target and context files), relative to the
    /// workspace. The gateway checked them lexically; `agent-run` resolves
    /// them where the workspace is, symlinks included, and refuses the run
    /// if one leads out of it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workspace_paths: Vec<String>,
    pub codex_home: PathBuf,
    /// Upper bound for the run, enforced inside the environment too.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// A file where the gateway puts each refreshed ChatGPT login while the
    /// run goes on; the run follows it (local runs: on Kubernetes a run
    /// follows its environment's credentials directory instead).
    #[serde(default)]
    pub follow_login: Option<PathBuf>,
    /// How large the reported diffs may be.
    #[serde(default)]
    pub diff_limits: DiffLimits,
    /// A detached run's [`super::run_dir::RunMeta`], written to its run
    /// directory as is (never the credentials above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_meta: Option<Value>,
}

/// How a file differs after a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileChangeKind {
    Create,
    Modify,
    Delete,
}

/// A change to one workspace file, computed from the workspace itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FileChange {
    /// Path relative to the workspace root.
    pub file: String,
    pub action: FileChangeKind,
    /// Unified diff of the change (empty for binary or oversized files).
    pub diff: String,
    /// The diff was cut short or left out to bound the result's size.
    #[serde(default)]
    pub truncated: bool,
}

/// The last line `agent-run` prints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunOutcome {
    pub ok: bool,
    #[serde(default)]
    pub thread_id: Option<String>,
    /// Codex's last agent message: the reply.
    #[serde(default)]
    pub final_message: Option<String>,
    #[serde(default)]
    pub usage: Usage,
    /// Why the run failed, in words a caller can act on.
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// The run hit its time bound (`timeout_secs`).
    #[serde(default)]
    pub timed_out: bool,
    #[serde(default)]
    pub changes: Vec<FileChange>,
    #[serde(default)]
    pub commands: Vec<String>,
    #[serde(default)]
    pub duration_ms: u64,
}

/// How much diff text one run may report. A run creating many large files
/// would otherwise make the gateway hold (and send) all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiffLimits {
    /// Longest diff of one file, in bytes.
    pub max_file_bytes: usize,
    /// Most diff text of the whole run, in bytes.
    pub max_total_bytes: usize,
}

/// Longest diff of one file unless told (`CODEX_MCP_MAX_DIFF_BYTES`).
pub const DEFAULT_MAX_DIFF_FILE_BYTES: usize = 256 << 10;
/// Most diff text of a run unless told (`CODEX_MCP_MAX_DIFF_TOTAL_BYTES`).
pub const DEFAULT_MAX_DIFF_TOTAL_BYTES: usize = 2 << 20;

impl Default for DiffLimits {
    fn default() -> Self {
        Self {
            max_file_bytes: DEFAULT_MAX_DIFF_FILE_BYTES,
            max_total_bytes: DEFAULT_MAX_DIFF_TOTAL_BYTES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_modes_map_to_sandboxes() {
        assert_eq!(
            SandboxMode::from_approval_mode("suggest"),
            Some(SandboxMode::ReadOnly)
        );
        assert_eq!(
            SandboxMode::from_approval_mode("Full-Auto"),
            Some(SandboxMode::WorkspaceWrite)
        );
        assert_eq!(
            SandboxMode::from_approval_mode("danger-full-access"),
            Some(SandboxMode::DangerFullAccess)
        );
        assert_eq!(SandboxMode::from_approval_mode("yolo"), None);
        assert_eq!(
            SandboxMode::WorkspaceWrite.read_only_variant(),
            SandboxMode::ReadOnly
        );
    }

    #[test]
    fn credentials_never_print() {
        let c = Credentials {
            api_key: Some("sk-secret-value".into()),
            auth_json: Some(serde_json::json!({"tokens": {"refresh_token": "rt-secret"}})),
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }
}
