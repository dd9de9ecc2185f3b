//! One run at a time per agent across gateway replicas: a
//! `coordination.k8s.io/v1` Lease per agent (see [`crate::lease`]), taken
//! before a run and released after it.
//!
//! A Lease rather than a claim on the CodexAgent itself: the claim then lives
//! outside the object the operator reconciles (no extra status writes, no
//! reconcile per run), it expires by itself when a gateway dies mid-run, and
//! `kubectl get lease` shows who holds an agent.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::Api;
use tokio_util::sync::CancellationToken;

use crate::lease::LeaseClaim;

/// How often a waiting replica looks at the Lease again.
const RETRY_EVERY: Duration = Duration::from_millis(500);

/// Why the run's Lease could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("the run lease: {0}")]
    Claim(#[from] crate::lease::LeaseError),
    #[error("the call was cancelled while waiting for agent {0}'s run on another gateway replica")]
    Cancelled(String),
}

/// A held Lease; renew it while the run lasts, release it after.
pub struct RunLease {
    claim: LeaseClaim,
    duration: Duration,
}

impl RunLease {
    /// Takes the Lease `name`, waiting while another replica holds it.
    /// `waiting` is called once, when the first wait begins.
    pub async fn acquire(
        api: Api<Lease>,
        name: String,
        identity: String,
        duration: Duration,
        owner: Option<OwnerReference>,
        cancel: &CancellationToken,
        waiting: impl FnOnce(),
    ) -> Result<Self, LeaseError> {
        let mut claim = LeaseClaim::new(api, name, identity, duration, owner);
        let mut waiting = Some(waiting);
        while !claim.try_acquire_or_renew().await? {
            if let Some(w) = waiting.take() {
                w();
            }
            tokio::select! {
                _ = tokio::time::sleep(RETRY_EVERY) => {}
                _ = cancel.cancelled() => return Err(LeaseError::Cancelled(claim.name().to_owned())),
            }
        }
        Ok(Self { claim, duration })
    }

    /// How often to renew: well within the Lease's duration.
    pub fn renew_every(&self) -> Duration {
        (self.duration / 3).max(Duration::from_secs(1))
    }

    /// Extends the Lease. A failure is logged, not fatal: the run goes on,
    /// and at worst another replica may start a run once the Lease expires.
    pub async fn renew(&mut self) {
        match self.claim.try_acquire_or_renew().await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(lease = %self.claim.name(), holder = ?self.claim.holder(), "the run lease was taken over")
            }
            Err(e) => {
                tracing::warn!(lease = %self.claim.name(), error = %e, "renewing the run lease failed")
            }
        }
    }

    /// Gives the Lease up so the next run (on any replica) starts at once.
    pub async fn release(mut self) {
        if let Err(e) = self.claim.release().await {
            tracing::debug!(lease = %self.claim.name(), error = %e, "releasing the run lease failed; it expires by itself");
        }
    }
}
