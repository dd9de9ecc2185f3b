//! How runs are configured, and what they get unless told otherwise. The
//! flags (`config`) refer to these defaults; nothing else repeats them.

use std::time::Duration;

use crate::codex::{ProviderConfig, SandboxMode};

/// The model every run uses unless told (`CODEX_MODEL`).
pub const DEFAULT_MODEL: &str = "gpt-5";
/// The sandbox of runs that may write, in the original server's words
/// (`CODEX_APPROVAL_MODE`, read by [`SandboxMode::from_approval_mode`]).
pub const DEFAULT_APPROVAL_MODE: &str = "full-auto";
/// Most runs at once across all agents (`MAX_CONCURRENT_SESSIONS`).
pub const DEFAULT_MAX_CONCURRENT_RUNS: usize = 20;
/// Longest a run may take, in seconds (`CODEX_MCP_RUN_TIMEOUT`).
pub const DEFAULT_RUN_TIMEOUT_SECS: u64 = 1800;
/// Calls that may wait for a busy agent (`CODEX_MCP_QUEUE_LIMIT`).
pub const DEFAULT_QUEUE_LIMIT: usize = 4;
/// Seconds a finished run's result is kept (`CODEX_MCP_RESULT_TTL`).
pub const DEFAULT_RESULT_TTL_SECS: u64 = 3600;

/// How runs are configured, from flags.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub model: String,
    pub provider: Option<ProviderConfig>,
    /// Sandbox for runs that may write; read-only runs derive theirs.
    pub write_sandbox: SandboxMode,
    pub config_overrides: Vec<String>,
    pub run_timeout: Duration,
    /// Longest silence between a call's progress notifications.
    pub progress_heartbeat: Duration,
    pub queue_limit: usize,
    /// How long after its last call an agent still counts as active.
    pub session_timeout: Duration,
    pub max_concurrent_runs: usize,
    pub diff_limits: crate::api::request::DiffLimits,
    /// How long a finished run's directory (a background result) is kept.
    pub result_ttl: Duration,
}
