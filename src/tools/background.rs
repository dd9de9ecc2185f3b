//! Background calls and the tools that come back to them: `get_run` and
//! `cancel_run`. A run id names its agent, so any gateway (a restarted one
//! too) finds the run in that agent's state; the caller's tenant and token
//! decide whether it may, and a run it may not see is answered exactly
//! like an id that does not exist.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResponse, CallToolResult};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, ErrorData, Json, RoleServer};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::caller::Caller;
pub use super::responses::RunReport;
use super::{Call, CodexTools, ToolError};
use crate::agent::AgentId;
use crate::backend::run_log::{short, RunEntry, RunStatus};
use crate::codex::run_dir::RunId;
use crate::codex::AgentRunLine;
use crate::metrics::ToolKind;
use crate::progress::Progress;
use crate::runs::Relativizer;

/// Longest `wait_seconds` honoured.
pub const MAX_WAIT_SECONDS: u64 = 60;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct GetRunArgs {
    /// The `run_id` a call with `background: true` returned (or one from
    /// `get_agent_status`'s `recent_runs`).
    pub run_id: String,
    /// Wait up to this many seconds (at most 60) for the run to finish
    /// before answering; 0 or omitted answers at once.
    #[serde(default)]
    pub wait_seconds: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct CancelRunArgs {
    /// The `run_id` of the run to stop.
    pub run_id: String,
}

/// A call answered now, or started in the background.
pub enum Answer<T> {
    Done(T),
    Started(RunReport),
}

impl<T: Serialize + JsonSchema + 'static> IntoCallToolResult for Answer<T> {
    fn into_call_tool_result(self) -> Result<CallToolResponse, ErrorData> {
        match self {
            Self::Done(t) => Json(t).into_call_tool_result(),
            Self::Started(r) => Ok(CallToolResult::structured(
                serde_json::to_value(r).expect("report serializes"),
            )
            .into()),
        }
    }
}

/// A finished task's state, from its run's status.
fn task_state(status: RunStatus) -> crate::metrics::TaskState {
    use crate::metrics::TaskState;
    match status {
        RunStatus::Ok => TaskState::Completed,
        RunStatus::Cancelled => TaskState::Cancelled,
        _ => TaskState::Failed,
    }
}

/// How a background call ended, from its error.
fn failed_status(cancelled: bool, error: &str) -> RunStatus {
    if cancelled || error.contains("cancelled") {
        RunStatus::Cancelled
    } else if error.contains("time limit") {
        RunStatus::TimedOut
    } else {
        RunStatus::Failed
    }
}

/// What `get_run` reports for a stored result: `{result}` or `{error}`.
fn stored(result: Result<Value, String>) -> Value {
    match result {
        Ok(v) => json!({"result": v}),
        Err(e) => json!({"error": e}),
    }
}

/// The last progress message among a run's last events, its paths in the
/// caller's terms (the events hold the server's).
fn last_progress(tail: &[String], relative: &Relativizer) -> Option<String> {
    tail.iter()
        .rev()
        .find_map(|l| match AgentRunLine::parse(l) {
            Some(AgentRunLine::Event(ev)) => relative.event(ev).progress_message(),
            _ => None,
        })
}

impl CodexTools {
    /// Starts `work` as a background call of `call`'s agent and answers at
    /// once with its run id, logged on the agent first: a gateway that
    /// ends before the run starts (it may wait for the agent's current run)
    /// leaves an entry a later gateway reports as lost, never an unknown id.
    pub(super) async fn start_background<T, F, Fut>(
        &self,
        mut call: Call,
        tool: ToolKind,
        work: F,
    ) -> Result<Answer<T>, ToolError>
    where
        T: Serialize + Send + 'static,
        F: FnOnce(CodexTools, Call) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, ToolError>> + Send + 'static,
    {
        let id = RunId::new(&call.agent.name);
        let is_task = call.task;
        let runner = self.runner.clone();
        let bg = runner
            .background()
            .register(id.clone(), call.agent.clone(), tool.as_str());
        runner.metrics().background_running.inc();
        call.progress = Progress::latest(bg.message.clone());
        call.cancel = bg.cancel.clone();
        call.run_id = Some(id.clone());
        let report = RunReport {
            run_id: format!("{id}{}", self.run_id_suffix),
            agent_id: call.agent.name.to_string(),
            tool: tool.as_str().to_owned(),
            status: RunStatus::Running.as_str().to_owned(),
            message: Some(
                "started in the background: call get_run with this run_id for its progress and result"
                    .into(),
            ),
            started_at: Some(bg.started_at),
            finished_at: None,
            result: None,
            error: None,
        };
        let entry = RunEntry {
            run_id: id.to_string(),
            tool: tool.as_str().to_owned(),
            started_at: bg.started_at,
            finished_at: None,
            status: RunStatus::Running,
            summary: None,
            background: true,
        };
        // An agent without a record yet (its first call) is not logged here:
        // its record is made when the run starts, moments later.
        if let Err(e) = runner.backend().note_run(&call.agent, entry.clone()).await {
            tracing::warn!(run = %id, "logging the background call failed: {e}");
        }
        let this = self.clone();
        let agent = call.agent.clone();
        tokio::spawn(async move {
            let result = work(this, call).await;
            let (status, value) = match result {
                Ok(t) => (
                    RunStatus::Ok,
                    stored(Ok(serde_json::to_value(t).expect("result serializes"))),
                ),
                Err(e) => {
                    let e = e.to_string();
                    (failed_status(bg.cancel.is_cancelled(), &e), stored(Err(e)))
                }
            };
            // A call that failed before its run started has only the entry
            // logged above: it is closed here (a run that started was
            // recorded already, and a final entry is never replaced).
            let ended = RunEntry {
                finished_at: Some(Utc::now()),
                status,
                summary: value.get("error").and_then(Value::as_str).map(short),
                ..entry
            };
            if let Err(e) = runner.backend().note_run(&agent, ended).await {
                tracing::warn!(run = %id, "logging the background call's end failed: {e}");
            }
            if is_task {
                let seconds = (Utc::now() - bg.started_at).num_milliseconds() as f64 / 1000.0;
                runner.metrics().task_finished(task_state(status), seconds);
            }
            runner.finish_background(&id, &bg, status, value).await;
        });
        Ok(Answer::Started(report))
    }

    /// `get_run`: the run's status, or its result once done.
    pub(super) async fn get_run_report(
        &self,
        caller: &Caller,
        args: GetRunArgs,
    ) -> Result<RunReport, ToolError> {
        let (agent, id) = self.visible_run(caller, &args.run_id)?;
        let wait = Duration::from_secs(args.wait_seconds.unwrap_or(0).min(MAX_WAIT_SECONDS));
        let mut report = RunReport {
            // As the client knows it (a task's id must stay the same).
            run_id: args.run_id.clone(),
            agent_id: agent.name.to_string(),
            tool: String::new(),
            status: RunStatus::Running.as_str().to_owned(),
            message: None,
            started_at: None,
            finished_at: None,
            result: None,
            error: None,
        };
        if let Some(bg) = self.live_call(&agent, &id) {
            report.tool.clone_from(&bg.tool);
            report.started_at = Some(bg.started_at);
            match bg.wait(wait).await {
                Some(done) => {
                    report.status = done.status.as_str().to_owned();
                    report.finished_at = Some(done.at);
                    fill(&mut report, &done.result);
                }
                None => report.message = bg.message(),
            }
            return Ok(report);
        }
        // Not a call of this process: its directory, then the agent's log.
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if self.report_from_state(&agent, &id, &mut report).await? {
                return Ok(report);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(report);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Fills `report` from the run's directory and the agent's log; true
    /// when the run is over.
    async fn report_from_state(
        &self,
        agent: &AgentId,
        id: &RunId,
        report: &mut RunReport,
    ) -> Result<bool, ToolError> {
        let unknown = || ToolError::InvalidParams(format!("unknown run `{id}`"));
        let state = match self.runner.backend().run_client() {
            Some(c) => c.status(agent, id).await.ok().flatten(),
            None => None,
        };
        let entry = self
            .runner
            .backend()
            .get_agent(agent)
            .await
            .ok()
            .flatten()
            .and_then(|r| r.recent_runs.into_iter().find(|e| e.run_id == id.as_str()));
        if state.is_none() && entry.is_none() {
            return Err(unknown());
        }
        if state.as_ref().is_some_and(|s| !s.recorded) {
            // Not this process's call, and perhaps nobody's: the replica
            // that started it may be gone. This one follows it to its end
            // and records it (once, across replicas).
            self.runner.settle_in_background(agent.clone());
        }
        if let (None, Some(e), Some(_)) = (&state, &entry, self.runner.backend().run_client()) {
            if e.status == RunStatus::Running {
                // Logged, not live here, and never started: its gateway
                // ended while the call waited to run.
                let error = "the gateway stopped before the run started; nothing ran: call again";
                let lost = RunEntry {
                    finished_at: Some(Utc::now()),
                    status: RunStatus::Failed,
                    summary: Some(error.into()),
                    ..e.clone()
                };
                let _ = self.runner.backend().note_run(agent, lost).await;
                report.tool.clone_from(&e.tool);
                report.started_at = Some(e.started_at);
                report.finished_at = Some(Utc::now());
                report.status = RunStatus::Failed.as_str().to_owned();
                report.error = Some(error.into());
                return Ok(true);
            }
        }
        if let Some(meta) = state.as_ref().and_then(|s| s.meta()) {
            report.tool = meta.tool;
            report.started_at = Some(meta.started_at);
        }
        if let Some(e) = &entry {
            report.tool.clone_from(&e.tool);
            report.started_at = Some(e.started_at);
            report.finished_at = e.finished_at;
            report.status = e.status.as_str().to_owned();
            report.message.clone_from(&e.summary);
        }
        if let Some(s) = &state {
            if let Some(tool_result) = &s.tool_result {
                fill(report, tool_result);
                if report.status == RunStatus::Running.as_str() {
                    report.status = if report.error.is_some() {
                        "failed"
                    } else {
                        "ok"
                    }
                    .into();
                }
                return Ok(true);
            }
            if s.running || s.result.is_none() {
                report.status = RunStatus::Running.as_str().to_owned();
                let p = self.runner.backend().paths(agent);
                let relative = Relativizer::new(&p.workspace, &p.codex_home);
                report.message = last_progress(&s.tail, &relative).or(report.message.take());
                return Ok(false);
            }
            if let (Some(outcome), Some(meta)) = (&s.result, s.meta()) {
                if meta.background && entry.as_ref().is_some_and(|e| e.status.is_final()) {
                    // Its gateway ended before storing the tool result: it
                    // is made from the run's outcome now (no repair turn).
                    let value = stored(super::finish::rebuild(&meta.tool, outcome, agent));
                    if let Some(c) = self.runner.backend().run_client() {
                        let bytes = serde_json::to_vec(&value).expect("serializes");
                        let _ = c
                            .put(agent, id, crate::codex::run_dir::TOOL_RESULT_FILE, bytes)
                            .await;
                    }
                    fill(report, &value);
                    return Ok(true);
                }
            }
        }
        Ok(entry.is_some_and(|e| e.status.is_final()))
    }

    /// This process's background call `id` of `agent`: a run id names its
    /// agent but not its tenant, so a call of another tenant's agent of the
    /// same name is not the caller's.
    fn live_call(&self, agent: &AgentId, id: &RunId) -> Option<Arc<crate::runs::background::Call>> {
        let ttl = self.runner.settings().result_ttl;
        self.runner
            .background()
            .get(id, ttl)
            .filter(|bg| bg.agent == *agent)
    }

    /// The agent and id of a run the caller may see; any other is unknown.
    fn visible_run(&self, caller: &Caller, raw: &str) -> Result<(AgentId, RunId), ToolError> {
        let unknown = || ToolError::InvalidParams(format!("unknown run `{raw}`"));
        // The replica's tag routed the request here, or named a replica
        // that is gone: either way the run is looked up where it lives.
        let untagged = crate::sessions::untagged(raw);
        let id = RunId::parse(untagged).map_err(|_| unknown())?;
        let name = id.agent();
        if !caller.may_use(&name) {
            return Err(unknown());
        }
        let agent = AgentId {
            tenant: caller.tenant.clone(),
            name,
        };
        Ok((agent, id))
    }

    /// `cancel_run`: stops the run; its processes are gone when it answers.
    pub(super) async fn cancel_run_report(
        &self,
        caller: &Caller,
        args: CancelRunArgs,
    ) -> Result<RunReport, ToolError> {
        let (agent, id) = self.visible_run(caller, &args.run_id)?;
        if let Some(bg) = self.live_call(&agent, &id) {
            bg.cancel.cancel();
        }
        if let Some(client) = self.runner.backend().run_client() {
            if client.status(&agent, &id).await.ok().flatten().is_some() {
                let _ = client.cancel(&agent, &id).await;
            }
        }
        self.get_run_report(
            caller,
            GetRunArgs {
                run_id: args.run_id,
                wait_seconds: Some(10),
            },
        )
        .await
    }
}

fn fill(report: &mut RunReport, stored: &Value) {
    report.result = stored.get("result").cloned();
    report.error = stored
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_owned);
}

#[tool_router(router = run_tools, vis = "pub(super)")]
impl CodexTools {
    /// A run's status and result.
    #[tool(
        description = "Get a run's status and, once it is done, its full result: for calls started with background: true (their run_id), or any run listed in an agent's recent_runs. While it runs, `message` says what the agent is doing; set wait_seconds (up to 60) to wait for the end. Results are kept for an hour.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_run(
        &self,
        Parameters(args): Parameters<GetRunArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<RunReport>, ToolError> {
        let caller = Caller::from_context(&ctx)?;
        self.get_run_report(&caller, args).await.map(Json)
    }

    /// Stops a run.
    #[tool(
        description = "Stop a run (by the run_id a background call returned). Its processes are gone when this answers; the run is recorded as cancelled and its report returned.",
        annotations(
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn cancel_run(
        &self,
        Parameters(args): Parameters<CancelRunArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<RunReport>, ToolError> {
        let caller = Caller::from_context(&ctx)?;
        self.cancel_run_report(&caller, args).await.map(Json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_comes_from_the_last_telling_event() {
        let tail = vec![
            r#"{"type":"item.started","item":{"type":"command_execution","command":"cargo test /data/agents/a/workspace/src"}}"#
                .to_owned(),
            r#"{"type":"turn.started"}"#.to_owned(),
        ];
        let relative = Relativizer::new(
            std::path::Path::new("/data/agents/a/workspace"),
            std::path::Path::new("/data/agents/a/codex-home"),
        );
        assert_eq!(
            last_progress(&tail, &relative).as_deref(),
            Some("running: cargo test src"),
            "the server's paths never reach the caller"
        );
        assert_eq!(
            failed_status(false, "the run exceeded its time limit"),
            RunStatus::TimedOut
        );
        assert_eq!(failed_status(true, "x"), RunStatus::Cancelled);
    }
}
