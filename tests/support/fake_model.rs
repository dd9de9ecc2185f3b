//! A fake OpenAI Responses API that the real `codex` binary talks to.
//!
//! Codex POSTs `{base_url}/responses` with `stream: true` and reads
//! server-sent events; each POST consumes one scripted [`Reply`]. A tool call
//! (exec_command, apply_patch) makes Codex run the tool and POST again with the
//! tool's output, and that follow-up request is answered by the next reply.
//!
//! Which reply answers a request: the first `when_contains` rule whose needle
//! occurs in the request body, else the head of the FIFO queue, else a plain
//! text "ok". Rules exist for concurrent agents, whose request order is not
//! deterministic; a rule keeps matching, so give it a [`Reply::Sequence`] when
//! one conversation needs several steps (the follow-up of an `Exec` carries the
//! original prompt too, so a bare `Exec` rule would loop). The body also holds
//! Codex's environment context with the workspace path, so an agent's
//! directory name makes a good needle.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

/// Token usage reported in every `response.completed`, so tests can check accounting.
pub const INPUT_TOKENS: u64 = 1200;
pub const CACHED_INPUT_TOKENS: u64 = 200;
pub const OUTPUT_TOKENS: u64 = 34;
pub const REASONING_OUTPUT_TOKENS: u64 = 4;
/// The environment variable the provider config tells Codex to read its key from.
pub const API_KEY_ENV: &str = "FAKE_API_KEY";
/// The model slug the tests use: a bundled one, so Codex offers freeform apply_patch.
pub const MODEL: &str = "gpt-5.5";

/// One scripted model answer (one HTTP response to one POST /responses).
#[derive(Clone, Debug)]
pub enum Reply {
    /// An assistant message with this text; the turn ends.
    Text(String),
    /// An assistant message whose text is this JSON, as a model answering under
    /// a `text.format` json_schema would.
    Json(Value),
    /// A function_call to `exec_command`; Codex runs `cmd` and asks again.
    Exec { cmd: String },
    /// A freeform `apply_patch` custom_tool_call with this patch text.
    ApplyPatch(String),
    /// An HTTP error status with this body instead of a stream.
    HttpError(u16, String),
    /// A 200 event stream that sends `response.created` and then nothing for
    /// this long, then closes without `response.completed`.
    Stall(Duration),
    /// A stream that starts an assistant message ("partial") and closes
    /// without `response.completed`, as a dropped connection would.
    Disconnect,
    /// This reply, after holding the request this long (the model
    /// "thinking"): keeps a run busy. Holds are counted, see
    /// [`FakeModel::max_concurrent_holds`].
    Delayed(Duration, Box<Reply>),
    /// Several replies answering consecutive requests (queue: pushed in
    /// order; rule: consumed one per match, the last one repeating).
    Sequence(Vec<Reply>),
}

impl Reply {
    pub fn text(s: impl Into<String>) -> Self {
        Reply::Text(s.into())
    }
    pub fn delayed(pause: Duration, reply: Reply) -> Self {
        Reply::Delayed(pause, Box::new(reply))
    }
    pub fn exec(cmd: impl Into<String>) -> Self {
        Reply::Exec { cmd: cmd.into() }
    }
    /// `Exec` followed by a final text answer: one complete tool-using turn.
    pub fn exec_then(cmd: impl Into<String>, text: impl Into<String>) -> Self {
        Reply::Sequence(vec![Reply::exec(cmd), Reply::text(text)])
    }
    /// An apply_patch that adds one file with these lines.
    pub fn add_file(path: &str, contents: &str) -> Self {
        let mut patch = format!("*** Begin Patch\n*** Add File: {path}\n");
        for line in contents.lines() {
            patch.push('+');
            patch.push_str(line);
            patch.push('\n');
        }
        patch.push_str("*** End Patch");
        Reply::ApplyPatch(patch)
    }
}

/// One HTTP request the server received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    /// The JSON body, or `Value::Null` when there was none or it was not JSON.
    pub body: Value,
}

/// A user or assistant message found in a request's `input`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub role: String,
    pub text: String,
}

struct Rule {
    needle: String,
    steps: Vec<Reply>,
    next: usize,
}

#[derive(Default)]
struct Script {
    queue: VecDeque<Reply>,
    rules: Vec<Rule>,
}

struct Shared {
    script: Mutex<Script>,
    log: Mutex<Vec<RecordedRequest>>,
    arrived: Notify,
    ids: AtomicU64,
    reject_expired: AtomicBool,
    stop: CancellationToken,
    holding: AtomicU64,
    max_holding: AtomicU64,
}

/// The running fake model server. Stops on [`FakeModel::shutdown`] or drop.
pub struct FakeModel {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeModel {
    /// Starts on an ephemeral loopback port.
    pub async fn start() -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind fake model on loopback")
    }

    /// Starts on the given address (e.g. `0.0.0.0:0` so pods can reach it).
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            script: Mutex::new(Script::default()),
            log: Mutex::new(Vec::new()),
            arrived: Notify::new(),
            ids: AtomicU64::new(0),
            reject_expired: AtomicBool::new(false),
            stop: CancellationToken::new(),
            holding: AtomicU64::new(0),
            max_holding: AtomicU64::new(0),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let stop = shared.stop.clone();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        Ok(FakeModel {
            addr,
            shared,
            server,
        })
    }

    /// The bound address (the port is the real one when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://HOST:PORT/v1`; an unspecified bind address is reached via loopback.
    pub fn base_url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip([127, 0, 0, 1].into());
        }
        format!("http://{addr}/v1")
    }

    /// The `model_providers.fake` table for a Codex `config.toml`.
    pub fn provider_toml(&self) -> String {
        format!(
            "model_provider = \"fake\"\n\n[model_providers.fake]\nname = \"fake\"\n\
             base_url = \"{}\"\nenv_key = \"{API_KEY_ENV}\"\nwire_api = \"responses\"\n\
             request_max_retries = 0\nstream_max_retries = 0\n",
            self.base_url()
        )
    }

    /// The same provider as `codex -c` overrides: `["-c", "k=v", ...]`.
    pub fn codex_config_args(&self) -> Vec<String> {
        let provider = format!(
            "model_providers.fake={{name=\"fake\",base_url=\"{}\",env_key=\"{API_KEY_ENV}\",\
             wire_api=\"responses\",request_max_retries=0,stream_max_retries=0}}",
            self.base_url()
        );
        ["model_provider=\"fake\"".to_string(), provider]
            .into_iter()
            .flat_map(|kv| ["-c".to_string(), kv])
            .collect()
    }

    /// From now on, answers a model request whose bearer token is an expired
    /// JWT with 401, as the real API does.
    pub fn reject_expired_tokens(&self) {
        self.shared.reject_expired.store(true, Ordering::Relaxed);
    }

    /// Queues a reply for the next request that no rule matches.
    pub fn push(&self, reply: Reply) {
        let mut script = self.shared.script.lock().unwrap();
        flatten(reply, &mut |r| script.queue.push_back(r));
    }

    /// Answers requests whose body contains `needle` with `reply`, before the queue.
    pub fn when_contains(&self, needle: impl Into<String>, reply: Reply) {
        let mut steps = Vec::new();
        flatten(reply, &mut |r| steps.push(r));
        assert!(!steps.is_empty(), "when_contains needs at least one reply");
        self.shared.script.lock().unwrap().rules.push(Rule {
            needle: needle.into(),
            steps,
            next: 0,
        });
    }

    /// Replies still queued (not yet consumed).
    pub fn pending(&self) -> usize {
        self.shared.script.lock().unwrap().queue.len()
    }

    /// Every POST /responses body received, in arrival order.
    pub fn requests(&self) -> Vec<Value> {
        self.request_log()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/responses"))
            .map(|r| r.body)
            .collect()
    }

    /// The bearer token of every POST /responses, in arrival order.
    pub fn bearer_tokens(&self) -> Vec<String> {
        self.request_log()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/responses"))
            .filter_map(|r| r.headers.get("authorization").cloned())
            .map(|h| h.trim_start_matches("Bearer ").to_owned())
            .collect()
    }

    /// Every HTTP request received, whatever its path.
    pub fn request_log(&self) -> Vec<RecordedRequest> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Waits until at least `n` model requests arrived; false on timeout.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.arrived.notified();
            if self.requests().len() >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.requests().len() >= n;
            }
        }
    }

    /// The most [`Reply::Delayed`] requests held at the same time so far.
    pub fn max_concurrent_holds(&self) -> u64 {
        self.shared.max_holding.load(Ordering::SeqCst)
    }

    /// Stops accepting, and ends stalled streams so their clients see EOF.
    pub fn shutdown(&self) {
        self.shared.stop.cancel();
        self.server.abort();
    }
}

impl Drop for FakeModel {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The user/assistant message texts of a request's `input`, in order.
pub fn messages(request: &Value) -> Vec<Message> {
    let items = request["input"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    items
        .iter()
        .filter(|item| item["type"] == "message" || item.get("type").is_none())
        .filter_map(|item| {
            let role = item["role"].as_str()?;
            if role != "user" && role != "assistant" {
                return None;
            }
            let text = match &item["content"] {
                Value::String(s) => s.clone(),
                Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
                _ => return None,
            };
            Some(Message {
                role: role.to_string(),
                text,
            })
        })
        .collect()
}

/// Like [`messages`], without the context blocks Codex injects as user
/// messages (`<environment_context>...</environment_context>` and the like):
/// what the user and the assistant actually said.
pub fn conversation(request: &Value) -> Vec<Message> {
    messages(request)
        .into_iter()
        .filter(|m| !is_injected_context(&m.text))
        .collect()
}

fn is_injected_context(text: &str) -> bool {
    let text = text.trim();
    let Some(tag) = text
        .strip_prefix('<')
        .and_then(|rest| rest.split_once('>'))
        .map(|(tag, _)| tag)
    else {
        return false;
    };
    !tag.is_empty() && text.ends_with(&format!("</{tag}>"))
}

/// The JSON schema of a request's `text.format` when it is a json_schema format.
pub fn output_schema(request: &Value) -> Option<Value> {
    let format = request.pointer("/text/format")?;
    (format["type"] == "json_schema").then(|| format["schema"].clone())
}

/// The outputs of tool calls (function_call_output / custom_tool_call_output) in a request.
pub fn tool_outputs(request: &Value) -> Vec<String> {
    let items = request["input"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    items
        .iter()
        .filter(|i| i["type"] == "function_call_output" || i["type"] == "custom_tool_call_output")
        .map(|i| match &i["output"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

fn flatten(reply: Reply, out: &mut impl FnMut(Reply)) {
    match reply {
        Reply::Sequence(steps) => steps.into_iter().for_each(|s| flatten(s, out)),
        other => out(other),
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body_json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (k.as_str().to_string(), value)
        })
        .collect();
    let is_model_call = parts.method == "POST" && parts.uri.path().ends_with("/responses");
    let expired = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| super::fake_auth::jwt_expired(v.trim_start_matches("Bearer ")));
    shared.log.lock().unwrap().push(RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        headers,
        body: body_json,
    });
    shared.arrived.notify_waiters();
    if !is_model_call {
        return (StatusCode::NOT_FOUND, "not served by the fake model").into_response();
    }
    if expired && shared.reject_expired.load(Ordering::Relaxed) {
        let body =
            json!({"error": {"message": "the access token has expired", "code": "token_expired"}});
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
    }
    let mut reply = next_reply(&shared, &text);
    while let Reply::Delayed(pause, inner) = reply {
        let now = shared.holding.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_holding.fetch_max(now, Ordering::SeqCst);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shared.stop.cancelled() => {}
        }
        shared.holding.fetch_sub(1, Ordering::SeqCst);
        reply = *inner;
    }
    respond(&shared, reply)
}

fn next_reply(shared: &Shared, body: &str) -> Reply {
    let mut script = shared.script.lock().unwrap();
    if let Some(rule) = script.rules.iter_mut().find(|r| body.contains(&r.needle)) {
        let reply = rule.steps[rule.next.min(rule.steps.len() - 1)].clone();
        rule.next += 1;
        return reply;
    }
    script
        .queue
        .pop_front()
        .unwrap_or_else(|| Reply::text("ok"))
}

fn respond(shared: &Arc<Shared>, reply: Reply) -> Response {
    let n = shared.ids.fetch_add(1, Ordering::Relaxed) + 1;
    let response_id = format!("resp_{n}");
    let created = json!({"type": "response.created", "response": {"id": response_id}});
    let completed = json!({
        "type": "response.completed",
        "response": {
            "id": response_id,
            "usage": {
                "input_tokens": INPUT_TOKENS,
                "input_tokens_details": {"cached_tokens": CACHED_INPUT_TOKENS},
                "output_tokens": OUTPUT_TOKENS,
                "output_tokens_details": {"reasoning_tokens": REASONING_OUTPUT_TOKENS},
                "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
            }
        }
    });
    let events = match reply {
        Reply::Text(text) => message_events(n, &text),
        Reply::Json(value) => message_events(n, &value.to_string()),
        Reply::Exec { cmd } => vec![item_done(json!({
            "type": "function_call",
            "id": format!("fc_{n}"),
            "call_id": format!("call_{n}"),
            "name": "exec_command",
            "arguments": json!({"cmd": cmd}).to_string(),
        }))],
        Reply::ApplyPatch(patch) => vec![item_done(json!({
            "type": "custom_tool_call",
            "id": format!("ctc_{n}"),
            "call_id": format!("call_{n}"),
            "name": "apply_patch",
            "input": patch,
        }))],
        Reply::HttpError(status, body) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        }
        Reply::Stall(pause) => {
            return sse_response(shared, vec![created], Some(pause));
        }
        Reply::Disconnect => {
            let mut events = vec![created];
            events.extend(message_events(n, "partial").into_iter().take(2));
            return sse_response(shared, events, None);
        }
        Reply::Sequence(_) => unreachable!("sequences are flattened when scripted"),
        Reply::Delayed(..) => unreachable!("holds are served before responding"),
    };
    let mut all = vec![created];
    all.extend(events);
    all.push(completed);
    sse_response(shared, all, None)
}

fn message_events(n: u64, text: &str) -> Vec<Value> {
    let item_id = format!("msg_{n}");
    vec![
        json!({
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {"type": "message", "id": item_id, "role": "assistant", "content": []},
        }),
        json!({
            "type": "response.output_text.delta",
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "delta": text,
        }),
        item_done(json!({
            "type": "message",
            "id": item_id,
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        })),
    ]
}

fn item_done(item: Value) -> Value {
    json!({"type": "response.output_item.done", "output_index": 0, "item": item})
}

/// An event stream of `events`, optionally held open (silent) for `stall`
/// afterwards; shutting the server down ends a stall early.
fn sse_response(shared: &Arc<Shared>, events: Vec<Value>, stall: Option<Duration>) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(events.len().max(1));
    for event in &events {
        let kind = event["type"].as_str().unwrap_or("message");
        let frame = format!("event: {kind}\ndata: {event}\n\n");
        tx.try_send(Bytes::from(frame))
            .expect("channel sized to the events");
    }
    if let Some(pause) = stall {
        let stop = shared.stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.cancelled() => {}
                _ = tx.closed() => {}
            }
        });
    }
    let stream = ReceiverStream::new(rx).map(Ok::<_, Infallible>);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .expect("static response parts")
}
