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
        // The agent's own settings come with `ensure_agent` only; the
        // records `record_run` returns do not carry them.
        let codex = record.codex.clone();
        let mut current = record;
        let mut runs = pending.runs.into_iter();
        for run in runs.by_ref() {
            match self.backend.record_run(agent, run.clone()).await {
                Ok(r) => {
                    current = AgentRecord {
                        codex: codex.clone(),
                        ..r
                    }
                }
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use async_trait::async_trait;
    use tokio_util::sync::CancellationToken;

    use super::super::{RunSettings, Runner, Turn};
    use crate::agent::{AgentId, AgentName, Tenant};
    use crate::backend::{
        AgentList, AgentPaths, AgentRecord, Backend, BackendError, EventSender, RunRecord,
    };
    use crate::codex::{RunOutcome, RunRequest, SandboxMode};
    use crate::credentials::CredentialProvider;
    use crate::metrics::{Metrics, ToolKind};
    use crate::progress::Progress;

    /// A backend whose saves fail while `full` is set, as on a full disk.
    #[derive(Default)]
    struct FullDisk {
        full: AtomicBool,
        stored: Mutex<Option<AgentRecord>>,
        asked_threads: Mutex<Vec<Option<String>>>,
    }

    #[async_trait]
    impl Backend for FullDisk {
        fn kind(&self) -> &'static str {
            "test"
        }
        async fn ensure_agent(
            &self,
            agent: &AgentId,
            _: &(dyn Fn(String) + Send + Sync),
        ) -> Result<AgentRecord, BackendError> {
            let mut stored = self.stored.lock().unwrap();
            Ok(stored
                .get_or_insert_with(|| AgentRecord::new(agent, chrono::Utc::now()))
                .clone())
        }
        fn paths(&self, _: &AgentId) -> AgentPaths {
            AgentPaths {
                workspace: "/w".into(),
                codex_home: "/h".into(),
            }
        }
        async fn run(
            &self,
            _: &AgentId,
            request: &RunRequest,
            _: EventSender,
            _: CancellationToken,
        ) -> Result<RunOutcome, BackendError> {
            self.asked_threads
                .lock()
                .unwrap()
                .push(request.thread_id.clone());
            Ok(RunOutcome {
                ok: true,
                thread_id: Some(request.thread_id.clone().unwrap_or("t-new".into())),
                final_message: Some("done".into()),
                ..Default::default()
            })
        }
        async fn record_run(
            &self,
            agent: &AgentId,
            run: RunRecord,
        ) -> Result<AgentRecord, BackendError> {
            if self.full.load(Ordering::SeqCst) {
                return Err(BackendError::write_state(
                    agent,
                    "No space left on device (os error 28)",
                ));
            }
            let mut stored = self.stored.lock().unwrap();
            let record = stored.as_mut().expect("created");
            record.apply(&run, chrono::Utc::now());
            Ok(record.clone())
        }
        async fn get_agent(&self, _: &AgentId) -> Result<Option<AgentRecord>, BackendError> {
            Ok(self.stored.lock().unwrap().clone())
        }
        async fn list_agents(&self, _: &Tenant) -> Result<AgentList, BackendError> {
            Ok(AgentList::default())
        }
        async fn release_agent(&self, _: &AgentId) -> Result<(), BackendError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_run_whose_state_cannot_be_saved_keeps_its_conversation() {
        let backend = Arc::new(FullDisk::default());
        let settings = RunSettings {
            model: "m".into(),
            provider: None,
            write_sandbox: SandboxMode::WorkspaceWrite,
            config_overrides: vec![],
            run_timeout: Duration::from_secs(60),
            progress_heartbeat: crate::progress::DEFAULT_HEARTBEAT,
            queue_limit: 4,
            session_timeout: Duration::from_secs(3600),
            result_ttl: Duration::from_secs(3600),
            max_concurrent_runs: 2,
            diff_limits: Default::default(),
        };
        let runner = Arc::new(Runner::new(
            backend.clone(),
            CredentialProvider::agent_secret("s".into()),
            settings,
            Arc::new(Metrics::new()),
        ));
        let agent = AgentId {
            tenant: Tenant::default_tenant(),
            name: AgentName::parse("a").unwrap(),
        };
        let turn = Turn {
            tool: ToolKind::Chat,
            prompt: "hi".into(),
            output_schema: None,
            writes: true,
            track_changes: false,
            new_conversation: false,
            workspace_paths: Vec::new(),
            run_id: None,
            background: false,
        };
        let (progress, cancel) = (Progress::none(), CancellationToken::new());
        let call = || runner.run_turn(&agent, &turn, &progress, &cancel);

        backend.full.store(true, Ordering::SeqCst);
        let first = call().await.unwrap();
        assert_eq!(first.info.thread_id.as_deref(), Some("t-new"));
        assert!(
            first
                .info
                .notes
                .iter()
                .any(|n| n.contains("could not be saved")),
            "{:?}",
            first.info.notes
        );
        // What the gateway's health report lists (`tools::session::health`).
        let problems = runner.state_problems(None);
        assert!(problems[0].contains("No space left"), "{problems:?}");
        assert!(!problems[0].contains("default/a"), "{problems:?}");

        backend.full.store(false, Ordering::SeqCst);
        let second = call().await.unwrap();
        assert!(second.info.notes.is_empty(), "{:?}", second.info.notes);
        assert_eq!(
            *backend.asked_threads.lock().unwrap(),
            [None, Some("t-new".to_owned())],
            "the second call continued the first one's conversation"
        );
        let stored = backend.stored.lock().unwrap().clone().unwrap();
        assert_eq!(
            (stored.runs, stored.thread_id.as_deref()),
            (2, Some("t-new"))
        );
        assert!(runner.state_problems(None).is_empty());
    }
}
