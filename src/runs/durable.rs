//! Runs that belong to their agent: started through the backend's
//! [`RunClient`] where it has one, and settled (waited for, recorded once)
//! by whichever gateway next holds the agent, a restarted one included.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{RunError, Runner};
use crate::agent::AgentId;
use crate::backend::run_log::{finished_in, short, summary_of, RunEntry, RunStatus};
use crate::backend::{AgentRecord, BackendError, EventSender, RunHold, RunRecord, ThreadUpdate};
use crate::codex::run_dir::{settle, RunId, RunMeta, Settle, RECORDED_FILE};
use crate::codex::{CodexEvent, RunOutcome, RunRequest};
use crate::progress::Progress;

/// How a finished run ended, for the agent's log. `cancelled`: its call
/// was cancelled.
pub fn run_status(outcome: &RunOutcome, cancelled: bool) -> RunStatus {
    if outcome.ok {
        RunStatus::Ok
    } else if outcome.timed_out {
        RunStatus::TimedOut
    } else if cancelled
        || outcome
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("run cancelled"))
    {
        RunStatus::Cancelled
    } else {
        RunStatus::Failed
    }
}

/// The log entry of a finished run.
pub fn final_entry(meta: &RunMeta, outcome: &RunOutcome, status: RunStatus) -> RunEntry {
    let summary = if outcome.ok {
        outcome.final_message.as_deref().map(summary_of)
    } else {
        outcome.error.as_deref().map(short)
    };
    RunEntry {
        run_id: meta.run_id.to_string(),
        tool: meta.tool.clone(),
        started_at: meta.started_at,
        finished_at: Some(Utc::now()),
        status,
        summary,
        background: meta.background,
    }
}

/// What a finished run changes on its agent, given the record before it.
pub fn run_record(
    record: &AgentRecord,
    meta: &RunMeta,
    outcome: &RunOutcome,
    status: RunStatus,
) -> RunRecord {
    let usage = record.run_usage(outcome.usage, meta.resumed_thread.as_deref());
    let thread = match (&outcome.thread_id, meta.new_conversation) {
        (Some(id), _) => ThreadUpdate::Set(id.clone()),
        (None, true) => ThreadUpdate::Clear,
        (None, false) => ThreadUpdate::Keep,
    };
    RunRecord {
        ok: outcome.ok,
        usage,
        thread_usage: outcome.usage,
        thread,
        entry: Some(final_entry(meta, outcome, status)),
    }
}

impl Runner {
    /// Runs `request` in the agent's environment: durably when the backend
    /// can (the run then outlives this call and this gateway), else as a
    /// child of this call.
    pub(super) async fn execute(
        &self,
        agent: &AgentId,
        id: &RunId,
        request: &RunRequest,
        events: EventSender,
        cancel: CancellationToken,
    ) -> Result<RunOutcome, BackendError> {
        match self.backend.run_client() {
            Some(client) => client.run(agent, id, request, events, cancel).await,
            None => self.backend.run(agent, request, events, cancel).await,
        }
    }

    /// Marks a recorded run so no gateway records it again; a marker that
    /// cannot be written is covered by the agent's log.
    pub(super) async fn mark_recorded(&self, agent: &AgentId, id: &RunId) {
        if let Some(client) = self.backend.run_client() {
            if let Err(e) = client.put(agent, id, RECORDED_FILE, Vec::new()).await {
                warn!(agent = %agent, run = %id, "marking the run recorded failed: {e}");
            }
        }
    }

    /// Settles the agent's runs this gateway did not start (a previous
    /// gateway's): waits for those still going and records every finished
    /// one exactly once. Call with the agent's run lock held. True when it
    /// recorded a run.
    pub(super) async fn settle_runs(&self, agent: &AgentId, progress: &Progress) -> bool {
        let Some(client) = self.backend.run_client() else {
            return false;
        };
        let runs = match client.list(agent).await {
            Ok(r) => r,
            Err(e) => {
                warn!(agent = %agent, "listing the agent's runs failed: {e}");
                return false;
            }
        };
        if runs.is_empty() {
            return false;
        }
        let mut recorded = false;
        let mut record = match self.backend.get_agent(agent).await {
            Ok(Some(r)) => r,
            _ => AgentRecord::new(agent, Utc::now()),
        };
        for state in runs {
            let Some(meta) = state.meta() else {
                continue;
            };
            let action = settle(&state, finished_in(&record.recent_runs, &state.run_id));
            let outcome = match action {
                Settle::Done { marked: true } => continue,
                Settle::Done { marked: false } => {
                    self.mark_recorded(agent, &meta.run_id).await;
                    continue;
                }
                Settle::Record | Settle::Lost => {
                    state.result.clone().unwrap_or_else(|| RunOutcome {
                        ok: false,
                        error: Some(
                            "the run ended without a result: its process was killed".into(),
                        ),
                        ..Default::default()
                    })
                }
                Settle::Follow => {
                    progress.send(format!(
                        "waiting for agent {}'s run {} (started before the gateway restarted)",
                        agent.name, meta.run_id
                    ));
                    let (tx, rx) = mpsc::unbounded_channel();
                    let p = self.backend.paths(agent);
                    let relative = super::paths::Relativizer::new(&p.workspace, &p.codex_home);
                    let forward = forward_progress(rx, progress.clone(), relative);
                    let followed = client.follow(agent, &meta.run_id, 0, &tx).await;
                    drop(tx);
                    let _ = forward.await;
                    match followed {
                        Ok(o) => o,
                        Err(e) => {
                            warn!(agent = %agent, run = %meta.run_id, "following failed: {e}");
                            continue;
                        }
                    }
                }
            };
            self.metrics.run_resumed(match action {
                Settle::Follow => "running",
                Settle::Lost => "lost",
                _ => "finished",
            });
            let status = run_status(&outcome, false);
            let run = run_record(&record, &meta, &outcome, status);
            self.metrics
                .tokens(run.usage.input_tokens, run.usage.output_tokens);
            let (saved, unsaved) = self.save_run(agent, &record, run).await;
            record = saved;
            recorded = true;
            if unsaved.is_none() {
                self.mark_recorded(agent, &meta.run_id).await;
            }
            info!(agent = %agent, run = %meta.run_id, status = status.as_str(), "recorded a run started before a restart");
        }
        if let Err(e) = client.prune(agent, self.settings.result_ttl).await {
            warn!(agent = %agent, "removing expired runs failed: {e}");
        }
        recorded
    }

    /// Settles every agent's runs; for a gateway that just started.
    pub fn recover_runs(self: &Arc<Self>) {
        let this = self.clone();
        tokio::spawn(async move {
            for agent in this.backend.agents_with_runs().await {
                this.settle_in_background(agent);
            }
        });
    }

    /// Settles the agent's runs in a task of its own, holding the agent
    /// (its run lock here, its hold across replicas): at start, and when a
    /// caller asks for a run no gateway is following, because the replica
    /// that started it is gone. One such task per agent at a time.
    pub fn settle_in_background(self: &Arc<Self>, agent: AgentId) {
        let slot = self.slot(&agent);
        if slot.settling.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            {
                let _lock = slot.run_lock.lock().await;
                if this.has_unsettled_runs(&agent).await {
                    match this
                        .backend
                        .hold_runs(&agent, &CancellationToken::new(), &|| {})
                        .await
                    {
                        Ok(hold) => {
                            this.settle_runs(&agent, &Progress::none()).await;
                            if let Some(h) = hold {
                                h.release().await;
                            }
                        }
                        Err(e) => {
                            warn!(agent = %agent, "holding the agent to settle its runs failed: {e}")
                        }
                    }
                }
            }
            slot.settling.store(false, Ordering::Release);
        });
    }
}

impl Runner {
    /// Takes the agent for this call (one run at a time per agent across
    /// gateway replicas) and settles the runs others left; returns the
    /// agent's record as it stands then, and the hold to give back.
    pub(super) async fn take_agent(
        &self,
        agent: &AgentId,
        record: AgentRecord,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> Result<(AgentRecord, Option<RunHold>), RunError> {
        let waiting = {
            let progress = progress.clone();
            let name = agent.name.clone();
            move || {
                progress.send(format!(
                    "waiting for agent {name}'s run on another gateway replica"
                ))
            }
        };
        let hold = match self.backend.hold_runs(agent, cancel, &waiting).await {
            Ok(h) => h,
            Err(_) if cancel.is_cancelled() => return Err(RunError::Cancelled),
            Err(e) => return Err(e.into()),
        };
        // A run a previous gateway (or another replica) started goes first.
        let settled = self.settle_runs(agent, progress).await;
        if !settled && hold.is_none() {
            return Ok((record, hold));
        }
        // The conversation and counters may have moved meanwhile.
        let record = match self.backend.get_agent(agent).await {
            Ok(Some(r)) => AgentRecord {
                codex: record.codex,
                ..r
            },
            _ => record,
        };
        Ok((record, hold))
    }

    /// Whether the agent has runs no gateway has recorded yet.
    async fn has_unsettled_runs(&self, agent: &AgentId) -> bool {
        let Some(client) = self.backend.run_client() else {
            return false;
        };
        client
            .list(agent)
            .await
            .is_ok_and(|runs| runs.iter().any(|r| !r.recorded))
    }
}

/// Forwards Codex's events as progress messages, in the caller's terms.
fn forward_progress(
    mut rx: mpsc::UnboundedReceiver<CodexEvent>,
    progress: Progress,
    relative: super::paths::Relativizer,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            if let Some(m) = relative.event(ev).progress_message() {
                progress.send(m);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{AgentName, Tenant};
    use crate::codex::Usage;

    fn meta(resumed: Option<&str>) -> RunMeta {
        RunMeta {
            run_id: RunId::new(&AgentName::parse("a").unwrap()),
            tool: "chat".into(),
            started_at: Utc::now(),
            resumed_thread: resumed.map(str::to_owned),
            new_conversation: false,
            background: true,
        }
    }

    #[test]
    fn a_recovered_run_counts_once_with_its_own_tokens() {
        let agent = AgentId {
            tenant: Tenant::default_tenant(),
            name: AgentName::parse("a").unwrap(),
        };
        let mut record = AgentRecord::new(&agent, Utc::now());
        let outcome = RunOutcome {
            ok: true,
            thread_id: Some("t".into()),
            final_message: Some("done\nmore".into()),
            usage: Usage {
                input_tokens: 10,
                cached_input_tokens: 0,
                output_tokens: 2,
            },
            ..Default::default()
        };
        let m = meta(None);
        let run = run_record(&record, &m, &outcome, run_status(&outcome, false));
        assert!(record.apply(&run, Utc::now()));
        assert!(!record.apply(&run, Utc::now()), "the same run again");
        assert_eq!((record.runs, record.input_tokens), (1, 10));
        assert_eq!(record.thread_id.as_deref(), Some("t"));
        let e = &record.recent_runs[0];
        assert_eq!(e.status, RunStatus::Ok);
        assert_eq!(e.summary.as_deref(), Some("done"));
        assert!(e.background);
    }

    #[test]
    fn statuses_follow_the_outcome() {
        let failed = RunOutcome {
            error: Some("run cancelled (SIGTERM)".into()),
            ..Default::default()
        };
        assert_eq!(run_status(&failed, false), RunStatus::Cancelled);
        let timed = RunOutcome {
            timed_out: true,
            ..Default::default()
        };
        assert_eq!(run_status(&timed, false), RunStatus::TimedOut);
        assert_eq!(run_status(&RunOutcome::default(), false), RunStatus::Failed);
        assert_eq!(
            run_status(&RunOutcome::default(), true),
            RunStatus::Cancelled
        );
    }
}
