//! One run at a time per agent across gateway replicas: a
//! `coordination.k8s.io/v1` Lease per agent, taken before a run and released
//! after it.
//!
//! A Lease rather than a claim on the CodexAgent itself: the claim then lives
//! outside the object the operator reconciles (no extra status writes, no
//! reconcile per run), it expires by itself when a gateway dies mid-run, and
//! `kubectl get lease` shows who holds an agent. Every write is guarded by the
//! Lease's resourceVersion, so two replicas racing for it cannot both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;

/// Why the run's Lease could not be taken or kept.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("reading the run lease {0} failed: {1}")]
    Read(String, #[source] kube::Error),
    #[error("taking the run lease {0} failed: {1}")]
    Take(String, #[source] kube::Error),
    #[error("the call was cancelled while waiting for agent {0}'s run on another gateway replica")]
    Cancelled(String),
}

/// A held Lease; renew it while the run lasts, release it after.
pub struct RunLease {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    lease: Lease,
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// Whether someone other than `identity` holds `lease` and it has not expired.
fn held_by_other(lease: &Lease, identity: &str) -> bool {
    let Some(spec) = lease.spec.as_ref() else {
        return false;
    };
    let Some(holder) = spec.holder_identity.as_deref().filter(|h| !h.is_empty()) else {
        return false;
    };
    if holder == identity {
        return false;
    }
    let seconds = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    let renewed = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(|t| t.0);
    renewed.is_some_and(|t| {
        t.saturating_add(SignedDuration::from_secs(seconds))
            .is_ok_and(|end| end > Timestamp::now())
    })
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
        let mut waiting = Some(waiting);
        loop {
            let current = api
                .get_opt(&name)
                .await
                .map_err(|e| LeaseError::Read(name.clone(), e))?;
            let taken = match current {
                None => {
                    let lease = Lease {
                        metadata: ObjectMeta {
                            name: Some(name.clone()),
                            owner_references: owner.clone().map(|o| vec![o]),
                            ..ObjectMeta::default()
                        },
                        spec: Some(Self::spec(&identity, duration, 0)),
                    };
                    api.create(&PostParams::default(), &lease).await
                }
                Some(l) if !held_by_other(&l, &identity) => {
                    let transitions = l
                        .spec
                        .as_ref()
                        .and_then(|s| s.lease_transitions)
                        .unwrap_or(0);
                    let mut next = l.clone();
                    next.spec = Some(Self::spec(&identity, duration, transitions + 1));
                    // The resourceVersion in `next` makes this a guarded write.
                    api.replace(&name, &PostParams::default(), &next).await
                }
                Some(_) => {
                    if let Some(w) = waiting.take() {
                        w();
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                        _ = cancel.cancelled() => return Err(LeaseError::Cancelled(name)),
                    }
                }
            };
            match taken {
                Ok(lease) => {
                    return Ok(Self {
                        api,
                        name,
                        identity,
                        duration,
                        lease,
                    })
                }
                // Another replica wrote first: look again.
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(LeaseError::Take(name, e)),
            }
        }
    }

    fn spec(identity: &str, duration: Duration, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(identity.to_owned()),
            lease_duration_seconds: Some(duration.as_secs().max(1) as i32),
            acquire_time: Some(now()),
            renew_time: Some(now()),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// How often to renew: well within the Lease's duration.
    pub fn renew_every(&self) -> Duration {
        (self.duration / 3).max(Duration::from_secs(1))
    }

    /// Extends the Lease. A failure is logged, not fatal: the run goes on,
    /// and at worst another replica may start a run once the Lease expires.
    pub async fn renew(&mut self) {
        let mut next = self.lease.clone();
        if let Some(spec) = next.spec.as_mut() {
            spec.renew_time = Some(now());
        }
        match self
            .api
            .replace(&self.name, &PostParams::default(), &next)
            .await
        {
            Ok(l) => self.lease = l,
            Err(e) => {
                tracing::warn!(lease = %self.name, error = %e, "renewing the run lease failed")
            }
        }
    }

    /// Gives the Lease up so the next run (on any replica) starts at once.
    pub async fn release(self) {
        let mut next = self.lease.clone();
        if let Some(spec) = next.spec.as_mut() {
            if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
                return;
            }
            spec.holder_identity = None;
            spec.renew_time = Some(now());
        }
        if let Err(e) = self
            .api
            .replace(&self.name, &PostParams::default(), &next)
            .await
        {
            tracing::debug!(lease = %self.name, error = %e, "releasing the run lease failed; it expires by itself");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed_secs_ago: i64, duration: i32) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                lease_duration_seconds: Some(duration),
                renew_time: Some(MicroTime(
                    Timestamp::now() - SignedDuration::from_secs(renewed_secs_ago),
                )),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn a_lease_blocks_only_while_someone_else_holds_it_unexpired() {
        assert!(held_by_other(&lease(Some("b"), 1, 30), "a"));
        assert!(!held_by_other(&lease(Some("a"), 1, 30), "a"), "ours");
        assert!(!held_by_other(&lease(Some("b"), 60, 30), "a"), "expired");
        assert!(!held_by_other(&lease(None, 1, 30), "a"), "released");
        assert!(!held_by_other(&lease(Some(""), 1, 30), "a"), "released");
    }
}
