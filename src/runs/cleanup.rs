//! Releasing idle agents without ever touching one that a call is using.

use std::sync::Arc;

use tracing::warn;

use super::{AgentSlot, Runner};
use crate::agent::{AgentId, AgentName, Tenant};
use crate::backend::{BackendError, UnreadableAgent};

/// What a cleanup did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CleanupReport {
    /// Released agents; their workspaces and conversations are kept.
    pub released: Vec<String>,
    /// Idle long enough, but a call was using or waiting for them.
    pub busy: Vec<String>,
    /// Agents whose state could not be read or released, and why.
    pub unreadable: Vec<UnreadableAgent>,
}

impl Runner {
    /// Releases the tenant's agents idle for longer than the session
    /// timeout, among those `allowed` (all of the tenant's when `None`).
    /// Each agent is released under its run lock, the one calls take, so a
    /// call never runs in an agent being released; agents in use are skipped.
    pub async fn cleanup_inactive(
        &self,
        tenant: &Tenant,
        allowed: Option<&[AgentName]>,
    ) -> Result<CleanupReport, BackendError> {
        let horizon = chrono::Duration::from_std(self.settings.session_timeout)
            .unwrap_or(chrono::Duration::MAX);
        let may = |n: &AgentName| allowed.is_none_or(|a| a.contains(n));
        let list = self.backend.list_agents(tenant).await?;
        let mut report = CleanupReport {
            unreadable: list
                .unreadable
                .into_iter()
                .filter(|u| AgentName::parse(&u.agent_id).is_ok_and(|n| may(&n)))
                .collect(),
            ..Default::default()
        };
        for record in list.agents {
            let Ok(name) = AgentName::parse(&record.agent_id) else {
                continue;
            };
            if !may(&name) || chrono::Utc::now() - record.last_activity < horizon {
                continue;
            }
            let id = AgentId {
                tenant: tenant.clone(),
                name,
            };
            let slot = self.slot(&id);
            let guard = match slot.run_lock.try_lock() {
                Ok(g) if slot.waiting.load(std::sync::atomic::Ordering::SeqCst) == 0 => g,
                _ => {
                    report.busy.push(record.agent_id);
                    continue;
                }
            };
            // A call may have finished between the listing and the lock.
            match self.backend.get_agent(&id).await {
                Ok(Some(r)) if chrono::Utc::now() - r.last_activity < horizon => continue,
                _ => {}
            }
            if let Err(e) = self.backend.release_agent(&id).await {
                warn!(agent = %id, "releasing the agent failed: {e}");
                report.unreadable.push(UnreadableAgent {
                    agent_id: record.agent_id,
                    reason: e.to_string(),
                });
                continue;
            }
            drop(guard);
            self.activity.lock().expect("activity").remove(&id);
            self.forget_slot(&id, slot);
            report.released.push(record.agent_id);
        }
        self.active_agents();
        Ok(report)
    }

    /// Drops an agent's slot unless a call holds it: a call that already
    /// has the slot must share its lock with every later call, or two
    /// calls would run in the agent at once.
    fn forget_slot(&self, id: &AgentId, slot: Arc<AgentSlot>) {
        let mut slots = self.slots.lock().expect("slots");
        // Ours and the map's.
        if Arc::strong_count(&slot) == 2 {
            slots.remove(id);
        }
    }
}
