//! The MCP Tasks extension (SEP-2663) on the local backend, through a
//! 2026-07-28 client that declares it: `implement` becomes a task, polling
//! `tasks/get` shows Codex's progress and then the result with its diff;
//! `tasks/cancel` kills the run; another tenant learns nothing; a client
//! without the extension gets an ordinary result; a 2025-11-25 session
//! that declared it at initialize gets tasks too; a gateway killed with
//! SIGKILL mid-task and restarted serves the task's result.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::fake_model::{implement_json, FakeModel, Reply};
use support::gateway::{processes_mentioning, wait_until_gone, Gateway, LocalGateway};
use support::raw_mcp::RawMcp;
use support::tasks_client::{task_id, TasksClient, TASKS_EXTENSION};
use support::tenants::{gateway_with_tenants, ALPHA, BETA};

const AGENT: &str = "worker";

struct Env {
    dir: support::gateway::TestDir,
    model: FakeModel,
    gateway: Gateway,
}

impl Env {
    async fn start() -> Self {
        let LocalGateway {
            dir,
            model,
            gateway,
        } = gateway_with_tenants().await;
        Self {
            dir,
            model,
            gateway,
        }
    }

    fn client(&self, token: &str) -> TasksClient {
        TasksClient::new(self.gateway.mcp_url())
            .bearer(token)
            .header("X-Codex-Agent", AGENT)
    }

    fn agent_dir(&self) -> PathBuf {
        self.dir.path().join("tenants/alpha/agents").join(AGENT)
    }

    fn workspace(&self) -> String {
        self.agent_dir().join("workspace").display().to_string()
    }

    async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.gateway.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

fn error(answer: &Value) -> &Value {
    answer
        .get("error")
        .unwrap_or_else(|| panic!("no error: {answer}"))
}

#[tokio::test]
async fn implement_becomes_a_task_with_progress_and_its_diff() {
    let env = Env::start().await;
    let client = env.client(ALPHA);

    // A client without Tasks, and a tool that is not Codex-backed: ordinary results.
    env.model.push(Reply::text("plain reply"));
    let plain = client
        .clone()
        .without_tasks()
        .call_tool("chat", json!({"message": "hi"}))
        .await;
    assert_eq!(
        plain["result"]["structuredContent"]["reply"], "plain reply",
        "{plain}"
    );
    let health = client.call_tool("health_check", json!({})).await;
    assert!(
        health["result"]["structuredContent"]["version"].is_string(),
        "{health}"
    );

    env.model
        .push(Reply::add_file("hello.py", "print('hello')"));
    env.model.push(Reply::silent(
        Duration::from_secs(4),
        Reply::Json(implement_json(&["hello.py"])),
    ));
    let started = Instant::now();
    let answer = client
        .call_tool(
            "implement",
            json!({"task": "Write hello.py", "target_files": ["hello.py"]}),
        )
        .await;
    let id = task_id(&answer);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the task was not answered at once"
    );

    let (done, messages) = client.poll_until_done(&id, Duration::from_secs(90)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(
        messages.iter().any(|m| m.contains("file changed")),
        "status messages: {messages:?}"
    );
    let result = &done["result"];
    assert_eq!(result["isError"], false, "{done}");
    let changes = result["structuredContent"]["changes"].as_array().unwrap();
    assert_eq!(changes[0]["file"], "hello.py", "{done}");
    assert!(
        changes[0]["diff"]
            .as_str()
            .unwrap()
            .contains("+print('hello')"),
        "{done}"
    );
    assert!(result["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("hello.py"));

    // Tasks requests from a client that did not declare the extension.
    let undeclared = client.clone().without_tasks().get_task(&id).await;
    assert_eq!(error(&undeclared)["code"], -32021, "{undeclared}");
    // An unknown task.
    let unknown = client
        .get_task(&format!("{AGENT}.0123456789abcdef0123456789abcdef"))
        .await;
    assert_eq!(error(&unknown)["code"], -32602, "{unknown}");

    let metrics = env.metrics().await;
    for series in [
        r#"codex_mcp_tasks_total{state="working"} 1"#,
        r#"codex_mcp_tasks_total{state="completed"} 1"#,
        r#"codex_mcp_task_duration_seconds_count{state="completed"} 1"#,
        r#"codex_mcp_task_polls_total{state="completed"} 1"#,
        "codex_mcp_tasks_working 0",
    ] {
        assert!(metrics.contains(series), "{series} missing:\n{metrics}");
    }
}

#[tokio::test]
async fn tasks_cancel_kills_the_run_and_another_tenant_learns_nothing() {
    let env = Env::start().await;
    env.model.push(Reply::Stall(Duration::from_secs(120)));
    let client = env.client(ALPHA);
    let id = task_id(
        &client
            .call_tool("chat", json!({"message": "take forever"}))
            .await,
    );
    assert!(
        env.model
            .wait_for_requests(1, Duration::from_secs(60))
            .await,
        "codex never called the model"
    );
    let ws = env.workspace();
    assert!(!processes_mentioning(&ws).is_empty(), "codex runs in {ws}");

    // Another tenant, same agent name: the answer of a made-up id.
    let beta = env.client(BETA);
    let random = format!("{AGENT}.0123456789abcdef0123456789abcdef");
    for (theirs, made_up) in [
        (beta.get_task(&id).await, beta.get_task(&random).await),
        (beta.cancel_task(&id).await, beta.cancel_task(&random).await),
    ] {
        assert_eq!(
            error(&theirs).to_string().replace(&id, "ID"),
            error(&made_up).to_string().replace(&random, "ID")
        );
    }
    assert!(
        !processes_mentioning(&ws).is_empty(),
        "beta stopped the run"
    );

    let ack = client.cancel_task(&id).await;
    assert_eq!(ack["result"]["resultType"], "complete", "{ack}");
    assert!(
        wait_until_gone(&ws, Duration::from_secs(1)).await,
        "codex survived tasks/cancel: {:?}",
        processes_mentioning(&ws)
    );
    let (done, _) = client.poll_until_done(&id, Duration::from_secs(10)).await;
    assert_eq!(done["status"], "cancelled", "{done}");
}

#[tokio::test]
async fn a_task_survives_a_gateway_killed_mid_task() {
    let mut env = Env::start().await;
    env.model.when_contains(
        "durable-task",
        Reply::delayed(Duration::from_secs(6), Reply::text("durable done")),
    );
    let id = task_id(
        &env.client(ALPHA)
            .call_tool("chat", json!({"message": "durable-task"}))
            .await,
    );
    assert!(
        env.model
            .wait_for_requests(1, Duration::from_secs(60))
            .await,
        "codex never called the model"
    );
    // A second task waits for the agent's run: the gateway dies before it starts.
    let queued = task_id(
        &env.client(ALPHA)
            .call_tool("chat", json!({"message": "queued-task"}))
            .await,
    );
    env.gateway = env.gateway.kill_and_restart();

    let client = env.client(ALPHA);
    let (lost, _) = client
        .poll_until_done(&queued, Duration::from_secs(10))
        .await;
    assert_eq!(lost["status"], "completed", "{lost}");
    assert_eq!(lost["result"]["isError"], true, "{lost}");
    assert!(
        lost["statusMessage"]
            .as_str()
            .unwrap()
            .contains("before the run started"),
        "{lost}"
    );
    let (done, _) = client.poll_until_done(&id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        done["result"]["structuredContent"]["reply"], "durable done",
        "{done}"
    );
    assert!(env.agent_dir().join("runs").join(&id).is_dir());
    assert!(
        !env.model
            .requests()
            .iter()
            .any(|r| r.to_string().contains("queued-task")),
        "the lost task ran"
    );
}

#[tokio::test]
async fn a_session_that_declared_tasks_at_initialize_gets_a_task() {
    let env = Env::start().await;
    env.model.push(Reply::text("session reply"));
    let raw = RawMcp::new(env.gateway.mcp_url())
        .bearer(ALPHA)
        .header("X-Codex-Agent", AGENT.parse().unwrap());
    let init = raw
        .initialize_with(json!({"extensions": {TASKS_EXTENSION: {}}}))
        .await;
    let extensions = &init.message["result"]["capabilities"]["extensions"];
    assert!(extensions.get(TASKS_EXTENSION).is_some(), "{}", init.text);
    let session = init.session.clone().expect("a session");
    let answer = raw
        .call(&session, 1, "chat", json!({"message": "hi"}))
        .await
        .message;
    let id = task_id(&answer);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = raw
            .send(
                Some(&session),
                json!({"jsonrpc": "2.0", "id": 2, "method": "tasks/get",
                       "params": {"taskId": id}}),
            )
            .await
            .message;
        let result = &got["result"];
        assert!(result.is_object(), "{got}");
        if result["status"] != "working" {
            assert_eq!(result["status"], "completed", "{got}");
            assert_eq!(
                result["result"]["structuredContent"]["reply"], "session reply",
                "{got}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "still working: {got}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
