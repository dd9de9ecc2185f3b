//! The Kubernetes backend's part in durable runs: holding an agent for a
//! replica (its Lease and activity marker, see [`super::hold`]), the agents
//! a restarted replica looks at for runs to settle, and the pod the
//! streaming fallback runs in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ListParams;
use kube::ResourceExt;
use tokio_util::sync::CancellationToken;

use super::hold::{hold, Hold, HoldParams};
use super::naming::{self, resource_name};
use super::KubeBackend;
use crate::agent::{AgentId, AgentName, Tenant};
use crate::api::crd::CodexAgent;
use crate::api::labels::owner_reference_to;
use crate::api::labels::{LABEL_AGENT_NAME, LABEL_TENANT};
use crate::backend::{BackendError, RunHold};

/// One guard per agent, so this replica's next hold of an agent waits for
/// its previous one to be given back.
#[derive(Default)]
pub struct Turns(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl Turns {
    fn of(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.0
            .lock()
            .expect("turns lock")
            .entry(name.to_owned())
            .or_default()
            .clone()
    }
}

/// The agent a CodexAgent stands for, if it is one of the gateway's (its
/// labels name it, and its name is the one the gateway gives it).
pub fn agent_of(cr: &CodexAgent) -> Option<AgentId> {
    let labels = cr.metadata.labels.as_ref()?;
    let id = AgentId {
        tenant: Tenant::parse(labels.get(LABEL_TENANT)?).ok()?,
        name: AgentName::parse(labels.get(LABEL_AGENT_NAME)?).ok()?,
    };
    (cr.name_any() == resource_name(&id)).then_some(id)
}

/// Whether a restarted replica should look into the agent's pod for runs:
/// a suspended agent has no pod, so nothing can be running there, and its
/// finished runs are settled on its next call.
pub fn worth_a_look(cr: &CodexAgent) -> bool {
    !cr.spec.suspended && naming::ready(cr)
}

impl KubeBackend {
    pub(super) async fn runs_exec_pod(&self, agent: &AgentId) -> Result<String, BackendError> {
        let cr = self.get_cr(agent).await?.ok_or_else(|| {
            BackendError::Spawn(format!("CodexAgent {} is gone", resource_name(agent)))
        })?;
        Ok(cr
            .status
            .as_ref()
            .and_then(|s| s.pod_name.clone())
            .unwrap_or_else(|| crate::api::layout::pod_name(&cr)))
    }

    pub(super) async fn hold(
        &self,
        agent: &AgentId,
        cancel: &CancellationToken,
        waiting: &(dyn Fn() + Send + Sync),
    ) -> Result<RunHold, BackendError> {
        let name = resource_name(agent);
        // Read by `ensure_agent` just before; read again only when it was not.
        let cached = self.uids.lock().ok().and_then(|u| u.get(&name).cloned());
        let uid = match cached {
            Some(uid) => uid,
            None => self
                .get_cr(agent)
                .await?
                .and_then(|cr| cr.metadata.uid)
                .ok_or_else(|| BackendError::Spawn(format!("CodexAgent {name} is gone")))?,
        };
        let turn = tokio::select! {
            t = self.turns.of(&name).lock_owned() => t,
            _ = cancel.cancelled() => return Err(BackendError::Spawn("cancelled".into())),
        };
        let owner = OwnerReference {
            block_owner_deletion: None,
            ..owner_reference_to(&name, &uid)
        };
        let held: Hold = hold(
            HoldParams {
                agents: self.agents.clone(),
                leases: self.leases.clone(),
                lease_name: naming::lease_name(&name),
                name,
                identity: self.settings.identity.clone(),
                duration: self.settings.lease_duration,
                // Collected with the CodexAgent; not blocking its deletion,
                // which would need the finalizers permission on CodexAgents.
                owner: Some(owner),
            },
            turn,
            cancel,
            || {
                tracing::info!(agent = %agent, "waiting for a run on another gateway replica");
                waiting();
            },
        )
        .await
        .map_err(|e| BackendError::Spawn(e.to_string()))?;
        Ok(Box::new(held))
    }

    /// The gateway's agents whose pods could hold runs.
    pub(super) async fn agents_to_recover(&self) -> Vec<AgentId> {
        let lp = ListParams::default().labels(LABEL_AGENT_NAME);
        match self.agents.list(&lp).await {
            Ok(list) => list
                .items
                .iter()
                .filter(|cr| worth_a_look(cr))
                .filter_map(agent_of)
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "listing CodexAgents for runs to settle failed");
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::crd::CodexAgentSpec;

    fn cr(name: &str, tenant: &str, agent: &str) -> CodexAgent {
        let mut cr = CodexAgent::new(name, CodexAgentSpec::default());
        cr.metadata.labels = Some(
            [
                (LABEL_TENANT.to_owned(), tenant.to_owned()),
                (LABEL_AGENT_NAME.to_owned(), agent.to_owned()),
            ]
            .into(),
        );
        cr
    }

    #[test]
    fn only_the_gateways_own_agents_are_recovered() {
        let id = AgentId {
            tenant: Tenant::parse("acme").unwrap(),
            name: AgentName::parse("a").unwrap(),
        };
        let own = cr(&resource_name(&id), "acme", "a");
        assert_eq!(agent_of(&own), Some(id));
        assert_eq!(agent_of(&cr("someone-else", "acme", "a")), None);
        let mut unlabelled = own.clone();
        unlabelled.metadata.labels = None;
        assert_eq!(agent_of(&unlabelled), None);
        // Not ready (no status), hence not looked at.
        assert!(!worth_a_look(&own));
    }
}
