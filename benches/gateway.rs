//! Gateway benchmark (`cargo bench --bench gateway`): prints figures, asserts
//! nothing about speed.
//!
//! - a `chat` tool call through the gateway vs the same `codex-mcp agent-run`
//!   run directly, both against the same fake model (median, p95, overhead);
//! - `/mcp` tools/list requests per second;
//! - the gateway's resident memory idle and with 500 open SSE connections.

#[path = "common/stats.rs"]
mod stats;
#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use stats::{ms_since, summary};
use support::fake_model::{FakeModel, API_KEY_ENV, MODEL};
use support::gateway::{Gateway, GatewayOptions, TEST_API_KEY};
use tokio::io::AsyncWriteExt;

const RUNS: usize = 30;

async fn direct_run(model: &FakeModel, dir: &std::path::Path) -> f64 {
    let request = json!({
        "prompt": "say ok", "model": MODEL, "sandbox": "workspace-write",
        "provider": {"id": "fake", "base_url": model.base_url(), "env_key": API_KEY_ENV},
        "credentials": {"api_key": TEST_API_KEY},
        "workspace": dir.join("workspace"), "codex_home": dir.join("codex-home"),
    });
    let started = Instant::now();
    let mut child = tokio::process::Command::new(support::codex_mcp_bin())
        .args(["agent-run", "--codex-bin"])
        .arg(support::codex_bin())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("agent-run");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{request}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "agent-run failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    ms_since(started)
}

/// A minimal 2025-11-25 MCP session over raw HTTP, so the figures measure the
/// gateway, not a client library's start-up.
struct RawSession {
    http: reqwest::Client,
    url: String,
    session: String,
}

impl RawSession {
    async fn open(url: &str) -> Self {
        let http = reqwest::Client::new();
        let resp = http
            .post(url)
            .header("accept", "application/json, text/event-stream")
            .json(
                &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "bench", "version": "1"}}}),
            )
            .send()
            .await
            .unwrap();
        let session = resp.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let _ = resp.text().await;
        let s = Self {
            http,
            url: url.to_owned(),
            session,
        };
        let _ = s
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        s
    }

    async fn post(&self, body: Value) -> String {
        self.http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", "2025-11-25")
            .json(&body)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeModel::start().await;
    println!("codex-mcp gateway benchmark ({RUNS} runs each; fake model on loopback)");

    let gateway = Gateway::start(GatewayOptions::new(&dir.path().join("gw"), &model));
    let session = RawSession::open(&gateway.mcp_url()).await;
    // Interleaved, so drift in the machine's load hits both sides alike.
    let (mut direct, mut through) = (Vec::new(), Vec::new());
    for i in 0..RUNS {
        direct.push(direct_run(&model, dir.path()).await);
        let started = Instant::now();
        let body = session
            .post(
                json!({"jsonrpc": "2.0", "id": i + 1, "method": "tools/call", "params": {
                "name": "chat", "arguments": {"message": "say ok", "new_conversation": true}}}),
            )
            .await;
        assert!(body.contains("\"reply\""), "tool call failed: {body}");
        through.push(ms_since(started));
    }
    let (d50, d95) = summary("agent-run directly", direct);
    let (g50, g95) = summary("chat through the gateway", through);
    println!(
        "{:<40} p50 {:>+8.1} ms   p95 {:>+8.1} ms",
        "gateway overhead",
        g50 - d50,
        g95 - d95
    );

    let window = Duration::from_secs(5);
    let deadline = Instant::now() + window;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = RawSession::open(&gateway.mcp_url()).await;
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let body = s
                    .post(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
                    .await;
                assert!(body.contains("implement"));
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    println!(
        "{:<40} {:>8.0} req/s (8 concurrent sessions)",
        "/mcp tools/list",
        total as f64 / window.as_secs_f64()
    );

    let idle = rss_kib(gateway.pid());
    let sse_url = gateway.sse_url();
    let mut streams = Vec::new();
    let client = reqwest::Client::new();
    for _ in 0..500 {
        let resp = client.get(&sse_url).send().await.unwrap();
        let mut body = resp.bytes_stream();
        let first = body.next().await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&first).contains("endpoint"));
        streams.push(body);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded = rss_kib(gateway.pid());
    println!(
        "{:<40} {:>8.1} MiB",
        "gateway RSS idle",
        idle as f64 / 1024.0
    );
    println!(
        "{:<40} {:>8.1} MiB ({:.1} KiB per connection)",
        "gateway RSS, 500 SSE connections",
        loaded as f64 / 1024.0,
        (loaded.saturating_sub(idle)) as f64 / 500.0
    );
    drop(streams);
}
