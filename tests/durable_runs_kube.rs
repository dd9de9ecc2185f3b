//! Runs that belong to their agent, on the test cluster: a background run
//! goes on in the agent's pod while the gateway (a host process) is killed
//! with SIGKILL and restarted; the restarted gateway follows it, records it
//! once on the CodexAgent and serves its result with `get_run`; the
//! CodexAgent shows the run while it goes and logs how it ended; and
//! `cancel_run` kills the run in the pod. Needs CODEX_MCP_TEST_KUBECONFIG.

mod support;

use std::time::{Duration, Instant};

use codex_mcp::operator::crd::CodexAgentStatus;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::{json, Value};
use support::fake_model::Reply;
use support::kube_gateway::{self, codex_agent, ready_pod, run_processes, KubeGateway};
use support::mcp_client::{McpClient, StepResult, Transport};

const AGENT: &str = "durable";

fn client(gateway: &KubeGateway) -> McpClient {
    McpClient::new(gateway.mcp_url(), Transport::Http)
        .header("X-Codex-Agent", AGENT)
        .request_timeout(Duration::from_secs(300))
}

fn structured(r: &StepResult) -> Value {
    assert!(r.ok() && !r.is_error(), "{r}");
    r.structured().cloned().unwrap()
}

async fn call(gateway: &KubeGateway, tool: &str, args: Value) -> Value {
    structured(&client(gateway).call_tool(tool, args).await)
}

/// Polls the CodexAgent's status until `done` holds.
async fn status_until(
    ns: &support::cluster::TestNamespace,
    within: Duration,
    done: impl Fn(&CodexAgentStatus) -> bool,
) -> CodexAgentStatus {
    let deadline = Instant::now() + within;
    loop {
        let status = codex_agent(ns, AGENT).await.status.unwrap_or_default();
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "status never got there: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_background_run_in_the_pod_survives_a_killed_gateway_and_cancel_run_kills_one() {
    let (ns, model) = kube_gateway::namespace_with_model("durable").await;
    let _operator = kube_gateway::start_operator(ns.name());
    // A short Lease: the killed gateway's claim ends soon.
    let extra = ["--run-lease-duration", "5"];
    let mut gateway = KubeGateway::start(ns.name(), &model, &extra);
    let t0 = Instant::now();

    // Later requests carry the earlier turns: the latest rule goes first.
    model.when_contains(
        "take-forever",
        Reply::silent(Duration::from_secs(120), Reply::text("never")),
    );
    model.when_contains("second-call", Reply::text("second reply"));
    model.when_contains(
        "durable-task",
        Reply::delayed(Duration::from_secs(15), Reply::text("durable done")),
    );
    // A first call brings the agent up (cold start kept out of the timing).
    model.push(Reply::text("warm"));
    call(&gateway, "chat", json!({"message": "warm-up"})).await;
    eprintln!("agent up: {:?}", t0.elapsed());
    let pods: Api<Pod> = ns.api();
    let pod = ready_pod(&ns, AGENT).await;

    let started = call(
        &gateway,
        "chat",
        json!({"message": "durable-task", "background": true}),
    )
    .await;
    assert_eq!(started["status"], "running", "{started}");
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    assert!(
        model.wait_for_requests(2, Duration::from_secs(60)).await,
        "codex never called the model"
    );

    // The CodexAgent shows the run going.
    let going = status_until(&ns, Duration::from_secs(10), |s| {
        s.active_runs == Some(1) && s.recent_runs.iter().any(|r| r.run_id == run_id)
    })
    .await;
    assert_eq!(going.recent_runs.last().unwrap().status.as_str(), "running");
    let table = kube_gateway::kubectl_ok(&["get", "cxa", "-n", ns.name()]);
    assert!(table.contains("ACTIVE"), "{table}");

    // The gateway dies; the run goes on in the pod without it.
    gateway = gateway.kill_and_restart();
    assert!(
        !run_processes(&pods, &pod).await.is_empty(),
        "the run died with the gateway"
    );

    // The restarted gateway serves the full result once the run is done.
    let deadline = Instant::now() + Duration::from_secs(90);
    let done = loop {
        let r = call(
            &gateway,
            "get_run",
            json!({"run_id": run_id, "wait_seconds": 30}),
        )
        .await;
        if r["status"] != "running" || Instant::now() > deadline {
            break r;
        }
    };
    assert_eq!(done["status"], "ok", "{done}");
    assert_eq!(done["result"]["reply"], "durable done", "{done}");

    // Recorded once: the warm-up and this run, with the thread the run set.
    let recorded = status_until(&ns, Duration::from_secs(30), |s| {
        s.recent_runs
            .iter()
            .any(|r| r.run_id == run_id && r.status.as_str() == "ok")
    })
    .await;
    assert_eq!(recorded.runs, Some(2), "{recorded:?}");
    assert!(recorded.thread_id.is_some());
    // A next call continues the conversation and is counted once more.
    let second = call(&gateway, "chat", json!({"message": "second-call"})).await;
    assert_eq!(second["reply"], "second reply");
    assert!(
        model
            .requests()
            .last()
            .unwrap()
            .to_string()
            .contains("durable-task"),
        "the next call did not continue the run's conversation"
    );
    let after = status_until(&ns, Duration::from_secs(10), |s| s.active_runs == Some(0)).await;
    assert_eq!(after.runs, Some(3), "{after:?}");
    assert_eq!(
        after
            .recent_runs
            .iter()
            .filter(|r| r.run_id == run_id)
            .count(),
        1
    );
    let described = kube_gateway::kubectl_ok(&["describe", "cxa", "-n", ns.name()]);
    assert!(described.contains(&run_id), "{described}");

    // cancel_run stops a run in the pod: no Codex process is left.
    let requests = model.requests().len();
    let slow = call(
        &gateway,
        "chat",
        json!({"message": "take-forever", "background": true}),
    )
    .await;
    let slow_id = slow["run_id"].as_str().unwrap().to_owned();
    assert!(
        model
            .wait_for_requests(requests + 1, Duration::from_secs(60))
            .await,
        "codex never called the model"
    );
    assert!(!run_processes(&pods, &pod).await.is_empty());
    let cancelled = call(&gateway, "cancel_run", json!({"run_id": slow_id})).await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut left = run_processes(&pods, &pod).await;
    while !left.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        left = run_processes(&pods, &pod).await;
    }
    assert!(left.is_empty(), "codex survived cancel_run: {left:?}");
    let logged = status_until(&ns, Duration::from_secs(15), |s| {
        s.recent_runs
            .iter()
            .any(|r| r.run_id == slow_id && r.status.as_str() == "cancelled")
    })
    .await;
    assert_eq!(logged.active_runs, Some(0), "{logged:?}");
    eprintln!("test took {:?}", t0.elapsed());
    ns.cleanup().await;
}
