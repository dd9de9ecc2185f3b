//! Flags of `codex-mcp auth import`.

use std::path::PathBuf;

use clap::Args;

use crate::credentials::import::{ImportSettings, Sources, DEFAULT_CREDENTIALS_SECRET};
use crate::credentials::CredentialSource;

/// `codex-mcp auth import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// A Codex auth.json to import (a ChatGPT login with its refresh token,
    /// or the API-key form).
    #[arg(long, value_name = "FILE")]
    pub auth_json: Option<PathBuf>,
    /// Read an API key from stdin (keys on the command line end up in
    /// shell history and process lists).
    #[arg(long)]
    pub api_key_stdin: bool,
    /// The Secret to write (created if missing; other keys are kept).
    #[arg(
        long,
        env = "CODEX_MCP_CREDENTIALS_SECRET",
        default_value = DEFAULT_CREDENTIALS_SECRET
    )]
    pub secret: String,
    /// Namespace of the Secret (default: the kubeconfig's).
    #[arg(long, short = 'n', env = "CODEX_MCP_NAMESPACE")]
    pub namespace: Option<String>,
    /// Kubeconfig to use (default: in-cluster, else ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Directory holding the auth.json to detect (default ~/.codex).
    #[arg(long, env = "CODEX_AUTH_DIR")]
    pub auth_dir: Option<PathBuf>,
    /// Imported when nothing else is given and no login is found.
    #[arg(long, env = "OPENAI_API_KEY", hide = true, hide_env_values = true)]
    pub openai_api_key: Option<String>,
}

impl ImportArgs {
    pub fn settings(&self) -> ImportSettings {
        ImportSettings {
            sources: Sources {
                auth_json: self.auth_json.clone(),
                api_key_stdin: self.api_key_stdin,
                detected_auth_file: CredentialSource::default_auth_file(self.auth_dir.as_deref()),
                env_api_key: self.openai_api_key.clone(),
            },
            secret: self.secret.clone(),
            namespace: self.namespace.clone(),
            kubeconfig: self.kubeconfig.clone(),
        }
    }
}
