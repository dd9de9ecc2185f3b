//! Where agents live. The backend is the only part that differs between one
//! machine (`local`: a directory and a child process per run) and Kubernetes
//! (a `CodexAgent`, its pod, and pods/exec). Everything above it is shared.

pub mod kube;
pub mod local;
pub mod run_client;
pub mod run_log;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::agent::{AgentId, Tenant};
use crate::codex::{AgentCodexSettings, CodexEvent, RunOutcome, RunRequest, Usage};

/// What the gateway knows about one agent, durable across restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentRecord {
    pub agent_id: String,
    pub tenant: String,
    /// The Codex conversation the next call continues; null before the first.
    pub thread_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_activity: DateTime<Utc>,
    pub runs: u64,
    pub failed_runs: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// What Codex last reported for the current thread. Codex reports a
    /// resumed thread's cumulative usage, so a run's own share is the
    /// difference from this.
    #[serde(default)]
    #[schemars(skip)]
    pub thread_usage: Usage,
    /// The agent's own Codex settings (on Kubernetes its CodexAgent's
    /// `spec.codex`), layered over the gateway's for each run.
    #[serde(skip)]
    #[schemars(skip)]
    pub codex: AgentCodexSettings,
    /// The agent's last runs, newest last.
    #[serde(default)]
    pub recent_runs: Vec<run_log::RunEntry>,
}

impl AgentRecord {
    /// The tokens a run used itself, given the usage Codex reported for it.
    pub fn run_usage(&self, reported: Usage, resumed_thread: Option<&str>) -> Usage {
        let same_thread = resumed_thread.is_some() && resumed_thread == self.thread_id.as_deref();
        if !same_thread {
            return reported;
        }
        let prev = self.thread_usage;
        Usage {
            input_tokens: reported.input_tokens.saturating_sub(prev.input_tokens),
            cached_input_tokens: reported
                .cached_input_tokens
                .saturating_sub(prev.cached_input_tokens),
            output_tokens: reported.output_tokens.saturating_sub(prev.output_tokens),
        }
    }

    pub fn new(agent: &AgentId, now: DateTime<Utc>) -> Self {
        Self {
            agent_id: agent.name.to_string(),
            tenant: agent.tenant.to_string(),
            thread_id: None,
            created_at: now,
            last_activity: now,
            runs: 0,
            failed_runs: 0,
            input_tokens: 0,
            output_tokens: 0,
            thread_usage: Usage::default(),
            codex: AgentCodexSettings::default(),
            recent_runs: Vec::new(),
        }
    }

    /// Folds one finished run into the record; returns false, changing
    /// nothing, for a run the record holds already.
    pub fn apply(&mut self, run: &RunRecord, now: DateTime<Utc>) -> bool {
        if let Some(entry) = &run.entry {
            if !run_log::upsert(&mut self.recent_runs, entry.clone()) {
                return false;
            }
        }
        self.last_activity = now;
        self.runs += 1;
        if !run.ok {
            self.failed_runs += 1;
        }
        self.input_tokens += run.usage.input_tokens;
        self.output_tokens += run.usage.output_tokens;
        // Codex reports a thread's cumulative usage, and nothing at all for
        // a turn that failed before completing: on the same thread the count
        // only grows, or the next run would count the whole thread again.
        let grown = |prev: Usage| Usage {
            input_tokens: prev.input_tokens.max(run.thread_usage.input_tokens),
            cached_input_tokens: prev
                .cached_input_tokens
                .max(run.thread_usage.cached_input_tokens),
            output_tokens: prev.output_tokens.max(run.thread_usage.output_tokens),
        };
        match &run.thread {
            ThreadUpdate::Keep => self.thread_usage = grown(self.thread_usage),
            ThreadUpdate::Set(id) if self.thread_id.as_deref() == Some(id) => {
                self.thread_usage = grown(self.thread_usage);
            }
            ThreadUpdate::Set(id) => {
                self.thread_id = Some(id.clone());
                self.thread_usage = run.thread_usage;
            }
            ThreadUpdate::Clear => {
                self.thread_id = None;
                self.thread_usage = Usage::default();
            }
        }
        true
    }
}

/// What happens to the agent's conversation after a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThreadUpdate {
    Keep,
    Set(String),
    Clear,
}

/// One finished run, as recorded on the agent.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub ok: bool,
    /// Tokens this run used.
    pub usage: Usage,
    /// Codex's cumulative report for the thread after this run.
    pub thread_usage: Usage,
    pub thread: ThreadUpdate,
    /// The run's entry in the agent's log (runs without one, from before
    /// durable runs, are counted but not logged).
    pub entry: Option<run_log::RunEntry>,
}

/// Where an agent's environment stands, beyond the gateway's own record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EnvironmentStatus {
    /// The environment's phase (on Kubernetes the CodexAgent's: Pending,
    /// Starting, Ready, Suspended or Failed).
    pub phase: String,
    /// The Kubernetes object holding the agent (its CodexAgent).
    pub resource: Option<String>,
    /// The agent's pod, while it has one.
    pub pod: Option<String>,
    /// What is going on, for people.
    pub message: Option<String>,
}

/// Where an agent's files are, as seen from inside its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPaths {
    pub workspace: std::path::PathBuf,
    pub codex_home: std::path::PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("preparing agent {agent} failed: {reason}")]
    Prepare { agent: String, reason: String },
    #[error("agent {agent} did not become ready: {reason}")]
    NotReady { agent: String, reason: String },
    #[error("reading the state of agent {agent} failed: {reason}")]
    State { agent: String, reason: String },
    #[error("saving the state of agent {agent} failed: {reason}")]
    WriteState { agent: String, reason: String },
    #[error("starting the run failed: {0}")]
    Spawn(String),
    #[error("the run ended without a result: {0}")]
    NoResult(String),
    #[error("agent {agent}: {reason}")]
    Source { agent: String, reason: String },
}

impl BackendError {
    pub fn prepare(agent: &AgentId, e: impl std::fmt::Display) -> Self {
        Self::Prepare {
            agent: agent.to_string(),
            reason: e.to_string(),
        }
    }

    /// Reading the agent's stored state failed.
    pub fn state(agent: &AgentId, e: impl std::fmt::Display) -> Self {
        Self::State {
            agent: agent.to_string(),
            reason: e.to_string(),
        }
    }

    /// Saving the agent's state failed.
    pub fn write_state(agent: &AgentId, e: impl std::fmt::Display) -> Self {
        Self::WriteState {
            agent: agent.to_string(),
            reason: e.to_string(),
        }
    }
}

/// An agent whose stored state could not be read, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UnreadableAgent {
    pub agent_id: String,
    pub reason: String,
}

/// A tenant's agents: one agent whose state is damaged does not hide the others.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentList {
    pub agents: Vec<AgentRecord>,
    pub unreadable: Vec<UnreadableAgent>,
}

/// What a backend holds while an agent's runs are in this gateway's hands
/// (on Kubernetes the agent's run Lease and activity marker); given back
/// when released, or soon after when dropped.
#[async_trait]
pub trait Held: Send + Sync {
    /// Gives the hold back, returning once that is done (so the agent's
    /// status says idle before the call that held it answers).
    async fn release(self: Box<Self>);
}

pub type RunHold = Box<dyn Held>;

/// Streams Codex's events out of a run as they happen.
pub type EventSender = mpsc::UnboundedSender<CodexEvent>;

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// `local` or `kubernetes`, for health and metrics.
    fn kind(&self) -> &'static str;

    /// Makes sure the agent's environment exists and is ready, creating it on
    /// first use. `progress` receives human-readable steps while waiting.
    async fn ensure_agent(
        &self,
        agent: &AgentId,
        progress: &(dyn Fn(String) + Send + Sync),
    ) -> Result<AgentRecord, BackendError>;

    /// The agent's paths inside its environment, for building a run request.
    fn paths(&self, agent: &AgentId) -> AgentPaths;

    /// The agent's workspace as git sees it, for `agent-run workspace`:
    /// a plain workspace unless the backend binds the agent to a project.
    fn workspace_repo(&self, agent: &AgentId) -> crate::project::WorkspaceRepo {
        let p = self.paths(agent);
        crate::project::WorkspaceRepo::plain(agent, &p.workspace, &p.codex_home)
    }

    /// Gives a new agent the repository its caller named (or its tenant's
    /// default); an existing agent must already be on the repository its
    /// caller names.
    /// `asked` is the caller's `X-Codex-Repository` (`URL[#REF]`).
    async fn declare_source(
        &self,
        agent: &AgentId,
        asked: Option<&str>,
    ) -> Result<(), BackendError> {
        match asked {
            None => Ok(()),
            Some(asked) => Err(BackendError::Source {
                agent: agent.to_string(),
                reason: format!(
                    "a repository ({asked}) can be given only to agents on Kubernetes; on this \
                     machine start the gateway with --project {}=PATH to work on a local \
                     repository",
                    agent.name
                ),
            }),
        }
    }

    /// Runs `codex-mcp agent-run` with `request` in the agent's environment.
    /// Ends early, killing the run, when `cancel` fires.
    async fn run(
        &self,
        agent: &AgentId,
        request: &RunRequest,
        events: EventSender,
        cancel: CancellationToken,
    ) -> Result<RunOutcome, BackendError>;

    /// Records a finished run on the agent and returns the updated record.
    async fn record_run(
        &self,
        agent: &AgentId,
        run: RunRecord,
    ) -> Result<AgentRecord, BackendError>;

    /// Logs a run that started (a `running` entry in the agent's log).
    async fn note_run(
        &self,
        _agent: &AgentId,
        _entry: run_log::RunEntry,
    ) -> Result<(), BackendError> {
        Ok(())
    }

    /// Takes the agent for this gateway's runs, waiting while another
    /// gateway replica has it (`waiting` is called when a wait begins);
    /// `None` where one process is all there is.
    async fn hold_runs(
        &self,
        _agent: &AgentId,
        _cancel: &CancellationToken,
        _waiting: &(dyn Fn() + Send + Sync),
    ) -> Result<Option<RunHold>, BackendError> {
        Ok(None)
    }

    /// The client of the agent's durable runs, where the backend has them;
    /// without, runs go through [`Backend::run`] and end with their call.
    fn run_client(&self) -> Option<&run_client::RunClient> {
        None
    }

    /// Agents that may have runs to settle after a restart (all tenants).
    async fn agents_with_runs(&self) -> Vec<AgentId> {
        Vec::new()
    }

    /// The agent's record, if it exists.
    async fn get_agent(&self, agent: &AgentId) -> Result<Option<AgentRecord>, BackendError>;

    /// Every agent of a tenant; agents whose state cannot be read are
    /// listed apart with the reason.
    async fn list_agents(&self, tenant: &Tenant) -> Result<AgentList, BackendError>;

    /// Frees what an idle agent holds while keeping its workspace and
    /// conversation (locally nothing runs between calls; on Kubernetes the
    /// pod is suspended).
    async fn release_agent(&self, agent: &AgentId) -> Result<(), BackendError>;

    /// Where the agent's environment stands; `None` where there is nothing
    /// beyond the record (locally, a directory is always ready).
    async fn environment(
        &self,
        _agent: &AgentId,
    ) -> Result<Option<EnvironmentStatus>, BackendError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{AgentName, Tenant};

    fn usage(i: u64, o: u64) -> Usage {
        Usage {
            input_tokens: i,
            cached_input_tokens: 0,
            output_tokens: o,
        }
    }

    #[test]
    fn resumed_threads_count_only_the_new_tokens() {
        let id = AgentId {
            tenant: Tenant::default_tenant(),
            name: AgentName::parse("a").unwrap(),
        };
        let now = Utc::now();
        let mut r = AgentRecord::new(&id, now);
        let first = r.run_usage(usage(100, 10), None);
        assert_eq!(first, usage(100, 10));
        r.apply(
            &RunRecord {
                ok: true,
                usage: first,
                thread_usage: usage(100, 10),
                thread: ThreadUpdate::Set("t".into()),
                entry: None,
            },
            now,
        );
        let second = r.run_usage(usage(250, 25), Some("t"));
        assert_eq!(second, usage(150, 15));
        r.apply(
            &RunRecord {
                ok: true,
                usage: second,
                thread_usage: usage(250, 25),
                thread: ThreadUpdate::Keep,
                entry: None,
            },
            now,
        );
        assert_eq!((r.input_tokens, r.output_tokens), (250, 25));
        assert_eq!(
            r.run_usage(usage(40, 4), None),
            usage(40, 4),
            "a new thread counts in full"
        );

        // A turn that fails before completing reports no usage; the thread's
        // count stays, so the next turn counts only its own tokens.
        r.apply(
            &RunRecord {
                ok: false,
                usage: r.run_usage(Usage::default(), Some("t")),
                thread_usage: Usage::default(),
                thread: ThreadUpdate::Set("t".into()),
                entry: None,
            },
            now,
        );
        assert_eq!(r.thread_usage, usage(250, 25));
        assert_eq!(r.run_usage(usage(400, 40), Some("t")), usage(150, 15));
    }
}
