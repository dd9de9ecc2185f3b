//! Checks the test MCP client (the Python `mcp` package behind
//! `support::mcp_client`) against a small Python MCP server, so that gateway
//! test failures can be trusted to be the gateway's: structured results,
//! progress, tool errors, cancellation, timeouts, HTTP errors and protocol
//! negotiation, over streamable HTTP and legacy SSE.

mod support;

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use support::mcp_client::{self, McpClient, Protocol, Step, Transport};
use tokio::io::AsyncBufReadExt;

const TOKEN: &str = "client-check-token";

/// The server script, running until dropped.
struct TestServer {
    _child: tokio::process::Child,
    http: String,
    sse: String,
}

impl TestServer {
    async fn start() -> Self {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/mcp_test_server.py"
        );
        let mut child = tokio::process::Command::new(mcp_client::python())
            .args([script, TOKEN])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("venv python runs (scripts/install-test-deps.sh)");
        let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(30), stdout.read_line(&mut line))
            .await
            .expect("test server starts within 30 s")
            .unwrap();
        let ports: Value = serde_json::from_str(&line).expect("test server prints its ports");
        TestServer {
            _child: child,
            http: format!("http://127.0.0.1:{}/mcp", ports["http"]),
            sse: format!("http://127.0.0.1:{}/sse", ports["sse"]),
        }
    }

    fn client(&self, transport: Transport) -> McpClient {
        let url = match transport {
            Transport::Http => &self.http,
            Transport::Sse => &self.sse,
        };
        McpClient::new(url.clone(), transport).bearer(TOKEN)
    }
}

#[tokio::test]
async fn results_progress_errors_and_timeouts_over_both_transports() {
    let server = TestServer::start().await;
    for transport in [Transport::Http, Transport::Sse] {
        let results = server
            .client(transport)
            .run(vec![
                Step::ListTools,
                Step::call_tool("echo", json!({"text": "hello"})),
                Step::call_tool("slow", json!({"steps": 3, "delay": 0.05})),
                Step::call_tool("fail", json!({})),
                Step::call_tool("slow", json!({"steps": 100, "delay": 0.05}))
                    .timeout(Duration::from_millis(500)),
                Step::call_tool("echo", json!({"text": "still here"})),
            ])
            .await;
        let [tools, echo, slow, fail, timed_out, after] = &results[..] else {
            unreachable!()
        };

        assert!(tools.ok(), "{tools}");
        let echo_tool = tools.tool("echo").expect("echo is listed");
        assert_eq!(echo_tool["inputSchema"]["required"], json!(["text"]));
        assert_eq!(
            echo_tool["outputSchema"]["required"],
            json!(["said", "length"])
        );
        assert!(echo_tool["description"]
            .as_str()
            .unwrap()
            .contains("Echoes"));

        assert!(echo.ok() && !echo.is_error(), "{echo}");
        assert_eq!(
            echo.structured(),
            Some(&json!({"said": "hello", "length": 5}))
        );
        assert!(echo.text().contains("hello"));

        assert_eq!(slow.text(), "did 3 steps");
        let progress = slow.progress();
        assert_eq!(progress.len(), 3, "{slow}");
        assert_eq!(progress[2].progress, 3.0);
        assert_eq!(progress[2].total, Some(3.0));
        assert_eq!(progress[0].message.as_deref(), Some("step 1"));

        assert!(fail.ok() && fail.is_error(), "{fail}");
        assert!(fail.structured().is_none());

        assert!(!timed_out.ok(), "{timed_out}");
        assert_eq!(timed_out.error_code(), Some(-32001), "{timed_out}");
        assert_eq!(timed_out.error().unwrap()["kind"], "jsonrpc");
        assert!(!timed_out.progress().is_empty());
        assert_eq!(after.structured().unwrap()["said"], "still here");

        // The library's default negotiation lands on the stateless protocol
        // with a server that offers it; SSE still has its own session.
        for r in &results {
            assert_eq!(r.protocol_version(), Some("2026-07-28"), "{r}");
            assert_eq!(r.session_id(), results[0].session_id(), "{r}");
        }
        assert_eq!(
            results[0].session_id().is_some(),
            transport == Transport::Sse
        );
    }
}

#[tokio::test]
async fn cancel_after_abandons_the_call_and_the_session_goes_on() {
    let server = TestServer::start().await;
    let cases = [
        (Transport::Http, Protocol::Auto, false),
        (Transport::Http, Protocol::Legacy, true),
        (Transport::Sse, Protocol::Auto, true),
    ];
    for (n, (transport, protocol, notification)) in cases.into_iter().enumerate() {
        let results = server
            .client(transport)
            .protocol(protocol)
            .run(vec![
                Step::call_tool("slow", json!({"steps": 100, "delay": 0.05}))
                    .cancel_after(Duration::from_millis(600)),
                Step::Sleep(Duration::from_millis(300)),
                Step::call_tool("stats", json!({})),
            ])
            .await;
        let case = format!("{transport:?} {protocol:?}: {}", results[0]);
        assert!(results[0].cancelled() && !results[0].ok(), "{case}");
        assert_eq!(
            results[0].cancel_notification_sent(),
            notification,
            "{case}"
        );
        assert!(!results[0].progress().is_empty(), "{case}");
        assert!(results[0].elapsed() < Duration::from_secs(3), "{case}");
        let stats = results[2].structured().expect("stats result");
        assert_eq!(stats["cancelled"], n + 1, "the server saw it: {case}");
        assert_eq!(stats["completed"], 0, "{case}");
        if protocol == Protocol::Legacy {
            assert_eq!(results[0].protocol_version(), Some("2025-11-25"));
            assert!(results[0].session_id().is_some());
            assert_eq!(results[0].session_id(), results[2].session_id());
        }
    }
}

#[tokio::test]
async fn parallel_calls_and_forced_protocols() {
    let server = TestServer::start().await;
    let calls = (0..4)
        .map(|i| Step::call_tool("slow", json!({"steps": 5, "delay": 0.1, "tag": i})))
        .collect();
    let results = server
        .client(Transport::Http)
        .protocol(Protocol::Modern)
        .run(vec![Step::Parallel(calls)])
        .await;
    let parallel = &results[0];
    assert!(parallel.ok(), "{parallel}");
    assert_eq!(parallel.protocol_version(), Some("2026-07-28"));
    assert_eq!(parallel.session_id(), None);
    let each = parallel.results();
    assert_eq!(each.len(), 4);
    for r in &each {
        assert_eq!(r.text(), "did 5 steps", "{r}");
        assert_eq!(r.progress().len(), 5, "{r}");
    }
    assert!(
        parallel.elapsed() < Duration::from_millis(1500),
        "calls overlap: {parallel}"
    );

    // Every run is a new session.
    let client = server.client(Transport::Sse).protocol(Protocol::Legacy);
    let first = client.list_tools().await;
    let second = client.list_tools().await;
    assert_eq!(first.protocol_version(), Some("2025-11-25"));
    assert!(first.session_id().is_some());
    assert_ne!(first.session_id(), second.session_id());
}

#[tokio::test]
async fn http_failures_are_reported_with_their_status() {
    let server = TestServer::start().await;
    for (transport, url) in [
        (Transport::Http, &server.http),
        (Transport::Sse, &server.sse),
    ] {
        let anonymous = McpClient::new(url.clone(), transport);
        let results = anonymous
            .run(vec![Step::ListTools, Step::call_tool("echo", json!({}))])
            .await;
        for r in &results {
            assert!(r.connect_failed(), "{transport:?}: {r}");
            assert_eq!(r.http_status(), Some(401), "{transport:?}: {r}");
            assert_eq!(r.error().unwrap()["kind"], "http");
        }
        let missing = url.replace("/mcp", "/nothing").replace("/sse", "/nothing");
        let r = McpClient::new(missing, transport)
            .bearer(TOKEN)
            .list_tools()
            .await;
        assert_eq!(r.http_status(), Some(404), "{transport:?}: {r}");
    }
    let wrong_token = McpClient::new(server.http.clone(), Transport::Http).bearer("nope");
    assert_eq!(wrong_token.list_tools().await.http_status(), Some(401));
    let refused = McpClient::new("http://127.0.0.1:9/mcp", Transport::Http)
        .list_tools()
        .await;
    assert!(refused.connect_failed(), "{refused}");
    assert_eq!(refused.error().unwrap()["kind"], "connect");
    assert_eq!(refused.http_status(), None);
}
