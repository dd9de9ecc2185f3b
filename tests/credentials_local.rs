//! A ChatGPT login shared by many agents on one machine: the gateway is the
//! one writer of its refresh token, refreshes before expiry against a token
//! endpoint that rotates refresh tokens and rejects reuse, and runs only ever
//! see short-lived tokens. Also: clear errors for a revoked login, RFC 9728
//! metadata, and no secret in any log line.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::fake_auth::FakeAuth;
use support::fake_model::{FakeModel, Reply};
use support::gateway::{Gateway, GatewayOptions, TEST_API_KEY};
use support::mcp_client::{McpClient, Transport};

const AGENTS: [&str; 5] = ["a1", "a2", "a3", "a4", "a5"];

/// A gateway on a ChatGPT login of `auth` (expired, so the first use
/// refreshes it) that refreshes it when `margin` seconds are left.
fn oauth_gateway(dir: &Path, model: &FakeModel, auth: &FakeAuth, margin: &str) -> Gateway {
    let auth_dir = dir.join("host-codex");
    std::fs::create_dir_all(&auth_dir).unwrap();
    std::fs::write(auth_dir.join("auth.json"), auth.expired_login().to_string()).unwrap();
    Gateway::start(
        GatewayOptions::new(&dir.join("data"), model)
            .env("CODEX_AUTH_METHOD", "oauth")
            .env("CODEX_AUTH_DIR", auth_dir.to_str().unwrap())
            .env("CODEX_REFRESH_TOKEN_URL_OVERRIDE", &auth.token_url())
            .env("CODEX_MCP_REFRESH_MARGIN", margin),
    )
}

async fn round(gateway: &Gateway, model: &FakeModel, n: usize) -> Vec<Value> {
    let calls = AGENTS.iter().map(|agent| {
        model.when_contains(
            format!("round {n} from {agent}"),
            Reply::text(format!("ok {agent} {n}")),
        );
        let client =
            McpClient::new(gateway.mcp_url(), Transport::Http).header("X-Codex-Agent", *agent);
        let message = format!("round {n} from {agent}");
        async move {
            client
                .call_tool("chat", json!({ "message": message }))
                .await
        }
    });
    let results = futures::future::join_all(calls).await;
    results
        .into_iter()
        .map(|r| {
            assert!(r.ok() && !r.is_error(), "round {n}: {r}");
            r.structured().unwrap().clone()
        })
        .collect()
}

#[tokio::test]
async fn five_agents_share_one_login_across_three_refreshes() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeModel::start().await;
    let auth = FakeAuth::start(Duration::from_secs(5)).await;
    let gateway = oauth_gateway(dir.path(), &model, &auth, "1");

    for n in 1..=3 {
        let before = auth.refreshes();
        let started = Instant::now();
        let replies = round(&gateway, &model, n).await;
        assert!(replies
            .iter()
            .all(|r| r["reply"].as_str().unwrap().starts_with("ok ")));
        assert!(
            auth.refreshes() > before,
            "round {n} began with an expired token and refreshed"
        );
        eprintln!("round {n} took {:?}", started.elapsed());
        // Let the access token expire so the next round must refresh again.
        tokio::time::sleep(auth.ttl().saturating_sub(started.elapsed())).await;
    }
    assert!(auth.refreshes() >= 3, "refreshes: {}", auth.refreshes());
    assert!(
        auth.rejected().is_empty(),
        "a refresh token was reused: {:?}",
        auth.rejected()
    );

    // The host's login now holds the current refresh token: the host's own
    // `codex` keeps working.
    let host: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("host-codex/auth.json")).unwrap())
            .unwrap();
    assert_eq!(
        host["tokens"]["refresh_token"],
        auth.current_refresh_token()
    );

    // The model only ever saw access tokens the endpoint issued.
    let issued = auth.issued();
    let seen = model.bearer_tokens();
    assert_eq!(seen.len(), 15, "one model request per run");
    assert!(
        seen.iter().all(|t| issued.contains(t)),
        "a run used a token that was never issued"
    );

    // No agent keeps credentials, and none ever held a refresh token.
    for agent in AGENTS {
        let home = dir
            .path()
            .join("data/agents")
            .join(agent)
            .join("codex-home");
        assert!(home.is_dir());
        assert!(
            !home.join("auth.json").exists(),
            "{agent} kept an auth.json"
        );
    }
    let logs = gateway.logs().join("\n");
    for secret in issued
        .iter()
        .chain([&auth.current_refresh_token(), &TEST_API_KEY.to_owned()])
    {
        assert!(
            !logs.contains(secret.as_str()),
            "a token reached the gateway's logs"
        );
    }
    assert!(logs.contains("refreshed the ChatGPT login"));
}

#[tokio::test]
async fn a_turn_outlives_its_access_token() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeModel::start().await;
    model.reject_expired_tokens();
    let auth = FakeAuth::start(Duration::from_secs(10)).await;
    // Refreshed with 6 s left: the gateway does it even while no run starts,
    // and the running turn picks the new token up.
    let mut gateway = oauth_gateway(dir.path(), &model, &auth, "6");
    let steps = (0..8)
        .map(|_| Reply::exec("sleep 2"))
        .chain([Reply::text("done")])
        .collect();
    model.when_contains("a long turn", Reply::Sequence(steps));

    let started = Instant::now();
    let r = McpClient::new(gateway.mcp_url(), Transport::Http)
        .call_tool("chat", json!({"message": "a long turn"}))
        .await;
    assert!(r.ok() && !r.is_error(), "{r}");
    assert!(started.elapsed() > auth.ttl(), "the turn outlived a token");
    let mut used = model.bearer_tokens();
    assert_eq!(used.len(), 9, "one request per step");
    used.dedup();
    assert!(
        used.len() >= 2,
        "the turn went on with the refreshed token ({} tokens)",
        used.len()
    );
    assert!(
        auth.rejected().is_empty(),
        "the gateway's background and per-run refreshes never reused a token: {:?}",
        auth.rejected()
    );
    let home = dir.path().join("data/agents/default/codex-home");
    assert!(!home.join("auth.json").exists(), "the run's copy is gone");
    let for_runs = dir.path().join("data/run-login/run-login.json");
    let held: Value = serde_json::from_slice(&std::fs::read(&for_runs).unwrap()).unwrap();
    assert_eq!(
        held["tokens"]["refresh_token"], "",
        "runs never get the refresh token"
    );
    gateway.stop();
    assert!(
        !for_runs.exists(),
        "the login for runs goes with the gateway"
    );
}

#[tokio::test]
async fn a_revoked_login_fails_with_an_actionable_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeModel::start().await;
    let auth = FakeAuth::start(Duration::from_secs(300)).await;
    auth.revoke();
    let gateway = oauth_gateway(dir.path(), &model, &auth, "1");
    let client = McpClient::new(gateway.mcp_url(), Transport::Http);
    let r = client.call_tool("chat", json!({"message": "hi"})).await;
    assert!(r.is_error(), "{r}");
    assert!(
        r.text().contains("refresh_token_invalidated") && r.text().contains("codex login"),
        "{r}"
    );
    assert!(model.requests().is_empty(), "no run without credentials");
    let health = client.call_tool("health_check", json!({})).await;
    let h = health.structured().unwrap();
    assert_eq!(h["status"], "degraded", "{h}");
    assert!(
        h["credentials"]
            .as_str()
            .unwrap()
            .contains("refresh_token_invalidated"),
        "{h}"
    );
    let text = format!("{r}{health}{}", gateway.logs().join("\n"));
    assert!(
        !text.contains(&auth.current_refresh_token()),
        "the refresh token leaked"
    );
}

#[tokio::test]
async fn unauthenticated_clients_are_told_how_to_authenticate() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeModel::start().await;
    let mut opts = GatewayOptions::new(dir.path(), &model);
    opts.default_auth = true;
    let gateway = Gateway::start(opts);
    let resp = reqwest::Client::new()
        .post(gateway.mcp_url())
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // Tokens come from whoever runs the gateway, not from an OAuth server:
    // the resource's metadata names no authorization server, and the body
    // says what to do.
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        challenge,
        format!(
            "Bearer realm=\"codex-mcp\", resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"",
            gateway.url
        )
    );
    let body: Value = resp.json().await.unwrap();
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("Authorization: Bearer") && msg.contains("client-token"),
        "{body}"
    );
    let meta = reqwest::get(format!(
        "{}/.well-known/oauth-protected-resource",
        gateway.url
    ))
    .await
    .unwrap();
    assert_eq!(meta.status(), 200);
    let meta: Value = meta.json().await.unwrap();
    assert!(meta.get("authorization_servers").is_none(), "{meta}");
    let started = Instant::now();
    let sse = reqwest::Client::new()
        .get(gateway.sse_url())
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 401, "SSE needs the token too");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn auth_status_names_the_credential_but_never_its_value() {
    let dir = tempfile::tempdir().unwrap();
    let status = |envs: &[(&str, &str)]| {
        let out = std::process::Command::new(support::codex_mcp_bin())
            .args(["auth", "status"])
            .env_clear()
            .env("HOME", dir.path())
            .envs(envs.iter().copied())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = status(&[("OPENAI_API_KEY", TEST_API_KEY)]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("api key") && !text.contains(TEST_API_KEY),
        "{text}"
    );

    let codex_dir = dir.path().join(".codex");
    std::fs::create_dir_all(&codex_dir).unwrap();
    let exp = chrono::Utc::now().timestamp() + 3600;
    let access = support::fake_auth::jwt(json!({"exp": exp}));
    let login = json!({"auth_mode": "chatgpt",
        "tokens": {"access_token": access, "id_token": access, "refresh_token": "rt-secret-value"}});
    std::fs::write(codex_dir.join("auth.json"), login.to_string()).unwrap();
    let (code, text) = status(&[("CODEX_AUTH_METHOD", "oauth")]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("chatgpt login") && text.contains("access token expires"),
        "{text}"
    );
    assert!(
        !text.contains(&access) && !text.contains("rt-secret-value"),
        "{text}"
    );

    std::fs::remove_file(codex_dir.join("auth.json")).unwrap();
    let (code, text) = status(&[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("codex login"), "{text}");
}
