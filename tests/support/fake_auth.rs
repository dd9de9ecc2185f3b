//! A fake OAuth token endpoint that behaves like ChatGPT's: every refresh
//! rotates the refresh token, and presenting an old one is rejected as
//! `refresh_token_reused`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};

#[derive(Default)]
struct AuthState {
    refresh_token: String,
    generation: u32,
    revoked: bool,
    ttl: Duration,
    refreshes: u32,
    rejected: Vec<String>,
    issued: Vec<String>,
}

pub struct FakeAuth {
    addr: SocketAddr,
    state: Arc<Mutex<AuthState>>,
    server: tokio::task::JoinHandle<()>,
}

/// An unsigned JWT with these claims; Codex reads claims, the fake model
/// compares tokens as strings.
pub fn jwt(claims: Value) -> String {
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.fake-signature",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(claims)
    )
}

/// Whether `token` is a JWT whose `exp` has passed (what the real API
/// refuses with 401). Anything else is not judged here.
pub fn jwt_expired(token: &str) -> bool {
    let claims = token
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    claims
        .and_then(|c| c["exp"].as_i64())
        .is_some_and(|exp| exp <= chrono::Utc::now().timestamp())
}

fn claims(exp: i64, generation: u32) -> Value {
    json!({
        "exp": exp, "iat": chrono::Utc::now().timestamp(), "jti": format!("gen-{generation}-{}", uuid::Uuid::new_v4()),
        "email": "agent@example.com",
        // Codex takes a login with the same user and account for the same
        // owner: a refreshed token then continues a turn instead of ending it.
        "https://api.openai.com/auth": {"chatgpt_account_id": "acct-test", "chatgpt_plan_type": "plus",
                                        "chatgpt_user_id": "user-test", "user_id": "user-test"}
    })
}

async fn token(
    State(state): State<Arc<Mutex<AuthState>>>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let mut s = state.lock().unwrap();
    if body["grant_type"] != "refresh_token" {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        );
    }
    let presented = body["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let code = if s.revoked {
        Some("refresh_token_invalidated")
    } else if presented != s.refresh_token {
        Some("refresh_token_reused")
    } else {
        None
    };
    if let Some(code) = code {
        s.rejected.push(code.to_owned());
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": code, "message": "refresh rejected"}})),
        );
    }
    s.generation += 1;
    s.refreshes += 1;
    let exp = chrono::Utc::now().timestamp() + s.ttl.as_secs() as i64;
    let access = jwt(claims(exp, s.generation));
    let id = jwt(claims(exp, s.generation));
    s.refresh_token = format!("rt-{}-{}", s.generation, uuid::Uuid::new_v4().simple());
    let rt = s.refresh_token.clone();
    s.issued.extend([access.clone(), id.clone(), rt]);
    (
        StatusCode::OK,
        Json(json!({"access_token": access, "id_token": id, "refresh_token": s.refresh_token})),
    )
}

impl FakeAuth {
    /// Starts on loopback; issued access tokens live for `ttl`.
    pub async fn start(ttl: Duration) -> Self {
        let state = Arc::new(Mutex::new(AuthState {
            refresh_token: format!("rt-0-{}", uuid::Uuid::new_v4().simple()),
            ttl,
            ..Default::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/oauth/token", post(token))
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            state,
            server,
        }
    }

    pub fn token_url(&self) -> String {
        format!("http://{}/oauth/token", self.addr)
    }

    /// An auth.json for this login whose access token has already expired,
    /// so the first use must refresh.
    pub fn expired_login(&self) -> Value {
        let s = self.state.lock().unwrap();
        let exp = chrono::Utc::now().timestamp() - 60;
        json!({
            "auth_mode": "chatgpt", "OPENAI_API_KEY": null,
            "tokens": {"id_token": jwt(claims(exp, 0)), "access_token": jwt(claims(exp, 0)),
                       "refresh_token": s.refresh_token, "account_id": "acct-test"},
            "last_refresh": "2026-01-01T00:00:00Z"
        })
    }

    pub fn refreshes(&self) -> u32 {
        self.state.lock().unwrap().refreshes
    }

    /// Error codes of refused refreshes (`refresh_token_reused`, ...).
    pub fn rejected(&self) -> Vec<String> {
        self.state.lock().unwrap().rejected.clone()
    }

    /// Every token this endpoint has issued.
    pub fn issued(&self) -> Vec<String> {
        self.state.lock().unwrap().issued.clone()
    }

    pub fn current_refresh_token(&self) -> String {
        self.state.lock().unwrap().refresh_token.clone()
    }

    pub fn ttl(&self) -> Duration {
        self.state.lock().unwrap().ttl
    }

    /// From now on every refresh is refused, as for a revoked login.
    pub fn revoke(&self) {
        self.state.lock().unwrap().revoked = true;
    }

    /// A person logs in again: a new refresh token (the old ones stay
    /// refused) and the login as `codex login` would write it.
    pub fn log_in_again(&self) -> Value {
        {
            let mut s = self.state.lock().unwrap();
            s.revoked = false;
            s.refresh_token = format!("rt-login-{}", uuid::Uuid::new_v4().simple());
            let rt = s.refresh_token.clone();
            s.issued.push(rt);
        }
        self.expired_login()
    }
}

impl Drop for FakeAuth {
    fn drop(&mut self) {
        self.server.abort();
    }
}
