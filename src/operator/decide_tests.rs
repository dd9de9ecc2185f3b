//! `decide` without a cluster: hand-built observations ([`World`]) and
//! what to ask of the plans they make; the tests are in
//! `decide_children_tests.rs` (the spec, credentials, workspace claim and
//! status) and `decide_pod_tests.rs` (the pod, suspension, the follow-ups).

use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateWaiting, ContainerStatus, PersistentVolumeClaim,
    PersistentVolumeClaimStatus, Pod, PodStatus, Secret,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

use super::*;
use crate::api::crd::{CodexAgentSpec, CodexAgentStatus, Condition};
use crate::api::labels::owner_reference;
use crate::operator::plan::Note;
use crate::operator::settings::resolve;
use crate::operator::shared::{RECHECK_FAILED, RECHECK_STARTING, RECHECK_TERMINATING};

#[path = "decide_children_tests.rs"]
mod children;
#[path = "decide_pod_tests.rs"]
mod pod;

/// Seconds after the agent's creation that tests decide at.
const NOW: i64 = 100_000;

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
}

fn time(secs: i64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(t(secs).timestamp()).unwrap())
}

/// One agent, what `observe` found about it, and when `decide` runs.
#[derive(Clone)]
struct World {
    pub agent: CodexAgent,
    pub seen: Observed,
    pub defaults: Defaults,
    pub now: DateTime<Utc>,
}

impl World {
    /// An agent just created: no status, no children.
    pub fn new() -> Self {
        let mut agent = CodexAgent::new("alice", CodexAgentSpec::default());
        agent.metadata.namespace = Some("team".into());
        agent.metadata.uid = Some("uid-1".into());
        agent.metadata.generation = Some(1);
        agent.metadata.resource_version = Some("100".into());
        agent.metadata.creation_timestamp = Some(time(0));
        Self {
            agent,
            seen: Observed::default(),
            defaults: Defaults::default(),
            now: t(NOW),
        }
    }

    pub fn spec(mut self, change: impl FnOnce(&mut CodexAgentSpec)) -> Self {
        change(&mut self.agent.spec);
        self.agent.metadata.generation = self.agent.metadata.generation.map(|g| g + 1);
        self
    }

    pub fn status(mut self, change: impl FnOnce(&mut CodexAgentStatus)) -> Self {
        change(self.agent.status.get_or_insert_with(Default::default));
        self
    }

    pub fn later(mut self, seconds: i64) -> Self {
        self.now += chrono::Duration::seconds(seconds);
        self
    }

    /// Its own Secret and a bound workspace claim, as made before.
    pub fn made(mut self) -> Self {
        let owner = Some(vec![owner_reference(&self.agent)]);
        let mut secret = Secret::default();
        secret.metadata.name = Some(layout::secret_name(&self.agent));
        secret.metadata.owner_references = owner.clone();
        self.seen.secret = Some(secret);
        let mut pvc = self.claim();
        pvc.metadata.owner_references = owner;
        self.seen.pvc = Some(pvc);
        self
    }

    /// The claim `decide` would apply, bound.
    pub fn claim(&self) -> PersistentVolumeClaim {
        let settings = resolve(&self.agent.spec, &self.defaults).unwrap();
        let mut pvc = desired::desired_pvc(&self.agent, &settings, None, true);
        pvc.status = Some(PersistentVolumeClaimStatus {
            phase: Some("Bound".into()),
            ..PersistentVolumeClaimStatus::default()
        });
        pvc.spec.as_mut().unwrap().volume_name = Some("pv-1".into());
        pvc
    }

    /// The pod built from the spec as it is now, then changed.
    pub fn pod(mut self, change: impl FnOnce(&mut Pod)) -> Self {
        let settings = resolve(&self.agent.spec, &self.defaults).unwrap();
        let mut pod = desired::desired_pod(&self.agent, &settings);
        pod.metadata.uid = Some("pod-uid-1".into());
        pod.status = Some(PodStatus {
            phase: Some("Pending".into()),
            ..PodStatus::default()
        });
        change(&mut pod);
        self.seen.pod = Some(pod);
        self
    }

    /// Made, with its pod ready, as reported by an earlier reconcile.
    pub fn ready(self) -> Self {
        self.made().pod(|_| {}).settled().pod(ready).settled()
    }

    pub fn decide(&self) -> Plan {
        decide(&self.agent, &self.seen, &self.defaults, self.now)
    }

    /// As the next reconcile sees it: the status this one writes, which
    /// `act` carried out as planned (the claim bound, the pod applied).
    pub fn settled(mut self) -> Self {
        let mut plan = self.decide();
        if plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::ApplyPvc { .. }))
        {
            plan.workspace_applied(&self.claim());
        }
        let generation = self.agent.metadata.generation;
        let new = plan.status_to_write(generation).cloned();
        let status = self.agent.status.get_or_insert_with(Default::default);
        if let Some(new) = new {
            status.phase = new.phase;
            status.conditions = new.conditions;
            status.pod_name = new.pod_name;
            status.pod_template_hash = new.pod_template_hash;
            status.observed_generation = new.observed_generation;
            status.message = new.message;
        }
        self
    }
}

fn ready(pod: &mut Pod) {
    pod.status = Some(PodStatus {
        phase: Some("Running".into()),
        container_statuses: Some(vec![ContainerStatus {
            name: layout::CONTAINER_NAME.into(),
            ready: true,
            ..ContainerStatus::default()
        }]),
        ..PodStatus::default()
    });
}

fn stuck(pod: &mut Pod) {
    pod.status = Some(PodStatus {
        phase: Some("Pending".into()),
        container_statuses: Some(vec![ContainerStatus {
            name: layout::CONTAINER_NAME.into(),
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("ImagePullBackOff".into()),
                    message: Some("Back-off pulling image".into()),
                }),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }]),
        ..PodStatus::default()
    });
}

fn foreign(meta: &mut ObjectMeta) {
    meta.owner_references = Some(vec![OwnerReference {
        kind: "Deployment".into(),
        name: "other".into(),
        uid: "uid-other".into(),
        controller: Some(true),
        ..OwnerReference::default()
    }]);
}

fn condition<'a>(plan: &'a Plan, type_: &str) -> &'a Condition {
    plan.outcome
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {:#?}", plan.outcome.status))
}

fn events(plan: &Plan) -> Vec<&'static str> {
    plan.outcome.events.iter().map(|e| e.reason).collect()
}

fn event_note<'a>(plan: &'a Plan, reason: &str) -> &'a Note {
    plan.outcome
        .events
        .iter()
        .find(|e| e.reason == reason)
        .unwrap_or_else(|| panic!("no {reason} event in {:?}", plan.outcome.events))
}

fn steps(plan: &Plan) -> Vec<&'static str> {
    plan.steps
        .iter()
        .map(|s| match s {
            Step::ApplySecret(_) => "ApplySecret",
            Step::ApplyPvc { .. } => "ApplyPvc",
            Step::MarkSuspended { .. } => "MarkSuspended",
            Step::DeletePod { .. } => "DeletePod",
            Step::ApplyPod(_) => "ApplyPod",
            Step::ResizePod { .. } => "ResizePod",
        })
        .collect()
}

fn phase(plan: &Plan) -> (Option<Phase>, Option<&str>) {
    let s = &plan.outcome.status;
    (s.phase, s.message.as_deref())
}

/// Takes the steps up to the pod's, as `act` would, the claim bound.
fn up_to_pod(plan: &mut Plan, claim: &PersistentVolumeClaim) {
    while let Some(step) = plan.steps.front() {
        match step {
            Step::ApplySecret(_) => {}
            Step::ApplyPvc { .. } => plan.workspace_applied(claim),
            _ => return,
        }
        plan.steps.pop_front();
    }
}
