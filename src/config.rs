//! The command line: flags, their environment variables and defaults, and
//! each command's typed settings built from them. The original server's
//! settings keep their names and defaults; every one is also a flag.
//!
//! Only this module knows clap. Each default is a constant of the module
//! that owns the setting; the flags refer to it. Values are checked and
//! turned into settings here, once, before a command starts.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

mod agent_run;
mod auth;
mod kube;
mod local;
mod run_settings;
mod shared;
mod values;

pub use agent_run::{AgentRunArgs, DurableCommand};
pub use auth::ImportArgs;
pub use kube::{AgentInitArgs, KubeGatewayArgs, OperatorArgs};
pub use local::{CodexArgs, EdgeArgs, GatewayArgs, LimitsArgs, ServeArgs};
pub use run_settings::run_settings;
pub use shared::{CredentialChoiceArgs, LogArgs, RefreshArgs};

pub use crate::credentials::import::DEFAULT_CREDENTIALS_SECRET;

/// A flag's value that cannot be used; each reads as the command that
/// meets it has always reported it.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid setting: {0}")]
    Invalid(String),
    #[error(transparent)]
    ProjectBinding(#[from] crate::project::binding::BindingError),
    #[error("invalid setting: {0}")]
    AgentDefaults(#[from] crate::operator::settings::SettingsError),
    /// The operator's `CODEX_AUTH_METHOD`; `serve` says [`Self::Invalid`].
    #[error(transparent)]
    AuthMethod(crate::credentials::CredentialError),
}

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
        #[arg(long, default_value = crate::agent::Tenant::DEFAULT)]
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
    #[arg(long, default_value_t = crate::probe::DEFAULT_TIMEOUT_SECS)]
    pub timeout_secs: u64,
    /// The Host header to send, when the URL reaches the gateway by another
    /// name than clients use (a pod's address): one the gateway accepts.
    #[arg(long)]
    pub host: Option<String>,
}

impl ProbeArgs {
    pub fn settings(&self) -> crate::probe::ProbeSettings {
        crate::probe::ProbeSettings {
            url: self.url.clone(),
            token_file: self.token_file.clone(),
            timeout: Duration::from_secs(self.timeout_secs),
            host: self.host.clone(),
        }
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

    fn operator(flags: &[&str]) -> Box<OperatorArgs> {
        let argv = ["codex-mcp", "operator"].iter().chain(flags);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Operator(o) => o,
            _ => panic!("operator"),
        }
    }

    fn serve(flags: &[&str]) -> Box<ServeArgs> {
        let argv = ["codex-mcp", "serve"].iter().chain(flags);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Serve(s) => s,
            _ => panic!("serve"),
        }
    }

    /// The operator's defaults are defined once: what its flags give
    /// unset is what `Defaults::default()` says.
    #[test]
    fn unset_operator_flags_are_the_defaults() {
        let settings = operator(&[]).settings().unwrap();
        assert_eq!(
            settings.defaults,
            crate::operator::settings::Defaults::default()
        );
        let login = crate::operator::login::LoginSettings::default();
        assert_eq!(settings.login.method, login.method);
        assert_eq!(settings.login.prefer_oauth, login.prefer_oauth);
        assert_eq!(settings.login.margin, login.margin);
        assert_eq!(
            operator(&["--image-pull-policy", "Never"])
                .defaults()
                .unwrap()
                .pull_policy,
            crate::api::crd::PullPolicy::Never
        );
    }

    #[test]
    fn bad_values_read_as_they_always_did() {
        let err = |r: Result<(), SettingsError>| r.unwrap_err().to_string();
        assert_eq!(
            err(serve(&["--auth-method", "magic"]).settings().map(drop)),
            "invalid setting: CODEX_AUTH_METHOD \"magic\" is not one of auto, api_key, oauth"
        );
        assert!(
            err(serve(&["--approval-mode", "yolo"]).settings().map(drop))
                .starts_with("invalid setting: CODEX_APPROVAL_MODE \"yolo\" is not one of")
        );
        assert_eq!(
            err(operator(&["--auth-method", "magic"]).settings().map(drop)),
            "CODEX_AUTH_METHOD \"magic\" is not one of auto, api_key, oauth"
        );
        assert_eq!(
            err(operator(&["--cpu-limit", "lots"]).settings().map(drop)),
            "invalid setting: CONTAINER_CPU_LIMIT \"lots\" is not a CPU quantity (e.g. 4, 0.5, 500m)"
        );
    }

    #[test]
    fn base_url_needs_a_provider() {
        let r = Cli::try_parse_from(["codex-mcp", "serve", "--provider-base-url", "http://x/v1"]);
        assert!(r.is_err());
    }
}
