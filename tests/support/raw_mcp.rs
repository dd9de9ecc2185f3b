//! MCP over plain HTTP requests, for tests that need what a library client
//! hides: the session id, the HTTP status, several identities on one
//! session, or a connection dropped mid-call.

use std::time::Duration;

use futures::StreamExt;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The session-based protocol revision (initialize handshake, `Mcp-Session-Id`).
pub const SESSION_PROTOCOL: &str = "2025-11-25";
/// The stateless protocol revision (no handshake, no session).
pub const STATELESS_PROTOCOL: &str = "2026-07-28";

#[derive(Clone)]
pub struct RawMcp {
    url: String,
    http: reqwest::Client,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// An HTTP answer: its status and the JSON-RPC message it carried, if any.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub session: Option<String>,
    pub message: Value,
    pub text: String,
    pub content_type: Option<String>,
    /// The `Content-Length` the answer declared (none for a stream).
    pub content_length: Option<u64>,
}

impl Answer {
    /// Whether the answer came as one body of `content_type` whose declared
    /// length is all of it (no stream).
    pub fn is_whole(&self, content_type: &str) -> bool {
        self.content_type.as_deref() == Some(content_type)
            && self.content_length == Some(self.text.len() as u64)
    }
}

impl RawMcp {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: HeaderValue) -> Self {
        self.headers
            .push((HeaderName::from_bytes(name.as_bytes()).unwrap(), value));
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        )
    }

    fn post(&self, session: Option<&str>, body: &Value) -> reqwest::RequestBuilder {
        self.post_as(SESSION_PROTOCOL, session, body)
    }

    fn post_as(
        &self,
        protocol: &str,
        session: Option<&str>,
        body: &Value,
    ) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", protocol)
            .body(body.to_string());
        for (k, v) in &self.headers {
            req = req.header(k.clone(), v.clone());
        }
        if let Some(id) = session {
            req = req.header("mcp-session-id", id);
        }
        req
    }

    /// Sends one message and reads the whole answer.
    pub async fn send(&self, session: Option<&str>, body: Value) -> Answer {
        self.answer(self.post(session, &body)).await
    }

    /// Sends one 2026-07-28 request (no session) with the routing headers
    /// of that revision: `Mcp-Method`, and `Mcp-Name` when given (a tool's
    /// name, a task's id).
    pub async fn send_stateless(&self, method: &str, name: Option<&str>, body: Value) -> Answer {
        let mut req = self
            .post_as(STATELESS_PROTOCOL, None, &body)
            .header("mcp-method", method);
        if let Some(name) = name {
            req = req.header("mcp-name", name);
        }
        self.answer(req).await
    }

    async fn answer(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let session = header("mcp-session-id");
        let content_type = header("content-type");
        let content_length = header("content-length").map(|v| v.parse().unwrap());
        let text = resp.text().await.unwrap();
        let message = first_message(&text);
        Answer {
            status,
            session,
            message,
            text,
            content_type,
            content_length,
        }
    }

    /// The initialize handshake; the answer carries the new session's id.
    pub async fn initialize(&self) -> Answer {
        self.initialize_with(json!({})).await
    }

    /// The initialize handshake declaring these client capabilities.
    pub async fn initialize_with(&self, capabilities: Value) -> Answer {
        let answer = self
            .send(
                None,
                json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                    "protocolVersion": SESSION_PROTOCOL,
                    "capabilities": capabilities,
                    "clientInfo": {"name": "raw-test", "version": "0"},
                }}),
            )
            .await;
        if let Some(id) = &answer.session {
            let done = self
                .send(
                    Some(id),
                    json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                )
                .await;
            assert!(done.status.is_success(), "{done:?}");
        }
        answer
    }

    /// A session, or a panic saying why there is none.
    pub async fn open(&self) -> String {
        let answer = self.initialize().await;
        match answer.session.clone() {
            Some(id) => id,
            None => panic!("no session: {answer:?}"),
        }
    }

    pub async fn call(&self, session: &str, id: u64, tool: &str, arguments: Value) -> Answer {
        self.send(
            Some(session),
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                   "params": {"name": tool, "arguments": arguments}}),
        )
        .await
    }

    /// Starts a tools/call and returns once its response stream has begun,
    /// still open: dropping it closes the connection.
    pub async fn start_call(
        &self,
        session: &str,
        id: u64,
        tool: &str,
        arguments: Value,
    ) -> reqwest::Response {
        let resp = self
            .post(
                Some(session),
                &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                        "params": {"name": tool, "arguments": arguments}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp
    }

    /// Starts a tools/call of the stateless protocol (2026-07-28, no
    /// session), returning once its response stream has begun.
    pub async fn start_stateless_call(&self, tool: &str, arguments: Value) -> reqwest::Response {
        let meta = json!({
            "io.modelcontextprotocol/protocolVersion": STATELESS_PROTOCOL,
            "io.modelcontextprotocol/clientCapabilities": {},
        });
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                          "params": {"name": tool, "arguments": arguments, "_meta": meta}});
        let mut req = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", STATELESS_PROTOCOL)
            .header("mcp-method", "tools/call")
            .header("mcp-name", tool)
            .body(body.to_string());
        for (k, v) in &self.headers {
            req = req.header(k.clone(), v.clone());
        }
        let resp = req.send().await.unwrap();
        if resp.status() != StatusCode::OK {
            panic!("{}: {}", resp.status(), resp.text().await.unwrap());
        }
        resp
    }

    pub async fn delete(&self, session: &str) -> StatusCode {
        let mut req = self
            .http
            .delete(&self.url)
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", SESSION_PROTOCOL);
        for (k, v) in &self.headers {
            req = req.header(k.clone(), v.clone());
        }
        req.send().await.unwrap().status()
    }
}

/// The first JSON-RPC message of a JSON or event-stream body.
pub fn first_message(text: &str) -> Value {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return v;
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v.get("id").is_some())
        .unwrap_or(Value::Null)
}

/// Opens a legacy SSE session; returns its message URL and the open stream.
pub async fn open_sse(
    base: &str,
    path: &str,
    token: &str,
) -> (
    String,
    impl futures::Stream<Item = reqwest::Result<bytes::Bytes>>,
) {
    let resp = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    loop {
        let chunk = stream.next().await.expect("endpoint event").unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        if let Some(line) = buf.lines().find_map(|l| l.strip_prefix("data:")) {
            if buf.contains("\n\n") {
                return (format!("{base}{}", line.trim()), stream);
            }
        }
    }
}
