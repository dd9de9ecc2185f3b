//! `codex-mcp serve`: the gateway with the local backend, assembled from flags.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info, warn};

use crate::backend::local::sandbox::{Isolation, SandboxError};
use crate::backend::local::LocalBackend;
use crate::config::{run_settings, CodexArgs, ServeArgs, SettingsError};
use crate::credentials::{AuthMethod, CredentialProvider, CredentialSource};
use crate::gateway::auth::{AuthError, ClientAuth};
use crate::gateway::{serve_until_signal, HttpError, Readiness};
use crate::metrics::Metrics;
use crate::runs::Runner;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("invalid setting: {0}")]
    Config(String),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("creating the data directory {0} failed: {1}")]
    DataDir(String, std::io::Error),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Isolation(#[from] SandboxError),
    #[error(transparent)]
    ProjectBinding(#[from] crate::project::binding::BindingError),
    #[error(transparent)]
    ProjectSetup(#[from] crate::project::setup::SetupError),
}

pub fn credential_source(codex: &CodexArgs) -> Result<CredentialSource, ServeError> {
    // A custom provider's key is read from the variable it is handed to
    // Codex in, as a user setting FAKE_API_KEY with --provider-env-key
    // FAKE_API_KEY expects; OPENAI_API_KEY stays the fallback.
    let provider_var = codex
        .provider_base_url
        .as_ref()
        .map(|_| codex.provider_env_key.clone())
        .filter(|var| var != "OPENAI_API_KEY");
    let from_provider_var = provider_var
        .as_ref()
        .and_then(|var| std::env::var(var).ok())
        .filter(|k| !k.trim().is_empty());
    let openai_key = codex
        .openai_api_key
        .clone()
        .filter(|k| !k.trim().is_empty());
    let (api_key, api_key_var) = match (from_provider_var, provider_var) {
        (Some(key), Some(var)) => (Some(key), var),
        (None, Some(var)) if openai_key.is_none() => (None, format!("{var} (or OPENAI_API_KEY)")),
        _ => (openai_key, "OPENAI_API_KEY".to_owned()),
    };
    Ok(CredentialSource {
        method: AuthMethod::parse(&codex.auth_method)
            .map_err(|e| ServeError::Config(e.to_string()))?,
        prefer_oauth: codex.prefer_oauth,
        api_key,
        api_key_var,
        auth_file: CredentialSource::default_auth_file(codex.auth_dir.as_deref()),
    })
}

/// The credential provider for runs: the source plus the refresh settings.
pub fn credential_provider(codex: &CodexArgs) -> Result<CredentialProvider, ServeError> {
    Ok(CredentialProvider::new(
        credential_source(codex)?,
        codex.refresh.token_url.clone(),
        codex.refresh.oauth_client_id.clone(),
        Duration::from_secs(codex.refresh.refresh_margin),
    ))
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

/// Client authentication as the flags ask, refusing an open gateway beyond loopback.
pub fn client_auth(args: &ServeArgs, data_dir: &std::path::Path) -> Result<ClientAuth, ServeError> {
    let g = &args.gateway;
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

pub async fn run(args: ServeArgs) -> Result<(), ServeError> {
    crate::telemetry::init(&args.gateway.log_level, args.gateway.log_format);
    let data_dir = args.data_dir();
    // Bad bindings are refused before anything is created.
    let bindings = crate::project::binding::parse_bindings(&args.projects)?;
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
    let projects = crate::project::setup::bind_all(&bindings, args.project_mode, |a| {
        crate::backend::local::agent_dir(&data_dir, a)
    })?;
    for p in &projects {
        info!(agent = %p.agent, repo = %p.repo.display(), workspace = %p.workspace.display(), mode = ?p.mode, "agent works on a project");
    }
    let isolation = if args.unsafe_no_isolation {
        warn!("--unsafe-no-isolation: agents run unisolated; their commands can read the client tokens, the gateway's data directory and every other agent's files");
        Isolation::Unsafe
    } else {
        Isolation::detect().await?
    };
    let settings = run_settings(&args.codex, &args.limits)?;
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
    let credentials = credential_provider(&args.codex)?.with_run_login_file(run_login_file.clone());
    let auth = client_auth(&args, &data_dir)?;
    let codex_bin = absolute_bin(args.codex.codex_bin.clone());
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
        settings,
        Arc::new(Metrics::new()),
    ));
    // Runs a previous gateway left going, or finished but unrecorded.
    runner.recover_runs();

    let keeper = {
        let runner = runner.clone();
        tokio::spawn(async move { runner.credentials().keep_login_fresh().await })
    };

    let context = format!("data dir {}", data_dir.display());
    let served = serve_until_signal(
        args.gateway.listen,
        runner,
        auth,
        &args.gateway,
        readiness,
        None,
        &context,
    )
    .await;
    keeper.abort();
    // Like each run's copy, the login for runs does not outlive the gateway.
    let _ = std::fs::remove_file(&run_login_file);
    Ok(served?)
}
