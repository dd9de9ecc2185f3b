//! Lease-based leader election, so that of several operator replicas exactly
//! one reconciles.
//!
//! The Lease protocol is [`crate::lease`]'s (client-go's rules, skew-safe
//! expiry). The leader renews every `retry_period` and gives up leadership
//! if it has not renewed for `renew_deadline`, which is shorter than
//! `lease_duration`: it stops before anyone else can take over.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kube::Client;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::lease::LeaseClaim;

/// Whether replicas elect a leader unless told (`CODEX_MCP_LEADER_ELECT`).
pub const DEFAULT_LEADER_ELECT: bool = true;
/// The leader-election Lease's name unless told (`CODEX_MCP_LEASE_NAME`).
pub const DEFAULT_LEASE_NAME: &str = "codex-mcp-operator";
/// Seconds the Lease is valid without renewal (`CODEX_MCP_LEASE_DURATION`).
pub const DEFAULT_LEASE_DURATION_SECS: u64 = 15;
/// Seconds the leader keeps trying to renew (`CODEX_MCP_LEASE_RENEW_DEADLINE`).
pub const DEFAULT_RENEW_DEADLINE_SECS: u64 = 10;
/// Seconds between attempts (`CODEX_MCP_LEASE_RETRY_PERIOD`).
pub const DEFAULT_RETRY_PERIOD_SECS: u64 = 2;

#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// This replica's identity in the Lease; unique per process.
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error(
        "the lease timings are inconsistent: need retry period < renew deadline < lease duration"
    )]
    Timings,
    #[error(transparent)]
    Lease(#[from] crate::lease::LeaseError),
    #[error("leadership of lease {0} was lost")]
    Lost(String),
}

pub struct LeaderElector {
    claim: LeaseClaim,
    config: LeaseConfig,
}

impl LeaderElector {
    pub fn new(client: Client, config: LeaseConfig) -> Result<Self, LeaderError> {
        if !(config.retry_period < config.renew_deadline
            && config.renew_deadline < config.lease_duration)
        {
            return Err(LeaderError::Timings);
        }
        let api: Api<Lease> = Api::namespaced(client, &config.namespace);
        let claim = LeaseClaim::new(
            api,
            config.name.clone(),
            config.identity.clone(),
            config.lease_duration,
            None,
        );
        Ok(Self { claim, config })
    }

    pub fn identity(&self) -> &str {
        &self.config.identity
    }

    /// Waits until this replica leads; `None` when cancelled first.
    pub async fn acquire(&mut self, cancel: &CancellationToken) -> Option<()> {
        let mut logged_holder = None;
        loop {
            match self.claim.try_acquire_or_renew().await {
                Ok(true) => {
                    info!(lease = %self.config.name, identity = %self.config.identity, "acquired the lease: this replica leads");
                    return Some(());
                }
                Ok(false) => {
                    let holder = self.claim.holder().map(str::to_owned);
                    if holder != logged_holder {
                        info!(lease = %self.config.name, holder = ?holder, "another replica leads; standing by");
                        logged_holder = holder;
                    }
                }
                Err(e) => warn!("leader election: {e}"),
            }
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = tokio::time::sleep(self.config.retry_period) => {}
            }
        }
    }

    /// Keeps renewing until `stop` fires (`Ok`) or leadership is lost
    /// (`Err`). The caller must stop reconciling as soon as this returns an
    /// error: it does so before `renew_deadline` passes without a renewal,
    /// which is shorter than the lease duration, so it stops before anyone
    /// else can take over.
    pub async fn hold(&mut self, stop: &CancellationToken) -> Result<(), LeaderError> {
        let mut last_renewal = Instant::now();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(self.config.retry_period) => {}
            }
            let left = self
                .config
                .renew_deadline
                .saturating_sub(last_renewal.elapsed());
            match tokio::time::timeout(left, self.claim.try_acquire_or_renew()).await {
                Ok(Ok(true)) => last_renewal = Instant::now(),
                Ok(Ok(false)) => return Err(LeaderError::Lost(self.config.name.clone())),
                Ok(Err(e)) => warn!("renewing the lease: {e}"),
                Err(_) => {}
            }
            if last_renewal.elapsed() >= self.config.renew_deadline {
                return Err(LeaderError::Lost(self.config.name.clone()));
            }
        }
    }

    /// Gives the Lease up so another replica can take over at once.
    pub async fn release(&mut self) -> Result<(), LeaderError> {
        self.claim.release().await?;
        info!(lease = %self.config.name, "released the lease");
        Ok(())
    }
}

/// A process-unique identity: the host name and a random suffix, so two
/// replicas on one host (or a restarted one) never share it.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "codex-mcp-operator".into());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}", &suffix[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_unique() {
        assert_ne!(default_identity(), default_identity());
    }

    #[tokio::test]
    async fn inconsistent_timings_are_refused() {
        let config = LeaseConfig {
            name: "l".into(),
            namespace: "n".into(),
            identity: "i".into(),
            lease_duration: Duration::from_secs(10),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        };
        let client = Client::try_from(kube::Config::new("http://127.0.0.1:1".parse().unwrap()))
            .expect("client");
        assert!(matches!(
            LeaderElector::new(client, config),
            Err(LeaderError::Timings)
        ));
    }
}
