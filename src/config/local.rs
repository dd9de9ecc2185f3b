//! Flags of the gateway, shared by `serve` and `gateway`, and of `serve`
//! alone (the local backend).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::run_settings::run_settings;
use super::{CredentialChoiceArgs, LogArgs, RefreshArgs, SettingsError};
use crate::credentials::{AuthMethod, CredentialProvider, CredentialSource, API_KEY_VAR};
use crate::gateway::{
    EdgeSettings, GatewaySettings, DEFAULT_HEADER_READ_TIMEOUT_SECS, DEFAULT_IDLE_TIMEOUT_SECS,
    DEFAULT_LISTEN, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONNECTIONS,
};
use crate::serve::ServeSettings;
use crate::sessions::{SessionLimits, DEFAULT_MAX_SESSIONS, DEFAULT_MAX_SESSIONS_PER_TOKEN};

/// How the gateway listens and who may talk to it.
#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    /// Address to listen on.
    #[arg(long, env = "CODEX_MCP_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// File of client bearer tokens, one per line: `TOKEN [TENANT [AGENT,AGENT...]]`.
    #[arg(long, env = "CODEX_MCP_AUTH_TOKENS")]
    pub auth_tokens: Option<PathBuf>,
    /// Accept clients without a token. Refused unless listening on loopback.
    #[arg(long, env = "CODEX_MCP_NO_AUTH")]
    pub no_auth: bool,
    /// Host header values accepted on /mcp (comma-separated), e.g. the
    /// ingress host. Loopback names are always accepted.
    #[arg(long, env = "CODEX_MCP_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "CODEX_MCP_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub edge: EdgeArgs,
}

impl GatewayArgs {
    /// The gateway's settings; its limits are checked as it starts to
    /// serve (`gateway::serve_until_signal`).
    pub fn settings(&self) -> GatewaySettings {
        GatewaySettings {
            listen: self.listen,
            auth_tokens: self.auth_tokens.clone(),
            no_auth: self.no_auth,
            allowed_hosts: self.allowed_hosts.clone(),
            max_body_bytes: self.max_body_bytes,
            edge: self.edge.settings(),
        }
    }
}

/// What the HTTP listener lets clients hold, and whom it believes about
/// the URL they used.
#[derive(Debug, Clone, Args)]
pub struct EdgeArgs {
    /// Close a connection whose request headers are not complete after this
    /// many seconds.
    #[arg(long, env = "CODEX_MCP_HEADER_READ_TIMEOUT", default_value_t = DEFAULT_HEADER_READ_TIMEOUT_SECS)]
    pub header_read_timeout: u64,
    /// Close a connection that sent and received nothing for this many
    /// seconds (open MCP streams send a keep-alive every 15 s).
    #[arg(long, env = "CODEX_MCP_IDLE_TIMEOUT", default_value_t = DEFAULT_IDLE_TIMEOUT_SECS)]
    pub idle_timeout: u64,
    /// Open connections at most; at the cap, the oldest connection that has
    /// not yet sent a complete request is closed to admit the new one.
    #[arg(long, env = "CODEX_MCP_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Open MCP sessions (streamable HTTP and SSE) at most, in total.
    #[arg(long, env = "CODEX_MCP_MAX_SESSIONS", default_value_t = DEFAULT_MAX_SESSIONS)]
    pub max_sessions: usize,
    /// Open MCP sessions at most per client token.
    #[arg(long, env = "CODEX_MCP_MAX_SESSIONS_PER_TOKEN", default_value_t = DEFAULT_MAX_SESSIONS_PER_TOKEN)]
    pub max_sessions_per_token: usize,
}

impl EdgeArgs {
    pub fn settings(&self) -> EdgeSettings {
        EdgeSettings {
            header_read_timeout: Duration::from_secs(self.header_read_timeout),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            max_connections: self.max_connections,
            sessions: SessionLimits {
                total: self.max_sessions,
                per_token: self.max_sessions_per_token,
            },
        }
    }
}

/// How Codex is invoked and with which credentials.
#[derive(Debug, Clone, Args)]
pub struct CodexArgs {
    /// The Codex CLI binary.
    #[arg(long, env = "CODEX_BIN", default_value = crate::codex::DEFAULT_CODEX_BIN)]
    pub codex_bin: PathBuf,
    /// Model for every run.
    #[arg(long = "model", env = "CODEX_MODEL", default_value = crate::runs::DEFAULT_MODEL)]
    pub model: String,
    /// Model provider id: one of Codex's built-in providers, or a custom one
    /// defined by --provider-base-url.
    #[arg(long = "provider", env = "CODEX_PROVIDER")]
    pub provider: Option<String>,
    /// Base URL of a custom Responses-API provider (e.g. http://127.0.0.1:8080/v1).
    #[arg(
        long = "provider-base-url",
        env = "CODEX_PROVIDER_BASE_URL",
        requires = "provider"
    )]
    pub provider_base_url: Option<String>,
    /// Environment variable of the custom provider's API key: the gateway
    /// reads the key from this variable (falling back to OPENAI_API_KEY when
    /// it is unset) and hands it to Codex under the same name.
    #[arg(
        long = "provider-env-key",
        env = "CODEX_PROVIDER_ENV_KEY",
        default_value = API_KEY_VAR
    )]
    pub provider_env_key: String,
    /// Sandbox for tools that write (implement, fix, chat): suggest (read-only),
    /// auto-edit / full-auto (workspace-write), danger-full-access, or external
    /// (no Codex sandbox: the environment is the sandbox). plan and review
    /// always run read-only.
    #[arg(
        long = "approval-mode",
        env = "CODEX_APPROVAL_MODE",
        default_value = crate::runs::DEFAULT_APPROVAL_MODE
    )]
    pub approval_mode: String,
    /// Extra Codex config overrides, `key=value` with a TOML value
    /// (repeatable; in the environment, separated by `;`).
    #[arg(
        long = "codex-config",
        env = "CODEX_MCP_CODEX_CONFIG",
        value_delimiter = ';'
    )]
    pub codex_config: Vec<String>,
    /// OpenAI API key for Codex.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<String>,
    #[command(flatten)]
    pub choice: CredentialChoiceArgs,
    /// Directory holding Codex's auth.json (default ~/.codex).
    #[arg(long, env = "CODEX_AUTH_DIR")]
    pub auth_dir: Option<PathBuf>,
    #[command(flatten)]
    pub refresh: RefreshArgs,
}

impl CodexArgs {
    /// Where runs' credentials come from.
    pub fn credential_source(&self) -> Result<CredentialSource, SettingsError> {
        // A custom provider's key is read from the variable it is handed to
        // Codex in, as a user setting FAKE_API_KEY with --provider-env-key
        // FAKE_API_KEY expects; OPENAI_API_KEY stays the fallback.
        let provider_var = self
            .provider_base_url
            .as_ref()
            .map(|_| self.provider_env_key.clone())
            .filter(|var| var != API_KEY_VAR);
        let from_provider_var = provider_var
            .as_ref()
            .and_then(|var| std::env::var(var).ok())
            .filter(|k| !k.trim().is_empty());
        let openai_key = self.openai_api_key.clone().filter(|k| !k.trim().is_empty());
        let (api_key, api_key_var) = match (from_provider_var, provider_var) {
            (Some(key), Some(var)) => (Some(key), var),
            (None, Some(var)) if openai_key.is_none() => {
                (None, format!("{var} (or {API_KEY_VAR})"))
            }
            _ => (openai_key, API_KEY_VAR.to_owned()),
        };
        Ok(CredentialSource {
            method: AuthMethod::parse(&self.choice.auth_method)
                .map_err(|e| SettingsError::Invalid(e.to_string()))?,
            prefer_oauth: self.choice.prefer_oauth,
            api_key,
            api_key_var,
            auth_file: CredentialSource::default_auth_file(self.auth_dir.as_deref()),
        })
    }

    /// The credential provider for runs: the source plus the refresh
    /// settings (`auth status` describes it).
    pub fn credential_provider(&self) -> Result<CredentialProvider, SettingsError> {
        Ok(CredentialProvider::new(
            self.credential_source()?,
            self.refresh.settings(),
        ))
    }
}

/// Capacity and time limits.
#[derive(Debug, Clone, Args)]
pub struct LimitsArgs {
    /// Most Codex runs at once, across all agents.
    #[arg(long, env = "MAX_CONCURRENT_SESSIONS", default_value_t = crate::runs::DEFAULT_MAX_CONCURRENT_RUNS)]
    pub max_concurrent_sessions: usize,
    /// Seconds without a call after which an agent counts as inactive.
    #[arg(long, env = "SESSION_TIMEOUT", default_value_t = crate::agent::DEFAULT_SESSION_TIMEOUT_SECS)]
    pub session_timeout: u64,
    /// Longest a single run may take, in seconds.
    #[arg(long, env = "CODEX_MCP_RUN_TIMEOUT", default_value_t = crate::runs::DEFAULT_RUN_TIMEOUT_SECS)]
    pub run_timeout: u64,
    /// While a call runs, send a progress notification at least this often
    /// (seconds), also when Codex is silent: clients abort calls that report
    /// no progress for a while (Claude Code after 300 s).
    #[arg(
        long,
        env = "CODEX_MCP_PROGRESS_HEARTBEAT_SECS",
        default_value_t = crate::progress::DEFAULT_HEARTBEAT.as_secs()
    )]
    pub progress_heartbeat: u64,
    /// Calls that may wait for a busy agent before further ones are refused.
    #[arg(long, env = "CODEX_MCP_QUEUE_LIMIT", default_value_t = crate::runs::DEFAULT_QUEUE_LIMIT)]
    pub queue_limit: usize,
    /// Seconds a finished run's result (a background call's, for
    /// `get_run`) is kept before it is removed.
    #[arg(long, env = "CODEX_MCP_RESULT_TTL", default_value_t = crate::runs::DEFAULT_RESULT_TTL_SECS)]
    pub result_ttl: u64,
    /// Longest diff reported for one changed file, in bytes; longer ones
    /// are cut and marked truncated.
    #[arg(long, env = "CODEX_MCP_MAX_DIFF_BYTES", default_value_t = crate::api::request::DEFAULT_MAX_DIFF_FILE_BYTES)]
    pub max_diff_bytes: usize,
    /// Most diff text one call reports across its files, in bytes.
    #[arg(long, env = "CODEX_MCP_MAX_DIFF_TOTAL_BYTES", default_value_t = crate::api::request::DEFAULT_MAX_DIFF_TOTAL_BYTES)]
    pub max_diff_total_bytes: usize,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    #[command(flatten)]
    pub codex: CodexArgs,
    #[command(flatten)]
    pub limits: LimitsArgs,
    /// Where agents' workspaces and Codex homes live (default ~/.local/share/codex-mcp).
    #[arg(long, env = "CODEX_MCP_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// UNSAFE: run agents without isolation when bubblewrap is missing. Every
    /// agent's commands can then read the client tokens, the gateway's data
    /// directory and credentials, and all other agents' files.
    #[arg(long, env = "CODEX_MCP_UNSAFE_NO_ISOLATION")]
    pub unsafe_no_isolation: bool,
    /// Make agent NAME work on the git repository at PATH:
    /// `[TENANT/]NAME=PATH` (repeatable; in the environment, separated by
    /// `;`). Without TENANT, the default tenant's agent.
    #[arg(
        long = "project",
        env = "CODEX_MCP_PROJECTS",
        value_delimiter = ';',
        value_name = "[TENANT/]NAME=PATH"
    )]
    pub projects: Vec<String>,
    /// How agents work on their project: in a git worktree on the branch
    /// `codex/NAME` (the user's working tree is never touched), or in the
    /// repository's working tree itself.
    #[arg(
        long,
        env = "CODEX_MCP_PROJECT_MODE",
        value_enum,
        default_value_t = crate::project::DEFAULT_PROJECT_MODE
    )]
    pub project_mode: crate::project::ProjectMode,
    /// Accepted for compatibility: local agents are always persistent.
    #[arg(long, env = "PERSISTENT_MODE", hide = true)]
    pub persistent_mode: Option<String>,
}

impl ServeArgs {
    /// `serve`'s settings, checked in the order `serve` always checked
    /// them, before anything is created.
    pub fn settings(&self) -> Result<ServeSettings, SettingsError> {
        let projects = crate::project::binding::parse_bindings(&self.projects)?;
        let runs = run_settings(&self.codex, &self.limits)?;
        let credentials = self.codex.credential_source()?;
        Ok(ServeSettings {
            log: self.gateway.log.settings(),
            gateway: self.gateway.settings(),
            codex_bin: self.codex.codex_bin.clone(),
            credentials,
            refresh: self.codex.refresh.settings(),
            runs,
            data_dir: self.data_dir(),
            unsafe_no_isolation: self.unsafe_no_isolation,
            projects,
            project_mode: self.project_mode,
        })
    }

    /// `--data-dir`, else `$XDG_DATA_HOME/codex-mcp`, else
    /// `~/.local/share/codex-mcp`.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            let base = std::env::var_os("XDG_DATA_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
                .unwrap_or_else(|| PathBuf::from("."));
            base.join("codex-mcp")
        })
    }
}
