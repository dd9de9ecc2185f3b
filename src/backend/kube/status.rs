//! The gateway's fields of a CodexAgent's status: the thread, the run and
//! token counters and the run log (`recentRuns`). The operator owns the
//! other fields; each write is a merge patch of only these, guarded by the
//! resourceVersion it read, so two replicas (or a restarted one) recording
//! the same run count it once: the second sees the run's final entry in
//! the log and writes nothing.

use chrono::Utc;
use kube::api::{Api, Patch, PatchParams};
use kube::ResourceExt;
use serde_json::json;

use super::naming::{self, belongs_to, record_from, resource_name};
use crate::agent::AgentId;
use crate::api::crd::CodexAgent;
use crate::backend::run_log::{upsert, RunEntry};
use crate::backend::{AgentRecord, BackendError, RunRecord};

/// Attempts of a guarded write before giving up.
const ATTEMPTS: usize = 5;

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

async fn read(agents: &Api<CodexAgent>, agent: &AgentId) -> Result<CodexAgent, BackendError> {
    let name = resource_name(agent);
    match agents.get_opt(&name).await {
        Ok(Some(cr)) if belongs_to(&cr, agent) => Ok(cr),
        Ok(_) => Err(BackendError::state(
            agent,
            format!("CodexAgent {name} is gone"),
        )),
        Err(e) => Err(BackendError::state(
            agent,
            format!("reading CodexAgent {name}: {e}"),
        )),
    }
}

/// The gateway's status fields of `record`.
pub fn status_fields(record: &AgentRecord) -> serde_json::Value {
    json!({
        "threadId": record.thread_id,
        "lastActivity": record.last_activity,
        "runs": record.runs,
        "failedRuns": record.failed_runs,
        "inputTokens": record.input_tokens,
        "outputTokens": record.output_tokens,
        "recentRuns": record.recent_runs,
    })
}

/// Applies `change` to the agent's record and writes the result, unless
/// `change` says there is nothing to write; retried on conflicts.
async fn update(
    agents: &Api<CodexAgent>,
    agent: &AgentId,
    change: impl Fn(&mut AgentRecord) -> bool,
) -> Result<(AgentRecord, bool), BackendError> {
    let name = resource_name(agent);
    for _ in 0..ATTEMPTS {
        let cr = read(agents, agent).await?;
        let mut record = record_from(&cr, agent, Utc::now());
        if !change(&mut record) {
            return Ok((record, false));
        }
        let body = json!({
            "metadata": {"resourceVersion": cr.resource_version()},
            "status": status_fields(&record),
        });
        match agents
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            Ok(_) => return Ok((record, true)),
            Err(e) if is_conflict(&e) => continue,
            Err(e) => {
                return Err(BackendError::write_state(
                    agent,
                    format!("writing the status: {e}"),
                ))
            }
        }
    }
    Err(BackendError::write_state(
        agent,
        "the status kept changing under the write; giving up",
    ))
}

/// Folds a finished run into the status, once.
pub async fn record_run(
    agents: &Api<CodexAgent>,
    agent: &AgentId,
    run: RunRecord,
) -> Result<AgentRecord, BackendError> {
    let (record, written) = update(agents, agent, |r| r.apply(&run, Utc::now())).await?;
    if written {
        let usage = naming::format_usage(&record.thread_usage);
        let body = json!({"metadata": {"annotations": {crate::api::labels::ANNOTATION_THREAD_USAGE: usage}}});
        // The counters are saved: failing now would have the run recorded
        // again. A stale annotation only makes the next run of this thread
        // count some tokens twice.
        if let Err(e) = agents
            .patch(
                &resource_name(agent),
                &PatchParams::default(),
                &Patch::Merge(&body),
            )
            .await
        {
            tracing::warn!(agent = %agent, error = %e, "saving the thread's usage failed");
        }
    }
    Ok(record)
}

/// Logs a run that started, so `kubectl describe` shows it running.
pub async fn note_run(
    agents: &Api<CodexAgent>,
    agent: &AgentId,
    entry: RunEntry,
) -> Result<(), BackendError> {
    update(agents, agent, |r| upsert(&mut r.recent_runs, entry.clone()))
        .await
        .map(|_| ())
}
