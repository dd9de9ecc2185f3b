//! Running tool calls against agents: one run at a time per agent with a
//! bounded queue, a global cap on concurrent runs, time bounds, progress,
//! metrics and activity. Shared by every backend.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use crate::agent::{AgentId, Tenant};
use crate::backend::run_log::{RunEntry, RunStatus};
use crate::backend::{AgentRecord, Backend, BackendError, RunRecord, ThreadUpdate};
use crate::codex::run_dir::{RunId, RunMeta};
use crate::codex::{RunOutcome, RunRequest, Usage};
use crate::credentials::run_credential::{self, FollowLogin};
use crate::credentials::{CredentialError, CredentialProvider};
use crate::metrics::{Metrics, Outcome, ToolKind};
use crate::progress::Progress;

pub mod background;
mod cleanup;
pub mod durable;
mod paths;
mod settings;

pub(crate) use paths::Relativizer;
pub use settings::{
    RunSettings, DEFAULT_APPROVAL_MODE, DEFAULT_MAX_CONCURRENT_RUNS, DEFAULT_MODEL,
    DEFAULT_QUEUE_LIMIT, DEFAULT_RESULT_TTL_SECS, DEFAULT_RUN_TIMEOUT_SECS,
};
mod unsaved;
mod workspace;

/// One Codex turn a tool wants.
#[derive(Debug, Clone)]
pub struct Turn {
    pub tool: ToolKind,
    pub prompt: String,
    pub output_schema: Option<Value>,
    /// May the run write to the workspace?
    pub writes: bool,
    /// Report the workspace's real changes.
    pub track_changes: bool,
    /// Start a new Codex conversation instead of continuing the agent's.
    pub new_conversation: bool,
    /// Workspace paths the caller named; the run refuses to start if one
    /// resolves outside the workspace in the agent's environment.
    pub workspace_paths: Vec<String>,
    /// The run's id (a background call's handle); a new one when `None`.
    pub run_id: Option<RunId>,
    /// Part of a background call.
    pub background: bool,
}

/// Facts about the run that produced a result, as every tool's result
/// reports them (`run`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunInfo {
    /// The agent whose environment ran the call.
    pub agent_id: String,
    /// The Codex conversation this call continued (or started).
    pub thread_id: Option<String>,
    /// Across every turn of the call.
    pub duration_ms: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Codex turns the call took: 2 when the first reply did not match the
    /// expected shape and the agent was asked again.
    pub turns: u32,
    /// What the caller should know about how the call went.
    pub notes: Vec<String>,
}

impl RunInfo {
    /// Folds a repair turn into the first turn's figures.
    pub fn add_repair_turn(&mut self, repair: &RunInfo, reason: &str) {
        self.duration_ms += repair.duration_ms;
        self.input_tokens += repair.input_tokens;
        self.output_tokens += repair.output_tokens;
        self.turns += repair.turns;
        self.thread_id.clone_from(&repair.thread_id);
        self.notes.push(format!(
            "the first reply did not match the expected shape ({reason}); a repair turn was run \
             and the figures cover both turns"
        ));
        self.notes.extend(repair.notes.iter().cloned());
    }
}

#[derive(Debug)]
pub struct TurnResult {
    pub outcome: RunOutcome,
    pub info: RunInfo,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("agent {agent} is busy: {waiting} calls are already waiting for it; retry when its current call has finished")]
    Busy { agent: String, waiting: usize },
    #[error("the call was cancelled")]
    Cancelled,
    #[error("the run exceeded its time limit of {0} s and was stopped")]
    TimedOut(u64),
    #[error("no usable Codex credentials: {0}")]
    Credentials(#[from] CredentialError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("{0}")]
    Unsupported(String),
}

impl RunError {
    pub fn outcome(&self) -> Outcome {
        match self {
            Self::Busy { .. } => Outcome::Busy,
            Self::Cancelled => Outcome::Cancelled,
            Self::TimedOut(_) => Outcome::TimedOut,
            _ => Outcome::Failed,
        }
    }
}

#[derive(Default)]
struct AgentSlot {
    run_lock: tokio::sync::Mutex<()>,
    waiting: AtomicUsize,
    /// A background settling of the agent's runs is under way.
    settling: std::sync::atomic::AtomicBool,
}

impl AgentSlot {
    /// Waits for the agent's run lock, telling the caller when another
    /// call has it.
    async fn lock(
        &self,
        agent: &AgentId,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> Result<tokio::sync::MutexGuard<'_, ()>, RunError> {
        if self.run_lock.try_lock().is_err() {
            progress.send(format!(
                "waiting for agent {}'s current call to finish",
                agent.name
            ));
        }
        tokio::select! {
            g = self.run_lock.lock() => Ok(g),
            _ = cancel.cancelled() => Err(RunError::Cancelled),
        }
    }
}

/// Decrements a counter (and the queue gauge) when a waiting call stops waiting.
struct WaitGuard<'a> {
    slot: &'a AgentSlot,
    metrics: &'a Metrics,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.slot.waiting.fetch_sub(1, Ordering::SeqCst);
        self.metrics.queue_depth.dec();
    }
}

pub struct Runner {
    backend: Arc<dyn Backend>,
    credentials: CredentialProvider,
    settings: RunSettings,
    metrics: Arc<Metrics>,
    slots: Mutex<HashMap<AgentId, Arc<AgentSlot>>>,
    global: Semaphore,
    /// Last call per agent in this process, for the active-agents gauge.
    activity: Mutex<HashMap<AgentId, Instant>>,
    unsaved: Mutex<HashMap<AgentId, unsaved::Unsaved>>,
    background: background::Calls,
    started: Instant,
}

impl Runner {
    pub fn new(
        backend: Arc<dyn Backend>,
        credentials: CredentialProvider,
        settings: RunSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        let global = Semaphore::new(settings.max_concurrent_runs.max(1));
        Self {
            backend,
            credentials,
            settings,
            metrics,
            slots: Mutex::default(),
            global,
            activity: Mutex::default(),
            unsaved: Mutex::default(),
            background: background::Calls::default(),
            started: Instant::now(),
        }
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// See [`Backend::declare_source`].
    pub async fn declare_source(
        &self,
        agent: &AgentId,
        asked: Option<&str>,
    ) -> Result<(), crate::backend::BackendError> {
        self.backend.declare_source(agent, asked).await
    }

    pub fn settings(&self) -> &RunSettings {
        &self.settings
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn credentials(&self) -> &CredentialProvider {
        &self.credentials
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    fn slot(&self, agent: &AgentId) -> Arc<AgentSlot> {
        self.slots
            .lock()
            .expect("slots")
            .entry(agent.clone())
            .or_default()
            .clone()
    }

    /// Whether a call of this agent is executing now.
    pub fn is_running(&self, agent: &AgentId) -> bool {
        self.slots
            .lock()
            .expect("slots")
            .get(agent)
            .is_some_and(|s| s.run_lock.try_lock().is_err())
    }

    fn touch(&self, agent: &AgentId) {
        self.activity
            .lock()
            .expect("activity")
            .insert(agent.clone(), Instant::now());
        self.active_agents();
    }

    /// Counts a run that ended without a result (its environment died or
    /// stopped answering) as a failed run of the agent; best effort, as the
    /// call is failing anyway.
    async fn record_lost_run(
        &self,
        agent: &AgentId,
        record: &AgentRecord,
        meta: &RunMeta,
        error: &str,
    ) {
        let outcome = RunOutcome {
            error: Some(error.to_owned()),
            ..Default::default()
        };
        let lost = RunRecord {
            ok: false,
            usage: Usage::default(),
            thread_usage: Usage::default(),
            thread: ThreadUpdate::Keep,
            entry: Some(durable::final_entry(meta, &outcome, RunStatus::Failed)),
        };
        self.save_run(agent, record, lost).await;
    }

    /// Agents with a call within the session timeout, across tenants (for
    /// the metric; callers only ever see their own tenant's count).
    pub fn active_agents(&self) -> usize {
        let mut act = self.activity.lock().expect("activity");
        let horizon = self.settings.session_timeout;
        act.retain(|_, t| t.elapsed() < horizon);
        self.metrics.active_agents.set(act.len() as i64);
        act.len()
    }

    /// [`Runner::active_agents`] of one tenant.
    pub fn active_agents_of(&self, tenant: &Tenant) -> usize {
        self.active_agents();
        let act = self.activity.lock().expect("activity");
        act.keys().filter(|a| &a.tenant == tenant).count()
    }

    /// Runs one turn for `agent`, waiting for its previous call and a free run slot.
    ///
    /// The turn runs on its own task: if the caller goes away (its future is
    /// dropped), the run is cancelled, and still cleaned up and recorded.
    pub async fn run_turn(
        self: &Arc<Self>,
        agent: &AgentId,
        turn: &Turn,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> Result<TurnResult, RunError> {
        let run_cancel = cancel.child_token();
        let _cancel_on_drop = run_cancel.clone().drop_guard();
        let this = self.clone();
        let (agent, turn, progress) = (agent.clone(), turn.clone(), progress.clone());
        let span = tracing::info_span!(
            "run",
            call_id = %uuid::Uuid::new_v4(),
            agent = %agent,
            tool = turn.tool.as_str()
        );
        let task = tokio::spawn(
            async move {
                let _timer = this.metrics.run_timer(turn.tool);
                let result = this
                    .run_turn_inner(&agent, &turn, &progress, &run_cancel)
                    .await;
                let outcome = match &result {
                    Ok(r) if r.outcome.ok => Outcome::Ok,
                    Ok(_) => Outcome::Failed,
                    Err(e) => e.outcome(),
                };
                this.metrics.run_finished(turn.tool, outcome);
                result
            }
            .instrument(span),
        );
        task.await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    async fn run_turn_inner(
        &self,
        agent: &AgentId,
        turn: &Turn,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> Result<TurnResult, RunError> {
        let slot = self.slot(agent);
        let waiting = slot.waiting.fetch_add(1, Ordering::SeqCst);
        self.metrics.queue_depth.inc();
        let wait_guard = WaitGuard {
            slot: &slot,
            metrics: &self.metrics,
        };
        if waiting >= self.settings.queue_limit {
            return Err(RunError::Busy {
                agent: agent.to_string(),
                waiting,
            });
        }
        let _agent_guard = slot.lock(agent, progress, cancel).await?;
        let _permit = tokio::select! {
            p = self.global.acquire() => p.expect("semaphore open"),
            _ = cancel.cancelled() => return Err(RunError::Cancelled),
        };
        drop(wait_guard);
        self.touch(agent);

        let record = self
            .backend
            .ensure_agent(agent, &|m| progress.send(m))
            .await?;
        // Given back once the run is recorded; on early returns, when dropped.
        let (record, mut hold) = self.take_agent(agent, record, progress, cancel).await?;
        let record = self.with_unsaved(agent, record).await;
        let credential = run_credential::handed(self.credentials.for_run().await?);
        let effective = record.codex.apply(
            &self.settings.model,
            self.settings.provider.as_ref(),
            self.settings.write_sandbox,
            &self.settings.config_overrides,
            turn.writes,
        );
        let mut provider = effective.provider;
        if let Some(p) = provider.as_mut() {
            p.requires_openai_auth = credential.requires_openai_auth;
        }
        let follow_login = match credential.follow {
            FollowLogin::Handed => self
                .credentials
                .run_login_file()
                .map(std::path::Path::to_path_buf),
            FollowLogin::No | FollowLogin::Environment => None,
        };
        let paths = self.backend.paths(agent);
        let request = RunRequest {
            prompt: turn.prompt.clone(),
            output_schema: turn.output_schema.clone(),
            thread_id: if turn.new_conversation {
                None
            } else {
                record.thread_id.clone()
            },
            model: effective.model,
            sandbox: effective.sandbox,
            provider,
            config_overrides: effective.config_overrides,
            credentials: credential.credentials,
            track_changes: turn.track_changes,
            workspace: paths.workspace,
            workspace_paths: turn.workspace_paths.clone(),
            codex_home: paths.codex_home,
            timeout_secs: Some(self.settings.run_timeout.as_secs()),
            follow_login,
            diff_limits: self.settings.diff_limits,
            run_meta: None,
        };
        let run_id = turn
            .run_id
            .clone()
            .unwrap_or_else(|| RunId::new(&agent.name));
        let meta = RunMeta {
            run_id: run_id.clone(),
            tool: turn.tool.as_str().to_owned(),
            started_at: chrono::Utc::now(),
            resumed_thread: request.thread_id.clone(),
            new_conversation: turn.new_conversation,
            background: turn.background,
        };
        let request = RunRequest {
            run_meta: serde_json::to_value(&meta).ok(),
            ..request
        };
        let running = RunEntry {
            run_id: run_id.to_string(),
            tool: meta.tool.clone(),
            started_at: meta.started_at,
            finished_at: None,
            status: RunStatus::Running,
            summary: None,
            background: turn.background,
        };
        if let Err(e) = self.backend.note_run(agent, running).await {
            warn!("logging the run's start failed: {e}");
        }

        let (tx, mut rx) = mpsc::unbounded_channel::<crate::codex::CodexEvent>();
        let relative = paths::Relativizer::new(&request.workspace, &request.codex_home);
        let forward = {
            let progress = progress.clone();
            let paths = relative.clone();
            tokio::spawn(async move {
                while let Some(ev) = rx.recv().await {
                    if let Some(m) = paths.event(ev).progress_message() {
                        progress.send(m);
                    }
                }
            })
        };
        progress.send(match &request.thread_id {
            Some(_) => format!("continuing agent {}'s conversation", agent.name),
            None => format!("starting a new conversation for agent {}", agent.name),
        });
        self.metrics.runs_in_progress.inc();
        let run_cancel = cancel.child_token();
        // Backstop beyond agent-run's own time bound, for an environment that stops answering.
        let backstop = self.settings.run_timeout + Duration::from_secs(15);
        let run = self.execute(agent, &run_id, &request, tx, run_cancel.clone());
        tokio::pin!(run);
        let result = tokio::select! {
            r = &mut run => r,
            _ = tokio::time::sleep(backstop) => {
                run_cancel.cancel();
                let _ = run.await;
                self.metrics.runs_in_progress.dec();
                let e = RunError::TimedOut(self.settings.run_timeout.as_secs());
                self.record_lost_run(agent, &record, &meta, &e.to_string()).await;
                return Err(e);
            }
        };
        self.metrics.runs_in_progress.dec();
        let _ = forward.await;
        let mut outcome = match result {
            Ok(outcome) => outcome,
            Err(e) => {
                self.record_lost_run(agent, &record, &meta, &e.to_string())
                    .await;
                return Err(e.into());
            }
        };

        outcome.error = outcome.error.map(|e| relative.text(&e));
        // agent-run bounds its diffs already; an older one may not.
        crate::workspace::bound_diffs(&mut outcome.changes, self.settings.diff_limits);
        let status = durable::run_status(&outcome, cancel.is_cancelled());
        let run = durable::run_record(&record, &meta, &outcome, status);
        let usage = run.usage;
        self.metrics.tokens(usage.input_tokens, usage.output_tokens);
        let (record, unsaved) = self.save_run(agent, &record, run).await;
        if unsaved.is_none() {
            self.mark_recorded(agent, &run_id).await;
        }
        self.touch(agent);
        if let Some(h) = hold.take() {
            h.release().await;
        }
        if outcome.ok {
            info!(duration_ms = outcome.duration_ms, "run finished");
        } else {
            warn!(error = outcome.error.as_deref().unwrap_or(""), "run failed");
        }
        if cancel.is_cancelled() {
            return Err(RunError::Cancelled);
        }
        if outcome.timed_out {
            return Err(RunError::TimedOut(self.settings.run_timeout.as_secs()));
        }
        let info = RunInfo {
            agent_id: agent.name.to_string(),
            thread_id: record.thread_id.clone(),
            duration_ms: outcome.duration_ms,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            turns: 1,
            notes: unsaved
                .map(|e| {
                    format!(
                        "the result is complete, but the agent's state could not be saved \
                         ({e}); the gateway keeps it in memory and saves it on the next call"
                    )
                })
                .into_iter()
                .collect(),
        };
        Ok(TurnResult { outcome, info })
    }
}
