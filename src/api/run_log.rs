//! One run in an agent's log, as the CodexAgent's status (`recentRuns`)
//! and the local backend's `agent.json` hold it.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Ok,
    Failed,
    Cancelled,
    TimedOut,
}

impl RunStatus {
    pub fn is_final(self) -> bool {
        self != Self::Running
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed_out",
        }
    }
}

/// One run in an agent's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunEntry {
    /// Give it to `get_run` for the run's status or result.
    pub run_id: String,
    /// The tool that started it (plan, implement, review, fix, chat).
    pub tool: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// running, ok, failed, cancelled or timed_out.
    pub status: RunStatus,
    /// The start of the reply for a run that succeeded, or why it did not.
    pub summary: Option<String>,
    /// Started with `background: true`.
    #[serde(default)]
    pub background: bool,
}
