//! A small MCP 2026-07-28 client that declares the Tasks extension
//! (`io.modelcontextprotocol/tasks`, SEP-2663) in each request's `_meta`,
//! as a stateless client does: the Python `mcp` package (2.3) has the
//! extension's types but no client for it.

use std::time::Duration;

use reqwest::header::HeaderValue;
use serde_json::{json, Value};

use super::raw_mcp::{RawMcp, STATELESS_PROTOCOL};

pub const TASKS_EXTENSION: &str = "io.modelcontextprotocol/tasks";

/// The id of the task a `tools/call` was answered with; fails the test
/// unless the answer is a working task with a poll interval and a TTL.
pub fn task_id(answer: &Value) -> String {
    let result = &answer["result"];
    assert_eq!(result["resultType"], "task", "{answer}");
    assert_eq!(result["status"], "working", "{answer}");
    assert!(result["pollIntervalMs"].as_u64().unwrap() > 0, "{answer}");
    assert!(result["ttlMs"].as_u64().unwrap() > 0, "{answer}");
    result["taskId"].as_str().unwrap().to_owned()
}

#[derive(Clone)]
pub struct TasksClient {
    raw: RawMcp,
    /// Whether requests declare the Tasks extension.
    declare_tasks: bool,
}

impl TasksClient {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            raw: RawMcp::new(url),
            declare_tasks: true,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.raw = self.raw.header(name, HeaderValue::from_str(value).unwrap());
        self
    }

    pub fn bearer(mut self, token: &str) -> Self {
        self.raw = self.raw.bearer(token);
        self
    }

    /// A client that does not declare the extension.
    pub fn without_tasks(mut self) -> Self {
        self.declare_tasks = false;
        self
    }

    fn capabilities(&self) -> Value {
        if self.declare_tasks {
            json!({"extensions": {TASKS_EXTENSION: {}}})
        } else {
            json!({})
        }
    }

    /// Sends one request; answers its JSON-RPC response (`result` or `error`).
    pub async fn request(&self, method: &str, mut params: Value, name: Option<&str>) -> Value {
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": STATELESS_PROTOCOL,
            "io.modelcontextprotocol/clientCapabilities": self.capabilities(),
        });
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let answer = self.raw.send_stateless(method, name, body).await;
        let message = answer.message;
        assert!(
            message.get("result").is_some() || message.get("error").is_some(),
            "{}: {}",
            answer.status,
            answer.text
        );
        message
    }

    pub async fn call_tool(&self, tool: &str, arguments: Value) -> Value {
        self.request(
            "tools/call",
            json!({"name": tool, "arguments": arguments}),
            Some(tool),
        )
        .await
    }

    pub async fn get_task(&self, task_id: &str) -> Value {
        // Stateless requests name their target in Mcp-Name: for tasks/*, the task id.
        self.request("tasks/get", json!({"taskId": task_id}), Some(task_id))
            .await
    }

    pub async fn cancel_task(&self, task_id: &str) -> Value {
        self.request("tasks/cancel", json!({"taskId": task_id}), Some(task_id))
            .await
    }

    /// Polls `tasks/get` until the task leaves `working` (or `within` ends);
    /// answers the last result and every status message seen on the way.
    pub async fn poll_until_done(&self, task_id: &str, within: Duration) -> (Value, Vec<String>) {
        let deadline = std::time::Instant::now() + within;
        let mut messages = Vec::new();
        loop {
            let answer = self.get_task(task_id).await;
            let result = answer
                .get("result")
                .cloned()
                .unwrap_or_else(|| panic!("tasks/get failed: {answer}"));
            if let Some(m) = result["statusMessage"].as_str() {
                if messages.last().map(String::as_str) != Some(m) {
                    messages.push(m.to_owned());
                }
            }
            if result["status"] != "working" || std::time::Instant::now() >= deadline {
                return (result, messages);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
