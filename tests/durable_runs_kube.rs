//! Runs that belong to their agent, on the test cluster: a background run
//! goes on in the agent's pod while the gateway (a host process) is killed
//! with SIGKILL and restarted; the restarted gateway follows it, records it
//! once on the CodexAgent and serves its result with `get_run`; the
//! CodexAgent shows the run while it goes and logs how it ended; and
//! `cancel_run` kills the run in the pod.
//!
//! And at real length, with two gateway replicas: a 3-minute `implement` as
//! an MCP task and another as a background run, both started through one
//! replica, which is then killed for good; the other replica serves both
//! results, and each turn ran once. Needs CODEX_MCP_TEST_KUBECONFIG.

mod support;

use std::time::{Duration, Instant};

use codex_mcp::api::crd::{CodexAgentStatus, Phase};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::{json, Value};
use support::fake_model::Reply;
use support::kube_gateway::{self, codex_agent, ready_pod, run_processes, KubeGateway};
use support::long_turn::{assert_both_turns_done, slow_implement};
use support::mcp_client::{McpClient, StepResult, Transport};
use support::tasks_client::{task_id, TasksClient};

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

#[tokio::test]
async fn three_minute_runs_survive_the_replica_that_started_them() {
    let (ns, model) = kube_gateway::namespace_with_model("replicas").await;
    let _operator = kube_gateway::start_operator(ns.name());
    let extra = ["--run-lease-duration", "5"];
    let mut starter = KubeGateway::start(ns.name(), &model, &extra);
    let other = KubeGateway::start(ns.name(), &model, &extra);
    let pods: Api<Pod> = ns.api();

    // Later requests carry the earlier turns: the latest rule goes first.
    model.when_contains("after-the-replica", Reply::text("next turn"));
    model.when_contains("tasked-slow", slow_implement("tasked.py"));
    model.when_contains("background-slow", slow_implement("background.py"));
    model.when_contains("warm-up", Reply::text("warm"));
    let tasks = |gw: &KubeGateway| TasksClient::new(gw.mcp_url()).header("X-Codex-Agent", "tasked");
    let plain = |gw: &KubeGateway| {
        McpClient::new(gw.mcp_url(), Transport::Http)
            .header("X-Codex-Agent", "backgrounded")
            .request_timeout(Duration::from_secs(300))
    };
    // Both agents come up first (cold starts kept out of the turn).
    let (warm_tasked, warm_plain) = (tasks(&other).without_tasks(), plain(&other));
    let (a, b) = tokio::join!(
        warm_tasked.call_tool("chat", json!({"message": "warm-up"})),
        warm_plain.call_tool("chat", json!({"message": "warm-up"})),
    );
    assert_eq!(a["result"]["structuredContent"]["reply"], "warm", "{a}");
    structured(&b);

    let t0 = Instant::now();
    let task = task_id(
        &tasks(&starter)
            .call_tool(
                "implement",
                json!({"task": "tasked-slow: write tasked.py", "target_files": ["tasked.py"]}),
            )
            .await,
    );
    let started = structured(
        &plain(&starter)
            .call_tool(
                "implement",
                json!({"task": "background-slow: write background.py",
                       "target_files": ["background.py"], "background": true}),
            )
            .await,
    );
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    assert!(
        model
            .wait_for_requests(2 + 6, Duration::from_secs(120))
            .await,
        "the turns never reached their long step"
    );

    // The replica that started both is gone for good; the runs go on.
    starter.kill();
    let killed_at = t0.elapsed();
    for agent in ["tasked", "backgrounded"] {
        let pod = ready_pod(&ns, agent).await;
        assert!(
            !run_processes(&pods, &pod).await.is_empty(),
            "{agent}: the run died with its replica"
        );
    }

    let poller = tasks(&other);
    let poll_task = poller.poll_until_done(&task, Duration::from_secs(300));
    let poll_run = async {
        loop {
            let got = structured(
                &plain(&other)
                    .call_tool("get_run", json!({"run_id": run_id, "wait_seconds": 30}))
                    .await,
            );
            if got["status"] != "running" {
                return got;
            }
        }
    };
    let ((task_done, messages), run_done) = tokio::join!(poll_task, poll_run);
    eprintln!(
        "starter killed after {killed_at:?}, done after {:?}; status messages: {messages:?}",
        t0.elapsed()
    );
    assert_both_turns_done(t0.elapsed(), &task_done, &run_done);

    // Each turn ran once: three model steps, one file, one log entry.
    for (marker, agent, file) in [
        ("tasked-slow", "tasked", "tasked.py"),
        ("background-slow", "backgrounded", "background.py"),
    ] {
        let steps = model
            .requests()
            .iter()
            .filter(|r| r.to_string().contains(marker))
            .count();
        assert_eq!(steps, 3, "{marker}: model steps");
        let pod = ready_pod(&ns, agent).await;
        let listing =
            support::cluster::exec_ok(&pods, &pod, &["sh", "-c", "cd /agent/workspace && ls"])
                .await;
        assert_eq!(listing.trim(), file, "{agent}'s workspace");
        let status = codex_agent(&ns, agent).await.status.unwrap_or_default();
        let logged: Vec<_> = status
            .recent_runs
            .iter()
            .filter(|r| r.run_id == task || r.run_id == run_id)
            .collect();
        assert_eq!(logged.len(), 1, "{agent}: {status:?}");
        assert_eq!(logged[0].status.as_str(), "ok", "{agent}: {status:?}");
    }

    // The conversation holds the turn once, and goes on through the other replica.
    let next = tasks(&other)
        .without_tasks()
        .call_tool("chat", json!({"message": "after-the-replica"}))
        .await;
    assert_eq!(
        next["result"]["structuredContent"]["reply"], "next turn",
        "{next}"
    );
    let last = model.requests().last().unwrap().to_string();
    assert_eq!(
        last.matches("tasked-slow: write tasked.py").count(),
        1,
        "{last}"
    );
    ns.cleanup().await;
}

/// `kubectl patch cxa NAME` with a merge patch.
fn patch_agent(ns: &support::cluster::TestNamespace, name: &str, extra: &[&str], patch: &str) {
    let mut args = vec![
        "patch",
        "cxa",
        name,
        "-n",
        ns.name(),
        "--type=merge",
        "-p",
        patch,
    ];
    args.extend_from_slice(extra);
    kube_gateway::kubectl_ok(&args);
}

#[tokio::test]
async fn the_operator_keeps_an_idle_agent_up_while_its_run_goes_on_in_the_pod() {
    let (ns, model) = kube_gateway::namespace_with_model("liverun").await;
    let operator = kube_gateway::start_operator(ns.name());
    let mut gateway = KubeGateway::start(ns.name(), &model, &[]);
    let pods: Api<Pod> = ns.api();
    let agent = "idler";
    let client = || {
        McpClient::new(gateway.mcp_url(), Transport::Http)
            .header("X-Codex-Agent", agent)
            .request_timeout(Duration::from_secs(300))
    };
    model.when_contains(
        "quiet-run",
        Reply::silent(Duration::from_secs(40), Reply::text("done")),
    );
    model.when_contains("warm-up", Reply::text("warm"));
    structured(
        &client()
            .call_tool("chat", json!({"message": "warm-up"}))
            .await,
    );
    let started = structured(
        &client()
            .call_tool("chat", json!({"message": "quiet-run", "background": true}))
            .await,
    );
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    assert!(
        model.wait_for_requests(2, Duration::from_secs(60)).await,
        "codex never called the model"
    );
    let pod = ready_pod(&ns, agent).await;

    // No gateway is left to say a run goes on (as after a crash that left
    // no marker), and the agent is long past its idle timeout.
    gateway.kill();
    let name = codex_agent(&ns, agent).await.metadata.name.unwrap();
    patch_agent(
        &ns,
        &name,
        &["--subresource=status"],
        r#"{"status":{"activeRuns":0}}"#,
    );
    patch_agent(&ns, &name, &[], r#"{"spec":{"idleTimeoutSeconds":1}}"#);

    // The operator asks the pod, and leaves the agent up while the run goes on.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !operator
        .logs()
        .iter()
        .any(|l| l.contains("a run goes on in its pod: not suspending"))
    {
        assert!(
            Instant::now() < deadline,
            "the operator never asked the pod"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(!codex_agent(&ns, agent).await.spec.suspended);
    assert!(
        !run_processes(&pods, &pod).await.is_empty(),
        "the run was cut short"
    );

    // Once the run has ended, the idle agent is suspended.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let cr = codex_agent(&ns, agent).await;
        let phase = cr.status.and_then(|s| s.phase);
        if cr.spec.suspended && phase == Some(Phase::Suspended) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never suspended after its run ended ({phase:?})"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Resumed, its volume shows the run ended on its own, with its answer.
    patch_agent(
        &ns,
        &name,
        &[],
        r#"{"spec":{"idleTimeoutSeconds":3600,"suspended":false}}"#,
    );
    let pod = ready_pod(&ns, agent).await;
    let result = support::cluster::exec_ok(
        &pods,
        &pod,
        &["cat", &format!("/agent/runs/{run_id}/result.json")],
    )
    .await;
    assert!(
        result.contains("\"ok\":true") && result.contains("\"final_message\":\"done\""),
        "the run was cut short: {result}"
    );
    ns.cleanup().await;
}
