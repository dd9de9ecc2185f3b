//! A durable run's directory: the contract between a detached `agent-run`
//! (which writes it) and the gateway (which reads it through `agent-run
//! follow`/`status`/`list`, locally or in a pod).
//!
//! `RUNS_DIR/<run-id>/` holds, in the agent's own state and outside its
//! workspace:
//! - `meta.json`: what the gateway needs to record the run later (tool,
//!   thread it continued, background or not); never credentials;
//! - `lock`: flock-held by the run's process while it lives, so a reader
//!   knows whether a run without a result is still going or was killed;
//! - `events.jsonl`: Codex's events, append-only, the same lines
//!   `agent-run` prints in its streaming mode;
//! - `result.json`: the [`RunOutcome`], written atomically at the end;
//! - `cancel`: created to ask the run to stop;
//! - `recorded`: the gateway recorded the result on the agent;
//! - `tool-result.json`: a background call's full tool result;
//! - `agent-run.log`: the run process's own diagnostics.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agent::AgentName;
use crate::api::request::RunOutcome;

pub const META_FILE: &str = "meta.json";
pub const LOCK_FILE: &str = "lock";
pub const EVENTS_FILE: &str = "events.jsonl";
pub const RESULT_FILE: &str = "result.json";
pub const CANCEL_FILE: &str = "cancel";
pub const RECORDED_FILE: &str = "recorded";
pub const TOOL_RESULT_FILE: &str = "tool-result.json";
pub const LOG_FILE: &str = "agent-run.log";

/// The files the gateway may write into a run directory (`agent-run put`).
pub const GATEWAY_FILES: &[&str] = &[RECORDED_FILE, TOOL_RESULT_FILE];

/// The `type` of the line `agent-run start` prints once the run is going.
pub const STARTED_LINE_TYPE: &str = "agent_run.started";

/// A run's id: `<agent>.<128 random bits in hex>`. The agent's name in it
/// lets any gateway find the run in that agent's state without an index;
/// the random part makes it unguessable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a run id")]
pub struct BadRunId;

impl RunId {
    pub fn new(agent: &AgentName) -> Self {
        Self(format!(
            "{}.{}",
            agent.as_str(),
            uuid::Uuid::new_v4().simple()
        ))
    }

    /// Accepts exactly what [`RunId::new`] makes, so an id can name a
    /// directory without escaping it.
    pub fn parse(raw: &str) -> Result<Self, BadRunId> {
        let (agent, random) = raw.split_once('.').ok_or(BadRunId)?;
        AgentName::parse(agent).map_err(|_| BadRunId)?;
        let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
        if random.len() != 32 || !random.chars().all(hex) {
            return Err(BadRunId);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn agent(&self) -> AgentName {
        let name = self.0.split_once('.').map(|(a, _)| a).unwrap_or_default();
        AgentName::parse(name).expect("checked when made")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the gateway stores with a run for recording it later, possibly
/// after a restart. Travels in the request as opaque JSON: `agent-run` only
/// writes it out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    pub run_id: RunId,
    /// The tool (plan, implement, ...).
    pub tool: String,
    pub started_at: DateTime<Utc>,
    /// The thread the run continues; `None` starts a new one.
    #[serde(default)]
    pub resumed_thread: Option<String>,
    /// The run started a new conversation on purpose.
    #[serde(default)]
    pub new_conversation: bool,
    /// A background call: its tool result is kept for `get_run`.
    #[serde(default)]
    pub background: bool,
}

/// One run directory as `agent-run status`/`list` report it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub run_id: String,
    /// Its process holds the lock.
    pub running: bool,
    #[serde(default)]
    pub meta: Option<Value>,
    #[serde(default)]
    pub result: Option<RunOutcome>,
    /// When the result was written.
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    pub recorded: bool,
    #[serde(default)]
    pub has_tool_result: bool,
    /// A background call's tool result (only from `status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_result: Option<Value>,
    /// The last event lines (only from `status`), for a progress message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tail: Vec<String>,
}

impl RunState {
    pub fn meta(&self) -> Option<RunMeta> {
        self.meta
            .clone()
            .and_then(|m| serde_json::from_value(m).ok())
    }
}

/// What a gateway must do about a run directory it did not start itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Still going: follow it to its result, then record it.
    Follow,
    /// Finished but not recorded on the agent: record it.
    Record,
    /// Its process is gone without a result: record it as failed.
    Lost,
    /// Recorded already (`marked` says whether the marker is there).
    Done { marked: bool },
}

/// Decides [`Settle`] from the directory and whether the agent's record
/// already holds a final entry for the run (a gateway that died between
/// saving the record and writing the marker must not count it twice).
pub fn settle(state: &RunState, in_record: bool) -> Settle {
    if state.recorded {
        return Settle::Done { marked: true };
    }
    if in_record {
        return Settle::Done { marked: false };
    }
    match (state.running, &state.result) {
        (true, _) => Settle::Follow,
        (false, Some(_)) => Settle::Record,
        (false, None) => Settle::Lost,
    }
}

/// Whether a run directory may be removed: finished, recorded, and its
/// result older than the TTL (a background result is kept that long for
/// `get_run`).
pub fn expired(state: &RunState, now: DateTime<Utc>, ttl: Duration) -> bool {
    let Some(finished) = state.finished_at else {
        return false;
    };
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    !state.running && state.recorded && now - finished >= ttl
}

/// Splits newly read bytes of `events.jsonl` into complete lines; returns
/// them and how many bytes they took (a partial last line waits for more).
pub fn complete_lines(buf: &[u8]) -> (Vec<String>, usize) {
    let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
        return (Vec::new(), 0);
    };
    let lines = String::from_utf8_lossy(&buf[..end])
        .split('\n')
        .map(str::to_owned)
        .collect();
    (lines, end + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(running: bool, result: bool, recorded: bool) -> RunState {
        RunState {
            run_id: "a.0".into(),
            running,
            meta: None,
            result: result.then(RunOutcome::default),
            finished_at: result.then(Utc::now),
            recorded,
            has_tool_result: false,
            tool_result: None,
            tail: Vec::new(),
        }
    }

    #[test]
    fn run_ids_are_agent_scoped_and_strict() {
        let agent = AgentName::parse("my-agent").unwrap();
        let id = RunId::new(&agent);
        assert_eq!(RunId::parse(id.as_str()).unwrap(), id);
        assert_eq!(id.agent(), agent);
        assert_ne!(RunId::new(&agent), id);
        for bad in [
            "",
            "my-agent",
            "my-agent.",
            "../x.0123456789abcdef0123456789abcdef",
            "my-agent.0123456789ABCDEF0123456789abcdef",
            "my-agent.0123456789abcdef0123456789abcde",
            "my-agent.0123456789abcdef0123456789abcdef/..",
        ] {
            assert!(RunId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settling_records_each_run_once() {
        assert_eq!(settle(&state(true, false, false), false), Settle::Follow);
        assert_eq!(settle(&state(false, true, false), false), Settle::Record);
        assert_eq!(settle(&state(false, false, false), false), Settle::Lost);
        assert_eq!(
            settle(&state(false, true, true), false),
            Settle::Done { marked: true }
        );
        // Saved on the agent, marker lost with the gateway: not again.
        assert_eq!(
            settle(&state(false, true, false), true),
            Settle::Done { marked: false }
        );
    }

    #[test]
    fn only_recorded_finished_runs_expire() {
        let ttl = Duration::from_secs(3600);
        let later = Utc::now() + chrono::Duration::hours(2);
        assert!(expired(&state(false, true, true), later, ttl));
        assert!(!expired(&state(false, true, true), Utc::now(), ttl));
        assert!(!expired(&state(false, true, false), later, ttl));
        assert!(!expired(&state(true, false, false), later, ttl));
    }

    #[test]
    fn partial_lines_wait() {
        assert_eq!(
            complete_lines(b"{\"a\":1}\n{\"b\""),
            (vec!["{\"a\":1}".into()], 8)
        );
        assert_eq!(complete_lines(b"{\"b\""), (vec![], 0));
        assert_eq!(complete_lines(b"x\ny\n"), (vec!["x".into(), "y".into()], 4));
    }
}
