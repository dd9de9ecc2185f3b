//! Lease-based leader election, so that of several operator replicas exactly
//! one reconciles.
//!
//! The rules are client-go's: a replica takes the Lease when nobody holds it,
//! when it was released, or when its record has not changed for a whole
//! `lease_duration` as measured on the taker's own clock (so clock skew
//! between replicas does not matter). The leader renews every
//! `retry_period` and gives up leadership if it has not renewed for
//! `renew_deadline`, which is shorter than `lease_duration`: it stops before
//! anyone else can take over. Writes use the Lease's resourceVersion, so two
//! replicas racing for it cannot both win.

use std::time::{Duration, Instant};

use chrono::Utc;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::Client;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

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
    #[error("reading the lease {0} failed: {1}")]
    GetLease(String, #[source] kube::Error),
    #[error("creating the lease {0} failed: {1}")]
    CreateLease(String, #[source] kube::Error),
    #[error("updating the lease {0} failed: {1}")]
    UpdateLease(String, #[source] kube::Error),
    #[error("leadership of lease {0} was lost")]
    Lost(String),
}

/// What a replica last saw in the Lease, and when (on its own clock).
#[derive(Debug, Clone, PartialEq)]
struct Observed {
    holder: Option<String>,
    renew_time: Option<MicroTime>,
    transitions: Option<i32>,
}

pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    observed: Option<(Observed, Instant)>,
}

impl LeaderElector {
    pub fn new(client: Client, config: LeaseConfig) -> Result<Self, LeaderError> {
        if !(config.retry_period < config.renew_deadline
            && config.renew_deadline < config.lease_duration)
        {
            return Err(LeaderError::Timings);
        }
        Ok(Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
        })
    }

    pub fn identity(&self) -> &str {
        &self.config.identity
    }

    /// Waits until this replica leads; `None` when cancelled first.
    pub async fn acquire(&mut self, cancel: &CancellationToken) -> Option<()> {
        let mut logged_holder = None;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    info!(lease = %self.config.name, identity = %self.config.identity, "acquired the lease: this replica leads");
                    return Some(());
                }
                Ok(false) => {
                    let holder = self.observed.as_ref().and_then(|(o, _)| o.holder.clone());
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
    /// error.
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
            match tokio::time::timeout(left, self.try_acquire_or_renew()).await {
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
        let name = &self.config.name;
        let Some(mut lease) = self
            .api
            .get_opt(name)
            .await
            .map_err(|e| LeaderError::GetLease(name.clone(), e))?
        else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now());
        self.api
            .replace(name, &PostParams::default(), &lease)
            .await
            .map_err(|e| LeaderError::UpdateLease(name.clone(), e))?;
        info!(lease = %name, "released the lease");
        Ok(())
    }

    /// One round of client-go's tryAcquireOrRenew: true when this replica
    /// holds the Lease afterwards.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, LeaderError> {
        let name = self.config.name.clone();
        let me = self.config.identity.clone();
        let duration_secs =
            i32::try_from(self.config.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let current = self
            .api
            .get_opt(&name)
            .await
            .map_err(|e| LeaderError::GetLease(name.clone(), e))?;
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(&created);
                    Ok(true)
                }
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(LeaderError::CreateLease(name, e)),
            };
        };
        self.observe(&lease);
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let held_by_me = holder.as_deref() == Some(me.as_str());
        if let Some(other) = holder.as_ref().filter(|_| !held_by_me) {
            let duration = spec
                .lease_duration_seconds
                .map_or(self.config.lease_duration, |s| {
                    Duration::from_secs(u64::try_from(s).unwrap_or(0))
                });
            let observed_at = self.observed.as_ref().map(|(_, at)| *at);
            if observed_at.is_some_and(|at| at.elapsed() < duration) {
                debug!(holder = %other, "lease held by another replica");
                return Ok(false);
            }
            info!(holder = %other, "the lease expired; taking over");
        }
        if !held_by_me {
            spec.acquire_time = Some(now());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(me);
        spec.lease_duration_seconds = Some(duration_secs);
        spec.renew_time = Some(now());
        match self
            .api
            .replace(&name, &PostParams::default(), &lease)
            .await
        {
            Ok(updated) => {
                self.observe(&updated);
                Ok(true)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(LeaderError::UpdateLease(name, e)),
        }
    }

    fn observe(&mut self, lease: &Lease) {
        let spec = lease.spec.clone().unwrap_or_default();
        let seen = Observed {
            holder: spec.holder_identity,
            renew_time: spec.renew_time,
            transitions: spec.lease_transitions,
        };
        if self.observed.as_ref().map(|(o, _)| o) != Some(&seen) {
            self.observed = Some((seen, Instant::now()));
        }
    }
}

fn now() -> MicroTime {
    let now = Utc::now();
    MicroTime(
        Timestamp::new(
            now.timestamp(),
            i32::try_from(now.timestamp_subsec_nanos()).unwrap_or(0),
        )
        .unwrap_or(Timestamp::UNIX_EPOCH),
    )
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
