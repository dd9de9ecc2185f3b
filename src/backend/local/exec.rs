//! How `agent-run` commands reach a local agent: the run itself in the
//! agent's sandbox, the short durable-mode commands (follow, status, ...)
//! as plain child processes of the gateway, which only read and write the
//! run's directory (never following the run's symlinks). `workspace` too
//! runs so: it works on the agent's files with git, which neither stores
//! nor writes through a symlink, and checks every caller path against the
//! real workspace before writing.

use std::collections::HashMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use async_trait::async_trait;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::Command;

use super::sandbox::{bwrap_args, Isolation, RunMounts};
use crate::agent::AgentId;
use crate::backend::run_client::{AgentRunExec, ExecOutput};
use crate::backend::BackendError;
use crate::codex::run_dir::LOG_FILE;
use crate::codex::{RunRequest, SandboxMode};
use crate::project::setup::BoundProject;

/// What starting `agent-run` on this machine needs.
#[derive(Debug, Clone)]
pub struct LocalRunConfig {
    pub data_dir: PathBuf,
    /// Agents bound to a repository (`serve --project`).
    pub projects: std::sync::Arc<HashMap<AgentId, BoundProject>>,
    pub codex_bin: PathBuf,
    /// The `codex-mcp` binary that provides `agent-run`.
    pub agent_run_bin: PathBuf,
    pub isolation: Isolation,
}

/// The directory under `runs/` for a run, created here so the sandbox can
/// bind it: `agents/NAME/runs/RUN-ID`, next to (not in) the workspace.
pub const RUNS_DIR: &str = "runs";

impl LocalRunConfig {
    pub fn agent_dir(&self, agent: &AgentId) -> PathBuf {
        super::agent_dir(&self.data_dir, agent)
    }

    /// Where the agent's Codex works: its project's worktree (or working
    /// tree), else its own workspace directory.
    pub fn workspace(&self, agent: &AgentId) -> PathBuf {
        match self.projects.get(agent) {
            Some(p) => p.workspace.clone(),
            None => self.agent_dir(agent).join("workspace"),
        }
    }

    /// `agent-run` for `request` in the agent's sandbox; `run_dir` makes
    /// it a durable run in that directory.
    pub fn agent_run_command(
        &self,
        agent: &AgentId,
        request: &RunRequest,
        run_dir: Option<&Path>,
    ) -> Command {
        let dir = self.agent_dir(agent);
        let workspace = self.workspace(agent);
        let project = self.projects.get(agent);
        let mut writable: Vec<PathBuf> =
            vec![workspace.clone(), dir.join("codex-home"), dir.join("tmp")];
        writable.extend(project.iter().flat_map(|p| p.writable.iter().cloned()));
        writable.extend(run_dir.map(Path::to_path_buf));
        let mut read_only: Vec<PathBuf> = request
            .follow_login
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect();
        read_only.extend(project.iter().flat_map(|p| p.read_only.iter().cloned()));
        let mut cmd = match &self.isolation {
            Isolation::Bwrap(bwrap) => {
                let mut cmd = Command::new(bwrap);
                cmd.args(bwrap_args(&RunMounts {
                    writable,
                    codex_bin: &self.codex_bin,
                    agent_run_bin: &self.agent_run_bin,
                    read_only,
                    protected: project.map(|p| p.protected.clone()).unwrap_or_default(),
                    no_inner_sandbox: request.sandbox == SandboxMode::External,
                    detached: run_dir.is_some(),
                    cwd: &workspace,
                }))
                .arg(&self.agent_run_bin);
                cmd
            }
            Isolation::Unsafe => Command::new(&self.agent_run_bin),
        };
        cmd.arg("agent-run").arg("--codex-bin").arg(&self.codex_bin);
        match run_dir {
            Some(run_dir) => {
                cmd.args(["start", "--foreground", "--run-dir"])
                    .arg(run_dir);
            }
            None => {
                cmd.arg("--cancel-on-stdin-eof");
            }
        }
        // A clean environment: the gateway's own variables (tokens, keys)
        // are not the run's business; credentials travel in the request.
        cmd.env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("HOME", &dir)
            .env("TMPDIR", dir.join("tmp"))
            .env("LANG", "C.UTF-8")
            .current_dir(&workspace)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .process_group(0);
        cmd
    }
}

pub struct LocalExec(pub LocalRunConfig);

fn spawn_error(e: impl std::fmt::Display) -> BackendError {
    BackendError::Spawn(e.to_string())
}

#[async_trait]
impl AgentRunExec for LocalExec {
    async fn exec(
        &self,
        _agent: &AgentId,
        args: Vec<String>,
        stdin: Vec<u8>,
    ) -> Result<ExecOutput, BackendError> {
        let mut child = Command::new(&self.0.agent_run_bin)
            .arg("agent-run")
            .args(args)
            .env_clear()
            // The workspace commands run git.
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(spawn_error)?;
        let mut input = child.stdin.take().expect("piped stdin");
        if !stdin.is_empty() {
            input.write_all(&stdin).await.map_err(spawn_error)?;
        }
        drop(input);
        let stdout = child.stdout.take().expect("piped stdout");
        Ok(ExecOutput {
            stdout: Box::pin(BufReader::new(stdout)),
            _keep: Box::new(child),
        })
    }

    async fn start(
        &self,
        agent: &AgentId,
        run_dir: &Path,
        request: &RunRequest,
    ) -> Result<ExecOutput, BackendError> {
        let prepared = run_dir.to_path_buf();
        tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&prepared)
        })
        .await
        .map_err(spawn_error)?
        .map_err(spawn_error)?;
        // bwrap's own complaints (and the run's) land in the run's log.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(run_dir.join(LOG_FILE))
            .map_err(spawn_error)?;
        let mut child = self
            .0
            .agent_run_command(agent, request, Some(run_dir))
            .stderr(log)
            // The run must outlive this gateway.
            .kill_on_drop(false)
            .spawn()
            .map_err(spawn_error)?;
        let mut input = child.stdin.take().expect("piped stdin");
        let mut line = serde_json::to_vec(request).expect("request serializes");
        line.push(b'\n');
        input.write_all(&line).await.map_err(spawn_error)?;
        drop(input);
        let stdout = child.stdout.take().expect("piped stdout");
        // Reaped here while this gateway lives; by init after it is gone.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        Ok(ExecOutput {
            stdout: Box::pin(BufReader::new(stdout)),
            _keep: Box::new(()),
        })
    }

    fn runs_dir(&self, agent: &AgentId) -> PathBuf {
        self.0.agent_dir(agent).join(RUNS_DIR)
    }
}
