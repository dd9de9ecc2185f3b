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
//!
//! Replies can take real time, as a real model's do: [`Reply::over`] streams
//! a text in deltas over a duration, [`Reply::silent`] opens the stream and
//! then sends nothing for a while (a long reasoning step), and
//! [`Reply::delayed`] holds the request before answering at all.

mod inspect;
mod reply;
mod stream;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use reply::flatten;
// Every test binary compiles this module and uses a different part of it.
#[allow(unused_imports)]
pub use inspect::{conversation, messages, output_schema, tool_outputs, Message};
#[allow(unused_imports)]
pub use reply::{deltas, implement_json, Reply, DELTA_EVERY};

/// Token usage reported in every `response.completed`, so tests can check accounting.
pub const INPUT_TOKENS: u64 = 1200;
pub const CACHED_INPUT_TOKENS: u64 = 200;
pub const OUTPUT_TOKENS: u64 = 34;
pub const REASONING_OUTPUT_TOKENS: u64 = 4;
/// The environment variable the provider config tells Codex to read its key from.
pub const API_KEY_ENV: &str = "FAKE_API_KEY";
/// The model slug the tests use: a bundled one, so Codex offers freeform apply_patch.
pub const MODEL: &str = "gpt-5.5";

/// Codex config for a gateway using the fake provider: the gateway leaves
/// Codex's request and stream retries at their defaults (right for a real
/// model API), but a test's scripted failure (an HTTP error, a dropped
/// stream) should fail the run at once rather than be retried.
pub const NO_RETRIES: &[&str] = &[
    "model_providers.fake.request_max_retries=0",
    "model_providers.fake.stream_max_retries=0",
];

/// One HTTP request the server received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    /// The JSON body, or `Value::Null` when there was none or it was not JSON.
    pub body: Value,
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
        let app = Router::new()
            .fallback(stream::handle)
            .with_state(shared.clone());
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
