//! The gateway's edge under abuse, over real HTTP against `codex-mcp serve`:
//! half-sent requests, too many sessions, forged forwarding headers,
//! ambiguous credentials and agent names, and clients that hang up mid-call.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;
use serde_json::{json, Value};
use support::fake_model::{FakeModel, Reply};
use support::gateway::{processes_mentioning, Gateway, GatewayOptions};
use support::raw_mcp::{open_sse, RawMcp};
use support::tenants::{token_file, ALPHA, BETA};

struct Env {
    _dir: tempfile::TempDir,
    model: FakeModel,
    gateway: Gateway,
}

async fn start_with(tokens: bool, f: impl FnOnce(GatewayOptions) -> GatewayOptions) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeModel::start().await;
    let mut options = GatewayOptions::new(&dir.path().join("data"), &model);
    if tokens {
        let file = dir.path().join("tokens");
        std::fs::write(&file, token_file()).unwrap();
        options.auth_tokens = Some(file);
    }
    let gateway = Gateway::start(f(options));
    Env {
        _dir: dir,
        model,
        gateway,
    }
}

async fn health(env: &Env) -> reqwest::StatusCode {
    reqwest::Client::new()
        .get(format!("{}/health", env.gateway.url))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("/health answers")
        .status()
}

fn error_text(v: &Value) -> String {
    v["error"]["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| v.to_string())
}

#[tokio::test]
async fn half_sent_requests_neither_exhaust_nor_hold_the_gateway() {
    // 256 descriptors for the whole gateway, 300 attackers.
    let env = start_with(false, |o| {
        let mut o = o.env("CODEX_MCP_HEADER_READ_TIMEOUT", "2");
        o.wrapper = ["prlimit", "--nofile=256:256", "--"]
            .map(String::from)
            .to_vec();
        o
    })
    .await;
    let addr = env.gateway.url.trim_start_matches("http://").to_owned();
    let mut attackers = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .unwrap();
        attackers.push(s);
    }
    assert_eq!(health(&env).await, 200, "/health under attack");

    // Every half-sent request is closed once the header deadline passes.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let still_open = attackers
        .iter_mut()
        .filter(|s| {
            let mut s: &TcpStream = s;
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut buf = [0u8; 512];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => return false,
                    Ok(_) => continue,
                    Err(e) => {
                        return matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        )
                    }
                }
            }
        })
        .count();
    assert_eq!(still_open, 0, "half-sent requests still held open");
    assert_eq!(health(&env).await, 200);
    let logs = env.gateway.logs().join("\n");
    assert!(!logs.contains("Too many open files"), "{logs}");
}

#[tokio::test]
async fn sessions_are_capped_per_token_and_in_total() {
    let env = start_with(true, |o| {
        o.env("CODEX_MCP_MAX_SESSIONS_PER_TOKEN", "3")
            .env("CODEX_MCP_MAX_SESSIONS", "5")
    })
    .await;
    let alpha = RawMcp::new(env.gateway.mcp_url()).bearer(ALPHA);
    let beta = RawMcp::new(env.gateway.mcp_url()).bearer(BETA);
    let mut alphas = Vec::new();
    for _ in 0..3 {
        alphas.push(alpha.open().await);
    }
    let over = alpha.initialize().await;
    assert_eq!(over.status, 429, "{over:?}");
    assert_eq!(over.message["id"], 0, "{over:?}");
    assert!(
        error_text(&over.message).contains("CODEX_MCP_MAX_SESSIONS_PER_TOKEN"),
        "{over:?}"
    );
    beta.open().await;
    beta.open().await;
    let full = beta.initialize().await;
    assert_eq!(full.status, 503, "{full:?}");
    assert!(
        error_text(&full.message).contains("maximum of 5 open MCP sessions"),
        "{full:?}"
    );
    let sse = reqwest::Client::new()
        .get(format!("{}/sse", env.gateway.url))
        .bearer_auth(BETA)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 503, "SSE sessions count too");

    // Refused sessions cost nothing.
    let rss = || {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", env.gateway.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap()
    };
    let before = rss();
    for _ in 0..300 {
        assert_eq!(alpha.initialize().await.status, 429);
    }
    let grown_kb = rss().saturating_sub(before);
    assert!(
        grown_kb < 20_000,
        "300 refused sessions grew the gateway by {grown_kb} kB"
    );

    // A closed session frees its slot.
    assert!(alpha.delete(&alphas[0]).await.is_success());
    let (_url, _stream) = open_sse(&env.gateway.url, "/sse", BETA).await;
    assert_eq!(health(&env).await, 200);
}

#[tokio::test]
async fn what_the_gateway_says_names_the_url_the_client_used() {
    // The resource metadata (RFC 9728) and the 401's challenge name the URL
    // the client used: its accepted Host, and the scheme the edge reports.
    // A forwarded host, or a scheme that is not HTTP(S), is never believed.
    let dir = tempfile::tempdir().unwrap();
    let model = FakeModel::start().await;
    let mut options = GatewayOptions::new(&dir.path().join("data"), &model);
    options.default_auth = true;
    let gateway = Gateway::start(options);
    let origin = gateway.url.clone();
    let http = reqwest::Client::new();
    let forged = |r: reqwest::RequestBuilder| {
        r.header("x-forwarded-proto", "javascript")
            .header("x-forwarded-host", "evil.example")
    };
    let meta: Value = forged(http.get(format!(
        "{origin}/.well-known/oauth-protected-resource/agents/alice/mcp"
    )))
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        meta["resource"],
        format!("{origin}/agents/alice/mcp"),
        "{meta}"
    );
    assert_eq!(
        meta["bearer_methods_supported"],
        json!(["header"]),
        "{meta}"
    );
    assert!(meta.get("authorization_servers").is_none(), "{meta}");
    let denied = forged(http.post(gateway.mcp_url()))
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let challenge = denied.headers()[reqwest::header::WWW_AUTHENTICATE].clone();
    assert_eq!(
        challenge.to_str().unwrap(),
        format!(
            r#"Bearer realm="codex-mcp", resource_metadata="{origin}/.well-known/oauth-protected-resource/mcp""#
        )
    );
    let body = denied.text().await.unwrap();
    assert!(!body.contains("evil.example"), "{body}");
    // Behind an edge that ends TLS: the scheme it reports.
    let behind_tls = http
        .post(gateway.mcp_url())
        .header("x-forwarded-proto", "https")
        .body("{}")
        .send()
        .await
        .unwrap();
    let challenge = behind_tls.headers()[reqwest::header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_owned();
    let https_origin = origin.replacen("http://", "https://", 1);
    assert!(
        challenge.contains(&format!(
            "resource_metadata=\"{https_origin}/.well-known/oauth-protected-resource/mcp\""
        )),
        "{challenge}"
    );
    // A Host the gateway does not accept gets no document naming it.
    let evil = http
        .get(format!("{origin}/.well-known/oauth-protected-resource/mcp"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), 403);
}

#[tokio::test]
async fn ambiguous_credentials_and_unreadable_agent_names_are_refused() {
    let env = start_with(true, |o| o).await;
    let r = reqwest::Client::new()
        .post(env.gateway.mcp_url())
        .header("authorization", format!("Bearer {ALPHA}"))
        .header("authorization", format!("Bearer {BETA}"))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(json!({"jsonrpc": "2.0", "id": 0, "method": "ping"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("more than one Authorization header"));

    // "café" in Latin-1: not a name, and not the default agent either.
    env.model.push(Reply::text("ran on some agent"));
    let client = RawMcp::new(env.gateway.mcp_url()).bearer(ALPHA).header(
        "x-codex-agent",
        HeaderValue::from_bytes(b"caf\xe9").unwrap(),
    );
    let session = client.open().await;
    let r = client
        .call(&session, 1, "chat", json!({"message": "hi"}))
        .await;
    assert!(
        r.text
            .to_lowercase()
            .contains("x-codex-agent header is not ascii"),
        "{r:?}"
    );
    assert!(env.model.requests().is_empty(), "a run happened");
}

/// Waits for `ws`'s processes to end; the ones left after 5 s.
async fn processes_left(ws: &str) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_mentioning(ws).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    processes_mentioning(ws)
}

/// A client that closes a call's response stream cancels the run, in a
/// 2025-11-25 session and on the stateless 2026-07-28 protocol alike.
#[tokio::test]
async fn closing_the_response_stream_cancels_the_run() {
    let env = start_with(false, |o| o).await;
    for (agent, stateless) in [("session-dropper", false), ("stateless-dropper", true)] {
        let before = env.model.requests().len();
        env.model.push(Reply::Stall(Duration::from_secs(120)));
        let client = RawMcp::new(env.gateway.mcp_url())
            .header("x-codex-agent", HeaderValue::from_str(agent).unwrap());
        let session = client.open().await;
        let args = json!({"message": "take forever"});
        // A stateless call's response starts with its first message, so the
        // client hangs up while still waiting for the headers.
        let caller = client.clone();
        let stream = if stateless {
            tokio::spawn(async move { caller.start_stateless_call("chat", args).await })
        } else {
            let resp = caller.start_call(&session, 1, "chat", args).await;
            tokio::spawn(async move { resp })
        };
        assert!(
            env.model
                .wait_for_requests(before + 1, Duration::from_secs(60))
                .await,
            "{agent}: codex never called the model"
        );
        let ws = env.gateway.workspace(agent).display().to_string();
        assert!(!processes_mentioning(&ws).is_empty(), "codex runs in {ws}");

        stream.abort();
        drop(stream.await);
        assert_eq!(
            processes_left(&ws).await,
            Vec::<u32>::new(),
            "{agent}: the run outlived its caller's connection"
        );

        env.model.push(Reply::text("back again"));
        let next = client
            .call(&session, 2, "chat", json!({"message": "and now?"}))
            .await;
        assert_eq!(next.status, 200, "{agent}: {next:?}");
        assert!(next.text.contains("back again"), "{agent}: {next:?}");
    }
}

/// An answer that is ready at once comes whole, with its length, in one
/// write: a Go reverse proxy in front (Traefik, Caddy) may tear down its
/// upstream connection just after forwarding a POST's body
/// (golang/go#40747), and an answer already in its read buffer survives
/// that where a stream's later writes are lost. A stateless request gets
/// JSON; a session's answer keeps its event-stream framing. A call that
/// reports progress or takes longer still streams.
#[tokio::test]
async fn answers_ready_at_once_come_whole_and_longer_calls_stream() {
    let env = start_with(false, |o| o.env("CODEX_MCP_PROGRESS_HEARTBEAT_SECS", "1")).await;
    let client = RawMcp::new(env.gateway.mcp_url());
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });

    let tools = client
        .send_stateless(
            "tools/list",
            None,
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}}),
        )
        .await;
    assert!(tools.message["result"]["tools"].as_array().unwrap().len() > 10);
    assert!(tools.is_whole("application/json"), "{tools:?}");

    env.model.push(Reply::text("a whole answer"));
    let call = |progress: Option<&str>| {
        let mut meta = meta.clone();
        if let Some(token) = progress {
            meta["progressToken"] = json!(token);
        }
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": "chat", "arguments": {"message": "hi"}, "_meta": meta}})
    };
    let chat = client
        .send_stateless("tools/call", Some("chat"), call(None))
        .await;
    assert_eq!(
        chat.message["result"]["structuredContent"]["reply"], "a whole answer",
        "{chat:?}"
    );
    assert!(chat.is_whole("application/json"), "{chat:?}");

    env.model.push(Reply::silent(
        Duration::from_secs(3),
        Reply::text("a streamed answer"),
    ));
    let streamed = client
        .send_stateless("tools/call", Some("chat"), call(Some("p1")))
        .await;
    assert!(
        streamed
            .content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("text/event-stream")),
        "{streamed:?}"
    );
    assert!(
        streamed.text.contains("notifications/progress")
            && streamed.text.contains("a streamed answer"),
        "{}",
        streamed.text
    );

    let session = client.open().await;
    let health = client.call(&session, 3, "health_check", json!({})).await;
    assert!(health.message["result"]["structuredContent"]["version"].is_string());
    assert!(health.is_whole("text/event-stream"), "{health:?}");
    env.model.push(Reply::silent(
        Duration::from_secs(3),
        Reply::text("a slow answer"),
    ));
    let slow = client
        .call(&session, 4, "chat", json!({"message": "hi"}))
        .await;
    assert_eq!(slow.content_length, None, "{slow:?}");
    assert!(slow.text.contains("a slow answer"), "{}", slow.text);
}
