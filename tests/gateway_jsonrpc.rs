//! Messages that are not well-formed MCP over streamable HTTP: each gets the
//! HTTP status and JSON-RPC error a JSON-RPC client expects, naming the
//! problem, and never reaches the model.

mod support;

use serde_json::{json, Value};
use support::fake_model::Reply;
use support::gateway::LocalGateway as Env;

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
async fn malformed_messages_get_json_rpc_errors() {
    let env = Env::start().await;
    let (status, body) = post_raw(&env, "{not json".into()).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!(-32700)),
        "{body}"
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not JSON"));
    for (bad, why) in [
        (json!({"jsonrpc": "2.0", "id": 1}), "`method`"),
        (json!({"id": 1, "method": "tools/list"}), "`jsonrpc`"),
        (
            json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]),
            "batches",
        ),
        (
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": [1]}),
            "`params`",
        ),
    ] {
        let (status, body) = post_raw(&env, bad.to_string().into()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], -32600, "{bad}: {body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(why), "{bad}: {msg}");
    }

    // `arguments` that are not an object: the params are invalid, the method exists.
    let legacy = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}});
    let init = reqwest::Client::new()
        .post(env.gateway.mcp_url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(legacy.to_string())
        .send()
        .await
        .unwrap();
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                      "params": {"name": "chat", "arguments": ["hi"]}});
    let text = reqwest::Client::new()
        .post(env.gateway.mcp_url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .body(call.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let data = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .find(|d| d.contains("\"id\":2"))
        .unwrap_or_else(|| panic!("no reply: {text}"));
    let reply: Value = serde_json::from_str(data).unwrap();
    assert_eq!(reply["error"]["code"], -32602, "{reply}");
    assert!(reply["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`arguments`"));
    assert!(env.model.requests().is_empty());
    env.gateway.assert_healthy().await;
}

/// Event ids (and data) read from an SSE response until `count` ids are seen.
async fn read_events(resp: &mut reqwest::Response, count: usize) -> Vec<(String, String)> {
    let mut text = String::new();
    let mut events = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while events.len() < count && std::time::Instant::now() < deadline {
        let Ok(Ok(Some(chunk))) =
            tokio::time::timeout(std::time::Duration::from_secs(30), resp.chunk()).await
        else {
            break;
        };
        text.push_str(&String::from_utf8_lossy(&chunk));
        // Only complete events: those followed by a blank line.
        let complete = text.rsplit_once("\n\n").map_or("", |(done, _)| done);
        events = complete
            .split("\n\n")
            .filter_map(|block| {
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(|v| v.trim().to_owned())
                };
                Some((field("id:")?, field("data:").unwrap_or_default()))
            })
            .collect();
    }
    events
}

#[tokio::test]
async fn a_resumed_stream_continues_after_the_last_event_seen() {
    let env = Env::start().await;
    env.model
        .push(Reply::Stall(std::time::Duration::from_secs(30)));
    let http = reqwest::Client::new();
    let post = |body: Value, session: Option<&str>| {
        let mut req = http
            .post(env.gateway.mcp_url())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string());
        if let Some(s) = session {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-11-25");
        }
        req.send()
    };
    let init = post(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}}),
        None,
    )
    .await
    .unwrap();
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    post(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        Some(&session),
    )
    .await
    .unwrap();
    let mut call = post(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "chat", "arguments": {"message": "wait"},
            "_meta": {"progressToken": "p"}}}),
        Some(&session),
    )
    .await
    .unwrap();
    let seen = read_events(&mut call, 3).await;
    assert!(seen.len() >= 3, "progress events: {seen:?}");
    drop(call);
    let (last, _) = &seen[1];
    let mut resumed = http
        .get(env.gateway.mcp_url())
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .header("last-event-id", last)
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200);
    let replayed = read_events(&mut resumed, 1).await;
    let (first, _) = replayed.first().expect("the stream resumes");
    assert_eq!(first, &seen[2].0, "resumed after {last}: {replayed:?}");
}
