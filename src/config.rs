//! Command-line flags and their environment variables. The original server's
//! settings keep their names and defaults; every one is also a flag.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod agent_run;
mod kube;
mod run_settings;

pub use agent_run::{AgentRunArgs, DurableCommand};
pub use kube::{AgentInitArgs, KubeGatewayArgs, OperatorArgs};
pub use run_settings::{run_settings, SettingsError};

pub use crate::credentials::import::{ImportArgs, DEFAULT_CREDENTIALS_SECRET};
pub use crate::telemetry::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "codex-mcp",
    version,
    about = "MCP gateway giving AI agents isolated Codex CLI environments"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway with the local backend: one directory and one process per agent run.
    Serve(Box<ServeArgs>),
    /// Run the gateway on Kubernetes: a CodexAgent per agent, runs exec'd into its pod.
    Gateway(Box<KubeGatewayArgs>),
    /// Run one Codex turn in this environment: a JSON request on stdin, events and a result on stdout.
    AgentRun(AgentRunArgs),
    /// Inspect the Codex credentials the gateway would use.
    Auth {
        #[command(subcommand)]
        command: AuthCommand,
    },
    /// Print the CodexAgent CustomResourceDefinition (YAML), for `kubectl apply -f -`.
    Crd,
    /// Print the name of the CodexAgent the gateway uses for an agent, for
    /// making one with kubectl (labelled `codexmcp.dev/agent-name` and
    /// `codexmcp.dev/tenant`) that the gateway then uses as it is.
    ResourceName {
        /// The agent's name, as clients give it.
        agent: String,
        /// Its tenant.
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Run the Kubernetes operator: reconcile CodexAgents into pods, workspaces and Secrets.
    Operator(Box<OperatorArgs>),
    /// The main process of an agent's pod: prepare its directories, idle, exit on SIGTERM.
    AgentInit(AgentInitArgs),
    /// The `source` init container of an agent with a repository: clone it
    /// into the empty workspace (settings from the pod's environment).
    AgentSource,
    /// Check a running gateway as a client would: GET /ready, then a
    /// stateless tools/list with a client token (the chart's `helm test`).
    Probe(ProbeArgs),
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Say which credential is active and when its access token expires
    /// (never the token itself); exits 1 when there is no usable one.
    Status(Box<CodexArgs>),
    /// Load a ChatGPT login (auth.json) or an API key into the Kubernetes
    /// Secret that CodexAgents reference. With no source given, imports what
    /// `auth status` would use: the login in CODEX_AUTH_DIR (~/.codex), else
    /// OPENAI_API_KEY.
    Import(ImportArgs),
}

/// `codex-mcp probe`.
#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// The gateway's base URL (`/ready` and `/mcp` are appended), e.g.
    /// http://codex-mcp-gateway.codex-mcp.svc:8210.
    #[arg(long)]
    pub url: String,
    /// A client token file (`TOKEN [TENANT [AGENT,...]]` lines, as the
    /// gateway reads it); its first token is sent.
    #[arg(long, value_name = "FILE")]
    pub token_file: PathBuf,
    /// Seconds each request may take.
    #[arg(long, default_value_t = 30)]
    pub timeout_secs: u64,
}

/// How the gateway listens and who may talk to it.
#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    /// Address to listen on.
    #[arg(long, env = "CODEX_MCP_LISTEN", default_value = "127.0.0.1:8210")]
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
    #[arg(long, env = "CODEX_MCP_MAX_BODY_BYTES", default_value_t = 4 << 20)]
    pub max_body_bytes: usize,
    /// Log level or filter (error, warn, info, debug, or a tracing filter).
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format.
    #[arg(long, env = "CODEX_MCP_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub edge: EdgeArgs,
}

/// What the HTTP listener lets clients hold, and whom it believes about
/// the URL they used.
#[derive(Debug, Clone, Args)]
pub struct EdgeArgs {
    /// Close a connection whose request headers are not complete after this
    /// many seconds.
    #[arg(long, env = "CODEX_MCP_HEADER_READ_TIMEOUT", default_value_t = 10)]
    pub header_read_timeout: u64,
    /// Close a connection that sent and received nothing for this many
    /// seconds (open MCP streams send a keep-alive every 15 s).
    #[arg(long, env = "CODEX_MCP_IDLE_TIMEOUT", default_value_t = 120)]
    pub idle_timeout: u64,
    /// Open connections at most; at the cap, the oldest connection that has
    /// not yet sent a complete request is closed to admit the new one.
    #[arg(long, env = "CODEX_MCP_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Open MCP sessions (streamable HTTP and SSE) at most, in total.
    #[arg(long, env = "CODEX_MCP_MAX_SESSIONS", default_value_t = 1000)]
    pub max_sessions: usize,
    /// Open MCP sessions at most per client token.
    #[arg(long, env = "CODEX_MCP_MAX_SESSIONS_PER_TOKEN", default_value_t = 100)]
    pub max_sessions_per_token: usize,
}

/// How Codex is invoked and with which credentials.
#[derive(Debug, Clone, Args)]
pub struct CodexArgs {
    /// The Codex CLI binary.
    #[arg(long, env = "CODEX_BIN", default_value = "codex")]
    pub codex_bin: PathBuf,
    /// Model for every run.
    #[arg(long = "model", env = "CODEX_MODEL", default_value = "gpt-5")]
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
        default_value = "OPENAI_API_KEY"
    )]
    pub provider_env_key: String,
    /// Sandbox for tools that write (implement, fix, chat): suggest (read-only),
    /// auto-edit / full-auto (workspace-write), danger-full-access, or external
    /// (no Codex sandbox: the environment is the sandbox). plan and review
    /// always run read-only.
    #[arg(
        long = "approval-mode",
        env = "CODEX_APPROVAL_MODE",
        default_value = "full-auto"
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
    /// auto, api_key or oauth.
    #[arg(long, env = "CODEX_AUTH_METHOD", default_value = "auto")]
    pub auth_method: String,
    /// With auto: prefer a ChatGPT login (auth.json) over an API key.
    #[arg(long, env = "CODEX_PREFER_OAUTH", default_value_t = false, action = clap::ArgAction::Set)]
    pub prefer_oauth: bool,
    /// Directory holding Codex's auth.json (default ~/.codex).
    #[arg(long, env = "CODEX_AUTH_DIR")]
    pub auth_dir: Option<PathBuf>,
    #[command(flatten)]
    pub refresh: RefreshArgs,
}

/// How the one holder of a ChatGPT login's refresh token refreshes it: the
/// gateway locally, the operator on Kubernetes.
#[derive(Debug, Clone, Args)]
pub struct RefreshArgs {
    /// OAuth token endpoint used to refresh a ChatGPT login.
    #[arg(long, env = "CODEX_REFRESH_TOKEN_URL_OVERRIDE", default_value = crate::credentials::chatgpt::DEFAULT_TOKEN_URL)]
    pub token_url: String,
    /// OAuth client id for refreshes (Codex's own by default).
    #[arg(long, env = "CODEX_MCP_OAUTH_CLIENT_ID", default_value = crate::credentials::chatgpt::DEFAULT_CLIENT_ID)]
    pub oauth_client_id: String,
    /// Refresh a ChatGPT access token this many seconds before it expires.
    /// On Kubernetes agents' mounted Secrets follow within the kubelet's
    /// sync period (about a minute), so keep it well above that.
    #[arg(long, env = "CODEX_MCP_REFRESH_MARGIN", default_value_t = 300)]
    pub refresh_margin: u64,
}

/// Capacity and time limits.
#[derive(Debug, Clone, Args)]
pub struct LimitsArgs {
    /// Most Codex runs at once, across all agents.
    #[arg(long, env = "MAX_CONCURRENT_SESSIONS", default_value_t = 20)]
    pub max_concurrent_sessions: usize,
    /// Seconds without a call after which an agent counts as inactive.
    #[arg(long, env = "SESSION_TIMEOUT", default_value_t = 3600)]
    pub session_timeout: u64,
    /// Longest a single run may take, in seconds.
    #[arg(long, env = "CODEX_MCP_RUN_TIMEOUT", default_value_t = 1800)]
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
    #[arg(long, env = "CODEX_MCP_QUEUE_LIMIT", default_value_t = 4)]
    pub queue_limit: usize,
    /// Seconds a finished run's result (a background call's, for
    /// `get_run`) is kept before it is removed.
    #[arg(long, env = "CODEX_MCP_RESULT_TTL", default_value_t = 3600)]
    pub result_ttl: u64,
    /// Longest diff reported for one changed file, in bytes; longer ones
    /// are cut and marked truncated.
    #[arg(long, env = "CODEX_MCP_MAX_DIFF_BYTES", default_value_t = 256 << 10)]
    pub max_diff_bytes: usize,
    /// Most diff text one call reports across its files, in bytes.
    #[arg(long, env = "CODEX_MCP_MAX_DIFF_TOTAL_BYTES", default_value_t = 2 << 20)]
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
        default_value = "worktree"
    )]
    pub project_mode: crate::project::ProjectMode,
    /// Accepted for compatibility: local agents are always persistent.
    #[arg(long, env = "PERSISTENT_MODE", hide = true)]
    pub persistent_mode: Option<String>,
}

impl ServeArgs {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_original_server() {
        let cli = Cli::try_parse_from(["codex-mcp", "serve"]).unwrap();
        let Command::Serve(s) = cli.command else {
            panic!("serve")
        };
        assert_eq!(s.gateway.listen.to_string(), "127.0.0.1:8210");
        assert_eq!(s.limits.max_concurrent_sessions, 20);
        assert_eq!(s.limits.session_timeout, 3600);
        assert_eq!(s.codex.model, "gpt-5");
        assert!(!s.gateway.no_auth);
    }

    #[test]
    fn operator_defaults_match_the_original_server() {
        let cli = Cli::try_parse_from(["codex-mcp", "operator"]).unwrap();
        let Command::Operator(o) = cli.command else {
            panic!("operator")
        };
        assert_eq!(o.cpu_limit, "4.0");
        assert_eq!(o.memory_limit, "2048m");
        assert_eq!(o.session_timeout, 3600);
        assert!(o.leader_elect);
    }

    #[test]
    fn projects_repeat_and_split_on_semicolons() {
        let cli = Cli::try_parse_from([
            "codex-mcp",
            "serve",
            "--project",
            "web=/src/web;team/api=/src/api",
            "--project",
            "docs=/src/docs",
            "--project-mode",
            "in-place",
        ])
        .unwrap();
        let Command::Serve(s) = cli.command else {
            panic!("serve")
        };
        assert_eq!(
            s.projects,
            ["web=/src/web", "team/api=/src/api", "docs=/src/docs"]
        );
        assert_eq!(s.project_mode, crate::project::ProjectMode::InPlace);
        let cli = Cli::try_parse_from(["codex-mcp", "serve"]).unwrap();
        let Command::Serve(s) = cli.command else {
            panic!("serve")
        };
        assert!(s.projects.is_empty());
        assert_eq!(s.project_mode, crate::project::ProjectMode::Worktree);
    }

    #[test]
    fn base_url_needs_a_provider() {
        let r = Cli::try_parse_from(["codex-mcp", "serve", "--provider-base-url", "http://x/v1"]);
        assert!(r.is_err());
    }
}
