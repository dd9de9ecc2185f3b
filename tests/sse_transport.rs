//! The legacy HTTP+SSE transport, driven over real HTTP with a hand-written
//! SSE reader so the wire format itself is what gets checked.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::OriginalUri;
use axum::Router;
use bytes::Bytes;
use codex_mcp::sse::{sse_router, SseServerConfig, SseSessions};
use futures::{Stream, StreamExt};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_handler, tool_router, RoleServer, ServerHandler};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(10);
const MAX_BODY: usize = 16 * 1024;

#[derive(Default)]
struct Probe {
    started: Notify,
    cancelled: AtomicUsize,
}

#[derive(Clone)]
struct TestServer {
    probe: Arc<Probe>,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl TestServer {
    #[tool(
        description = "Reports the agent header and paths of the request that opened the session"
    )]
    fn whoami(&self, Extension(parts): Extension<http::request::Parts>) -> String {
        let header = parts
            .headers
            .get("x-codex-agent")
            .and_then(|value| value.to_str().ok());
        let original = parts
            .extensions
            .get::<OriginalUri>()
            .map(|uri| uri.path().to_owned());
        json!({ "header": header, "uri": parts.uri.path(), "original": original }).to_string()
    }

    #[tool(description = "Waits until the request is cancelled")]
    async fn wait_for_cancel(&self, context: RequestContext<RoleServer>) -> String {
        self.probe.started.notify_one();
        context.ct.cancelled().await;
        self.probe.cancelled.fetch_add(1, Ordering::SeqCst);
        "cancelled".to_owned()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TestServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

struct Harness {
    base: String,
    http: reqwest::Client,
    sessions: SseSessions,
    probe: Arc<Probe>,
    shutdown: CancellationToken,
}

impl Harness {
    async fn start() -> Self {
        let probe = Arc::new(Probe::default());
        let shutdown = CancellationToken::new();
        let factory_probe = probe.clone();
        let (sse, sessions) = sse_router(
            Arc::new(move || TestServer {
                probe: factory_probe.clone(),
                tool_router: TestServer::tool_router(),
            }),
            SseServerConfig {
                keep_alive: Duration::from_millis(200),
                max_body_bytes: MAX_BODY,
                cancellation: shutdown.clone(),
                ..SseServerConfig::default()
            },
        );
        let app = Router::new().merge(sse.clone()).nest("/agents/{name}", sse);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server_shutdown = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(server_shutdown.cancelled_owned())
                .await
                .unwrap();
        });
        Self {
            base,
            http: reqwest::Client::new(),
            sessions,
            probe,
            shutdown,
        }
    }

    async fn open(&self, path: &str, agent: Option<&str>) -> Session {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(agent) = agent {
            request = request.header("X-Codex-Agent", agent);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        let mut events = EventReader {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        };
        let (name, endpoint) = events.next().await.expect("endpoint event");
        assert_eq!(name, "endpoint");
        Session {
            post_url: format!("{}{endpoint}", self.base),
            endpoint,
            events,
            http: self.http.clone(),
        }
    }

    async fn wait_until(&self, what: &str, condition: impl Fn(&Self) -> bool) {
        tokio::time::timeout(DEADLINE, async {
            while !condition(self) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
    }
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

struct EventReader {
    body: ByteStream,
    buffer: String,
}

impl EventReader {
    /// The next event as (name, data), skipping keep-alive comments; None at end of stream.
    async fn next(&mut self) -> Option<(String, String)> {
        tokio::time::timeout(DEADLINE, async {
            loop {
                while let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let (mut name, mut data) = ("message".to_owned(), Vec::new());
                    for line in block.lines() {
                        if let Some(value) = line.strip_prefix("event:") {
                            name = value.trim_start().to_owned();
                        } else if let Some(value) = line.strip_prefix("data:") {
                            data.push(value.strip_prefix(' ').unwrap_or(value).to_owned());
                        }
                    }
                    if !data.is_empty() {
                        return Some((name, data.join("\n")));
                    }
                }
                match self.body.next().await {
                    Some(Ok(chunk)) => self.buffer.push_str(std::str::from_utf8(&chunk).unwrap()),
                    _ => return None,
                }
            }
        })
        .await
        .expect("timed out waiting for an SSE event")
    }
}

struct Session {
    endpoint: String,
    post_url: String,
    events: EventReader,
    http: reqwest::Client,
}

impl Session {
    async fn post(&self, message: &Value) -> reqwest::Response {
        self.http
            .post(&self.post_url)
            .json(message)
            .send()
            .await
            .unwrap()
    }

    async fn send(&self, message: Value) {
        let response = self.post(&message).await;
        assert_eq!(response.status(), 202, "{message}");
    }

    async fn response(&mut self, id: u64) -> Value {
        loop {
            let (name, data) = self.events.next().await.expect("stream ended early");
            assert_eq!(name, "message");
            let message: Value = serde_json::from_str(&data).unwrap();
            if message["id"] == id {
                return message;
            }
        }
    }

    async fn request(&mut self, id: u64, method: &str, params: Value) -> Value {
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }))
            .await;
        self.response(id).await
    }

    async fn initialize(&mut self) {
        let params = json!({
            "protocolVersion": "2024-11-05",
            "capabilities": {},
            "clientInfo": { "name": "sse-test", "version": "0" }
        });
        let response = self.request(1, "initialize", params).await;
        assert_eq!(
            response["result"]["protocolVersion"], "2024-11-05",
            "{response}"
        );
        self.send(json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }))
            .await;
    }
}

#[tokio::test]
async fn endpoint_event_follows_the_mount_point() {
    let harness = Harness::start().await;
    let root = harness.open("/sse", None).await;
    let nested = harness.open("/agents/alice/sse", None).await;
    let root_id = root
        .endpoint
        .strip_prefix("/message?sessionId=")
        .expect(&root.endpoint);
    let nested_id = nested
        .endpoint
        .strip_prefix("/agents/alice/message?sessionId=")
        .expect(&nested.endpoint);
    assert!(uuid::Uuid::parse_str(root_id).is_ok() && uuid::Uuid::parse_str(nested_id).is_ok());
    assert_ne!(root_id, nested_id);
    assert_eq!(harness.sessions.len(), 2);
}

#[tokio::test]
async fn session_lists_and_calls_tools_with_request_parts() {
    let harness = Harness::start().await;
    let mut session = harness.open("/agents/alice/sse", Some("bob")).await;
    session.initialize().await;

    let listed = session.request(2, "tools/list", json!({})).await;
    let mut names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|tool| tool["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["wait_for_cancel", "whoami"]);

    let called = session
        .request(
            3,
            "tools/call",
            json!({ "name": "whoami", "arguments": {} }),
        )
        .await;
    let text = called["result"]["content"][0]["text"]
        .as_str()
        .expect("text");
    let seen: Value = serde_json::from_str(text).unwrap();
    assert_eq!(
        seen,
        json!({ "header": "bob", "uri": "/sse", "original": "/agents/alice/sse" })
    );

    let mut root = harness.open("/sse", None).await;
    root.initialize().await;
    let called = root
        .request(
            2,
            "tools/call",
            json!({ "name": "whoami", "arguments": {} }),
        )
        .await;
    let seen: Value =
        serde_json::from_str(called["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(
        seen,
        json!({ "header": null, "uri": "/sse", "original": "/sse" })
    );
}

#[tokio::test]
async fn bad_posts_are_refused_with_clear_statuses() {
    let harness = Harness::start().await;
    let session = harness.open("/sse", None).await;
    let http = &harness.http;

    let unknown = http
        .post(format!("{}/message?sessionId=nope", harness.base))
        .json(&json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert!(unknown
        .text()
        .await
        .unwrap()
        .contains("unknown session nope"));

    let missing = http
        .post(format!("{}/message", harness.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);
    assert!(missing.text().await.unwrap().contains("sessionId"));

    let malformed = http
        .post(&session.post_url)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert!(malformed
        .text()
        .await
        .unwrap()
        .contains("malformed JSON-RPC message"));

    let not_jsonrpc = session.post(&json!({ "hello": "world" })).await;
    assert_eq!(not_jsonrpc.status(), 400);

    let oversized = http
        .post(&session.post_url)
        .body(vec![b' '; MAX_BODY + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(oversized.status(), 413);
    assert_eq!(harness.sessions.len(), 1);
}

#[tokio::test]
async fn disconnect_cancels_running_tool_and_closes_session() {
    let harness = Harness::start().await;
    let mut session = harness.open("/agents/alice/sse", None).await;
    session.initialize().await;
    let started = harness.probe.started.notified();
    session
        .send(json!({
            "jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": { "name": "wait_for_cancel", "arguments": {} }
        }))
        .await;
    tokio::time::timeout(DEADLINE, started)
        .await
        .expect("tool started");
    assert_eq!(harness.sessions.len(), 1);

    drop(session);
    harness
        .wait_until("the tool is cancelled and the session gone", |h| {
            h.probe.cancelled.load(Ordering::SeqCst) == 1 && h.sessions.is_empty()
        })
        .await;
}

#[tokio::test]
async fn shutdown_ends_every_session() {
    let harness = Harness::start().await;
    let mut first = harness.open("/sse", None).await;
    let mut second = harness.open("/agents/bob/sse", None).await;
    first.initialize().await;
    assert_eq!(harness.sessions.len(), 2);

    harness.shutdown.cancel();
    assert_eq!(first.events.next().await, None);
    assert_eq!(second.events.next().await, None);
    harness
        .wait_until("all sessions are gone", |h| h.sessions.is_empty())
        .await;
}

#[tokio::test]
async fn idle_stream_carries_keep_alive_comments() {
    let harness = Harness::start().await;
    let mut session = harness.open("/sse", None).await;
    let events = &mut session.events;
    tokio::time::timeout(DEADLINE, async {
        while !events.buffer.lines().any(|line| line.starts_with(':')) {
            let chunk = events.body.next().await.expect("stream open").unwrap();
            events.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    })
    .await
    .expect("a keep-alive comment within the deadline");
}
