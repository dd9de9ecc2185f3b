//! Flag groups more than one command takes, each defined once and
//! flattened into the commands that take it.

use std::time::Duration;

use clap::Args;

use crate::credentials::chatgpt::{
    DEFAULT_CLIENT_ID, DEFAULT_REFRESH_MARGIN_SECS, DEFAULT_TOKEN_URL,
};
use crate::credentials::{RefreshSettings, DEFAULT_AUTH_METHOD, DEFAULT_PREFER_OAUTH};
use crate::telemetry::{LogFormat, LogSettings, DEFAULT_LOG_FORMAT, DEFAULT_LOG_LEVEL};

/// How a long-running command logs (`serve`, `gateway`, `operator`).
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log level or filter (error, warn, info, debug, or a tracing filter).
    #[arg(long, env = "LOG_LEVEL", default_value = DEFAULT_LOG_LEVEL)]
    pub log_level: String,
    /// Log format.
    #[arg(long, env = "CODEX_MCP_LOG_FORMAT", value_enum, default_value_t = DEFAULT_LOG_FORMAT)]
    pub log_format: LogFormat,
}

impl LogArgs {
    pub fn settings(&self) -> LogSettings {
        LogSettings {
            level: self.log_level.clone(),
            format: self.log_format,
        }
    }
}

/// Which credential is used: by runs (`serve`, `auth status`), or given to
/// agents from the Secret they reference (`operator`). Strings, read by
/// `AuthMethod::parse`, so a bad value is reported as it always was.
#[derive(Debug, Clone, Args)]
pub struct CredentialChoiceArgs {
    /// Which credential Codex uses: auto, api_key or oauth.
    #[arg(long, env = "CODEX_AUTH_METHOD", default_value = DEFAULT_AUTH_METHOD.as_str())]
    pub auth_method: String,
    /// With auto: prefer a ChatGPT login (auth.json) over an API key.
    #[arg(long, env = "CODEX_PREFER_OAUTH", default_value_t = DEFAULT_PREFER_OAUTH, action = clap::ArgAction::Set)]
    pub prefer_oauth: bool,
}

/// How the one holder of a ChatGPT login's refresh token refreshes it: the
/// gateway locally, the operator on Kubernetes.
#[derive(Debug, Clone, Args)]
pub struct RefreshArgs {
    /// OAuth token endpoint used to refresh a ChatGPT login.
    #[arg(long, env = "CODEX_REFRESH_TOKEN_URL_OVERRIDE", default_value = DEFAULT_TOKEN_URL)]
    pub token_url: String,
    /// OAuth client id for refreshes (Codex's own by default).
    #[arg(long, env = "CODEX_MCP_OAUTH_CLIENT_ID", default_value = DEFAULT_CLIENT_ID)]
    pub oauth_client_id: String,
    /// Refresh a ChatGPT access token this many seconds before it expires.
    /// On Kubernetes agents' mounted Secrets follow within the kubelet's
    /// sync period (about a minute), so keep it well above that.
    #[arg(long, env = "CODEX_MCP_REFRESH_MARGIN", default_value_t = DEFAULT_REFRESH_MARGIN_SECS)]
    pub refresh_margin: u64,
}

impl RefreshArgs {
    pub fn settings(&self) -> RefreshSettings {
        RefreshSettings {
            token_url: self.token_url.clone(),
            client_id: self.oauth_client_id.clone(),
            margin: Duration::from_secs(self.refresh_margin),
        }
    }
}
