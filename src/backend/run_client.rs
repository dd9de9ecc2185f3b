//! The gateway's one client of `agent-run`'s durable commands (see
//! `codex::detached`). A backend supplies only how a command reaches the
//! agent's environment ([`AgentRunExec`]: a child process locally,
//! pods/exec on Kubernetes); starting, following, cancelling and reading
//! runs is the same everywhere.

use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio_util::sync::CancellationToken;

use super::{BackendError, EventSender};
use crate::agent::AgentId;
use crate::codex::run_dir::{RunId, RunState, STARTED_LINE_TYPE};
use crate::codex::{AgentRunLine, RunOutcome, RunRequest};

/// How often a broken `follow` is tried again before the run counts as lost.
const FOLLOW_ATTEMPTS: usize = 5;

/// A command's standard output, and whatever keeps the command alive.
pub struct ExecOutput {
    pub stdout: Pin<Box<dyn AsyncBufRead + Send>>,
    /// Dropped with the output (a local child is then killed).
    pub _keep: Box<dyn std::any::Any + Send>,
}

/// Runs `codex-mcp agent-run` commands in an agent's environment.
#[async_trait]
pub trait AgentRunExec: Send + Sync {
    /// `agent-run ARGS` with `stdin`, for the short commands.
    async fn exec(
        &self,
        agent: &AgentId,
        args: Vec<String>,
        stdin: Vec<u8>,
    ) -> Result<ExecOutput, BackendError>;

    /// `agent-run start` for `request` in `run_dir`, so that the run
    /// outlives this process; its output begins with the started line.
    async fn start(
        &self,
        agent: &AgentId,
        run_dir: &std::path::Path,
        request: &RunRequest,
    ) -> Result<ExecOutput, BackendError>;

    /// The agent's runs directory, as seen in its environment.
    fn runs_dir(&self, agent: &AgentId) -> PathBuf;

    /// Why a run this process started was lost, when the environment can
    /// tell better than "its process was killed" (a pod deleted mid-run).
    async fn lost_reason(&self, _agent: &AgentId) -> Option<String> {
        None
    }
}

/// The start of the error of a run whose process died without a result.
pub const LOST_RUN: &str = "the run ended without a result";

pub struct RunClient {
    exec: Box<dyn AgentRunExec>,
}

fn path_arg(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}

impl RunClient {
    pub fn new(exec: Box<dyn AgentRunExec>) -> Self {
        Self { exec }
    }

    fn run_dir(&self, agent: &AgentId, id: &RunId) -> String {
        path_arg(&self.exec.runs_dir(agent).join(id.as_str()))
    }

    async fn lines(
        &self,
        agent: &AgentId,
        args: Vec<String>,
        stdin: Vec<u8>,
    ) -> Result<Vec<String>, BackendError> {
        let out = self.exec.exec(agent, args, stdin).await?;
        let mut lines = out.stdout.lines();
        let mut all = Vec::new();
        while let Ok(Some(l)) = lines.next_line().await {
            all.push(l);
        }
        Ok(all)
    }

    /// Starts the run; `Some(outcome)` when it failed before starting.
    pub async fn start(
        &self,
        agent: &AgentId,
        id: &RunId,
        request: &RunRequest,
    ) -> Result<Option<RunOutcome>, BackendError> {
        let dir = self.exec.runs_dir(agent).join(id.as_str());
        let out = self.exec.start(agent, &dir, request).await?;
        let mut lines = out.stdout.lines();
        while let Ok(Some(l)) = lines.next_line().await {
            if l.contains(STARTED_LINE_TYPE) {
                return Ok(None);
            }
            if let Some(AgentRunLine::Result(o)) = AgentRunLine::parse(&l) {
                return Ok(Some(o));
            }
        }
        Err(BackendError::Spawn(
            "agent-run ended without starting the run".into(),
        ))
    }

    /// Streams the run's events (from byte `offset`) to `events` until its
    /// result, which it returns. A broken stream is followed again from
    /// where it stopped.
    pub async fn follow(
        &self,
        agent: &AgentId,
        id: &RunId,
        mut offset: u64,
        events: &EventSender,
    ) -> Result<RunOutcome, BackendError> {
        for attempt in 0..FOLLOW_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            let args = vec![
                "follow".into(),
                "--run-dir".into(),
                self.run_dir(agent, id),
                "--offset".into(),
                offset.to_string(),
            ];
            let Ok(out) = self.exec.exec(agent, args, Vec::new()).await else {
                continue;
            };
            let mut lines = out.stdout.lines();
            while let Ok(Some(l)) = lines.next_line().await {
                offset += l.len() as u64 + 1;
                match AgentRunLine::parse(&l) {
                    Some(AgentRunLine::Result(o)) => return Ok(o),
                    Some(AgentRunLine::Event(ev)) => {
                        let _ = events.send(ev);
                    }
                    None => {}
                }
            }
        }
        Err(BackendError::NoResult(format!(
            "following run {id} failed {FOLLOW_ATTEMPTS} times"
        )))
    }

    /// Stops the run; true once its processes are gone.
    pub async fn cancel(&self, agent: &AgentId, id: &RunId) -> Result<bool, BackendError> {
        let args = vec!["cancel".into(), "--run-dir".into(), self.run_dir(agent, id)];
        let lines = self.lines(agent, args, Vec::new()).await?;
        Ok(lines.iter().any(|l| l.contains("\"stopped\":true")))
    }

    /// The run's state with its tool result and last events; `None` when
    /// there is no such run.
    pub async fn status(
        &self,
        agent: &AgentId,
        id: &RunId,
    ) -> Result<Option<RunState>, BackendError> {
        let args = vec!["status".into(), "--run-dir".into(), self.run_dir(agent, id)];
        let lines = self.lines(agent, args, Vec::new()).await?;
        Ok(lines.iter().find_map(|l| serde_json::from_str(l).ok()))
    }

    /// Every run the agent has on record.
    pub async fn list(&self, agent: &AgentId) -> Result<Vec<RunState>, BackendError> {
        let args = vec![
            "list".into(),
            "--runs-dir".into(),
            path_arg(&self.exec.runs_dir(agent)),
        ];
        let lines = self.lines(agent, args, Vec::new()).await?;
        Ok(lines
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }

    /// Writes one of the gateway's files into the run's directory.
    pub async fn put(
        &self,
        agent: &AgentId,
        id: &RunId,
        file: &str,
        bytes: Vec<u8>,
    ) -> Result<(), BackendError> {
        let args = vec![
            "put".into(),
            "--run-dir".into(),
            self.run_dir(agent, id),
            "--file".into(),
            file.into(),
        ];
        self.lines(agent, args, bytes).await.map(|_| ())
    }

    /// Removes the agent's recorded runs older than `ttl`; returns how many.
    pub async fn prune(&self, agent: &AgentId, ttl: Duration) -> Result<usize, BackendError> {
        let args = vec![
            "prune".into(),
            "--runs-dir".into(),
            path_arg(&self.exec.runs_dir(agent)),
            "--ttl-secs".into(),
            ttl.as_secs().to_string(),
        ];
        let lines = self.lines(agent, args, Vec::new()).await?;
        Ok(lines.len())
    }

    /// Runs `agent-run workspace` with `request` in the agent's environment:
    /// its answer, or the reason it gave for failing (`Ok(Err(..))`).
    pub async fn workspace(
        &self,
        agent: &AgentId,
        request: &crate::project::ops::WorkspaceRequest,
    ) -> Result<Result<serde_json::Value, String>, BackendError> {
        use crate::project::ops::WorkspaceAnswer;
        let mut stdin = serde_json::to_vec(request).expect("request serializes");
        stdin.push(b'\n');
        let lines = self.lines(agent, vec!["workspace".into()], stdin).await?;
        match lines
            .iter()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
        {
            Some(WorkspaceAnswer::Ok(v)) => Ok(Ok(v)),
            Some(WorkspaceAnswer::Error(e)) => Ok(Err(e)),
            None => Err(BackendError::NoResult(
                "agent-run workspace gave no answer (is the agent's codex-mcp too old?)".into(),
            )),
        }
    }

    /// Starts the run and follows it to its result; `cancel` stops it (the
    /// result of a cancelled run is still awaited, so it can be recorded).
    pub async fn run(
        &self,
        agent: &AgentId,
        id: &RunId,
        request: &RunRequest,
        events: EventSender,
        cancel: CancellationToken,
    ) -> Result<RunOutcome, BackendError> {
        if let Some(failed) = self.start(agent, id, request).await? {
            return Ok(failed);
        }
        let follow = self.follow(agent, id, 0, &events);
        tokio::pin!(follow);
        let outcome = tokio::select! {
            r = &mut follow => r,
            _ = cancel.cancelled() => {
                let _ = self.cancel(agent, id).await;
                follow.await
            }
        };
        match outcome {
            Ok(mut o) if o.error.as_deref().is_some_and(|e| e.starts_with(LOST_RUN)) => {
                if let Some(why) = self.exec.lost_reason(agent).await {
                    o.error = Some(why);
                }
                Ok(o)
            }
            other => other,
        }
    }
}
