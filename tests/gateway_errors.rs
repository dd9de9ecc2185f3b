//! Bad input and failure modes of `codex-mcp serve`: each gets a clear error
//! naming the problem, the gateway keeps serving, and nothing is written
//! outside the agent's directory.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use support::fake_model::Reply;
use support::gateway::{LocalGateway as Env, TEST_API_KEY};
use support::mcp_client::{McpClient, Step, Transport};

fn client(env: &Env) -> McpClient {
    McpClient::new(env.gateway.mcp_url(), Transport::Http)
}

/// The text of a failed call that the calling model reads: a tool result
/// with `isError`.
fn failure(r: &support::mcp_client::StepResult) -> String {
    assert!(r.ok() && r.is_error(), "not a tool error: {r}");
    r.text().to_owned()
}

/// POSTs a raw body to the MCP endpoint as a client would.
async fn post_raw(env: &Env, body: reqwest::Body) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(env.gateway.mcp_url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn invalid_agent_names_are_refused_with_the_reason() {
    let env = Env::start().await;
    let long = "a".repeat(300);
    let cases: [(&str, &str); 4] = [
        ("../x", "DNS-1123"),
        (&long, "300 characters"),
        ("Alice", "DNS-1123"),
        ("", "empty"),
    ];
    for (name, reason) in cases {
        let r = client(&env)
            .header("X-Codex-Agent", name)
            .call_tool("chat", json!({"message": "hi"}))
            .await;
        assert!(!r.ok(), "{name:?} accepted: {r}");
        assert!(r.error_message().contains(reason), "{name:?}: {r}");
    }
    let by_path = McpClient::new(env.gateway.agent_url("Bad_Name", "mcp"), Transport::Http);
    let r = by_path.call_tool("chat", json!({"message": "hi"})).await;
    assert!(!r.ok() && r.error_message().contains("DNS-1123"), "{r}");
    let by_sse = McpClient::new(env.gateway.agent_url("UPPER", "sse"), Transport::Sse);
    let r = by_sse.call_tool("get_my_session_info", json!({})).await;
    assert!(!r.ok() && r.error_message().contains("DNS-1123"), "{r}");
    assert!(env.model.requests().is_empty());
    assert!(
        !env.dir.path().join("agents").exists(),
        "no agent directory for a refused name"
    );
    env.gateway.assert_healthy().await;
}

#[tokio::test]
async fn bad_arguments_are_tool_errors_the_model_can_act_on() {
    let env = Env::start().await;
    let results = client(&env)
        .run(vec![
            Step::call_tool("implement", json!({"task": "x"})),
            Step::call_tool("plan", json!({"task": 5})),
            Step::call_tool("no_such_tool", json!({})),
            Step::call_tool("plan", json!({"task": "   "})),
            Step::call_tool(
                "implement",
                json!({"task": "x", "target_files": ["/etc/passwd"]}),
            ),
        ])
        .await;
    assert!(
        failure(&results[0]).contains("\"target_files\" is a required property"),
        "{}",
        results[0]
    );
    assert!(
        failure(&results[1]).contains("`task`: 5 is not of type \"string\""),
        "{}",
        results[1]
    );
    // An unknown tool is the client's mistake, not the arguments': a protocol error.
    assert!(!results[2].ok(), "{}", results[2]);
    assert!(
        results[2].error_message().contains("no_such_tool"),
        "{}",
        results[2]
    );
    assert_eq!(failure(&results[3]), "argument `task` must not be empty");
    assert!(
        failure(&results[4]).contains("/etc/passwd"),
        "{}",
        results[4]
    );
    assert!(env.model.requests().is_empty());
}

#[tokio::test]
async fn oversized_bodies_are_rejected_and_the_gateway_keeps_serving() {
    let env = Env::start_with(|o| o.env("CODEX_MCP_MAX_BODY_BYTES", "100000")).await;
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                     "params": {"name": "chat", "arguments": {"message": "x".repeat(200_000)}}});
    let resp = reqwest::Client::new()
        .post(env.gateway.mcp_url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(big.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    // Without a Content-Length the limit is found while reading.
    let chunks = futures::stream::iter(
        (0..4).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 40_000]))),
    );
    let (status, body) = post_raw(&env, reqwest::Body::wrap_stream(chunks)).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("100000 bytes"),
        "{body}"
    );
    let metrics = reqwest::get(format!("{}/metrics", env.gateway.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"codex_mcp_http_requests_total{route="/mcp",status="413"} 2"#),
        "{metrics}"
    );
    env.gateway.assert_healthy().await;
    assert!(env.model.requests().is_empty());
}

#[tokio::test]
async fn model_errors_and_unusable_replies_are_reported_not_patched() {
    let env = Env::start().await;
    env.model
        .push(Reply::HttpError(500, "upstream exploded".into()));
    let r = client(&env)
        .call_tool("chat", json!({"message": "hi"}))
        .await;
    assert!(r.ok() && r.is_error(), "{r}");
    assert!(r.text().starts_with("codex failed: "), "{r}");

    // A reply that is not JSON gets one repair turn, then a clear error.
    env.model.push(Reply::text("Sure! Here is my plan: do it."));
    env.model.push(Reply::text("Still prose."));
    let r = client(&env)
        .call_tool("plan", json!({"task": "anything"}))
        .await;
    assert!(r.is_error(), "{r}");
    assert!(
        r.text().contains("not JSON") && r.text().contains("after one retry"),
        "{r}"
    );
    assert!(r.structured().is_none(), "no fabricated result");
    let repair = env.model.requests().last().unwrap().to_string();
    assert!(
        repair.contains("could not be accepted"),
        "the repair turn explains the problem"
    );

    // A schema mismatch repaired on the retry is accepted.
    env.model
        .push(Reply::Json(json!({"summary": "missing fields"})));
    env.model.push(Reply::Json(json!({
        "summary": "s", "steps": [], "risks": [], "dependencies": [],
        "testing_strategy": "t", "estimated_effort": "e"
    })));
    let r = client(&env)
        .call_tool("plan", json!({"task": "anything"}))
        .await;
    assert!(r.ok() && !r.is_error(), "{r}");
    assert_eq!(r.structured().unwrap()["summary"], "s");
    env.gateway.assert_healthy().await;
}

#[tokio::test]
async fn stalled_model_hits_the_run_time_limit() {
    let env = Env::start_with(|o| o.env("CODEX_MCP_RUN_TIMEOUT", "3")).await;
    env.model.push(Reply::Stall(Duration::from_secs(60)));
    let r = client(&env)
        .call_tool("chat", json!({"message": "hang"}))
        .await;
    assert!(r.is_error(), "{r}");
    assert!(r.text().contains("time limit of 3 s"), "{r}");
    assert!(r.elapsed() < Duration::from_secs(20), "{r}");
    env.model.push(Reply::text("back"));
    let r = client(&env)
        .call_tool("chat", json!({"message": "again"}))
        .await;
    assert_eq!(r.structured().unwrap()["reply"], "back", "{r}");
}

#[tokio::test]
async fn a_busy_agent_queues_then_refuses() {
    let env = Env::start_with(|o| o.env("CODEX_MCP_QUEUE_LIMIT", "1")).await;
    env.model.push(Reply::Stall(Duration::from_secs(4)));
    env.model.push(Reply::text("second"));
    let call = |m: &str| Step::call_tool("chat", json!({"message": m}));
    let results = client(&env)
        .run(vec![Step::Parallel(vec![
            call("one"),
            Step::Sleep(Duration::from_millis(50)), // no-op slot keeps indices aligned
            call("two"),
            call("three"),
        ])])
        .await;
    let texts: Vec<String> = results[0].results().iter().map(|r| r.to_string()).collect();
    let busy = texts.iter().filter(|t| t.contains("is busy")).count();
    assert_eq!(
        busy, 1,
        "exactly one call over the queue limit is refused: {texts:#?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("second")),
        "the queued call ran: {texts:#?}"
    );
}

#[tokio::test]
async fn missing_codex_is_explained() {
    let env = Env::start_with(|mut o| {
        o.codex_bin = "/nonexistent/codex".into();
        o
    })
    .await;
    let ready = reqwest::get(format!("{}/ready", env.gateway.url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().contains("Codex CLI not found"));
    let r = client(&env)
        .call_tool("chat", json!({"message": "hi"}))
        .await;
    assert!(
        r.is_error() && r.text().contains("Codex CLI not found"),
        "{r}"
    );
    env.gateway.assert_healthy().await;
}

#[tokio::test]
async fn clients_need_a_token_unless_explicitly_open() {
    let env = Env::start_with(|mut o| {
        o.default_auth = true;
        o
    })
    .await;
    let token_file = env.dir.path().join("client-token");
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    for transport in [Transport::Http, Transport::Sse] {
        let url = match transport {
            Transport::Http => env.gateway.mcp_url(),
            Transport::Sse => env.gateway.sse_url(),
        };
        let anon = McpClient::new(&url, transport).list_tools().await;
        assert_eq!(anon.http_status(), Some(401), "{transport:?}: {anon}");
        let wrong = McpClient::new(&url, transport)
            .bearer("not-the-token-at-all")
            .list_tools()
            .await;
        assert_eq!(wrong.http_status(), Some(401), "{transport:?}: {wrong}");
        let ok = McpClient::new(&url, transport)
            .bearer(&token)
            .list_tools()
            .await;
        assert!(ok.ok(), "{transport:?}: {ok}");
    }
    // RFC 6750 3.1: no error code without credentials; invalid_token for a wrong one.
    for (authz, challenge, says) in [
        (None, "Bearer realm=\"codex-mcp\"", "needs a client token"),
        (
            Some("Bearer not-the-token-at-all"),
            "Bearer realm=\"codex-mcp\", error=\"invalid_token\"",
            "not valid",
        ),
    ] {
        let mut req = reqwest::Client::new()
            .post(env.gateway.mcp_url())
            .body("{}");
        if let Some(a) = authz {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        let got = resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(got.starts_with(challenge), "{got}");
        assert!(
            got.contains(&format!(
                "resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"",
                env.gateway.url
            )),
            "{got}"
        );
        let body: Value = resp.json().await.unwrap();
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(says) && msg.contains("Authorization: Bearer"),
            "{body}"
        );
    }
    // The resource's metadata names no authorization server: tokens come
    // from whoever runs the gateway.
    for (path, resource) in [
        ("/.well-known/oauth-protected-resource", ""),
        ("/.well-known/oauth-protected-resource/mcp", "/mcp"),
        ("/.well-known/oauth-protected-resource/sse", "/sse"),
    ] {
        let meta: Value = reqwest::get(format!("{}{path}", env.gateway.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            meta["resource"],
            format!("{}{resource}", env.gateway.url),
            "{path}"
        );
        assert!(meta.get("authorization_servers").is_none(), "{meta}");
    }
    // No OAuth beyond that: discovery and registration paths, and any
    // unknown path, are 404 with or without a token, never 401.
    for path in [
        "/.well-known/oauth-protected-resource/health",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/register",
        "/authorize",
        "/nothing",
    ] {
        let resp = reqwest::get(format!("{}{path}", env.gateway.url))
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        assert!(resp.headers().get("www-authenticate").is_none(), "{path}");
    }
    let logs = env.gateway.logs().join("\n");
    assert!(
        !logs.contains(&token) && !logs.contains(TEST_API_KEY),
        "a secret reached the logs"
    );

    let out = Command::new(support::codex_mcp_bin())
        .args(["serve", "--no-auth", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(env.dir.path().join("open"))
        .env("CODEX_BIN", support::codex_bin())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("only allowed on a loopback address"),
        "{stderr}"
    );
}

#[tokio::test]
async fn tenants_and_agent_limits_come_from_the_token_file() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(
        &tokens,
        "tok-team-a-0123456789 team-a\ntok-team-b-0123456789 team-b only-me\n",
    )
    .unwrap();
    let env = Env::start_with(|mut o| {
        o.auth_tokens = Some(tokens.clone());
        o
    })
    .await;
    env.model.push(Reply::text("a done"));
    let a = McpClient::new(env.gateway.mcp_url(), Transport::Http).bearer("tok-team-a-0123456789");
    let r = a
        .clone()
        .header("X-Codex-Agent", "shared")
        .call_tool("chat", json!({"message": "hi"}))
        .await;
    assert!(r.ok() && !r.is_error(), "{r}");
    let b = McpClient::new(env.gateway.mcp_url(), Transport::Http)
        .bearer("tok-team-b-0123456789")
        .header("X-Codex-Agent", "only-me");
    let list: Value = b
        .call_tool("list_sessions", json!({}))
        .await
        .structured()
        .unwrap()
        .clone();
    assert_eq!(
        list["total"], 0,
        "team-b sees none of team-a's agents: {list}"
    );
    let denied = b
        .clone()
        .header("X-Codex-Agent", "shared")
        .call_tool("chat", json!({"message": "x"}))
        .await;
    assert_eq!(denied.http_status(), Some(403), "{denied}");
    let denied_sse = McpClient::new(env.gateway.agent_url("shared", "sse"), Transport::Sse)
        .bearer("tok-team-b-0123456789")
        .list_tools()
        .await;
    assert_eq!(denied_sse.http_status(), Some(403), "{denied_sse}");
    let allowed = McpClient::new(env.gateway.agent_url("only-me", "sse"), Transport::Sse)
        .bearer("tok-team-b-0123456789")
        .list_tools()
        .await;
    assert!(allowed.ok(), "{allowed}");
    let mine = a.call_tool("list_sessions", json!({})).await;
    assert_eq!(
        mine.structured().unwrap()["sessions"][0]["agent_id"],
        "shared",
        "{mine}"
    );
    assert!(env
        .dir
        .path()
        .join("tenants/team-a/agents/shared/workspace")
        .is_dir());

    let resp = reqwest::Client::new()
        .post(env.gateway.mcp_url())
        .header("host", "evil.example")
        .header("authorization", "Bearer tok-team-a-0123456789")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "unknown Host headers are refused");
}

#[tokio::test]
async fn workspace_paths_that_leave_the_workspace_are_refused_before_codex_runs() {
    let env = Env::start().await;
    let agent = |r: McpClient| r.header("X-Codex-Agent", "linker");
    // Lexically, by the gateway.
    let out = agent(client(&env))
        .call_tool(
            "implement",
            json!({"task": "t", "target_files": ["../../etc/passwd"]}),
        )
        .await;
    assert!(failure(&out).contains("../../etc/passwd"), "{out}");

    // Through a symlink in the workspace, by agent-run where the files are.
    env.model.push(Reply::text("ready"));
    let first = agent(client(&env))
        .call_tool("chat", json!({"message": "hello"}))
        .await;
    assert!(first.ok() && !first.is_error(), "{first}");
    std::os::unix::fs::symlink(env.dir.path(), env.gateway.workspace("linker").join("out"))
        .unwrap();
    let before = env.model.requests().len();
    let out = agent(client(&env))
        .call_tool(
            "fix",
            json!({"symptoms": "s", "context_files": ["out/agents/linker/agent.json"]}),
        )
        .await;
    let why = failure(&out);
    assert!(
        why.contains("out/agents/linker/agent.json")
            && why.contains("leaves the agent's workspace"),
        "{out}"
    );
    assert_eq!(env.model.requests().len(), before, "Codex never ran");
    env.gateway.assert_healthy().await;
}
