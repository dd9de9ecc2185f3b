//! `codex-mcp serve`: the gateway with the local backend, assembled from its
//! settings.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info, warn};

use crate::backend::local::sandbox::{Isolation, SandboxError};
use crate::backend::local::LocalBackend;
use crate::credentials::{CredentialProvider, CredentialSource, RefreshSettings};
use crate::gateway::auth::{AuthError, ClientAuth};
use crate::gateway::{serve_until_signal, GatewaySettings, HttpError, Readiness};
use crate::metrics::Metrics;
use crate::project::binding::ProjectBinding;
use crate::project::ProjectMode;
use crate::runs::{RunSettings, Runner};
use crate::telemetry::LogSettings;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("invalid setting: {0}")]
    Config(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("creating the data directory {0} failed: {1}")]
    DataDir(String, std::io::Error),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Isolation(#[from] SandboxError),
    #[error(transparent)]
    ProjectSetup(#[from] crate::project::setup::SetupError),
}

/// How `codex-mcp serve` runs, from its flags. (No `Debug`: the credential
/// source may hold an API key.)
pub struct ServeSettings {
    pub log: LogSettings,
    pub gateway: GatewaySettings,
    /// The Codex CLI agents run.
    pub codex_bin: PathBuf,
    pub credentials: CredentialSource,
    pub refresh: RefreshSettings,
    pub runs: RunSettings,
    /// Where agents' workspaces and Codex homes live.
    pub data_dir: PathBuf,
    /// UNSAFE: run agents without isolation when bubblewrap is missing.
    pub unsafe_no_isolation: bool,
    /// Agents that work on a git repository of this machine.
    pub projects: Vec<ProjectBinding>,
    pub project_mode: ProjectMode,
}

/// A relative binary path would break once runs change directory.
fn absolute_bin(bin: PathBuf) -> PathBuf {
    if bin.components().count() > 1 && bin.is_relative() {
        std::fs::canonicalize(&bin).unwrap_or(bin)
    } else {
        bin
    }
}

/// Checks that the Codex CLI answers `--version`; the reason if not.
pub async fn check_codex(bin: &PathBuf) -> Result<String, String> {
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new(bin)
            .arg("--version")
            .kill_on_drop(true)
            .output(),
    )
    .await;
    match out {
        Ok(Ok(o)) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned()),
        Ok(Ok(o)) => Err(format!("{} --version exited with {}", bin.display(), o.status)),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "Codex CLI not found at {:?}: install it with `npm install -g @openai/codex` (or `make serve`), or set CODEX_BIN",
            bin.display().to_string()
        )),
        Ok(Err(e)) => Err(format!("running {} failed: {e}", bin.display())),
        Err(_) => Err(format!("{} --version did not answer within 20 s", bin.display())),
    }
}

/// Client authentication as the settings ask, refusing an open gateway
/// beyond loopback.
pub fn client_auth(
    g: &GatewaySettings,
    data_dir: &std::path::Path,
) -> Result<ClientAuth, ServeError> {
    if g.no_auth {
        if !g.listen.ip().is_loopback() {
            return Err(AuthError::OpenBeyondLoopback(g.listen.to_string()).into());
        }
        warn!(
            "client authentication is off (--no-auth); anyone who can reach {} can use every agent",
            g.listen
        );
        return Ok(ClientAuth::Open);
    }
    if let Some(file) = &g.auth_tokens {
        return Ok(ClientAuth::from_file(file)?);
    }
    let path = data_dir.join("client-token");
    let auth = ClientAuth::generated(&path)?;
    info!(token_file = %path.display(), "no --auth-tokens given: clients authenticate with the token in this file (Authorization: Bearer <token>)");
    Ok(auth)
}

pub async fn run(settings: ServeSettings) -> Result<(), ServeError> {
    crate::telemetry::init(&settings.log);
    let data_dir = settings.data_dir.clone();
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&data_dir)
            .map_err(|e| ServeError::DataDir(data_dir.display().to_string(), e))?;
    }
    // Runs work in other directories: a relative data dir would point
    // elsewhere for them.
    let data_dir = std::fs::canonicalize(&data_dir)
        .map_err(|e| ServeError::DataDir(data_dir.display().to_string(), e))?;
    // Before anything else is made (client token, login copy): a bad
    // project stops the start with nothing of it created.
    let projects =
        crate::project::setup::bind_all(&settings.projects, settings.project_mode, |a| {
            crate::backend::local::agent_dir(&data_dir, a)
        })?;
    for p in &projects {
        info!(agent = %p.agent, repo = %p.repo.display(), workspace = %p.workspace.display(), mode = ?p.mode, "agent works on a project");
    }
    let isolation = if settings.unsafe_no_isolation {
        warn!("--unsafe-no-isolation: agents run unisolated; their commands can read the client tokens, the gateway's data directory and every other agent's files");
        Isolation::Unsafe
    } else {
        Isolation::detect().await?
    };
    // Running turns follow the login here as the gateway refreshes it.
    // In a directory of its own: runs see it through a bind of the
    // directory (a bind of the file would keep the inode the gateway's
    // atomic rewrite replaces), and nothing else of the data dir.
    let run_login_dir = data_dir.join("run-login");
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&run_login_dir)
            .map_err(|e| ServeError::DataDir(run_login_dir.display().to_string(), e))?;
    }
    let run_login_file = run_login_dir.join("run-login.json");
    let credentials = CredentialProvider::new(settings.credentials, settings.refresh)
        .with_run_login_file(run_login_file.clone());
    let auth = client_auth(&settings.gateway, &data_dir)?;
    let codex_bin = absolute_bin(settings.codex_bin);
    let readiness: Readiness = Arc::default();
    match check_codex(&codex_bin).await {
        Ok(version) => info!(%version, "found Codex CLI"),
        Err(why) => {
            error!("{why}; tool calls will fail until it is installed");
            *readiness.write().expect("readiness") = Some(why);
        }
    }
    info!(credentials = %credentials.describe(), "Codex credentials");
    let agent_run_bin = std::env::current_exe()
        .map_err(|e| ServeError::Config(format!("cannot locate the codex-mcp binary: {e}")))?;
    let backend = Arc::new(
        LocalBackend::new(data_dir.clone(), codex_bin, agent_run_bin, isolation)
            .with_projects(projects),
    );
    let runner = Arc::new(Runner::new(
        backend,
        credentials,
        settings.runs,
        Arc::new(Metrics::new()),
    ));
    // Runs a previous gateway left going, or finished but unrecorded.
    runner.recover_runs();

    let keeper = {
        let runner = runner.clone();
        tokio::spawn(async move { runner.credentials().keep_login_fresh().await })
    };

    let context = format!("data dir {}", data_dir.display());
    let served =
        serve_until_signal(runner, auth, &settings.gateway, readiness, None, &context).await;
    keeper.abort();
    // Like each run's copy, the login for runs does not outlive the gateway.
    let _ = std::fs::remove_file(&run_login_file);
    Ok(served?)
}
