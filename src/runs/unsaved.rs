//! Runs whose record could not be saved (a full disk, a failing API):
//! kept in memory so the agent's conversation goes on, saved again on the
//! agent's next call, and reported as degraded health until then.

use tracing::warn;

use super::Runner;
use crate::agent::{AgentId, Tenant};
use crate::backend::{AgentRecord, BackendError, RunRecord};

/// The failure without the agent's name: health reports reach callers who
/// may not know of that agent.
fn reason(e: &BackendError) -> String {
    match e {
        BackendError::State { reason, .. } => format!("reading: {reason}"),
        BackendError::WriteState { reason, .. } => format!("saving: {reason}"),
        other => other.to_string(),
    }
}

/// An agent's finished runs that are not on disk yet.
#[derive(Debug, Default)]
pub(super) struct Unsaved {
    runs: Vec<RunRecord>,
    error: String,
}

impl Runner {
    /// Saves a finished run on the agent. When that fails, the run is kept
    /// in memory (its conversation included) and the reason is returned
    /// with the record as it would be.
    pub(super) async fn save_run(
        &self,
        agent: &AgentId,
        current: &AgentRecord,
        run: RunRecord,
    ) -> (AgentRecord, Option<String>) {
        let mut last = String::new();
        // One retry: a transient failure (a conflict, a moment of full disk)
        // should not degrade anything.
        for _ in 0..2 {
            match self.backend.record_run(agent, run.clone()).await {
                Ok(r) => return (r, None),
                Err(e) => last = reason(&e),
            }
        }
        warn!(agent = %agent, "keeping a finished run in memory: {last}");
        let mut record = current.clone();
        record.apply(&run, chrono::Utc::now());
        let mut unsaved = self.unsaved.lock().expect("unsaved");
        let entry = unsaved.entry(agent.clone()).or_default();
        entry.runs.push(run);
        entry.error = last.clone();
        (record, Some(last))
    }

    /// The agent's record with its unsaved runs, which are saved first if
    /// the backend takes them now.
    pub(super) async fn with_unsaved(&self, agent: &AgentId, record: AgentRecord) -> AgentRecord {
        let pending = match self.unsaved.lock().expect("unsaved").remove(agent) {
            Some(p) => p,
            None => return record,
        };
        let mut current = record;
        let mut runs = pending.runs.into_iter();
        for run in runs.by_ref() {
            match self.backend.record_run(agent, run.clone()).await {
                Ok(r) => current = r,
                Err(e) => {
                    current.apply(&run, chrono::Utc::now());
                    let mut left = vec![run];
                    for rest in runs.by_ref() {
                        current.apply(&rest, chrono::Utc::now());
                        left.push(rest);
                    }
                    self.unsaved.lock().expect("unsaved").insert(
                        agent.clone(),
                        Unsaved {
                            runs: left,
                            error: reason(&e),
                        },
                    );
                    break;
                }
            }
        }
        current
    }

    /// Why the gateway is degraded on state: agents whose runs are only in
    /// memory (of one tenant, or all).
    pub fn state_problems(&self, tenant: Option<&Tenant>) -> Vec<String> {
        let unsaved = self.unsaved.lock().expect("unsaved");
        let mine: Vec<_> = unsaved
            .iter()
            .filter(|(id, _)| tenant.is_none_or(|t| &id.tenant == t))
            .collect();
        let Some((_, last)) = mine.last() else {
            return Vec::new();
        };
        vec![format!(
            "the state of {} agent(s) could not be saved and is kept in memory until it can \
             (a gateway restart would lose it); last error: {}",
            mine.len(),
            last.error
        )]
    }
}
