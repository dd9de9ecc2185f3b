//! Everything about invoking the Codex CLI: the argv a run's request
//! (`api::request`, re-exported here) becomes, the events Codex prints, and
//! `agent-run`, the process that ties them together inside an agent's
//! environment.

pub mod agent_run;
pub mod agent_settings;
pub mod argv;
pub mod detached;
pub mod events;
pub mod login_follow;
pub mod run_dir;

pub use crate::api::request::{
    Credentials, FileChange, FileChangeKind, ProviderConfig, RunOutcome, RunRequest, SandboxMode,
    Usage, RESULT_LINE_TYPE,
};
pub use agent_settings::AgentCodexSettings;

/// The Codex CLI unless told (`CODEX_BIN`): looked up on `PATH`.
pub const DEFAULT_CODEX_BIN: &str = "codex";
pub use events::{AgentRunLine, CodexEvent, EventItem, RunSummary};
