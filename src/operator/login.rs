//! The operator's side of credentials: which credential of the referenced
//! Secret an agent gets, and the one writer of a ChatGPT login's refresh
//! token on Kubernetes.
//!
//! ChatGPT refresh tokens are single-use and rotate, so exactly one
//! component may refresh a login. On Kubernetes that is the operator: it is
//! leader-elected (one writer at a time), it already reads the credentials
//! Secret and writes each agent's own Secret, and so the gateway never needs
//! access to Secrets at all. The operator refreshes before the access token
//! expires, stores the rotated login back in the source Secret with a write
//! guarded by its resourceVersion (a replica that lost the lease, or a person
//! importing a new login meanwhile, makes the write fail instead of being
//! overwritten), and gives agents the login without its refresh token.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use kube::ResourceExt;
use serde_json::Value;
use tracing::{info, warn};

use super::metrics::{OperatorMetrics, RefreshOutcome};
use crate::api::crd::{reason, SecretRef};
use crate::api::layout::{API_KEY_FILE, AUTH_JSON_FILE};
use crate::credentials::chatgpt::{
    self, access_expiry, due_for_refresh, has_access_token, is_login, without_refresh_token,
    RefreshError,
};
use crate::credentials::AuthMethod;

/// How the operator chooses and refreshes credentials (its flags).
#[derive(Debug, Clone)]
pub struct LoginSettings {
    pub method: AuthMethod,
    pub prefer_oauth: bool,
    pub token_url: String,
    pub client_id: String,
    /// Refresh this long before the access token expires. Agents' mounted
    /// Secrets follow within the kubelet's sync period, so it must be longer.
    pub margin: Duration,
}

impl Default for LoginSettings {
    fn default() -> Self {
        Self {
            method: crate::credentials::DEFAULT_AUTH_METHOD,
            prefer_oauth: crate::credentials::DEFAULT_PREFER_OAUTH,
            token_url: chatgpt::DEFAULT_TOKEN_URL.into(),
            client_id: chatgpt::DEFAULT_CLIENT_ID.into(),
            margin: Duration::from_secs(chatgpt::DEFAULT_REFRESH_MARGIN_SECS),
        }
    }
}

/// What an agent's own Secret holds, and when to look again.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentCredentials {
    pub data: BTreeMap<String, ByteString>,
    /// For the CredentialsReady condition.
    pub reason: &'static str,
    pub message: String,
    /// When the login must be refreshed next.
    pub refresh_at: Option<DateTime<Utc>>,
}

/// Why an agent gets no usable credentials. The messages name the Secret
/// and what to do, never a token.
#[derive(Debug, thiserror::Error)]
pub enum LoginProblem {
    #[error("the Secret {0:?} does not exist; create it with `codex-mcp auth import`")]
    SecretNotFound(String),
    #[error("the Secret {secret:?} has no {wanted}")]
    KeysMissing { secret: String, wanted: String },
    #[error("the ChatGPT login in Secret {secret:?} (key {key:?}) is unusable: {why}; load a fresh one with `codex-mcp auth import --auth-json ~/.codex/auth.json --secret {secret}`")]
    Unreadable {
        secret: String,
        key: String,
        why: String,
    },
    #[error("the token endpoint refused to refresh the ChatGPT login in Secret {secret:?} ({why}); log in again (`codex login`) and load it with `codex-mcp auth import --auth-json ~/.codex/auth.json --secret {secret}`")]
    Refused { secret: String, why: String },
    #[error("refreshing the ChatGPT login in Secret {secret:?} failed: the token endpoint could not be reached ({why}); retrying")]
    Unreachable { secret: String, why: String },
    #[error("reading the Secret {0:?} failed: {1}")]
    Read(String, #[source] kube::Error),
    #[error("storing the refreshed ChatGPT login in Secret {0:?} failed: {1}")]
    Write(String, #[source] kube::Error),
}

impl LoginProblem {
    /// The CredentialsReady reason; `None` for API failures, which are
    /// retried as reconcile errors rather than reported as the agent's state.
    pub fn reason(&self) -> Option<&'static str> {
        Some(match self {
            Self::SecretNotFound(_) => reason::SECRET_NOT_FOUND,
            Self::KeysMissing { .. } => reason::KEYS_MISSING,
            Self::Unreadable { .. } => reason::LOGIN_UNREADABLE,
            Self::Refused { .. } => reason::REFRESH_FAILED,
            Self::Unreachable { .. } => reason::REFRESH_UNREACHABLE,
            Self::Read(..) | Self::Write(..) => return None,
        })
    }
}

/// One of the source Secret's credentials, as chosen for agents.
#[derive(Debug, Clone, PartialEq)]
pub enum Chosen {
    ApiKey(ByteString),
    /// An auth.json that is not a ChatGPT login (Codex's API-key form).
    AuthFile(ByteString),
    Login(Value),
}

fn value(secret: &Secret, key: &str) -> Option<ByteString> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key).cloned())
        .or_else(|| {
            let s = secret.string_data.as_ref()?.get(key)?;
            Some(ByteString(s.clone().into_bytes()))
        })
        .filter(|v| !v.0.iter().all(u8::is_ascii_whitespace))
}

/// Picks the credential agents use, the way the gateway's own detection
/// does: `CODEX_AUTH_METHOD`, and with `auto` the API key unless
/// `CODEX_PREFER_OAUTH` or there is none.
pub fn choose(
    source: &Secret,
    reference: &SecretRef,
    settings: &LoginSettings,
) -> Result<Chosen, LoginProblem> {
    let secret = source.name_any();
    let key = value(source, &reference.api_key_key);
    let auth = value(source, &reference.auth_json_key);
    let missing = |wanted: String| LoginProblem::KeysMissing {
        secret: secret.clone(),
        wanted,
    };
    let use_auth = match settings.method {
        AuthMethod::ApiKey => false,
        AuthMethod::OAuth => true,
        AuthMethod::Auto => auth.is_some() && (settings.prefer_oauth || key.is_none()),
    };
    if !use_auth {
        return key.map(Chosen::ApiKey).ok_or_else(|| {
            missing(match settings.method {
                AuthMethod::ApiKey => format!(
                    "key {:?} (CODEX_AUTH_METHOD=api_key)",
                    reference.api_key_key
                ),
                _ => format!(
                    "key {:?} nor {:?}",
                    reference.api_key_key, reference.auth_json_key
                ),
            })
        });
    }
    let Some(bytes) = auth else {
        return Err(missing(format!(
            "key {:?} (CODEX_AUTH_METHOD=oauth)",
            reference.auth_json_key
        )));
    };
    let unreadable = |why: String| LoginProblem::Unreadable {
        secret: secret.clone(),
        key: reference.auth_json_key.clone(),
        why,
    };
    let parsed: Value =
        serde_json::from_slice(&bytes.0).map_err(|e| unreadable(format!("not JSON ({e})")))?;
    if !is_login(&parsed) {
        return Ok(Chosen::AuthFile(bytes));
    }
    if !has_access_token(&parsed) {
        return Err(unreadable("it has no access token".into()));
    }
    Ok(Chosen::Login(parsed))
}

/// The agent Secret's data for a login as stored in the source Secret.
pub fn agent_login(
    login: &Value,
    secret: &str,
    margin: Duration,
    now: DateTime<Utc>,
) -> AgentCredentials {
    let kept = without_refresh_token(login);
    let expiry = access_expiry(login);
    let message = match expiry {
        Some(t) => format!(
            "ChatGPT login from Secret {secret}, kept fresh by the operator; access token valid until {}",
            t.to_rfc3339()
        ),
        None => format!("ChatGPT login from Secret {secret}, kept fresh by the operator"),
    };
    let margin = chrono::Duration::from_std(margin).unwrap_or_default();
    AgentCredentials {
        data: BTreeMap::from([(
            AUTH_JSON_FILE.to_owned(),
            ByteString(serde_json::to_vec_pretty(&kept).expect("json")),
        )]),
        reason: reason::LOGIN_COPIED,
        message,
        refresh_at: Some(expiry.map_or(now, |t| t - margin)),
    }
}

/// Refreshes shared ChatGPT logins, one at a time per Secret.
pub struct LoginKeeper {
    settings: LoginSettings,
    metrics: Arc<OperatorMetrics>,
    http: reqwest::Client,
    /// One refresh per source Secret at a time in this process; the
    /// resourceVersion guard covers other processes.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Logins the token endpoint refused, by Secret, with the
    /// resourceVersion refused: a refused refresh token stays refused, and
    /// retrying it could get the whole login revoked. A new version of the
    /// Secret (a fresh import) is tried again.
    refused: Mutex<HashMap<String, (String, String)>>,
}

impl LoginKeeper {
    pub fn new(settings: LoginSettings, metrics: Arc<OperatorMetrics>) -> Self {
        let http = crate::credentials::chatgpt::token_endpoint_client();
        Self {
            settings,
            metrics,
            http,
            locks: Mutex::default(),
            refused: Mutex::default(),
        }
    }

    pub fn settings(&self) -> &LoginSettings {
        &self.settings
    }

    /// What an agent referencing `reference` gets, refreshing the shared
    /// login first when it is due.
    pub async fn agent_credentials(
        &self,
        secrets: &Api<Secret>,
        reference: &SecretRef,
        source: Option<Secret>,
    ) -> Result<AgentCredentials, LoginProblem> {
        let name = reference.name.clone();
        let source = source.ok_or_else(|| LoginProblem::SecretNotFound(name.clone()))?;
        if let Ok(settled) = self.settled(choose(&source, reference, &self.settings)?, &name) {
            return Ok(settled);
        }
        let key = format!("{}/{name}", secrets.resource_url());
        let lock = self
            .locks
            .lock()
            .expect("locks")
            .entry(key.clone())
            .or_default()
            .clone();
        let _one = lock.lock().await;
        // Another agent's reconcile may have refreshed it while this one waited.
        let source = secrets
            .get_opt(&name)
            .await
            .map_err(|e| LoginProblem::Read(name.clone(), e))?
            .ok_or_else(|| LoginProblem::SecretNotFound(name.clone()))?;
        let login = match self.settled(choose(&source, reference, &self.settings)?, &name) {
            Ok(settled) => return Ok(settled),
            Err(due) => due,
        };
        let version = source.resource_version().unwrap_or_default();
        if let Some((v, why)) = self.refused.lock().expect("refused").get(&key) {
            if *v == version {
                return Err(LoginProblem::Refused {
                    secret: name,
                    why: why.clone(),
                });
            }
        }
        let refreshed = match self.refresh(&login, &name).await {
            Ok(r) => r,
            Err(LoginProblem::Refused { secret, why }) => {
                self.metrics.login_refreshed(RefreshOutcome::Refused);
                warn!(secret = %secret, reason = %why, "the token endpoint refused the ChatGPT login");
                self.refused
                    .lock()
                    .expect("refused")
                    .insert(key, (version, why.clone()));
                return Err(LoginProblem::Refused { secret, why });
            }
            Err(e) => {
                self.metrics.login_refreshed(RefreshOutcome::Failed);
                return Err(e);
            }
        };
        let mut updated = source.clone();
        let bytes = serde_json::to_vec_pretty(&refreshed).expect("json");
        updated
            .data
            .get_or_insert_with(Default::default)
            .insert(reference.auth_json_key.clone(), ByteString(bytes));
        if let Some(sd) = updated.string_data.as_mut() {
            sd.remove(&reference.auth_json_key);
        }
        // `replace` carries the resourceVersion read above: if anyone wrote
        // the Secret since, this fails (409) rather than overwriting them.
        if let Err(e) = secrets
            .replace(&name, &PostParams::default(), &updated)
            .await
        {
            self.metrics.login_refreshed(RefreshOutcome::Failed);
            return Err(LoginProblem::Write(name.clone(), e));
        }
        self.metrics.login_refreshed(RefreshOutcome::Ok);
        info!(secret = %name, namespace = ?source.namespace(), "refreshed the ChatGPT login");
        Ok(agent_login(
            &refreshed,
            &name,
            self.settings.margin,
            Utc::now(),
        ))
    }

    /// The agent's credentials when nothing needs refreshing; the login
    /// otherwise.
    fn settled(&self, chosen: Chosen, secret: &str) -> Result<AgentCredentials, Value> {
        let now = Utc::now();
        match chosen {
            Chosen::ApiKey(key) => Ok(copied(API_KEY_FILE, key, "API key", secret)),
            Chosen::AuthFile(file) => Ok(copied(AUTH_JSON_FILE, file, "auth.json", secret)),
            Chosen::Login(login) if !due_for_refresh(&login, now, self.settings.margin) => {
                Ok(agent_login(&login, secret, self.settings.margin, now))
            }
            Chosen::Login(login) => Err(login),
        }
    }

    async fn refresh(&self, login: &Value, secret: &str) -> Result<Value, LoginProblem> {
        let s = &self.settings;
        chatgpt::refresh(&self.http, &s.token_url, &s.client_id, login)
            .await
            .map_err(|e| match e {
                RefreshError::Unreachable(why) => LoginProblem::Unreachable {
                    secret: secret.to_owned(),
                    why,
                },
                RefreshError::Refused(why) => LoginProblem::Refused {
                    secret: secret.to_owned(),
                    why,
                },
            })
    }
}

fn copied(file: &str, bytes: ByteString, what: &str, secret: &str) -> AgentCredentials {
    AgentCredentials {
        data: BTreeMap::from([(file.to_owned(), bytes)]),
        reason: reason::SECRET_COPIED,
        message: format!("{what} copied from Secret {secret}"),
        refresh_at: None,
    }
}

#[cfg(test)]
#[path = "login_tests.rs"]
mod tests;
