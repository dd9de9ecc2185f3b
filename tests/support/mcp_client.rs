//! A real MCP client for the integration tests: the Python `mcp` package
//! (installed into the cache venv by `scripts/install-test-deps.sh`) run by
//! `tests/support/mcp_client.py`, over real HTTP.
//!
//! One [`McpClient::run`] is one MCP session: its steps share the
//! connection, so a second `run` is a reconnect. Results are the script's JSON
//! lines, one per step, wrapped in [`StepResult`] for convenient assertions.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Streamable HTTP (`/mcp`).
    Http,
    /// Legacy SSE (`GET /sse` + `POST /message`).
    Sse,
}

/// Which protocol generation the client is told to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// The library's default: try the stateless 2026-07-28 protocol
    /// (`server/discover`), fall back to the 2025-11-25 initialize handshake.
    Auto,
    /// Force the initialize handshake (2025-11-25, sessions).
    Legacy,
    /// Adopt 2026-07-28 without probing.
    Modern,
}

impl Protocol {
    fn mode(self) -> &'static str {
        match self {
            Protocol::Auto => "auto",
            Protocol::Legacy => "legacy",
            Protocol::Modern => "2026-07-28",
        }
    }
}

/// One step of a session plan.
#[derive(Clone, Debug)]
pub enum Step {
    ListTools,
    CallTool {
        name: String,
        arguments: Value,
        /// Abandon the call after this long, as the library cancels a call.
        cancel_after: Option<Duration>,
        /// Fail the call with a JSON-RPC timeout (-32001) after this long.
        timeout: Option<Duration>,
    },
    Sleep(Duration),
    /// These steps at once, in the same session; the result's
    /// [`StepResult::results`] has one entry per step.
    Parallel(Vec<Step>),
}

impl Step {
    pub fn call_tool(name: impl Into<String>, arguments: Value) -> Self {
        Step::CallTool {
            name: name.into(),
            arguments,
            cancel_after: None,
            timeout: None,
        }
    }

    pub fn cancel_after(mut self, after: Duration) -> Self {
        if let Step::CallTool { cancel_after, .. } = &mut self {
            *cancel_after = Some(after);
        }
        self
    }

    pub fn timeout(mut self, limit: Duration) -> Self {
        if let Step::CallTool { timeout, .. } = &mut self {
            *timeout = Some(limit);
        }
        self
    }

    fn to_json(&self) -> Value {
        match self {
            Step::ListTools => json!({"op": "list_tools"}),
            Step::Sleep(d) => json!({"op": "sleep", "secs": d.as_secs_f64()}),
            Step::Parallel(steps) => {
                json!({"op": "parallel", "steps": steps.iter().map(Step::to_json).collect::<Vec<_>>()})
            }
            Step::CallTool {
                name,
                arguments,
                cancel_after,
                timeout,
            } => json!({
                "op": "call_tool",
                "name": name,
                "arguments": arguments,
                "cancel_after_secs": cancel_after.map(|d| d.as_secs_f64()),
                "timeout_secs": timeout.map(|d| d.as_secs_f64()),
            }),
        }
    }
}

/// One progress notification received during a call.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub progress: f64,
    pub total: Option<f64>,
    pub message: Option<String>,
    /// When the client received it, since it sent the call.
    pub at: Duration,
}

/// The outcome of one step, as printed by the client script.
#[derive(Clone, Debug)]
pub struct StepResult(pub Value);

impl StepResult {
    /// The step completed at the protocol level (a tool result with
    /// `isError: true` is still ok; a JSON-RPC or HTTP error is not).
    pub fn ok(&self) -> bool {
        self.0["ok"] == true
    }
    /// The tool result's `isError`.
    pub fn is_error(&self) -> bool {
        self.0["isError"] == true
    }
    pub fn structured(&self) -> Option<&Value> {
        self.0.get("structuredContent").filter(|v| !v.is_null())
    }
    /// The text content items, joined by newlines.
    pub fn text(&self) -> &str {
        self.0["text"].as_str().unwrap_or("")
    }
    pub fn progress(&self) -> Vec<Progress> {
        let items = self.0["progress"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        items
            .iter()
            .map(|p| Progress {
                progress: p["progress"].as_f64().unwrap_or(f64::NAN),
                total: p["total"].as_f64(),
                message: p["message"].as_str().map(str::to_string),
                at: Duration::from_secs_f64(p["at_secs"].as_f64().unwrap_or(0.0)),
            })
            .collect()
    }
    /// The longest time the caller heard nothing: between sending the call,
    /// the progress notifications it received, and the result.
    pub fn longest_silence(&self) -> Duration {
        let mut times: Vec<Duration> = self.progress().iter().map(|p| p.at).collect();
        times.push(self.elapsed());
        times
            .iter()
            .scan(Duration::ZERO, |last, &t| {
                let gap = t.saturating_sub(*last);
                *last = t;
                Some(gap)
            })
            .max()
            .unwrap_or_default()
    }
    /// The call was abandoned by `cancel_after`.
    pub fn cancelled(&self) -> bool {
        self.0["cancelled"] == true
    }
    /// Whether the cancellation went out as a `notifications/cancelled`
    /// (handshake-era and SSE sessions) rather than a closed POST (2026-07-28
    /// streamable HTTP).
    pub fn cancel_notification_sent(&self) -> bool {
        self.0["cancel_notification_sent"] == true
    }
    /// `{"kind", "code", "message", "status"}` of a failed step.
    pub fn error(&self) -> Option<&Value> {
        self.0.get("error")
    }
    /// The JSON-RPC error code of a failed step.
    pub fn error_code(&self) -> Option<i64> {
        self.error()?.get("code")?.as_i64()
    }
    pub fn error_message(&self) -> &str {
        self.error()
            .and_then(|e| e["message"].as_str())
            .unwrap_or("")
    }
    /// The HTTP status of the failing exchange (401, 404, ...).
    pub fn http_status(&self) -> Option<u16> {
        self.error()?.get("status")?.as_u64().map(|s| s as u16)
    }
    /// The connection could not be opened at all.
    pub fn connect_failed(&self) -> bool {
        self.0["connect_failed"] == true
    }
    /// The tools of a `list_tools` step (name, description, inputSchema, outputSchema).
    pub fn tools(&self) -> Vec<&Value> {
        self.0["tools"]
            .as_array()
            .map(|t| t.iter().collect())
            .unwrap_or_default()
    }
    pub fn tool(&self, name: &str) -> Option<&Value> {
        self.tools().into_iter().find(|t| t["name"] == name)
    }
    /// The negotiated protocol version ("2025-11-25", "2026-07-28", ...).
    pub fn protocol_version(&self) -> Option<&str> {
        self.0["protocol_version"].as_str()
    }
    /// The session id (`Mcp-Session-Id`, or the SSE `sessionId`); none when stateless.
    pub fn session_id(&self) -> Option<&str> {
        self.0["session_id"].as_str()
    }
    /// The per-step results of a [`Step::Parallel`].
    pub fn results(&self) -> Vec<StepResult> {
        let items = self.0["results"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        items.iter().cloned().map(StepResult).collect()
    }
    pub fn elapsed(&self) -> Duration {
        Duration::from_secs_f64(self.0["elapsed_secs"].as_f64().unwrap_or(0.0))
    }
}

impl std::fmt::Display for StepResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A client for one MCP endpoint; every `run` opens a new session.
#[derive(Clone, Debug)]
pub struct McpClient {
    url: String,
    transport: Transport,
    protocol: Protocol,
    headers: BTreeMap<String, String>,
    request_timeout: Option<Duration>,
}

impl McpClient {
    /// `url` is the full endpoint: `http://HOST:PORT/mcp` or `http://HOST:PORT/sse`.
    pub fn new(url: impl Into<String>, transport: Transport) -> Self {
        McpClient {
            url: url.into(),
            transport,
            protocol: Protocol::Auto,
            headers: BTreeMap::new(),
            request_timeout: None,
        }
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("Authorization", format!("Bearer {token}"))
    }

    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// The library's per-request read timeout (default: none).
    pub fn request_timeout(mut self, limit: Duration) -> Self {
        self.request_timeout = Some(limit);
        self
    }

    /// Runs all steps in one session and returns one result per step.
    /// Panics when the client script itself cannot run (missing venv, crash):
    /// that is a broken test setup, not an outcome to assert on.
    pub async fn run(&self, steps: Vec<Step>) -> Vec<StepResult> {
        let plan = json!({
            "url": self.url,
            "transport": match self.transport { Transport::Http => "http", Transport::Sse => "sse" },
            "protocol": self.protocol.mode(),
            "headers": self.headers,
            "timeout_secs": self.request_timeout.map(|d| d.as_secs_f64()),
            "steps": steps.iter().map(Step::to_json).collect::<Vec<_>>(),
        });
        let mut child = tokio::process::Command::new(python())
            .arg(script())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} (scripts/install-test-deps.sh creates it): {e}",
                    python().display()
                )
            });
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(plan.to_string().as_bytes()).await.unwrap();
        drop(stdin);
        let out = child.wait_with_output().await.expect("mcp client runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let results: Vec<StepResult> = stdout
            .lines()
            .map(|line| {
                let value = serde_json::from_str(line).unwrap_or_else(|e| {
                    panic!("mcp client printed a non-JSON line ({e}): {line}\nstderr: {stderr}")
                });
                StepResult(value)
            })
            .collect();
        assert!(
            out.status.success() && results.len() == steps.len(),
            "mcp client failed ({}) with {} of {} results\nstdout: {stdout}\nstderr: {stderr}",
            out.status,
            results.len(),
            steps.len()
        );
        results
    }

    pub async fn list_tools(&self) -> StepResult {
        self.run(vec![Step::ListTools]).await.remove(0)
    }

    pub async fn call_tool(&self, name: &str, arguments: Value) -> StepResult {
        self.run(vec![Step::call_tool(name, arguments)])
            .await
            .remove(0)
    }
}

/// The venv interpreter with the pinned `mcp` package.
pub fn python() -> PathBuf {
    std::env::var_os("CODEX_MCP_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| super::cache_dir().join("venv/bin/python"))
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/mcp_client.py")
}
