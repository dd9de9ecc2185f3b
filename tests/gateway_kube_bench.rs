//! Figures for `codex-mcp gateway` on the test cluster, printed, not asserted:
//! `cargo test --test gateway_kube_bench -- --ignored --nocapture`.
//!
//! - a cold first call (no CodexAgent yet → result) and warm calls, as the
//!   MCP client sees them;
//! - the exec overhead: a trivial command through pods/exec vs a local spawn.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::json;
use support::cluster;
use support::fake_model::Reply;
use support::kube_gateway::{self, KubeGateway};
use support::mcp_client::{McpClient, Transport};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn summary(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{name:<40} n={:<3} p50 {:>8.1} ms   p95 {:>8.1} ms",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.95)
    );
}

#[tokio::test]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn cold_and_warm_calls_and_exec_overhead() {
    let (ns, model) = kube_gateway::namespace_with_model("gwk-bench").await;
    let _operator = kube_gateway::start_operator(ns.name());
    let gateway = KubeGateway::start(ns.name(), &model, &[]);
    let client = |agent: &str| {
        McpClient::new(gateway.mcp_url(), Transport::Http)
            .header("X-Codex-Agent", agent)
            .request_timeout(Duration::from_secs(300))
    };

    let mut cold = Vec::new();
    for i in 0..3 {
        model.push(Reply::text("ok"));
        let r = client(&format!("bench{i}"))
            .call_tool("chat", json!({"message": "say ok"}))
            .await;
        assert!(r.ok() && !r.is_error(), "{r}");
        cold.push(r.elapsed().as_secs_f64() * 1000.0);
    }
    let mut warm = Vec::new();
    for _ in 0..10 {
        model.push(Reply::text("ok"));
        let r = client("bench0")
            .call_tool("chat", json!({"message": "say ok"}))
            .await;
        assert!(r.ok() && !r.is_error(), "{r}");
        warm.push(r.elapsed().as_secs_f64() * 1000.0);
    }

    let pods: Api<Pod> = ns.api();
    let pod = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find_map(|p| p.metadata.name)
        .expect("an agent pod");
    let (mut exec, mut local) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let t = Instant::now();
        let out = cluster::exec_with(
            &pods,
            &pod,
            Some("agent"),
            &["codex-mcp", "--version"],
            None,
            Duration::from_secs(30),
        )
        .await;
        assert!(out.success(), "{}", out.stderr);
        exec.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let status = tokio::process::Command::new(support::codex_mcp_bin())
            .arg("--version")
            .output()
            .await
            .unwrap();
        assert!(status.status.success());
        local.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!();
    summary("cold first call (new CodexAgent)", cold);
    summary("warm call", warm);
    summary("codex-mcp --version via pods/exec", exec);
    summary("codex-mcp --version, local spawn", local);
    drop(gateway);
    ns.cleanup().await;
}
