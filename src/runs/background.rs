//! Background calls (`background: true`): a tool call that returns a run id
//! at once and goes on without its caller. This process keeps the live
//! ones (their last progress message, then their result); a finished one's
//! result is also stored in its run directory, so a restarted gateway
//! still answers `get_run`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::Runner;
use crate::agent::AgentId;
use crate::backend::run_log::RunStatus;
use crate::codex::run_dir::{RunId, TOOL_RESULT_FILE};

/// A background call's end: the tool's full result (a `CallToolResult`).
#[derive(Debug, Clone)]
pub struct Finished {
    pub at: DateTime<Utc>,
    pub status: RunStatus,
    pub result: Value,
}

/// One background call of this process.
#[derive(Debug)]
pub struct Call {
    pub agent: AgentId,
    pub tool: String,
    pub started_at: DateTime<Utc>,
    pub cancel: CancellationToken,
    /// The last progress message.
    pub message: Arc<Mutex<Option<String>>>,
    done: Mutex<Option<Finished>>,
    notify: Notify,
}

impl Call {
    pub fn finished(&self) -> Option<Finished> {
        self.done.lock().expect("done").clone()
    }

    pub fn message(&self) -> Option<String> {
        self.message.lock().expect("message").clone()
    }

    /// Waits up to `wait` for the call to finish.
    pub async fn wait(&self, wait: Duration) -> Option<Finished> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.notify.notified();
            if let Some(f) = self.finished() {
                return Some(f);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.finished();
            }
        }
    }
}

/// The background calls of this process.
#[derive(Debug, Default)]
pub struct Calls {
    calls: Mutex<HashMap<RunId, Arc<Call>>>,
}

/// Whether a finished call's result is past its TTL.
pub fn is_expired(finished: &Finished, now: DateTime<Utc>, ttl: Duration) -> bool {
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    now - finished.at >= ttl
}

impl Calls {
    pub fn register(&self, id: RunId, agent: AgentId, tool: &str) -> Arc<Call> {
        let call = Arc::new(Call {
            agent,
            tool: tool.to_owned(),
            started_at: Utc::now(),
            cancel: CancellationToken::new(),
            message: Arc::default(),
            done: Mutex::new(None),
            notify: Notify::new(),
        });
        self.calls.lock().expect("calls").insert(id, call.clone());
        call
    }

    /// The call, unless it finished longer than `ttl` ago (then it is
    /// forgotten).
    pub fn get(&self, id: &RunId, ttl: Duration) -> Option<Arc<Call>> {
        let now = Utc::now();
        let mut calls = self.calls.lock().expect("calls");
        calls.retain(|_, c| !c.finished().is_some_and(|f| is_expired(&f, now, ttl)));
        calls.get(id).cloned()
    }
}

impl Runner {
    pub fn background(&self) -> &Calls {
        &self.background
    }

    /// Ends a background call: its result in memory, and in its run
    /// directory for any later gateway.
    pub async fn finish_background(
        &self,
        id: &RunId,
        call: &Call,
        status: RunStatus,
        result: Value,
    ) {
        *call.done.lock().expect("done") = Some(Finished {
            at: Utc::now(),
            status,
            result: result.clone(),
        });
        call.notify.notify_waiters();
        self.metrics.background_finished(status.as_str());
        if let Some(client) = self.backend.run_client() {
            let bytes = serde_json::to_vec(&result).expect("result serializes");
            // A call that failed before its run started has no directory.
            if let Err(e) = client.put(&call.agent, id, TOOL_RESULT_FILE, bytes).await {
                warn!(run = %id, "storing the background result failed: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{AgentName, Tenant};

    #[test]
    fn finished_calls_expire_after_their_ttl() {
        let f = Finished {
            at: Utc::now(),
            status: RunStatus::Ok,
            result: Value::Null,
        };
        let ttl = Duration::from_secs(3600);
        assert!(!is_expired(&f, Utc::now(), ttl));
        assert!(is_expired(&f, Utc::now() + chrono::Duration::hours(1), ttl));

        let calls = Calls::default();
        let name = AgentName::parse("a").unwrap();
        let id = RunId::new(&name);
        let agent = AgentId {
            tenant: Tenant::default_tenant(),
            name,
        };
        let call = calls.register(id.clone(), agent, "chat");
        assert!(
            calls.get(&id, Duration::ZERO).is_some(),
            "running calls stay"
        );
        *call.done.lock().unwrap() = Some(f);
        assert!(calls.get(&id, ttl).is_some());
        assert!(calls.get(&id, Duration::ZERO).is_none());
    }
}
