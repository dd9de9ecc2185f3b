//! Runs that belong to their agent (local backend): a background run goes
//! on while the gateway is killed with SIGKILL and restarted, its result is
//! recorded exactly once and served by `get_run`, a second call on the
//! agent waits for it, `cancel_run` kills it, another tenant learns
//! nothing, and no credential reaches the run's directory.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use support::fake_model::{FakeModel, Reply};
use support::gateway::{
    processes_mentioning, wait_until_gone, Gateway, LocalGateway, TEST_API_KEY,
};
use support::mcp_client::{McpClient, StepResult, Transport};
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

    fn client(&self, token: &str) -> McpClient {
        McpClient::new(self.gateway.mcp_url(), Transport::Http)
            .bearer(token)
            .header("X-Codex-Agent", AGENT)
            .request_timeout(Duration::from_secs(300))
    }

    async fn call(&self, token: &str, tool: &str, args: Value) -> StepResult {
        self.client(token).call_tool(tool, args).await
    }

    fn agent_dir(&self) -> PathBuf {
        self.dir.path().join("tenants/alpha/agents").join(AGENT)
    }

    fn workspace(&self) -> String {
        self.agent_dir().join("workspace").display().to_string()
    }

    async fn status(&self) -> Value {
        let r = self.call(ALPHA, "get_agent_status", json!({})).await;
        assert!(r.ok() && !r.is_error(), "{r}");
        r.structured().unwrap()["agent"].clone()
    }
}

fn structured(r: &StepResult) -> Value {
    assert!(r.ok() && !r.is_error(), "{r}");
    r.structured().cloned().unwrap()
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn assert_no_credentials(run_dir: &Path) {
    let all = files(run_dir);
    assert!(!all.is_empty(), "{} is empty", run_dir.display());
    for f in all {
        let bytes = std::fs::read(&f).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(TEST_API_KEY),
            "credential in {}",
            f.display()
        );
    }
}

#[tokio::test]
async fn a_background_run_survives_a_gateway_killed_mid_run() {
    let mut env = Env::start().await;
    // The second call's request holds the first turn too: its rule first.
    env.model
        .when_contains("second-call", Reply::text("second reply"));
    env.model.when_contains(
        "durable-task",
        Reply::delayed(Duration::from_secs(8), Reply::text("durable done")),
    );

    let started = structured(
        &env.call(
            ALPHA,
            "chat",
            json!({"message": "durable-task", "background": true}),
        )
        .await,
    );
    assert_eq!(started["status"], "running", "{started}");
    assert_eq!(started["agent_id"], AGENT);
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    assert!(
        env.model
            .wait_for_requests(1, Duration::from_secs(60))
            .await,
        "codex never called the model"
    );
    let run_dir = env.agent_dir().join("runs").join(&run_id);
    assert!(run_dir.join("lock").is_file(), "{}", run_dir.display());
    let running = structured(&env.call(ALPHA, "get_run", json!({"run_id": run_id})).await);
    assert_eq!(running["status"], "running", "{running}");

    // The gateway dies; the run goes on without it.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(env.gateway.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !processes_mentioning(&env.workspace()).is_empty(),
        "the run died with the gateway"
    );
    env.gateway = env.gateway.restart();

    // A call on the agent waits for the run the previous gateway started.
    let second = structured(
        &env.call(ALPHA, "chat", json!({"message": "second-call"}))
            .await,
    );
    assert_eq!(second["reply"], "second reply");
    let done = structured(&env.call(ALPHA, "get_run", json!({"run_id": run_id})).await);
    assert_eq!(done["status"], "ok", "{done}");
    assert_eq!(done["result"]["reply"], "durable done", "{done}");

    let agent = env.status().await;
    assert_eq!(agent["runs"], 2, "{agent}");
    let runs = agent["recent_runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{agent}");
    assert_eq!(runs[0]["run_id"], run_id.as_str());
    assert_eq!(runs[0]["status"], "ok");
    assert!(runs[0]["background"].as_bool().unwrap());
    assert_eq!(runs[1]["status"], "ok");
    assert!(
        runs[0]["finished_at"].as_str().unwrap() <= runs[1]["started_at"].as_str().unwrap(),
        "the second call started before the first run ended: {agent}"
    );
    // Both turns are one conversation: the second continued the first's thread.
    let thread = agent["thread_id"].as_str().unwrap().to_owned();
    let second_request = env.model.requests().last().cloned().unwrap();
    assert!(
        second_request.to_string().contains("durable-task"),
        "the second call did not continue the first's conversation"
    );

    let metrics = reqwest::get(format!("{}/metrics", env.gateway.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"codex_mcp_runs_resumed_total{state="running"} 1"#),
        "{metrics}"
    );

    // Another tenant learns nothing: its answer is that of a random id.
    let theirs = env.call(BETA, "get_run", json!({"run_id": run_id})).await;
    let random = format!("{AGENT}.0123456789abcdef0123456789abcdef");
    let made_up = env.call(BETA, "get_run", json!({"run_id": random})).await;
    assert!(
        theirs.is_error() && made_up.is_error(),
        "{theirs} {made_up}"
    );
    assert_eq!(
        theirs.text().replace(&run_id, "ID"),
        made_up.text().replace(&random, "ID")
    );
    let cancel = env
        .call(BETA, "cancel_run", json!({"run_id": run_id}))
        .await;
    assert_eq!(
        cancel.text().replace(&run_id, "ID"),
        made_up.text().replace(&random, "ID")
    );

    // Recorded exactly once, across yet another restart.
    env.gateway = env.gateway.restart();
    let again = env.status().await;
    assert_eq!(again["runs"], 2, "{again}");
    assert_eq!(again["thread_id"], thread.as_str());
    let served = structured(&env.call(ALPHA, "get_run", json!({"run_id": run_id})).await);
    assert_eq!(served["result"]["reply"], "durable done", "{served}");

    assert_no_credentials(&run_dir);
    assert!(run_dir.join("events.jsonl").is_file());
    assert!(run_dir.join("recorded").is_file());
}

#[tokio::test]
async fn cancel_run_kills_the_run_and_the_log_keeps_it() {
    let env = Env::start().await;
    env.model.push(Reply::Stall(Duration::from_secs(120)));
    let started = structured(
        &env.call(
            ALPHA,
            "chat",
            json!({"message": "take forever", "background": true}),
        )
        .await,
    );
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    assert!(
        env.model
            .wait_for_requests(1, Duration::from_secs(60))
            .await,
        "codex never called the model"
    );
    let ws = env.workspace();
    assert!(!processes_mentioning(&ws).is_empty(), "codex runs in {ws}");
    let cancelled = structured(
        &env.call(ALPHA, "cancel_run", json!({"run_id": run_id}))
            .await,
    );
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert!(
        wait_until_gone(&ws, Duration::from_secs(2)).await,
        "codex survived cancel_run: {:?}",
        processes_mentioning(&ws)
    );
    let agent = env.status().await;
    let runs = agent["recent_runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{agent}");
    assert_eq!(runs[0]["status"], "cancelled", "{agent}");
    let listed = structured(&env.call(ALPHA, "list_sessions", json!({})).await);
    assert_eq!(
        listed["sessions"][0]["recent_runs"][0]["run_id"],
        run_id.as_str()
    );
    assert_no_credentials(&env.agent_dir().join("runs").join(&run_id));
}
