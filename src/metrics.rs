//! Prometheus metrics: one struct that owns its registry, typed labels, and
//! a drop-guard timer for runs.

use std::time::Instant;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// Registers a new collector and hands it back, so a metrics struct builds
/// each field in one expression. Names are fixed in code, so a clash or a
/// bad name is a bug and panics at startup.
pub(crate) fn register<C>(registry: &Registry, collector: Result<C, prometheus::Error>) -> C
where
    C: prometheus::core::Collector + Clone + 'static,
{
    let collector = collector.expect("a valid metric");
    registry
        .register(Box::new(collector.clone()))
        .expect("a unique metric");
    collector
}

/// The registry's series in Prometheus' text format.
pub(crate) fn render_registry(registry: &Registry) -> String {
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buf)
        .expect("text encoding");
    String::from_utf8(buf).expect("utf-8 exposition")
}

/// The tools that run Codex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolKind {
    Plan,
    Implement,
    Review,
    Fix,
    Chat,
}

impl ToolKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plan => "plan",
            Self::Implement => "implement",
            Self::Review => "review",
            Self::Fix => "fix",
            Self::Chat => "chat",
        }
    }
}

/// Where a task (MCP Tasks extension) stands, as `tasks/get` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    Working,
    Completed,
    /// Completed with a tool error (`isError`), or failed.
    Failed,
    Cancelled,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Working => "working",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed,
    InvalidReply,
    Cancelled,
    TimedOut,
    Busy,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::InvalidReply => "invalid_reply",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed_out",
            Self::Busy => "busy",
        }
    }
}

pub struct Metrics {
    registry: Registry,
    runs: IntCounterVec,
    run_seconds: HistogramVec,
    tokens: IntCounterVec,
    pub active_agents: IntGauge,
    pub runs_in_progress: IntGauge,
    pub queue_depth: IntGauge,
    pub sse_sessions: IntGauge,
    http_requests: IntCounterVec,
    runs_resumed: IntCounterVec,
    background_runs: IntCounterVec,
    pub background_running: IntGauge,
    tasks: IntCounterVec,
    pub tasks_working: IntGauge,
    task_seconds: HistogramVec,
    task_polls: IntCounterVec,
    replica_forwards: IntCounterVec,
    kube_requests: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("codex_mcp".into()), None).expect("registry");
        let runs = register(
            &registry,
            IntCounterVec::new(
                Opts::new("runs_total", "Codex runs by tool and outcome"),
                &["tool", "outcome"],
            ),
        );
        let run_seconds = register(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "run_duration_seconds",
                    "Duration of Codex runs, queueing included",
                )
                .buckets(vec![
                    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0,
                ]),
                &["tool"],
            ),
        );
        let tokens = register(
            &registry,
            IntCounterVec::new(
                Opts::new("tokens_total", "Model tokens reported by Codex"),
                &["direction"],
            ),
        );
        let active_agents = register(
            &registry,
            IntGauge::new("active_agents", "Agents active within the session timeout"),
        );
        let runs_in_progress = register(
            &registry,
            IntGauge::new("runs_in_progress", "Codex runs executing now"),
        );
        let queue_depth = register(
            &registry,
            IntGauge::new(
                "queue_depth",
                "Tool calls waiting for their agent or a run slot",
            ),
        );
        let sse_sessions = register(
            &registry,
            IntGauge::new("sse_sessions", "Open legacy SSE connections"),
        );
        let http_requests = register(
            &registry,
            IntCounterVec::new(
                Opts::new("http_requests_total", "HTTP requests by route and status"),
                &["route", "status"],
            ),
        );
        let runs_resumed = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "runs_resumed_total",
                    "Runs a previous gateway started, settled by this one, by how they stood (running, finished, lost)",
                ),
                &["state"],
            ),
        );
        let background_runs = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "background_runs_total",
                    "Finished background calls by status",
                ),
                &["status"],
            ),
        );
        let background_running = register(
            &registry,
            IntGauge::new("background_runs_running", "Background calls going on now"),
        );
        let tasks = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "tasks_total",
                    "Tasks (MCP Tasks extension) by state: working counts created tasks, the others finished ones",
                ),
                &["state"],
            ),
        );
        let tasks_working = register(
            &registry,
            IntGauge::new("tasks_working", "Tasks of this gateway going on now"),
        );
        let task_seconds = register(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "task_duration_seconds",
                    "Duration of tasks from creation to their end, by final state",
                )
                .buckets(vec![
                    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
                ]),
                &["state"],
            ),
        );
        let task_polls = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "task_polls_total",
                    "tasks/get requests by the state answered",
                ),
                &["state"],
            ),
        );
        let replica_forwards = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "replica_forwards_total",
                    "Requests of a session held by another gateway replica, by outcome",
                ),
                &["outcome"],
            ),
        );
        let kube_requests = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "kube_api_requests_total",
                    "Requests to the Kubernetes API server, by verb and resource",
                ),
                &["verb", "resource"],
            ),
        );
        Self {
            registry,
            replica_forwards,
            kube_requests,
            tasks,
            tasks_working,
            task_seconds,
            task_polls,
            runs_resumed,
            background_runs,
            background_running,
            runs,
            run_seconds,
            tokens,
            active_agents,
            runs_in_progress,
            queue_depth,
            sse_sessions,
            http_requests,
        }
    }

    /// One request to the API server (see `kubeconfig::request_kind`).
    pub fn kube_request(&self, verb: &str, resource: &str) {
        self.kube_requests
            .with_label_values(&[verb, resource])
            .inc();
    }

    /// `outcome`: `forwarded`, `unreachable` or `not_a_replica`.
    pub fn replica_forward(&self, outcome: &'static str) {
        self.replica_forwards.with_label_values(&[outcome]).inc();
    }

    pub fn run_finished(&self, tool: ToolKind, outcome: Outcome) {
        self.runs
            .with_label_values(&[tool.as_str(), outcome.as_str()])
            .inc();
    }

    /// `state`: running, finished or lost.
    pub fn run_resumed(&self, state: &'static str) {
        self.runs_resumed.with_label_values(&[state]).inc();
    }

    /// `status`: a [`crate::api::run_log::RunStatus`] name.
    pub fn background_finished(&self, status: &'static str) {
        self.background_running.dec();
        self.background_runs.with_label_values(&[status]).inc();
    }

    pub fn task_created(&self) {
        self.tasks
            .with_label_values(&[TaskState::Working.as_str()])
            .inc();
        self.tasks_working.inc();
    }

    /// A task of this gateway ended after `seconds`.
    pub fn task_finished(&self, state: TaskState, seconds: f64) {
        self.tasks_working.dec();
        self.tasks.with_label_values(&[state.as_str()]).inc();
        self.task_seconds
            .with_label_values(&[state.as_str()])
            .observe(seconds);
    }

    pub fn task_polled(&self, state: TaskState) {
        self.task_polls.with_label_values(&[state.as_str()]).inc();
    }

    pub fn tokens(&self, input: u64, output: u64) {
        self.tokens.with_label_values(&["input"]).inc_by(input);
        self.tokens.with_label_values(&["output"]).inc_by(output);
    }

    /// `route` must be a route template (`/agents/{name}/mcp`), never a raw
    /// path, so label values stay bounded.
    pub fn http_request(&self, route: &str, status: u16) {
        self.http_requests
            .with_label_values(&[route, &status.to_string()])
            .inc();
    }

    /// Starts timing a run; the duration is recorded when the guard drops.
    pub fn run_timer(&self, tool: ToolKind) -> RunTimer<'_> {
        RunTimer {
            metrics: self,
            tool,
            started: Instant::now(),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        render_registry(&self.registry)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Records a run's duration when dropped, however the run ended.
pub struct RunTimer<'a> {
    metrics: &'a Metrics,
    tool: ToolKind,
    started: Instant,
}

impl Drop for RunTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .run_seconds
            .with_label_values(&[self.tool.as_str()])
            .observe(self.started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labelled_series() {
        let m = Metrics::new();
        m.run_finished(ToolKind::Plan, Outcome::Ok);
        m.tokens(10, 4);
        m.http_request("/mcp", 200);
        m.run_resumed("running");
        m.background_running.inc();
        m.background_finished("ok");
        m.task_created();
        m.task_polled(TaskState::Working);
        m.task_finished(TaskState::Completed, 3.0);
        {
            let _t = m.run_timer(ToolKind::Plan);
        }
        let text = m.render();
        assert!(
            text.contains(r#"codex_mcp_runs_total{outcome="ok",tool="plan"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"codex_mcp_tokens_total{direction="input"} 10"#));
        assert!(text.contains(r#"codex_mcp_http_requests_total{route="/mcp",status="200"} 1"#));
        assert!(text.contains(r#"codex_mcp_run_duration_seconds_count{tool="plan"} 1"#));
        assert!(text.contains("codex_mcp_active_agents 0"));
        assert!(text.contains(r#"codex_mcp_runs_resumed_total{state="running"} 1"#));
        assert!(text.contains(r#"codex_mcp_background_runs_total{status="ok"} 1"#));
        assert!(text.contains("codex_mcp_background_runs_running 0"));
        assert!(text.contains(r#"codex_mcp_tasks_total{state="working"} 1"#));
        assert!(text.contains(r#"codex_mcp_tasks_total{state="completed"} 1"#));
        assert!(text.contains(r#"codex_mcp_task_polls_total{state="working"} 1"#));
        assert!(text.contains(r#"codex_mcp_task_duration_seconds_count{state="completed"} 1"#));
        assert!(text.contains("codex_mcp_tasks_working 0"));
    }
}
