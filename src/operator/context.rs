//! What the reconciler works with across reconciles: the API client, the
//! defaults for agents' specs, the event recorder, metrics, the one
//! refresher of ChatGPT logins, and the record of the operator's own last
//! write to each agent (so a reconcile never acts on a cache older than
//! it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use kube::api::Api;
use kube::runtime::events::Recorder;
use kube::Client;

use super::login::LoginKeeper;
use super::metrics::OperatorMetrics;
use super::settings::Defaults;
use crate::api::crd::CodexAgent;

pub struct Context {
    pub client: Client,
    pub defaults: Defaults,
    pub recorder: Recorder,
    pub metrics: Arc<OperatorMetrics>,
    /// The one refresher of shared ChatGPT logins.
    pub logins: LoginKeeper,
    /// See [`Written`].
    pub written: Written,
}

impl Context {
    pub fn new(
        client: Client,
        defaults: Defaults,
        recorder: Recorder,
        metrics: Arc<OperatorMetrics>,
        logins: LoginKeeper,
    ) -> Self {
        Self {
            client,
            defaults,
            recorder,
            metrics,
            logins,
            written: Written::default(),
        }
    }

    /// The APIs of the children in `namespace`.
    pub fn children(&self, namespace: &str) -> Children {
        Children {
            secrets: Api::namespaced(self.client.clone(), namespace),
            pvcs: Api::namespaced(self.client.clone(), namespace),
            pods: Api::namespaced(self.client.clone(), namespace),
            agents: Api::namespaced(self.client.clone(), namespace),
        }
    }
}

/// The namespaced APIs a reconcile of one agent works with.
pub struct Children {
    pub secrets: Api<Secret>,
    pub pvcs: Api<PersistentVolumeClaim>,
    pub pods: Api<Pod>,
    pub agents: Api<CodexAgent>,
}

/// The resourceVersion of this operator's last write to each agent (by
/// uid). See [`Written::is_stale`].
#[derive(Debug, Default)]
pub struct Written(Mutex<HashMap<String, u64>>);

impl Written {
    /// Whether the cached agent predates this operator's own last write to
    /// it. A reconcile queued while another ran gets the object from the
    /// watch cache, which may not have caught up with that run's writes;
    /// acting on it would undo them (resume an agent just suspended, count
    /// a pod ready twice). resourceVersions are etcd revisions, so they
    /// compare as numbers; were one ever not a number, the check is skipped.
    pub fn is_stale(&self, agent: &CodexAgent) -> bool {
        let (Some(uid), Some(seen)) = (agent.metadata.uid.as_ref(), version(agent)) else {
            return false;
        };
        let written = self.0.lock().map(|w| w.get(uid).copied()).unwrap_or(None);
        written.is_some_and(|w| seen < w)
    }

    /// Records a write's answer, the agent as the API server stored it.
    pub fn wrote(&self, written: &CodexAgent) {
        if let (Some(uid), Some(v)) = (written.metadata.uid.clone(), version(written)) {
            if let Ok(mut w) = self.0.lock() {
                let entry = w.entry(uid).or_insert(v);
                *entry = (*entry).max(v);
            }
        }
    }

    /// Drops an agent that is going away.
    pub fn forget(&self, agent: &CodexAgent) {
        if let (Some(uid), Ok(mut w)) = (agent.metadata.uid.as_ref(), self.0.lock()) {
            w.remove(uid);
        }
    }
}

fn version(agent: &CodexAgent) -> Option<u64> {
    agent.metadata.resource_version.as_deref()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::crd::CodexAgentSpec;

    fn agent(uid: &str, version: &str) -> CodexAgent {
        let mut a = CodexAgent::new("alice", CodexAgentSpec::default());
        a.metadata.uid = Some(uid.into());
        a.metadata.resource_version = Some(version.into());
        a
    }

    #[test]
    fn a_cache_older_than_the_last_write_is_stale() {
        let written = Written::default();
        assert!(!written.is_stale(&agent("u1", "5")), "nothing written yet");
        written.wrote(&agent("u1", "10"));
        assert!(written.is_stale(&agent("u1", "9")));
        assert!(!written.is_stale(&agent("u1", "10")));
        assert!(!written.is_stale(&agent("u1", "11")));
        assert!(!written.is_stale(&agent("u2", "1")), "another agent");
        // An older answer arriving late does not move the mark back.
        written.wrote(&agent("u1", "7"));
        assert!(written.is_stale(&agent("u1", "9")));
        // resourceVersions that are not numbers skip the check.
        assert!(!written.is_stale(&agent("u1", "abc")));
        written.forget(&agent("u1", "10"));
        assert!(!written.is_stale(&agent("u1", "9")));
    }
}
