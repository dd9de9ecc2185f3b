//! One `coordination.k8s.io/v1` Lease protocol for everything that must be
//! held by one process at a time: the operator's leader election and the
//! gateway's per-agent run lock.
//!
//! The rules are client-go's. A claimant takes the Lease when nobody holds
//! it, when it was released, or when its record (holder, renew time,
//! transitions) has not changed for a whole lease duration as measured on
//! the claimant's own clock: clocks of different machines are never
//! compared, so skew between replicas does not matter. Every write carries
//! the resourceVersion read, so two claimants racing cannot both win.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("reading the lease {0} failed: {1}")]
    Read(String, #[source] kube::Error),
    #[error("creating the lease {0} failed: {1}")]
    Create(String, #[source] kube::Error),
    #[error("updating the lease {0} failed: {1}")]
    Update(String, #[source] kube::Error),
}

/// The part of a Lease whose change shows its holder is alive.
#[derive(Debug, Clone, PartialEq)]
struct Record {
    holder: Option<String>,
    renew_time: Option<MicroTime>,
    transitions: Option<i32>,
}

impl Record {
    fn of(spec: Option<&LeaseSpec>) -> Self {
        Self {
            holder: spec.and_then(|s| s.holder_identity.clone()),
            renew_time: spec.and_then(|s| s.renew_time.clone()),
            transitions: spec.and_then(|s| s.lease_transitions),
        }
    }
}

/// What a claimant does with the Lease it read.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// There is none: create it, held.
    Create,
    /// Free (released, or expired): take it over.
    Take,
    /// Ours: renew it.
    Renew,
    /// Another holder's, still alive: wait.
    Wait { holder: String },
}

/// The step for a Lease whose record has been seen unchanged for
/// `unchanged_for` on this claimant's clock (zero when it just changed).
pub fn next_step(lease: Option<&Lease>, me: &str, unchanged_for: Duration) -> Step {
    let Some(lease) = lease else {
        return Step::Create;
    };
    let spec = lease.spec.as_ref();
    let holder = spec
        .and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty());
    match holder {
        None => Step::Take,
        Some(h) if h == me => Step::Renew,
        Some(h) => {
            let seconds = spec.and_then(|s| s.lease_duration_seconds).unwrap_or(0);
            let duration = Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
            if unchanged_for >= duration {
                Step::Take
            } else {
                Step::Wait {
                    holder: h.to_owned(),
                }
            }
        }
    }
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// One claimant of one Lease.
pub struct LeaseClaim {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    owner: Option<OwnerReference>,
    /// The record last seen, and when it was first seen so (own clock).
    observed: Option<(Record, Instant)>,
}

impl LeaseClaim {
    /// A claim on Lease `name` as `identity`, held for `duration` per
    /// renewal; created with `owner` (so it goes with its object).
    pub fn new(
        api: Api<Lease>,
        name: String,
        identity: String,
        duration: Duration,
        owner: Option<OwnerReference>,
    ) -> Self {
        Self {
            api,
            name,
            identity,
            duration,
            owner,
            observed: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The holder as last seen (`None`: free, or not read yet).
    pub fn holder(&self) -> Option<&str> {
        self.observed
            .as_ref()
            .and_then(|(r, _)| r.holder.as_deref())
            .filter(|h| !h.is_empty())
    }

    fn observe(&mut self, lease: Option<&Lease>) -> Duration {
        let seen = Record::of(lease.and_then(|l| l.spec.as_ref()));
        match &self.observed {
            Some((r, at)) if *r == seen => at.elapsed(),
            _ => {
                self.observed = Some((seen, Instant::now()));
                Duration::ZERO
            }
        }
    }

    fn spec(&self, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.duration.as_secs().max(1)).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(acquired.unwrap_or_else(now)),
            renew_time: Some(now()),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// One round of client-go's tryAcquireOrRenew: true when this claimant
    /// holds the Lease afterwards. Losing a race is `false`, not an error.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, LeaseError> {
        let current = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| LeaseError::Read(self.name.clone(), e))?;
        let unchanged_for = self.observe(current.as_ref());
        let step = next_step(current.as_ref(), &self.identity, unchanged_for);
        let written = match (step, current) {
            (Step::Wait { holder }, _) => {
                tracing::debug!(lease = %self.name, %holder, "lease held by another");
                return Ok(false);
            }
            // Only `Create` comes without a Lease.
            (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        owner_references: self.owner.clone().map(|o| vec![o]),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec(None, 0)),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Err(e) if !is_conflict(&e) => {
                        return Err(LeaseError::Create(self.name.clone(), e))
                    }
                    other => other,
                }
            }
            (step, Some(mut lease)) => {
                let old = lease.spec.take().unwrap_or_default();
                let transitions = old.lease_transitions.unwrap_or(0);
                lease.spec = Some(if step == Step::Renew {
                    self.spec(old.acquire_time, transitions)
                } else {
                    self.spec(None, transitions + 1)
                });
                // The resourceVersion read makes this a guarded write.
                match self
                    .api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                {
                    Err(e) if !is_conflict(&e) => {
                        return Err(LeaseError::Update(self.name.clone(), e))
                    }
                    other => other,
                }
            }
        };
        match written {
            Ok(lease) => {
                self.observe(Some(&lease));
                Ok(true)
            }
            // Another claimant wrote first.
            Err(_) => Ok(false),
        }
    }

    /// Gives the Lease up, if this claimant holds it, so the next one
    /// takes it at once instead of waiting for it to expire.
    pub async fn release(&mut self) -> Result<(), LeaseError> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| LeaseError::Read(self.name.clone(), e))?
        else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = Some(now());
        let released = self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
            .map_err(|e| LeaseError::Update(self.name.clone(), e))?;
        self.observe(Some(&released));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, duration: i32) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                lease_duration_seconds: Some(duration),
                renew_time: Some(now()),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn another_holder_blocks_until_its_record_stood_still_a_whole_duration() {
        let held = lease(Some("b"), 30);
        let wait = Step::Wait { holder: "b".into() };
        assert_eq!(next_step(Some(&held), "a", Duration::ZERO), wait);
        assert_eq!(next_step(Some(&held), "a", Duration::from_secs(29)), wait);
        assert_eq!(
            next_step(Some(&held), "a", Duration::from_secs(30)),
            Step::Take
        );
    }

    #[test]
    fn a_renew_time_far_in_the_past_or_future_changes_nothing() {
        // Clock skew: only how long the record stood still here counts.
        let mut old = lease(Some("b"), 30);
        old.spec.as_mut().unwrap().renew_time = Some(MicroTime(Timestamp::UNIX_EPOCH));
        assert!(matches!(
            next_step(Some(&old), "a", Duration::ZERO),
            Step::Wait { .. }
        ));
        let mut ahead = lease(Some("b"), 30);
        ahead.spec.as_mut().unwrap().renew_time = Some(MicroTime(Timestamp::MAX));
        assert_eq!(
            next_step(Some(&ahead), "a", Duration::from_secs(31)),
            Step::Take
        );
    }

    #[test]
    fn free_ours_or_missing() {
        assert_eq!(next_step(None, "a", Duration::ZERO), Step::Create);
        assert_eq!(
            next_step(Some(&lease(None, 30)), "a", Duration::ZERO),
            Step::Take
        );
        assert_eq!(
            next_step(Some(&lease(Some(""), 30)), "a", Duration::ZERO),
            Step::Take
        );
        assert_eq!(
            next_step(Some(&lease(Some("a"), 30)), "a", Duration::ZERO),
            Step::Renew
        );
    }

    #[tokio::test]
    async fn a_changed_record_restarts_the_wait() {
        let api: Api<Lease> = Api::namespaced(
            kube::Client::try_from(kube::Config::new("http://127.0.0.1:1".parse().unwrap()))
                .unwrap(),
            "n",
        );
        let mut claim = LeaseClaim::new(api, "l".into(), "a".into(), Duration::from_secs(30), None);
        let first = lease(Some("b"), 30);
        assert_eq!(claim.observe(Some(&first)), Duration::ZERO);
        std::thread::sleep(Duration::from_millis(20));
        assert!(claim.observe(Some(&first)) >= Duration::from_millis(20));
        let mut renewed = first.clone();
        renewed.spec.as_mut().unwrap().renew_time = Some(MicroTime(Timestamp::MAX));
        assert_eq!(claim.observe(Some(&renewed)), Duration::ZERO);
        assert_eq!(claim.holder(), Some("b"));
    }
}
