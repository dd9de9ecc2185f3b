//! Flags of `codex-mcp agent-run`, the command that runs a turn (and works
//! on the workspace) inside an agent's environment.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `codex-mcp agent-run`.
#[derive(Debug, Clone, Args)]
pub struct AgentRunArgs {
    /// The Codex CLI binary.
    #[arg(long, env = "CODEX_BIN", default_value = crate::codex::DEFAULT_CODEX_BIN)]
    pub codex_bin: PathBuf,
    /// Treat end of stdin after the request as cancellation.
    #[arg(long)]
    pub cancel_on_stdin_eof: bool,
    /// Directory holding this environment's own credentials (`auth.json`
    /// and/or `OPENAI_API_KEY` files), used when a request brings none: on
    /// Kubernetes, the agent's credentials Secret mounted by the operator.
    #[arg(long, env = "CODEX_MCP_CREDENTIALS_DIR")]
    pub credentials_dir: Option<PathBuf>,
    /// A durable run: without one, the request's run streams on stdout and
    /// lives as long as this process.
    #[command(subcommand)]
    pub durable: Option<DurableCommand>,
}

/// `agent-run` commands for runs that outlive their caller (see
/// `codex::detached`), and for the workspace between runs (see
/// `project::ops`).
#[derive(Debug, Clone, Subcommand)]
pub enum DurableCommand {
    /// Read the request on stdin and start the run in RUN_DIR; prints one
    /// `agent_run.started` line (or a failed result) and returns.
    Start {
        #[arg(long)]
        run_dir: PathBuf,
        /// Be the run (the caller keeps this process alive and reads only
        /// the first line) instead of starting one in its own session.
        #[arg(long)]
        foreground: bool,
    },
    /// Print the run's events from byte OFFSET on as they come, then its result.
    Follow {
        #[arg(long)]
        run_dir: PathBuf,
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// Stop the run; returns once its processes are gone.
    Cancel {
        #[arg(long)]
        run_dir: PathBuf,
    },
    /// Print the run's state, its tool result and its last events.
    Status {
        #[arg(long)]
        run_dir: PathBuf,
    },
    /// Print the state of every run under RUNS_DIR, one line each.
    List {
        #[arg(long)]
        runs_dir: PathBuf,
    },
    /// Write stdin to FILE (`recorded` or `tool-result.json`) of the run.
    Put {
        #[arg(long)]
        run_dir: PathBuf,
        #[arg(long)]
        file: String,
    },
    /// Remove recorded runs whose result is older than TTL_SECS.
    Prune {
        #[arg(long)]
        runs_dir: PathBuf,
        #[arg(long)]
        ttl_secs: u64,
    },
    /// Work on the workspace's files as git (sync, changes, checkpoints,
    /// rollback, push): one JSON request on stdin, one JSON answer line.
    Workspace,
}
