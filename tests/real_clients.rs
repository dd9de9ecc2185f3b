//! What real MCP clients show a user of `codex-mcp serve`: the MCP Inspector
//! CLI and the Python `mcp` library, against a real gateway. Schemas must
//! not make clients warn, and a missing or wrong token must read as such,
//! not as a failed OAuth login.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{json, Value};
use support::fake_model::Reply;
use support::gateway::LocalGateway as Env;
use support::mcp_client::{McpClient, Step, Transport};

const TOKEN: &str = "tok-real-clients-0123456789";

/// The Inspector's launcher, installed by scripts/install-test-deps.sh.
fn inspector() -> PathBuf {
    support::cache_dir().join("inspector/node_modules/.bin/mcp-inspector")
}

async fn start() -> Env {
    Env::start_with(|mut o| {
        let tokens = o.data_dir.join("client-tokens");
        std::fs::write(
            &tokens,
            format!(
                "{TOKEN}
"
            ),
        )
        .unwrap();
        o.auth_tokens = Some(tokens);
        o
    })
    .await
}

/// Runs the Inspector CLI without a terminal, as CI and agents do.
fn inspect(url: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(inspector());
    cmd.args(["--cli", url]).args(args);
    if let Some(t) = token {
        cmd.args(["--header", &format!("Authorization: Bearer {t}")]);
    }
    let out = cmd
        .env("MCP_INSPECTOR_SECRET_STORE", "memory")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the MCP Inspector runs (scripts/install-test-deps.sh)");
    out
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_inspector_finds_the_schemas_portable() {
    let env = start().await;
    let url = env.gateway.mcp_url();
    let list = inspect(&url, Some(TOKEN), &["--method", "tools/list", "--strict"]);
    let (stdout, stderr) = text(&list);
    assert!(list.status.success(), "{stderr}");
    let tools: Value = serde_json::from_str(&stdout).unwrap();
    assert!(tools["tools"].as_array().unwrap().len() >= 10, "{stdout}");
    assert!(!stderr.contains("unknown format"), "{stderr}");
    assert!(
        !stderr.contains("Warning"),
        "portability warnings: {stderr}"
    );
    for line in stdout.lines() {
        assert!(
            !line.contains("\"format\": \"uint"),
            "non-standard format: {line}"
        );
    }

    // Structured results are validated against the output schema on each call.
    let call = inspect(
        &url,
        Some(TOKEN),
        &["--method", "tools/call", "--tool-name", "health_check"],
    );
    let (stdout, stderr) = text(&call);
    assert!(call.status.success(), "{stderr}");
    assert!(stdout.contains("structuredContent"), "{stdout}");
    assert!(!stderr.contains("unknown format"), "{stderr}");
    assert!(env.model.requests().is_empty());
}

#[tokio::test]
async fn a_missing_or_wrong_token_reads_as_such_in_real_clients() {
    let env = start().await;
    let url = env.gateway.mcp_url();
    // Without a terminal the Inspector cannot run a login; it reports the
    // gateway's own words.
    for (token, expect) in [
        (None, "needs a client token"),
        (Some("not-the-token-at-all"), "client token is not valid"),
    ] {
        let out = inspect(
            &url,
            token,
            &["--method", "tools/list", "--stored-auth-only"],
        );
        let (stdout, stderr) = text(&out);
        let shown = format!("{stdout}{stderr}");
        assert!(!out.status.success(), "{shown}");
        assert!(shown.contains(expect), "{token:?}: {shown}");
        assert!(shown.contains("Authorization: Bearer"), "{shown}");
    }

    // The Python library surfaces the message of the 401's JSON-RPC body.
    let anon = McpClient::new(&url, Transport::Http).list_tools().await;
    assert_eq!(anon.http_status(), Some(401), "{anon}");
    assert!(
        anon.error_message().contains("needs a client token"),
        "{anon}"
    );
    let wrong = McpClient::new(&url, Transport::Http)
        .bearer("not-the-token-at-all")
        .list_tools()
        .await;
    assert!(
        wrong.error_message().contains("client token is not valid"),
        "{wrong}"
    );
    let ok = McpClient::new(&url, Transport::Http)
        .bearer(TOKEN)
        .list_tools()
        .await;
    assert!(ok.ok(), "{ok}");
}

#[tokio::test]
async fn a_trailing_slash_is_still_streamable_http() {
    let env = start().await;
    let url = format!("{}/", env.gateway.agent_url("slash", "mcp"));
    let r = McpClient::new(url, Transport::Http)
        .bearer(TOKEN)
        .call_tool("get_my_session_info", json!({}))
        .await;
    let info = r.structured().unwrap_or_else(|| panic!("{r}"));
    assert_eq!(info["transport"], "streamable-http", "{r}");
    assert_eq!(info["agent_id"], "slash", "{r}");
}

#[tokio::test]
async fn a_client_cancel_is_not_logged_as_an_error() {
    let env = start().await;
    env.model.push(Reply::Stall(Duration::from_secs(60)));
    let client = McpClient::new(env.gateway.mcp_url(), Transport::Http).bearer(TOKEN);
    let r = client
        .run(vec![Step::call_tool("chat", json!({"message": "wait"}))
            // Long enough for Codex to reach the model on a loaded machine.
            .cancel_after(Duration::from_secs(10))])
        .await
        .remove(0);
    assert!(r.cancelled(), "{r}");
    // The run's end is logged once its processes are gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline
        && !env.gateway.logs().iter().any(|l| l.contains("cancel"))
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = env.gateway.logs();
    let errors: Vec<&String> = logs
        .iter()
        .filter(|l| l.contains("\"level\":\"ERROR\""))
        .collect();
    assert!(
        errors.is_empty(),
        "a normal cancel logged errors: {errors:#?}"
    );
    assert!(
        logs.iter().any(|l| l.contains("cancel")),
        "the cancel is still logged: {logs:#?}"
    );
}
