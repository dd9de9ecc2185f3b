//! A ChatGPT login (`auth.json` with OAuth tokens) shared by many agents.
//!
//! ChatGPT refresh tokens are single-use and rotate: if two holders refresh
//! with the same token, the second is rejected (`refresh_token_reused`) and
//! the login is lost. So exactly one component holds the refresh token — the
//! gateway, which owns the auth file — and refreshes before the access token
//! expires. Runs receive an auth.json with the access and id tokens only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// Codex's public OAuth client id, used for refreshes.
pub const DEFAULT_CLIENT_ID: &str = "app_EMoamEEZ73f0CkXaXp7hrann";
pub const DEFAULT_TOKEN_URL: &str = "https://auth.openai.com/oauth/token";
/// Refresh an access token this many seconds before it expires, unless told
/// (`CODEX_MCP_REFRESH_MARGIN`): well above the kubelet's sync period, so
/// agents' mounted Secrets have the new one in time.
pub const DEFAULT_REFRESH_MARGIN_SECS: u64 = 300;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoginError {
    #[error("the ChatGPT login in {0} has no tokens; run `codex login`")]
    NoTokens(String),
    #[error("reading the ChatGPT login {0} failed: {1}")]
    Read(String, String),
    #[error("saving the refreshed ChatGPT login to {0} failed: {1}")]
    Write(String, String),
    #[error("the token endpoint could not be reached: {0}")]
    Unreachable(String),
    #[error("the token endpoint rejected the ChatGPT login ({0}); log in again with `codex login` (or `codex-mcp auth import`)")]
    Rejected(String),
}

/// Seconds since the epoch at which a JWT expires, read without verifying
/// it: we only decide when to refresh; the API decides what is valid.
pub fn jwt_expiry(token: &str) -> Option<DateTime<Utc>> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    DateTime::from_timestamp(claims.get("exp")?.as_i64()?, 0)
}

fn token<'a>(auth: &'a Value, name: &str) -> Option<&'a str> {
    auth.get("tokens")?
        .get(name)?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// Whether the login's access token expires within `margin` (or cannot be read).
pub fn needs_refresh(auth: &Value, now: DateTime<Utc>, margin: Duration) -> bool {
    match token(auth, "access_token").and_then(jwt_expiry) {
        Some(exp) => exp - now <= chrono::Duration::from_std(margin).unwrap_or_default(),
        None => true,
    }
}

/// Codex refreshes a login by itself once its `last_refresh` is about eight
/// days old; a holder without the refresh token must never get there.
pub const MAX_LOGIN_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Whether a login kept for others (who cannot refresh it) must be
/// refreshed now: its access token is about to expire, or it is old enough
/// that Codex would try to refresh it.
pub fn due_for_refresh(auth: &Value, now: DateTime<Utc>, margin: Duration) -> bool {
    let refreshed = auth
        .get("last_refresh")
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok());
    let too_old = match refreshed {
        Some(t) => {
            now - t.with_timezone(&Utc)
                >= chrono::Duration::from_std(MAX_LOGIN_AGE).unwrap_or_default()
        }
        None => true,
    };
    needs_refresh(auth, now, margin) || too_old
}

/// When a login's access token expires, if it says.
pub fn access_expiry(auth: &Value) -> Option<DateTime<Utc>> {
    token(auth, "access_token").and_then(jwt_expiry)
}

/// Whether the login can be refreshed by its holder.
pub fn has_refresh_token(auth: &Value) -> bool {
    token(auth, "refresh_token").is_some()
}

/// Whether an auth.json is a ChatGPT login (rather than Codex's API-key form).
pub fn is_login(auth: &Value) -> bool {
    auth.get("tokens").is_some_and(Value::is_object)
}

/// Whether an auth.json holds a ChatGPT login with an access token.
pub fn has_access_token(auth: &Value) -> bool {
    token(auth, "access_token").is_some()
}

/// The auth.json an agent's environment keeps between refreshes: the login
/// without its refresh token, otherwise unchanged (so the same login always
/// gives the same bytes, and a Secret holding it changes only on refresh).
pub fn without_refresh_token(auth: &Value) -> Value {
    let mut out = auth.clone();
    if let Some(tokens) = out.get_mut("tokens").and_then(Value::as_object_mut) {
        tokens.insert("refresh_token".into(), json!(""));
    }
    out
}

/// The auth.json a run gets: the same login without its refresh token, and
/// marked as just refreshed so Codex does not try to refresh it itself.
pub fn run_auth(auth: &Value, now: DateTime<Utc>) -> Value {
    let mut out = without_refresh_token(auth);
    out["last_refresh"] = json!(now.to_rfc3339());
    out
}

/// The body of a refresh request.
pub fn refresh_request(client_id: &str, refresh_token: &str) -> Value {
    json!({
        "client_id": client_id,
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "scope": "openid profile email",
    })
}

/// Folds a token endpoint's answer into the login.
pub fn apply_refresh(auth: &Value, answer: &Value, now: DateTime<Utc>) -> Value {
    let mut out = auth.clone();
    for name in ["id_token", "access_token", "refresh_token"] {
        if let Some(v) = answer.get(name).and_then(Value::as_str) {
            out["tokens"][name] = json!(v);
        }
    }
    out["last_refresh"] = json!(now.to_rfc3339());
    out
}

/// The reason a token endpoint gave for refusing, without echoing anything
/// that could be a token.
pub fn rejection_reason(status: u16, body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let code = v
        .pointer("/error/code")
        .or_else(|| v.get("error").filter(|e| e.is_string()))
        .and_then(Value::as_str)
        .filter(|c| c.len() < 64 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    match code {
        Some(c) => format!("HTTP {status}, {c}"),
        None => format!("HTTP {status}"),
    }
}

/// Why a refresh produced no new login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshError {
    /// The endpoint could not be reached or failed (5xx): worth retrying.
    Unreachable(String),
    /// The endpoint refused the login (revoked, reused or expired refresh
    /// token): only a new login helps.
    Refused(String),
}

/// Refreshes `login` at the token endpoint; the login with its rotated
/// tokens. Reasons never echo a token.
pub async fn refresh(
    http: &reqwest::Client,
    token_url: &str,
    client_id: &str,
    login: &Value,
) -> Result<Value, RefreshError> {
    let unreachable = |e: reqwest::Error| RefreshError::Unreachable(e.without_url().to_string());
    let refresh_token = token(login, "refresh_token")
        .ok_or_else(|| RefreshError::Refused("the login has no refresh token".into()))?;
    let resp = http
        .post(token_url)
        .json(&refresh_request(client_id, refresh_token))
        .send()
        .await
        .map_err(unreachable)?;
    let status = resp.status().as_u16();
    let body = resp.text().await.map_err(unreachable)?;
    if status >= 500 {
        return Err(RefreshError::Unreachable(rejection_reason(status, &body)));
    }
    if !(200..300).contains(&status) {
        return Err(RefreshError::Refused(rejection_reason(status, &body)));
    }
    let answer: Value = serde_json::from_str(&body)
        .map_err(|_| RefreshError::Refused(format!("HTTP {status}, unreadable answer")))?;
    Ok(apply_refresh(login, &answer, Utc::now()))
}

/// The HTTP client both refreshers (the gateway's and the operator's) use
/// for the token endpoint: a refresh that hangs must not hold up runs.
pub fn token_endpoint_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// The gateway's handle on a ChatGPT login file: the one writer of its
/// refresh token.
pub struct ChatGptLogin {
    auth_file: PathBuf,
    token_url: String,
    client_id: String,
    margin: Duration,
    http: reqwest::Client,
    /// One refresh at a time in this process; the file lock guards against
    /// another process doing the same.
    refresh: tokio::sync::Mutex<()>,
}

impl ChatGptLogin {
    pub fn new(auth_file: PathBuf, token_url: String, client_id: String, margin: Duration) -> Self {
        let http = token_endpoint_client();
        Self {
            auth_file,
            token_url,
            client_id,
            margin,
            http,
            refresh: Default::default(),
        }
    }

    pub fn auth_file(&self) -> &Path {
        &self.auth_file
    }

    /// How long before its expiry an access token is refreshed.
    pub fn margin(&self) -> Duration {
        self.margin
    }

    fn read(&self) -> Result<Value, LoginError> {
        let path = self.auth_file.display().to_string();
        let bytes = std::fs::read(&self.auth_file)
            .map_err(|e| LoginError::Read(path.clone(), e.to_string()))?;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| LoginError::Read(path.clone(), e.to_string()))?;
        if token(&v, "access_token").is_none() {
            return Err(LoginError::NoTokens(path));
        }
        Ok(v)
    }

    fn write(&self, auth: &Value) -> Result<(), LoginError> {
        let pretty = serde_json::to_string_pretty(auth).expect("json");
        super::write_private(&self.auth_file, pretty.as_bytes())
            .map_err(|e| LoginError::Write(self.auth_file.display().to_string(), e.to_string()))
    }

    /// The auth.json for one run, refreshing the login first when its
    /// access token is about to expire.
    pub async fn for_run(&self) -> Result<Value, LoginError> {
        let auth = self.read()?;
        if !needs_refresh(&auth, Utc::now(), self.margin) {
            return Ok(run_auth(&auth, Utc::now()));
        }
        let _one = self.refresh.lock().await;
        let lock_path = self.auth_file.with_extension("json.lock");
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| LoginError::Write(lock_path.display().to_string(), e.to_string()))?;
        let _flock = tokio::task::spawn_blocking(move || {
            nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        })
        .await
        .expect("lock task")
        .map_err(|(_, e)| LoginError::Write(lock_path.display().to_string(), e.to_string()))?;
        // Another caller (or process) may have refreshed while we waited.
        let auth = self.read()?;
        if !needs_refresh(&auth, Utc::now(), self.margin) {
            return Ok(run_auth(&auth, Utc::now()));
        }
        let refreshed = refresh(&self.http, &self.token_url, &self.client_id, &auth)
            .await
            .map_err(|e| match e {
                RefreshError::Unreachable(why) => LoginError::Unreachable(why),
                RefreshError::Refused(why) => LoginError::Rejected(why),
            })?;
        self.write(&refreshed)?;
        tracing::info!(auth_file = %self.auth_file.display(), "refreshed the ChatGPT login");
        Ok(run_auth(&refreshed, Utc::now()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An unsigned JWT expiring at `exp`.
    pub(crate) fn jwt(exp: i64) -> String {
        let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.sig",
            b64(json!({"alg": "none"})),
            b64(json!({"exp": exp}))
        )
    }

    /// A ChatGPT login (refresh token `rt-1`) whose tokens expire at `exp`.
    pub(crate) fn login(exp: i64) -> Value {
        json!({"auth_mode": "chatgpt", "OPENAI_API_KEY": null,
               "tokens": {"id_token": jwt(exp), "access_token": jwt(exp), "refresh_token": "rt-1", "account_id": "acct"},
               "last_refresh": "2026-01-01T00:00:00Z"})
    }

    #[test]
    fn expiry_decides_the_refresh() {
        let now = Utc::now();
        let margin = Duration::from_secs(300);
        assert!(!needs_refresh(&login(now.timestamp() + 3600), now, margin));
        assert!(needs_refresh(&login(now.timestamp() + 100), now, margin));
        assert!(needs_refresh(
            &json!({"tokens": {"access_token": "not-a-jwt"}}),
            now,
            margin
        ));
        assert_eq!(
            jwt_expiry(&jwt(1_800_000_000)).unwrap().timestamp(),
            1_800_000_000
        );
    }

    #[test]
    fn logins_kept_for_others_are_refreshed_before_codex_would() {
        let now = Utc::now();
        let margin = Duration::from_secs(300);
        let mut fresh = login(now.timestamp() + 3600);
        fresh["last_refresh"] = json!((now - chrono::Duration::days(1)).to_rfc3339());
        assert!(!due_for_refresh(&fresh, now, margin));
        let mut old = fresh.clone();
        old["last_refresh"] = json!((now - chrono::Duration::days(7)).to_rfc3339());
        assert!(
            due_for_refresh(&old, now, margin),
            "Codex would refresh it itself"
        );
        assert!(due_for_refresh(&login(now.timestamp() + 10), now, margin));
        let kept = without_refresh_token(&fresh);
        assert_eq!(kept["tokens"]["refresh_token"], "");
        assert_eq!(kept["last_refresh"], fresh["last_refresh"], "deterministic");
        assert!(has_refresh_token(&fresh) && !has_refresh_token(&kept));
        assert_eq!(
            access_expiry(&fresh).unwrap().timestamp(),
            now.timestamp() + 3600
        );
    }

    #[test]
    fn runs_never_get_the_refresh_token() {
        let now = Utc::now();
        let r = run_auth(&login(now.timestamp() + 3600), now);
        assert_eq!(r["tokens"]["refresh_token"], "");
        assert_eq!(r["tokens"]["account_id"], "acct");
        assert!(!r.to_string().contains("rt-1"));
        assert_eq!(r["last_refresh"], json!(now.to_rfc3339()));
    }

    #[test]
    fn refresh_answers_rotate_the_tokens() {
        let now = Utc::now();
        let answer = json!({"access_token": "a2", "id_token": "i2", "refresh_token": "rt-2"});
        let r = apply_refresh(&login(0), &answer, now);
        assert_eq!(r["tokens"]["refresh_token"], "rt-2");
        assert_eq!(r["tokens"]["access_token"], "a2");
        assert_eq!(r["tokens"]["account_id"], "acct");
        let req = refresh_request(DEFAULT_CLIENT_ID, "rt-1");
        assert_eq!(req["grant_type"], "refresh_token");
    }

    #[test]
    fn rejection_reasons_carry_codes_not_secrets() {
        assert_eq!(
            rejection_reason(
                401,
                r#"{"error":{"code":"refresh_token_reused","message":"x"}}"#
            ),
            "HTTP 401, refresh_token_reused"
        );
        assert_eq!(
            rejection_reason(400, r#"{"error":"invalid_grant"}"#),
            "HTTP 400, invalid_grant"
        );
        assert_eq!(
            rejection_reason(401, r#"{"error":"rt-secret-token value"}"#),
            "HTTP 401"
        );
        assert_eq!(rejection_reason(502, "<html>"), "HTTP 502");
    }
}
