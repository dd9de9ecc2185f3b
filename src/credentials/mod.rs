//! Which credential Codex runs with: an API key or a ChatGPT login
//! (auth.json), chosen as the original server did (`CODEX_AUTH_METHOD`,
//! `CODEX_PREFER_OAUTH`, `CODEX_AUTH_DIR`, `OPENAI_API_KEY`), and how a
//! ChatGPT login is shared safely between agents ([`chatgpt`]).

pub mod chatgpt;
pub mod import;
pub mod run_credential;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::api::request::Credentials;
use chatgpt::{ChatGptLogin, LoginError};

/// The variable an OpenAI API key is read from, and handed to Codex in
/// unless a custom provider names another.
pub const API_KEY_VAR: &str = "OPENAI_API_KEY";

/// Which credential is used unless told (`CODEX_AUTH_METHOD`).
pub const DEFAULT_AUTH_METHOD: AuthMethod = AuthMethod::Auto;
/// Whether `auto` prefers a ChatGPT login over an API key unless told
/// (`CODEX_PREFER_OAUTH`).
pub const DEFAULT_PREFER_OAUTH: bool = false;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Auto,
    ApiKey,
    OAuth,
}

impl AuthMethod {
    /// The name [`AuthMethod::parse`] reads back.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::ApiKey => "api_key",
            Self::OAuth => "oauth",
        }
    }

    pub fn parse(s: &str) -> Result<Self, CredentialError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(Self::Auto),
            "api_key" | "apikey" | "api-key" => Ok(Self::ApiKey),
            "oauth" | "chatgpt" => Ok(Self::OAuth),
            other => Err(CredentialError::UnknownMethod(other.to_owned())),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialError {
    #[error("CODEX_AUTH_METHOD {0:?} is not one of auto, api_key, oauth")]
    UnknownMethod(String),
    #[error("CODEX_AUTH_METHOD=api_key but no API key is set (OPENAI_API_KEY, or the variable --provider-env-key names)")]
    MissingApiKey,
    #[error("CODEX_AUTH_METHOD=oauth but no auth.json was found at {0}; run `codex login` or set CODEX_AUTH_DIR")]
    MissingAuthFile(String),
    #[error("reading {0} failed: {1}")]
    ReadAuthFile(String, String),
    #[error(transparent)]
    Login(#[from] LoginError),
    #[error("writing the login for runs to {0} failed: {1}")]
    RunLoginFile(String, String),
}

/// Where credentials come from; re-read before every run so a login renewed
/// on the host is picked up without a restart.
#[derive(Debug, Clone)]
pub struct CredentialSource {
    pub method: AuthMethod,
    pub prefer_oauth: bool,
    pub api_key: Option<String>,
    /// The environment variable the API key was read from, for messages.
    pub api_key_var: String,
    pub auth_file: PathBuf,
}

impl CredentialSource {
    /// `CODEX_AUTH_DIR`, else `$HOME/.codex`, else `$USERPROFILE/.codex`.
    pub fn default_auth_file(auth_dir: Option<&Path>) -> PathBuf {
        if let Some(d) = auth_dir {
            return d.join("auth.json");
        }
        let home = std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE"));
        home.map(PathBuf::from)
            .unwrap_or_default()
            .join(".codex")
            .join("auth.json")
    }

    /// A short description for logs and health: which credential, never its value.
    pub fn describe(&self) -> String {
        match self.resolve() {
            Ok(c) if c.auth_json.is_some() => {
                format!("chatgpt login ({})", self.auth_file.display())
            }
            Ok(c) if c.api_key.is_some() => format!("api key ({})", self.api_key_var),
            Ok(_) => format!(
                "none: set {} or run `codex login` (looked for {})",
                self.api_key_var,
                self.auth_file.display()
            ),
            Err(e) => format!("unusable: {e}"),
        }
    }

    pub fn resolve(&self) -> Result<Credentials, CredentialError> {
        let read_auth = || -> Result<Option<Value>, CredentialError> {
            match std::fs::read(&self.auth_file) {
                Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
                    CredentialError::ReadAuthFile(
                        self.auth_file.display().to_string(),
                        e.to_string(),
                    )
                }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(CredentialError::ReadAuthFile(
                    self.auth_file.display().to_string(),
                    e.to_string(),
                )),
            }
        };
        let key = self.api_key.clone().filter(|k| !k.trim().is_empty());
        let with_key = |k| Credentials {
            api_key: Some(k),
            auth_json: None,
        };
        let with_auth = |a| Credentials {
            api_key: None,
            auth_json: Some(a),
        };
        match self.method {
            AuthMethod::ApiKey => key.map(with_key).ok_or(CredentialError::MissingApiKey),
            AuthMethod::OAuth => read_auth()?.map(with_auth).ok_or_else(|| {
                CredentialError::MissingAuthFile(self.auth_file.display().to_string())
            }),
            AuthMethod::Auto => {
                if self.prefer_oauth || key.is_none() {
                    if let Some(a) = read_auth()? {
                        return Ok(with_auth(a));
                    }
                }
                Ok(key.map(with_key).unwrap_or_default())
            }
        }
    }
}

/// How the one holder of a ChatGPT login's refresh token refreshes it: the
/// gateway locally, the operator on Kubernetes.
#[derive(Debug, Clone)]
pub struct RefreshSettings {
    pub token_url: String,
    pub client_id: String,
    /// Refresh this long before the access token expires.
    pub margin: Duration,
}

/// Hands each run its credentials: the API key, or a ChatGPT login whose
/// refresh token only the gateway holds and uses. On Kubernetes runs bring
/// none: each agent's pod has its own Secret, kept by the operator.
pub struct CredentialProvider {
    from: Origin,
    last_error: std::sync::Mutex<Option<String>>,
    /// Where runs find each refreshed login while they go on (see
    /// [`CredentialProvider::keep_login_fresh`]).
    run_login_file: Option<PathBuf>,
}

/// How long the login keeper waits after a failed refresh, and at most
/// between two looks at the credential (which may change meanwhile).
const KEEPER_RETRY: Duration = Duration::from_secs(30);
const KEEPER_MAX_SLEEP: Duration = Duration::from_secs(600);

enum Origin {
    /// The gateway's own credentials, passed to each run.
    Gateway {
        source: CredentialSource,
        login: ChatGptLogin,
    },
    /// Each agent's environment has its own, copied by the operator from
    /// this Secret.
    AgentSecret(String),
}

impl CredentialProvider {
    pub fn new(source: CredentialSource, refresh: RefreshSettings) -> Self {
        let login = ChatGptLogin::new(
            source.auth_file.clone(),
            refresh.token_url,
            refresh.client_id,
            refresh.margin,
        );
        Self {
            from: Origin::Gateway { source, login },
            last_error: Default::default(),
            run_login_file: None,
        }
    }

    /// Puts every login handed to runs into `path` too, where running turns
    /// follow it (the file holds no refresh token).
    pub fn with_run_login_file(mut self, path: PathBuf) -> Self {
        self.run_login_file = Some(path);
        self
    }

    /// The file running turns follow for refreshed logins, if any.
    pub fn run_login_file(&self) -> Option<&Path> {
        self.run_login_file.as_deref()
    }

    /// Refreshes a ChatGPT login before its access token expires even when
    /// no run starts, so a turn longer than a token's life finds the next
    /// one in the run login file. Runs until the process ends; with an API
    /// key it only looks again now and then (the credential may change).
    pub async fn keep_login_fresh(&self) {
        let login = match &self.from {
            Origin::Gateway { login, .. } if self.run_login_file.is_some() => login,
            _ => return,
        };
        let margin = login.margin();
        loop {
            let wait = match self.for_run().await {
                Ok(c) => match c.auth_json.as_ref().and_then(chatgpt::access_expiry) {
                    Some(expiry) => {
                        (expiry - chrono::Utc::now())
                            .to_std()
                            .unwrap_or_default()
                            .saturating_sub(margin)
                            + Duration::from_secs(1)
                    }
                    None => KEEPER_MAX_SLEEP,
                },
                // Retrying a refused refresh token can get a login revoked:
                // wait for someone to log in again.
                Err(CredentialError::Login(LoginError::Rejected(_))) => {
                    wait_for_change(login.auth_file()).await;
                    continue;
                }
                Err(_) => KEEPER_RETRY,
            };
            tokio::time::sleep(wait.min(KEEPER_MAX_SLEEP)).await;
        }
    }

    /// Runs bring no credentials: every agent uses its own Secret, which the
    /// operator fills from the Secret `source_secret`.
    pub fn agent_secret(source_secret: String) -> Self {
        Self {
            from: Origin::AgentSecret(source_secret),
            last_error: Default::default(),
            run_login_file: None,
        }
    }

    /// Credentials for one run; refreshes a ChatGPT login that is about to expire.
    pub async fn for_run(&self) -> Result<Credentials, CredentialError> {
        let (source, login) = match &self.from {
            Origin::Gateway { source, login } => (source, login),
            Origin::AgentSecret(_) => return Ok(Credentials::default()),
        };
        let result: Result<Credentials, CredentialError> = async {
            let creds = source.resolve()?;
            match &creds.auth_json {
                Some(auth) if chatgpt::is_login(auth) => {
                    let run_login = login.for_run().await?;
                    if let Some(file) = &self.run_login_file {
                        write_private(file, run_login.to_string().as_bytes()).map_err(|e| {
                            CredentialError::RunLoginFile(file.display().to_string(), e.to_string())
                        })?;
                    }
                    Ok(Credentials {
                        api_key: None,
                        auth_json: Some(run_login),
                    })
                }
                _ => Ok(creds),
            }
        }
        .await;
        *self.last_error.lock().expect("last_error") = result.as_ref().err().map(|e| e.to_string());
        result
    }

    /// Why runs cannot get a credential now, if they cannot.
    pub fn problem(&self) -> Option<String> {
        let d = self.describe();
        (d.starts_with("unusable") || d.starts_with("none"))
            .then(|| format!("no usable credential: {d}"))
    }

    /// Which credential is in use and until when, never its value.
    pub fn describe(&self) -> String {
        let source = match &self.from {
            Origin::Gateway { source, .. } => source,
            Origin::AgentSecret(name) => {
                return format!(
                    "each agent's own Secret, kept by the operator from Secret {name} (see CredentialsReady on each CodexAgent)"
                )
            }
        };
        if let Some(e) = self.last_error.lock().expect("last_error").clone() {
            return format!("unusable: {e}");
        }
        match source.resolve() {
            Ok(c) => match &c.auth_json {
                Some(auth) if chatgpt::is_login(auth) => {
                    let expiry = auth
                        .pointer("/tokens/access_token")
                        .and_then(Value::as_str)
                        .and_then(chatgpt::jwt_expiry)
                        .map(|t| format!(", access token expires {}", t.to_rfc3339()))
                        .unwrap_or_default();
                    format!("chatgpt login ({}){expiry}", source.auth_file.display())
                }
                _ => source.describe(),
            },
            Err(e) => format!("unusable: {e}"),
        }
    }
}

/// Writes a file readable only by its owner, atomically (a temporary file of
/// its own, then rename), so Codex never reads a half-written auth.json and
/// concurrent writers never trip over each other.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    // NamedTempFile is created with mode 0600.
    let mut tmp = tempfile::Builder::new()
        .prefix(".codex-mcp-")
        .tempfile_in(dir)?;
    tmp.write_all(contents)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map(|_| ()).map_err(|e| e.error)
}

/// Returns once the file's contents differ from what they are now.
async fn wait_for_change(path: &Path) {
    let before = std::fs::read(path).ok();
    while std::fs::read(path).ok() == before {
        tokio::time::sleep(KEEPER_RETRY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_are_written_whole_and_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        write_private(&path, b"{}").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
    }

    fn source(
        method: AuthMethod,
        prefer_oauth: bool,
        key: Option<&str>,
        auth: Option<&str>,
    ) -> (CredentialSource, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        if let Some(a) = auth {
            std::fs::write(dir.path().join("auth.json"), a).unwrap();
        }
        let s = CredentialSource {
            method,
            prefer_oauth,
            api_key: key.map(str::to_owned),
            api_key_var: "OPENAI_API_KEY".into(),
            auth_file: CredentialSource::default_auth_file(Some(dir.path())),
        };
        (s, dir)
    }

    const AUTH: &str = r#"{"auth_mode":"chatgpt","tokens":{"refresh_token":"rt"}}"#;

    #[test]
    fn detection_order() {
        let (s, _d) = source(AuthMethod::Auto, false, Some("sk-1"), Some(AUTH));
        assert_eq!(
            s.resolve().unwrap().api_key.as_deref(),
            Some("sk-1"),
            "key wins by default"
        );
        let (s, _d) = source(AuthMethod::Auto, true, Some("sk-1"), Some(AUTH));
        assert!(s.resolve().unwrap().auth_json.is_some(), "prefer_oauth");
        let (s, _d) = source(AuthMethod::Auto, false, None, Some(AUTH));
        assert!(
            s.resolve().unwrap().auth_json.is_some(),
            "auth.json is the fallback"
        );
        let (s, _d) = source(AuthMethod::Auto, false, None, None);
        assert_eq!(s.resolve().unwrap(), Credentials::default());
    }

    #[test]
    fn explicit_methods_fail_clearly() {
        let (s, _d) = source(AuthMethod::ApiKey, false, None, Some(AUTH));
        assert_eq!(s.resolve(), Err(CredentialError::MissingApiKey));
        let (s, _d) = source(AuthMethod::OAuth, false, Some("sk"), None);
        assert!(matches!(
            s.resolve(),
            Err(CredentialError::MissingAuthFile(_))
        ));
        let (s, _d) = source(AuthMethod::OAuth, false, None, Some("{not json"));
        assert!(matches!(
            s.resolve(),
            Err(CredentialError::ReadAuthFile(..))
        ));
        assert!(AuthMethod::parse("magic").is_err());
        assert_eq!(AuthMethod::parse("api_key"), Ok(AuthMethod::ApiKey));
        for m in [AuthMethod::Auto, AuthMethod::ApiKey, AuthMethod::OAuth] {
            assert_eq!(AuthMethod::parse(m.as_str()), Ok(m));
        }
    }

    #[test]
    fn describe_never_shows_secrets() {
        let (s, _d) = source(AuthMethod::Auto, false, Some("sk-very-secret"), None);
        let d = s.describe();
        assert!(!d.contains("sk-very-secret"), "{d}");
    }
}
