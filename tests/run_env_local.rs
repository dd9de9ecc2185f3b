//! What a local run's commands and files hold, and what the gateway says
//! before any run: the model key reaches Codex but never the commands it
//! runs nor the agent's directories (after a completed and a cancelled run);
//! a relative data directory works; no credential means not ready.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use support::fake_model::{tool_outputs, FakeModel, Reply};
use support::gateway::{Gateway, GatewayOptions, TEST_API_KEY};
use support::mcp_client::{McpClient, Step, Transport};

fn client(gateway: &Gateway, agent: &str) -> McpClient {
    McpClient::new(gateway.mcp_url(), Transport::Http)
        .header("X-Codex-Agent", agent)
        .request_timeout(Duration::from_secs(300))
}

/// Files under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else if std::fs::read(&p)
                .map(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
                .unwrap_or(false)
            {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

#[tokio::test]
async fn the_key_reaches_no_command_and_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeModel::start().await;
    let gateway = Gateway::start(GatewayOptions::new(&dir.path().join("data"), &model));
    let agent_dir = dir.path().join("data/agents/probe");

    let probe = "env; grep -r . $CODEX_HOME 2>/dev/null | head -c 200000";
    model.when_contains("show the env", Reply::exec_then(probe, "shown"));
    let r = client(&gateway, "probe")
        .call_tool("chat", json!({"message": "show the env"}))
        .await;
    assert!(r.ok() && !r.is_error(), "{r}");
    let outputs: Vec<String> = model.requests().iter().flat_map(tool_outputs).collect();
    let out = outputs.join("\n");
    assert!(out.contains("PATH="), "the command ran: {out}");
    assert!(!out.contains(TEST_API_KEY), "a command saw the key: {out}");
    assert!(
        !model.bearer_tokens().is_empty()
            && model.bearer_tokens().iter().all(|t| t == TEST_API_KEY),
        "Codex still got the key"
    );
    assert_eq!(
        files_containing(&agent_dir, TEST_API_KEY),
        Vec::<String>::new()
    );

    // Cancelled while a command runs: nothing with the key stays behind either.
    model.when_contains(
        "wait here",
        Reply::exec_then("env > env.txt; sleep 30", "late"),
    );
    let r = client(&gateway, "waiter")
        .run(vec![Step::call_tool(
            "chat",
            json!({"message": "wait here"}),
        )
        .cancel_after(Duration::from_secs(6))])
        .await
        .remove(0);
    assert!(r.cancelled(), "{r}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let agent_dir = dir.path().join("data/agents/waiter");
    let env_file = agent_dir.join("workspace/env.txt");
    assert!(env_file.is_file(), "the command ran before the cancel");
    assert_eq!(
        files_containing(&agent_dir, TEST_API_KEY),
        Vec::<String>::new()
    );
    assert!(!agent_dir.join("codex-home/shell_snapshots").exists());
}

#[tokio::test]
async fn a_relative_data_dir_works() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeModel::start().await;
    let mut options = GatewayOptions::new(Path::new("rel-data"), &model);
    options.cwd = Some(dir.path().to_path_buf());
    let gateway = Gateway::start(options);
    model.when_contains("relative", Reply::exec_then("echo ok > made.txt", "made"));
    let r = client(&gateway, "rel")
        .call_tool("chat", json!({"message": "relative"}))
        .await;
    assert!(r.ok() && !r.is_error(), "{r}");
    let ws = dir.path().join("rel-data/agents/rel/workspace");
    assert_eq!(
        std::fs::read_to_string(ws.join("made.txt")).unwrap(),
        "ok\n"
    );
    assert!(
        !ws.join("rel-data").exists(),
        "a nested copy of the data dir"
    );
}

#[tokio::test]
async fn without_a_credential_the_gateway_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeModel::start().await;
    let gateway = Gateway::start(
        GatewayOptions::new(&dir.path().join("data"), &model).env("OPENAI_API_KEY", ""),
    );
    let ready = reqwest::get(format!("{}/ready", gateway.url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let text = ready.text().await.unwrap();
    assert!(
        text.contains("no usable credential") && text.contains("FAKE_API_KEY"),
        "{text}"
    );
    let health: Value = reqwest::get(format!("{}/health", gateway.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(
        health["problems"].to_string().contains("FAKE_API_KEY"),
        "{health}"
    );
    let r = client(&gateway, "h")
        .call_tool("health_check", json!({}))
        .await;
    let report = r.structured().cloned().unwrap_or_default();
    assert_eq!(report["status"], "degraded", "{r}");
    assert!(
        report["problems"]
            .to_string()
            .contains("no usable credential"),
        "{r}"
    );
    drop(gateway);

    // The key in the variable the provider names is the one the gateway reads.
    let gateway = Gateway::start(
        GatewayOptions::new(&dir.path().join("data"), &model)
            .env("OPENAI_API_KEY", "")
            .env("FAKE_API_KEY", "sk-from-provider-var"),
    );
    let ready = reqwest::get(format!("{}/ready", gateway.url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    model.when_contains("which key", Reply::text("this one"));
    let r = client(&gateway, "h")
        .call_tool("chat", json!({"message": "which key"}))
        .await;
    assert!(r.ok() && !r.is_error(), "{r}");
    assert_eq!(
        model.bearer_tokens().last().unwrap(),
        "sk-from-provider-var"
    );
}
