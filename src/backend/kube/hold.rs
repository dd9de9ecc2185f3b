//! What a gateway replica holds while an agent's runs are in its hands:
//! the agent's run Lease (one run at a time across replicas), renewed, and
//! the gateway's activity fields on the CodexAgent (`activeRuns`,
//! `lastActivity`), which keep the operator from suspending the agent.
//!
//! A run outlives the replica that started it: the Lease then expires and
//! the next holder finds the run by its lock in the pod (see
//! `runs::durable`), so the Lease only has to cover the time a replica
//! works on the agent, and the run's directory says whether one is going.

use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::lease::{LeaseError, RunLease};
use crate::api::crd::CodexAgent;
use crate::backend::Held;

/// How often a held agent's lastActivity is refreshed; the operator wants
/// it at least once a minute.
const ACTIVITY_EVERY: Duration = Duration::from_secs(30);

/// Released (Lease given back, `activeRuns` lowered) by
/// [`Held::release`], or in the background when dropped.
pub struct Hold {
    stop: CancellationToken,
    given_back: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[async_trait::async_trait]
impl Held for Hold {
    async fn release(mut self: Box<Self>) {
        self.stop.cancel();
        if let Some(task) = self.given_back.take() {
            let _ = task.await;
        }
    }
}

pub struct HoldParams {
    pub agents: Api<CodexAgent>,
    pub leases: Api<Lease>,
    /// The CodexAgent's name.
    pub name: String,
    pub lease_name: String,
    pub identity: String,
    pub duration: Duration,
    pub owner: Option<OwnerReference>,
}

async fn mark_active(agents: &Api<CodexAgent>, name: &str, active: bool) {
    let body = json!({"status": {"activeRuns": i64::from(active), "lastActivity": Utc::now()}});
    if let Err(e) = agents
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        tracing::warn!(agent = name, error = %e, "recording run activity failed");
    }
}

/// Takes the agent's Lease (waiting while another replica holds it) and
/// keeps it, with the activity marker, until the [`Hold`] is dropped.
/// `turn` is the replica's own per-agent guard, kept until the Lease is
/// given back, so a next hold of the same agent on this replica cannot be
/// released by this one's trailing release.
pub async fn hold(
    p: HoldParams,
    turn: tokio::sync::OwnedMutexGuard<()>,
    cancel: &CancellationToken,
    waiting: impl FnOnce(),
) -> Result<Hold, LeaseError> {
    let mut lease = RunLease::acquire(
        p.leases,
        p.lease_name,
        p.identity,
        p.duration,
        p.owner,
        cancel,
        waiting,
    )
    .await?;
    mark_active(&p.agents, &p.name, true).await;
    let stop = CancellationToken::new();
    let until = stop.clone();
    let (agents, name) = (p.agents, p.name);
    let task = tokio::spawn(async move {
        let mut renew = tokio::time::interval(lease.renew_every());
        let mut touch = tokio::time::interval(ACTIVITY_EVERY);
        renew.reset();
        touch.reset();
        loop {
            tokio::select! {
                _ = renew.tick() => lease.renew().await,
                _ = touch.tick() => {
                    let body = json!({"status": {"lastActivity": Utc::now()}});
                    let _ = agents.patch_status(&name, &PatchParams::default(), &Patch::Merge(&body)).await;
                }
                _ = until.cancelled() => break,
            }
        }
        mark_active(&agents, &name, false).await;
        lease.release().await;
        drop(turn);
    });
    Ok(Hold {
        stop,
        given_back: Some(task),
    })
}
