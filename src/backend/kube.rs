//! The Kubernetes backend: each agent is a `CodexAgent` the operator turns
//! into a pod with a workspace volume, and each run is `codex-mcp agent-run`
//! executed in that pod through pods/exec.
//!
//! The gateway keeps no state of its own: the thread id and the usage
//! counters live on the CodexAgent's status, the Codex home on the volume,
//! and the one-run-at-a-time claim in a Lease, so any replica can serve any
//! agent and a restart loses nothing.

mod exec;
mod hold;
mod lease;
pub mod naming;
mod run_exec;
mod runs;
mod status;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::run_client::RunClient;
use super::run_log::RunEntry;
use super::{
    AgentList, AgentPaths, AgentRecord, Backend, BackendError, EnvironmentStatus, EventSender,
    RunHold, RunRecord,
};
use crate::agent::{AgentId, AgentName, Tenant};
use crate::api::crd::{CodexAgent, GitSecretRef, GitSource, Phase, SourceSpec};
use crate::api::labels::{LABEL_AGENT_NAME, LABEL_TENANT};
use crate::api::layout::{CODEX_HOME_DIR, WORKSPACE_DIR};
use crate::codex::{RunOutcome, RunRequest};
use naming::{
    belongs_to, credentials_failure, describe, failure, ready, record_from, resource_name,
};

/// The field manager of everything the gateway writes.
pub const FIELD_MANAGER: &str = "codex-mcp-gateway";

/// Seconds to wait for an agent's pod to become ready unless told
/// (`CODEX_MCP_READY_TIMEOUT`).
pub const DEFAULT_READY_TIMEOUT_SECS: u64 = 300;
/// Seconds a run's Lease lasts without renewal unless told
/// (`CODEX_MCP_RUN_LEASE_DURATION`).
pub const DEFAULT_RUN_LEASE_DURATION_SECS: u64 = 30;

/// How the Kubernetes backend behaves; see `codex-mcp gateway --help`.
#[derive(Debug, Clone)]
pub struct KubeSettings {
    pub namespace: String,
    /// Longest wait for an agent's pod to become ready.
    pub ready_timeout: Duration,
    /// How long a run's Lease lasts without renewal (a crashed replica's
    /// claim ends after this).
    pub lease_duration: Duration,
    /// This replica's name in the Leases it holds.
    pub identity: String,
    /// The credentials Secret every CodexAgent references.
    pub credentials_secret: String,
    /// Which repositories each tenant's new agents may be created on.
    pub repositories: crate::source::rules::RepositoryRules,
}

pub struct KubeBackend {
    agents: Api<CodexAgent>,
    pods: Api<Pod>,
    leases: Api<Lease>,
    settings: KubeSettings,
    runs: RunClient,
    /// Per agent, held from taking its Lease until it is given back.
    turns: runs::Turns,
    /// Each CodexAgent's uid as last read, for the owner reference of its
    /// run Lease without reading the CodexAgent again.
    uids: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl KubeBackend {
    pub fn new(client: Client, settings: KubeSettings) -> Self {
        let ns = settings.namespace.as_str();
        Self {
            agents: Api::namespaced(client.clone(), ns),
            pods: Api::namespaced(client.clone(), ns),
            leases: Api::namespaced(client.clone(), ns),
            runs: RunClient::new(Box::new(run_exec::KubeExec::new(Api::namespaced(
                client.clone(),
                ns,
            )))),
            turns: runs::Turns::default(),
            uids: Default::default(),
            settings,
        }
    }

    /// Whether the pod the status names is there and ready: the status may
    /// lag behind a pod that was just deleted or died.
    async fn pod_ready(&self, cr: &CodexAgent) -> bool {
        let Some(name) = cr.status.as_ref().and_then(|s| s.pod_name.clone()) else {
            return false;
        };
        let Ok(Some(pod)) = self.pods.get_opt(&name).await else {
            return false;
        };
        pod.metadata.deletion_timestamp.is_none()
            && pod
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    }

    async fn get_cr(&self, agent: &AgentId) -> Result<Option<CodexAgent>, BackendError> {
        let name = resource_name(agent);
        let cr =
            self.agents.get_opt(&name).await.map_err(|e| {
                BackendError::state(agent, format!("reading CodexAgent {name}: {e}"))
            })?;
        match cr {
            Some(cr) if !belongs_to(&cr, agent) => Err(BackendError::state(
                agent,
                format!("CodexAgent {name} exists but is labelled for another agent"),
            )),
            other => Ok(other),
        }
    }

    /// Creates the CodexAgent, or resumes it: server-side apply of only the
    /// fields the gateway owns, so specs edited by people keep their edits.
    async fn apply_cr(
        &self,
        agent: &AgentId,
        source: Option<&SourceSpec>,
    ) -> Result<CodexAgent, BackendError> {
        let name = resource_name(agent);
        let mut body = json!({
            "apiVersion": CodexAgent::api_version(&()),
            "kind": CodexAgent::kind(&()),
            "metadata": {
                "name": name,
                "labels": {
                    LABEL_AGENT_NAME: agent.name.as_str(),
                    LABEL_TENANT: agent.tenant.as_str(),
                },
            },
            "spec": {
                "tenant": agent.tenant.as_str(),
                "suspended": false,
                "credentials": {"secretRef": {"name": self.settings.credentials_secret}},
            },
        });
        // Applied again on every resume: leaving it out would remove it.
        if let Some(source) = source {
            body["spec"]["source"] = serde_json::to_value(source).map_err(|e| {
                BackendError::prepare(agent, format!("spec.source of CodexAgent {name}: {e}"))
            })?;
        }
        self.agents
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
            .map_err(|e| BackendError::prepare(agent, format!("applying CodexAgent {name}: {e}")))
    }

    /// Waits, watching the CodexAgent, until the operator reports it ready.
    async fn wait_ready(
        &self,
        agent: &AgentId,
        progress: &(dyn Fn(String) + Send + Sync),
    ) -> Result<CodexAgent, BackendError> {
        let name = resource_name(agent);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let mut stream = watcher(self.agents.clone(), config)
            .default_backoff()
            .applied_objects()
            .boxed();
        let mut last = String::new();
        let timeout = self.settings.ready_timeout;
        let wait = async {
            loop {
                // The watch drives this; a slow poll covers a pod that changes
                // while the CodexAgent's status does not (yet).
                let cr = tokio::select! {
                    next = stream.try_next() => match next {
                        Ok(Some(cr)) => cr,
                        Ok(None) => return Err("the watch ended".to_owned()),
                        // The watcher restarts itself (with backoff); the poll
                        // goes on meanwhile.
                        Err(e) => {
                            tracing::debug!(agent = %agent, error = %e, "watching the CodexAgent");
                            continue;
                        }
                    },
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {
                        match self.agents.get_opt(&name).await {
                            Ok(Some(cr)) => cr,
                            _ => continue,
                        }
                    }
                };
                if ready(&cr) && self.pod_ready(&cr).await {
                    return Ok(cr);
                }
                if let Some(why) = failure(&cr).or_else(|| credentials_failure(&cr)) {
                    return Err(why);
                }
                let now = describe(&cr);
                if now != last {
                    progress(format!("starting agent {} ({now})", agent.name));
                    last = now;
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(cr)) => Ok(cr),
            Ok(Err(reason)) => Err(BackendError::NotReady {
                agent: agent.to_string(),
                reason,
            }),
            Err(_) => Err(BackendError::NotReady {
                agent: agent.to_string(),
                reason: format!(
                    "not ready after {} s (last state: {}); see `kubectl describe codexagent {name} -n {}`",
                    timeout.as_secs(),
                    if last.is_empty() { "unknown" } else { &last },
                    self.settings.namespace
                ),
            }),
        }
    }
}

#[async_trait]
impl Backend for KubeBackend {
    fn kind(&self) -> &'static str {
        "kubernetes"
    }

    async fn ensure_agent(
        &self,
        agent: &AgentId,
        progress: &(dyn Fn(String) + Send + Sync),
    ) -> Result<AgentRecord, BackendError> {
        let current = self.get_cr(agent).await?;
        if let Some(why) = current.as_ref().and_then(credentials_failure) {
            return Err(BackendError::NotReady {
                agent: agent.to_string(),
                reason: why,
            });
        }
        let usable = match &current {
            Some(cr) => ready(cr) && self.pod_ready(cr).await,
            None => false,
        };
        let cr = match current {
            Some(cr) if usable => cr,
            existing => {
                progress(match existing {
                    None => format!("creating agent {}", agent.name),
                    Some(_) => format!("starting agent {}", agent.name),
                });
                let source = existing.as_ref().and_then(|c| c.spec.source.clone());
                self.apply_cr(agent, source.as_ref()).await?;
                self.wait_ready(agent, progress).await?
            }
        };
        if let (Some(uid), Ok(mut uids)) = (cr.metadata.uid.clone(), self.uids.lock()) {
            uids.insert(cr.name_any(), uid);
        }
        let mut record = record_from(&cr, agent, Utc::now());
        record.codex = naming::agent_settings(&cr).map_err(|e| BackendError::NotReady {
            agent: agent.to_string(),
            reason: format!("CodexAgent {}: spec.codex: {e}", cr.name_any()),
        })?;
        Ok(record)
    }

    async fn declare_source(
        &self,
        agent: &AgentId,
        asked: Option<&str>,
    ) -> Result<(), BackendError> {
        let refused = |reason: String| BackendError::Source {
            agent: agent.to_string(),
            reason,
        };
        let Some(source) = self
            .settings
            .repositories
            .resolve(&agent.tenant, asked)
            .map_err(refused)?
        else {
            return Ok(());
        };
        let asked = &source.repository;
        match self.get_cr(agent).await? {
            None => {
                let spec = SourceSpec {
                    git: GitSource {
                        url: asked.url.clone(),
                        ref_: asked.ref_.clone(),
                        secret_ref: source.secret.clone().map(|name| GitSecretRef { name }),
                    },
                };
                self.apply_cr(agent, Some(&spec)).await.map(|_| ())
            }
            Some(_) if !source.requested => Ok(()),
            Some(cr) => match cr.spec.source {
                Some(s) if s.git.url == asked.url && s.git.ref_ == asked.ref_ => Ok(()),
                Some(s) => Err(refused(format!(
                    "it works on {}{}, not on {}: an agent's repository is chosen when it is \
                     created; use another agent name for another repository",
                    s.git.url,
                    s.git.ref_.map(|r| format!("#{r}")).unwrap_or_default(),
                    asked.display()
                ))),
                None => Err(refused(format!(
                    "it was created without a repository, so it cannot work on {}: use another \
                     agent name for an agent on that repository",
                    asked.display()
                ))),
            },
        }
    }

    fn workspace_repo(&self, agent: &AgentId) -> crate::project::WorkspaceRepo {
        let mut repo = crate::project::WorkspaceRepo::plain(
            agent,
            std::path::Path::new(WORKSPACE_DIR),
            std::path::Path::new(CODEX_HOME_DIR),
        );
        // Whether there is a source to push to is known in the pod.
        repo.push = crate::project::PushTarget::Source(crate::project::branch_name(agent));
        repo
    }

    fn paths(&self, _agent: &AgentId) -> AgentPaths {
        AgentPaths {
            workspace: WORKSPACE_DIR.into(),
            codex_home: CODEX_HOME_DIR.into(),
        }
    }

    /// Today's streaming run (the run ends with its exec stream), for an
    /// agent image without `agent-run start`; durable runs go through
    /// [`Backend::run_client`].
    async fn run(
        &self,
        agent: &AgentId,
        request: &RunRequest,
        events: EventSender,
        cancel: CancellationToken,
    ) -> Result<RunOutcome, BackendError> {
        let pod = self.runs_exec_pod(agent).await?;
        exec::run_in_pod(&self.pods, &pod, request, events, cancel).await
    }

    async fn hold_runs(
        &self,
        agent: &AgentId,
        cancel: &CancellationToken,
        waiting: &(dyn Fn() + Send + Sync),
    ) -> Result<Option<RunHold>, BackendError> {
        self.hold(agent, cancel, waiting).await.map(Some)
    }

    fn run_client(&self) -> Option<&RunClient> {
        Some(&self.runs)
    }

    async fn agents_with_runs(&self) -> Vec<AgentId> {
        self.agents_to_recover().await
    }

    async fn note_run(&self, agent: &AgentId, entry: RunEntry) -> Result<(), BackendError> {
        status::note_run(&self.agents, agent, entry).await
    }

    async fn record_run(
        &self,
        agent: &AgentId,
        run: RunRecord,
    ) -> Result<AgentRecord, BackendError> {
        status::record_run(&self.agents, agent, run).await
    }

    async fn get_agent(&self, agent: &AgentId) -> Result<Option<AgentRecord>, BackendError> {
        Ok(self
            .get_cr(agent)
            .await?
            .map(|cr| record_from(&cr, agent, Utc::now())))
    }

    async fn list_agents(&self, tenant: &Tenant) -> Result<AgentList, BackendError> {
        let lp = ListParams::default().labels(&format!("{LABEL_TENANT}={tenant}"));
        let list = self
            .agents
            .list(&lp)
            .await
            .map_err(|e| BackendError::State {
                agent: format!("{tenant}/*"),
                reason: e.to_string(),
            })?;
        let mut out: Vec<AgentRecord> = list
            .items
            .iter()
            .filter_map(|cr| {
                let labels: &BTreeMap<String, String> = cr.metadata.labels.as_ref()?;
                let name = AgentName::parse(labels.get(LABEL_AGENT_NAME)?).ok()?;
                let id = AgentId {
                    tenant: tenant.clone(),
                    name,
                };
                (cr.name_any() == resource_name(&id)).then(|| record_from(cr, &id, Utc::now()))
            })
            .collect();
        out.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
        Ok(AgentList {
            agents: out,
            unreadable: Vec::new(),
        })
    }

    async fn environment(
        &self,
        agent: &AgentId,
    ) -> Result<Option<EnvironmentStatus>, BackendError> {
        Ok(self.get_cr(agent).await?.map(|cr| {
            let status = cr.status.clone().unwrap_or_default();
            EnvironmentStatus {
                phase: status.phase.map_or("Pending", Phase::as_str).to_owned(),
                resource: Some(cr.name_any()),
                pod: status.pod_name,
                message: status.message,
            }
        }))
    }

    async fn release_agent(&self, agent: &AgentId) -> Result<(), BackendError> {
        if self.get_cr(agent).await?.is_none() {
            return Ok(());
        }
        let name = resource_name(agent);
        let body = json!({ "spec": { "suspended": true } });
        self.agents
            .patch(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .map(|_| ())
            .map_err(|e| {
                BackendError::write_state(agent, format!("suspending CodexAgent {name}: {e}"))
            })
    }
}
