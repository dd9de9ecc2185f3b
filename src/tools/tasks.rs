//! The MCP Tasks extension (`io.modelcontextprotocol/tasks`, SEP-2663) over
//! background runs. A client that declares the extension gets a task for a
//! Codex-backed tool call: the call starts as a background run and is
//! answered at once with `resultType: "task"`; `tasks/get` reports the run
//! (its last progress message while it goes on, the tool's full result
//! inline once done) and `tasks/cancel` stops it. The task id is the run id:
//! unguessable (a random UUID), naming its agent, so any gateway (a
//! restarted one too) finds the run in that agent's state, and scoped like
//! `get_run` to the caller's tenant and token, with one answer for a task
//! the caller may not see and for one that does not exist.

use chrono::{DateTime, Utc};
use rmcp::model::{
    CallToolResponse, CallToolResult, ContentBlock, CreateTaskResult, DetailedTask, GetTaskResult,
    JsonObject, Task, TaskPayload, TaskStatus,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde_json::Value;

use super::background::{CancelRunArgs, GetRunArgs, RunReport};
use super::caller::Caller;
use super::{CodexTools, ToolError};
use crate::backend::run_log::RunStatus;
use crate::metrics::TaskState;

/// How often a client should poll `tasks/get`: often enough to show
/// Codex's progress, rare enough to cost nothing next to a turn.
pub const POLL_INTERVAL_MS: u64 = 2000;

/// The tools whose calls become tasks: those that run Codex.
pub const TASK_TOOLS: [&str; 5] = ["plan", "implement", "review", "fix", "chat"];

/// Marks a `tools/call` that is to be answered with a task.
#[derive(Debug, Clone, Copy)]
pub struct TaskRequested;

/// Whether this request's client declared the Tasks extension.
pub fn client_declared_tasks(ctx: &RequestContext<RoleServer>) -> bool {
    ctx.client_capabilities()
        .is_some_and(|caps| caps.supports_tasks())
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The task's base fields from a run's report. A result is kept for
/// `ttl_ms` after the run's end, while the spec counts `ttlMs` from the
/// task's creation: the run's duration so far is added (the value grows
/// while it runs, which the spec allows).
fn base_task(report: &RunReport, ttl_ms: u64, now: DateTime<Utc>) -> Task {
    let created = report.started_at.unwrap_or(now);
    let updated = report.finished_at.unwrap_or(now);
    let lived = u64::try_from((updated - created).num_milliseconds()).unwrap_or(0);
    Task::new(
        report.run_id.clone(),
        TaskStatus::Working,
        rfc3339(created),
        rfc3339(updated),
    )
    .with_ttl_ms(ttl_ms.saturating_add(lived))
    .with_poll_interval_ms(POLL_INTERVAL_MS)
}

/// A `tools/call` result as a JSON object, for a task's inline result.
fn result_object(result: CallToolResult) -> JsonObject {
    match serde_json::to_value(result).expect("a tool result serializes") {
        Value::Object(o) => o,
        _ => unreachable!("a tool result is an object"),
    }
}

/// What `tasks/get` answers for a run's report. A tool that ran and failed
/// is `completed` with `isError` (as the call itself would have answered);
/// `failed` is kept for JSON-RPC errors, which these tools do not give
/// once started.
pub fn detailed_task(report: &RunReport, ttl_ms: u64, now: DateTime<Utc>) -> DetailedTask {
    let mut task = base_task(report, ttl_ms, now);
    let status = report.status.as_str();
    let payload = if status == RunStatus::Running.as_str() {
        task.status_message.clone_from(&report.message);
        TaskPayload::Working
    } else if status == RunStatus::Cancelled.as_str() {
        task.status_message = Some("cancelled".into());
        TaskPayload::Cancelled
    } else if let (Some(result), None) = (&report.result, &report.error) {
        task.status_message.clone_from(&report.message);
        TaskPayload::Completed {
            result: result_object(CallToolResult::structured(result.clone())),
        }
    } else {
        let error = report
            .error
            .clone()
            .or_else(|| report.message.clone())
            .unwrap_or_else(|| format!("the run ended: {status}"));
        task.status_message = Some(error.clone());
        TaskPayload::Completed {
            result: result_object(CallToolResult::error(vec![ContentBlock::text(error)])),
        }
    };
    DetailedTask::new(task, payload)
}

/// The state a task's report puts it in, for metrics.
pub fn task_state(task: &DetailedTask) -> TaskState {
    match &task.payload {
        TaskPayload::Cancelled => TaskState::Cancelled,
        TaskPayload::Failed { .. } => TaskState::Failed,
        TaskPayload::Completed { result } => {
            if result.get("isError").and_then(Value::as_bool) == Some(true) {
                TaskState::Failed
            } else {
                TaskState::Completed
            }
        }
        _ => TaskState::Working,
    }
}

/// A tool's answer turned into a task: a call started in the background
/// answered with its run's report, whose run id names the task. Any other
/// answer (a refused or invalid call) stays as it is.
pub fn into_task(response: CallToolResponse, ttl_ms: u64) -> CallToolResponse {
    let CallToolResponse::Complete(result) = &response else {
        return response;
    };
    if result.is_error == Some(true) {
        return response;
    }
    let Some(report) = result
        .structured_content
        .clone()
        .and_then(|v| serde_json::from_value::<RunReport>(v).ok())
    else {
        return response;
    };
    let mut task = base_task(&report, ttl_ms, Utc::now());
    task.status_message = Some("started: poll tasks/get for progress and the result".into());
    CallToolResponse::Task(CreateTaskResult::new(task))
}

/// The error for a task the caller may not see or that does not exist: the
/// same for both, so an id leaks nothing.
fn unknown_task(id: &str) -> ErrorData {
    ErrorData::invalid_params(format!("unknown task `{id}`"), None)
}

fn refused(e: ToolError) -> ErrorData {
    ErrorData::invalid_params(e.to_string(), None)
}

impl CodexTools {
    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.runner.settings().result_ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// Turns a task-requested call's answer into a task.
    pub(super) fn answer_with_task(&self, response: CallToolResponse) -> CallToolResponse {
        let response = into_task(response, self.ttl_ms());
        if matches!(response, CallToolResponse::Task(_)) {
            self.runner.metrics().task_created();
        }
        response
    }

    /// `tasks/get`: the run's status, or its full result once done.
    pub(super) async fn task_get(
        &self,
        task_id: String,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        let caller = Caller::from_context(&ctx).map_err(refused)?;
        let args = GetRunArgs {
            run_id: task_id.clone(),
            wait_seconds: None,
        };
        let report = self
            .get_run_report(&caller, args)
            .await
            .map_err(|_| unknown_task(&task_id))?;
        let task = detailed_task(&report, self.ttl_ms(), Utc::now());
        self.runner.metrics().task_polled(task_state(&task));
        Ok(GetTaskResult::new(task))
    }

    /// `tasks/cancel`: stops the run; acknowledged once its processes are gone.
    pub(super) async fn task_cancel(
        &self,
        task_id: String,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let caller = Caller::from_context(&ctx).map_err(refused)?;
        let args = CancelRunArgs {
            run_id: task_id.clone(),
        };
        self.cancel_run_report(&caller, args)
            .await
            .map_err(|_| unknown_task(&task_id))?;
        Ok(())
    }

    /// `tasks/update`: these tasks never ask for input, so there is nothing
    /// to answer; a known task is acknowledged, any other is unknown.
    pub(super) async fn task_update(
        &self,
        task_id: String,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let caller = Caller::from_context(&ctx).map_err(refused)?;
        let args = GetRunArgs {
            run_id: task_id.clone(),
            wait_seconds: None,
        };
        self.get_run_report(&caller, args)
            .await
            .map_err(|_| unknown_task(&task_id))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(status: &str) -> RunReport {
        RunReport {
            run_id: "a.0123456789abcdef0123456789abcdef".into(),
            agent_id: "a".into(),
            tool: "implement".into(),
            status: status.into(),
            message: Some("running: cargo test".into()),
            started_at: Some(Utc::now()),
            finished_at: None,
            result: None,
            error: None,
        }
    }

    #[test]
    fn a_running_task_says_what_the_agent_does() {
        let r = report("running");
        let t = detailed_task(&r, 3_600_000, r.started_at.unwrap());
        let v = serde_json::to_value(GetTaskResult::new(t.clone())).unwrap();
        assert_eq!(v["status"], "working");
        assert_eq!(v["statusMessage"], "running: cargo test");
        assert_eq!(v["pollIntervalMs"], POLL_INTERVAL_MS);
        assert_eq!(v["ttlMs"], 3_600_000);
        assert_eq!(v["resultType"], "complete");
        assert!(v.get("result").is_none());
        assert_eq!(task_state(&t), TaskState::Working);
    }

    #[test]
    fn a_done_task_carries_the_tool_result_inline() {
        let mut r = report("ok");
        r.result = Some(json!({"summary": "done", "changes": []}));
        let t = detailed_task(&r, 1000, Utc::now());
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["status"], "completed");
        assert_eq!(v["result"]["structuredContent"]["summary"], "done");
        assert_eq!(v["result"]["isError"], false);
        assert_eq!(task_state(&t), TaskState::Completed);

        let mut failed = report("failed");
        failed.error = Some("codex run failed".into());
        let t = detailed_task(&failed, 1000, Utc::now());
        assert!(t.task.ttl_ms.unwrap() >= 1000);
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["status"], "completed");
        assert_eq!(v["result"]["isError"], true);
        assert_eq!(v["result"]["content"][0]["text"], "codex run failed");
        assert_eq!(task_state(&t), TaskState::Failed);

        let t = detailed_task(&report("cancelled"), 1000, Utc::now());
        assert_eq!(serde_json::to_value(&t).unwrap()["status"], "cancelled");
    }

    #[test]
    fn only_a_started_call_becomes_a_task() {
        let started = CallToolResult::structured(serde_json::to_value(report("running")).unwrap());
        let CallToolResponse::Task(t) = into_task(started.into(), 5000) else {
            panic!("no task");
        };
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["resultType"], "task");
        assert_eq!(v["taskId"], "a.0123456789abcdef0123456789abcdef");
        assert_eq!(v["status"], "working");
        assert_eq!(v["ttlMs"], 5000);

        let refused = CallToolResult::error(vec![ContentBlock::text("bad")]);
        assert!(matches!(
            into_task(refused.into(), 5000),
            CallToolResponse::Complete(_)
        ));
    }
}
