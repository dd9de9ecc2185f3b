//! Long-run benchmark (`cargo bench --bench runs`): prints figures, asserts
//! nothing about speed.
//!
//! - MCP Tasks: how long a `tools/call` takes to answer with a task (the run
//!   created durably before the answer), and `tasks/get` latency while the
//!   gateway is busy (four runs going on, eight clients polling at once);
//! - what a durable run adds over a direct one: `agent-run start` (detached)
//!   plus `agent-run follow` against the same `agent-run` streaming its run
//!   on stdout, both against the same fake model.

#[path = "common/stats.rs"]
mod stats;
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stats::{ms_since, summary};
use support::fake_model::{FakeModel, Reply, API_KEY_ENV, MODEL};
use support::gateway::{Gateway, GatewayOptions, TEST_API_KEY};
use support::tasks_client::{task_id, TasksClient};
use tokio::io::AsyncWriteExt;

const RUNS: usize = 30;
const BUSY_RUNS: usize = 4;
const POLLERS: usize = 8;
const POLL_WINDOW: Duration = Duration::from_secs(10);

/// The request `agent-run` reads, for a one-step `chat`-like turn.
fn run_request(model: &FakeModel, dir: &Path) -> Value {
    json!({
        "prompt": "say ok", "model": MODEL, "sandbox": "workspace-write",
        "provider": {"id": "fake", "base_url": model.base_url(), "env_key": API_KEY_ENV},
        "credentials": {"api_key": TEST_API_KEY},
        "workspace": dir.join("workspace"), "codex_home": dir.join("codex-home"),
    })
}

/// Runs `codex-mcp agent-run ARGS` with `stdin`; answers its stdout.
async fn agent_run(args: &[&str], stdin: Option<String>) -> String {
    let mut child = tokio::process::Command::new(support::codex_mcp_bin())
        .arg("agent-run")
        .arg("--codex-bin")
        .arg(support::codex_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("agent-run");
    let mut pipe = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        pipe.write_all(text.as_bytes()).await.unwrap();
    }
    drop(pipe);
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "agent-run {args:?} failed: {stdout}");
    stdout
}

async fn direct_run(model: &FakeModel, dir: &Path) -> f64 {
    let request = format!("{}\n", run_request(model, dir));
    let started = Instant::now();
    let out = agent_run(&[], Some(request)).await;
    assert!(out.contains("\"ok\""), "no result: {out}");
    ms_since(started)
}

async fn durable_run(model: &FakeModel, dir: &Path, i: usize) -> f64 {
    let request = format!("{}\n", run_request(model, dir));
    let run_dir = dir.join("runs").join(format!("bench.{i:032x}"));
    std::fs::create_dir_all(run_dir.parent().unwrap()).unwrap();
    let run_dir = run_dir.to_string_lossy().into_owned();
    let started = Instant::now();
    let first = agent_run(&["start", "--run-dir", &run_dir], Some(request)).await;
    assert!(first.contains("started"), "not started: {first}");
    let out = agent_run(&["follow", "--run-dir", &run_dir], None).await;
    assert!(out.contains("\"ok\""), "no result: {out}");
    ms_since(started)
}

/// Tasks on one agent, one after another: how long the answer with the
/// task takes (each task is polled to its end before the next).
async fn task_creation(gateway: &Gateway) -> Vec<f64> {
    let client = TasksClient::new(gateway.mcp_url()).header("X-Codex-Agent", "creator");
    let mut out = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let answer = client.call_tool("chat", json!({"message": "say ok"})).await;
        out.push(ms_since(started));
        let (done, _) = client
            .poll_until_done(&task_id(&answer), Duration::from_secs(60))
            .await;
        assert_eq!(done["status"], "completed", "{done}");
    }
    out
}

/// `tasks/get` latencies of `POLLERS` clients polling at once for
/// `POLL_WINDOW`, while `BUSY_RUNS` runs go on.
async fn busy_polls(gateway: &Gateway, model: &FakeModel) -> Vec<f64> {
    model.when_contains("stay busy", Reply::Stall(Duration::from_secs(120)));
    let mut ids = Vec::new();
    for i in 0..BUSY_RUNS {
        let client =
            TasksClient::new(gateway.mcp_url()).header("X-Codex-Agent", &format!("busy{i}"));
        let answer = client
            .call_tool("chat", json!({"message": "stay busy"}))
            .await;
        ids.push((client, task_id(&answer)));
    }
    assert!(
        model
            .wait_for_requests(RUNS + BUSY_RUNS, Duration::from_secs(120))
            .await,
        "the busy runs never reached the model"
    );
    let deadline = Instant::now() + POLL_WINDOW;
    let mut pollers = Vec::new();
    for p in 0..POLLERS {
        let (client, id) = ids[p % ids.len()].clone();
        pollers.push(tokio::spawn(async move {
            let mut ms = Vec::new();
            while Instant::now() < deadline {
                let started = Instant::now();
                let got = client.get_task(&id).await;
                ms.push(ms_since(started));
                assert_eq!(got["result"]["status"], "working", "{got}");
            }
            ms
        }));
    }
    let mut all = Vec::new();
    for p in pollers {
        all.extend(p.await.unwrap());
    }
    for (client, id) in ids {
        client.cancel_task(&id).await;
    }
    all
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeModel::start().await;
    model.when_contains("say ok", Reply::text("ok"));
    println!("codex-mcp long-run benchmark (real Codex CLI; fake model on loopback)");

    let gateway = Gateway::start(GatewayOptions::new(&dir.path().join("gw"), &model));
    summary(
        "task answered (tools/call -> task)",
        task_creation(&gateway).await,
    );
    let polls = busy_polls(&gateway, &model).await;
    let rate = polls.len() as f64 / POLL_WINDOW.as_secs_f64();
    summary(
        &format!("tasks/get, {BUSY_RUNS} runs going, {POLLERS} pollers"),
        polls,
    );
    println!("{:<40} {rate:>8.0} req/s", "tasks/get throughput");
    drop(gateway);

    // Interleaved, so drift in the machine's load hits both sides alike.
    let (mut direct, mut durable) = (Vec::new(), Vec::new());
    for i in 0..RUNS {
        direct.push(direct_run(&model, dir.path()).await);
        durable.push(durable_run(&model, dir.path(), i).await);
    }
    let (d50, d95) = summary("agent-run, direct", direct);
    let (r50, r95) = summary("agent-run start + follow (durable)", durable);
    println!(
        "{:<40} p50 {:>+8.1} ms   p95 {:>+8.1} ms",
        "durable run overhead",
        r50 - d50,
        r95 - d95
    );
}
