//! What one reconcile is to do and to report, as `decide` makes it: the
//! steps for `act` to carry out in order (the children to apply, resize or
//! delete, the agent to mark suspended), the new status the operator owns,
//! the events and metrics to record, and when to look again.
//!
//! Some answers of the API server change the rest of a plan: a pod or a
//! resize refused, a workspace claim that cannot grow, the applied claim's
//! binding. Those follow-up decisions are here too ([`Plan::on_pod_refused`]
//! and its siblings), pure, for `act` to call with the answer.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, ResourceRequirements, Secret};
use kube::runtime::events::EventType;
use kube::ResourceExt;
use serde::Serialize;

use super::shared::{event, RECHECK_FAILED, RECHECK_STEADY, RECHECK_TERMINATING};
use super::status::{get_condition, set_condition};
use crate::api::crd::{condition, reason, CodexAgent, CodexAgentStatus, Condition, Phase};

/// The status fields the operator owns; the gateway's are never written here.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnedStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    pub conditions: Vec<Condition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_template_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl OwnedStatus {
    pub fn of(status: &CodexAgentStatus) -> Self {
        Self {
            phase: status.phase,
            conditions: status.conditions.clone(),
            pod_name: status.pod_name.clone(),
            pod_template_hash: status.pod_template_hash.clone(),
            observed_generation: status.observed_generation,
            message: status.message.clone(),
        }
    }
}

/// One event to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub type_: EventType,
    pub reason: &'static str,
    pub note: String,
}

/// One metric to record.
#[derive(Debug, Clone, PartialEq)]
pub enum Count {
    Resumed,
    Suspended(&'static str),
    /// Became ready: what brought it up, and how many seconds it took.
    ReadyAfter(&'static str, f64),
}

/// One change for `act` to make, in the order of the plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    ApplySecret(Secret),
    ApplyPvc {
        claim: PersistentVolumeClaim,
        /// Set when `claim` grows the existing one.
        growth: Option<Growth>,
    },
    /// Sets `spec.suspended`, on the condition that the agent is still at
    /// this resourceVersion.
    MarkSuspended {
        resource_version: Option<String>,
    },
    /// Deletes the pod with this name only if it still has this uid.
    DeletePod {
        name: String,
        uid: Option<String>,
    },
    ApplyPod(Pod),
    /// Patches the running pod's `resize` subresource (with its uid).
    ResizePod {
        name: String,
        uid: Option<String>,
        resources: ResourceRequirements,
    },
}

impl Step {
    /// Deletes exactly this pod.
    pub fn delete_pod(pod: &Pod) -> Self {
        Self::DeletePod {
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone(),
        }
    }
}

/// A claim to grow, and the unchanged one to apply if growing is refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Growth {
    pub size: String,
    pub unchanged: PersistentVolumeClaim,
}

/// What the reconcile reports: the new status, the events and metrics, and
/// when to look again.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: OwnedStatus,
    pub events: Vec<Note>,
    pub counts: Vec<Count>,
    pub requeue: Duration,
    /// When the agent's ChatGPT login must be refreshed next.
    pub refresh_at: Option<DateTime<Utc>>,
    /// Come back no later than this (a decision that waits on the pod).
    pub recheck_at: Option<DateTime<Utc>>,
}

/// What a reconcile of one agent does.
#[derive(Debug, Clone)]
pub struct Plan {
    pub now: DateTime<Utc>,
    /// The agent's creation: when conditions seen for the first time began.
    pub created: DateTime<Utc>,
    pub old: CodexAgentStatus,
    pub steps: VecDeque<Step>,
    pub outcome: Outcome,
    /// Where a WorkspaceBound condition the old status lacks, and a
    /// WorkspaceNotGrown event, go: decisions made after the claim's are
    /// already in the outcome when `act` learns how applying it went.
    workspace_slot: (usize, usize),
    /// The message WorkspaceBound gets when the claim could not grow.
    growth_note: Option<String>,
    /// The outcome as it was before the pod's step, which a refused pod
    /// or resize decides again from.
    before_pod: Option<Box<Outcome>>,
}

impl Plan {
    /// A plan that changes nothing yet, but the observed generation.
    pub fn new(agent: &CodexAgent, now: DateTime<Utc>) -> Self {
        let created = agent
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(|t| DateTime::from_timestamp(t.0.as_second(), 0))
            .unwrap_or(now);
        let old = agent.status.clone().unwrap_or_default();
        let mut status = OwnedStatus::of(&old);
        status.observed_generation = agent.metadata.generation;
        Self {
            now,
            created,
            old,
            steps: VecDeque::new(),
            outcome: Outcome {
                status,
                events: Vec::new(),
                counts: Vec::new(),
                requeue: RECHECK_STEADY,
                refresh_at: None,
                recheck_at: None,
            },
            workspace_slot: (0, 0),
            growth_note: None,
            before_pod: None,
        }
    }

    pub fn condition(
        &mut self,
        type_: &str,
        status: bool,
        reason: &str,
        message: impl Into<String>,
    ) {
        set_condition(
            &mut self.outcome.status.conditions,
            type_,
            status,
            reason,
            message,
            self.now,
            self.created,
        );
    }

    pub fn phase(&mut self, phase: Phase, message: impl Into<String>) {
        self.outcome.status.phase = Some(phase);
        let message = message.into();
        self.outcome.status.message = (!message.is_empty()).then_some(message);
    }

    pub fn event(&mut self, type_: EventType, reason: &'static str, note: impl Into<String>) {
        self.outcome.events.push(Note {
            type_,
            reason,
            note: note.into(),
        });
    }

    pub fn count(&mut self, count: Count) {
        self.outcome.counts.push(count);
    }

    pub fn step(&mut self, step: Step) {
        self.steps.push_back(step);
    }

    /// Failed, with a Warning event the first time.
    pub fn fail(&mut self, why: &str, message: String) {
        if self.old.phase != Some(Phase::Failed) || self.old.message.as_deref() != Some(&message) {
            self.event(EventType::Warning, event::FAILED, message.clone());
        }
        self.condition(condition::READY, false, why, message.clone());
        self.phase(Phase::Failed, message);
    }

    /// Applies the claim; the next decisions go after the claim's.
    pub fn apply_claim(&mut self, claim: PersistentVolumeClaim, growth: Option<Growth>) {
        self.workspace_slot = (
            self.outcome.status.conditions.len(),
            self.outcome.events.len(),
        );
        self.step(Step::ApplyPvc { claim, growth });
    }

    /// Marks the outcome so far as the one a refused pod or resize step
    /// decides again from.
    pub fn before_pod_step(&mut self) {
        self.before_pod = Some(Box::new(self.outcome.clone()));
    }

    /// Deletes the pod for `why`; the next reconcile builds its successor.
    pub fn replace_pod(&mut self, name: String, uid: Option<String>, why: &str) {
        let note = format!("{why}: replacing pod {name}; the workspace is kept");
        self.step(Step::DeletePod { name, uid });
        // Recreating it next is expected, not a loss worth an event.
        self.outcome.status.pod_template_hash = None;
        self.event(EventType::Normal, event::POD_REPLACED, note);
        let message = format!("replacing the pod: {why}");
        self.condition(
            condition::READY,
            false,
            reason::POD_REPLACING,
            message.clone(),
        );
        self.phase(Phase::Starting, message);
        self.outcome.requeue = RECHECK_TERMINATING;
    }

    /// The claim as applied: the WorkspaceBound condition follows its
    /// binding.
    pub fn workspace_applied(&mut self, pvc: &PersistentVolumeClaim) {
        let name = pvc.name_any();
        let (bound, why, message) = match pvc.status.as_ref().and_then(|s| s.phase.as_deref()) {
            Some("Bound") => {
                let volume = pvc
                    .spec
                    .as_ref()
                    .and_then(|s| s.volume_name.clone())
                    .unwrap_or_default();
                (
                    true,
                    reason::BOUND,
                    format!("claim {name} bound to volume {volume}"),
                )
            }
            Some("Lost") => (
                false,
                reason::VOLUME_LOST,
                format!("claim {name} lost its volume"),
            ),
            _ => (
                false,
                reason::WAITING_FOR_VOLUME,
                format!("claim {name} is waiting for a volume"),
            ),
        };
        let message = self.growth_note.clone().unwrap_or(message);
        let (at, _) = self.workspace_slot;
        let (now, created) = (self.now, self.created);
        for outcome in self.outcomes() {
            let conditions = &mut outcome.status.conditions;
            let new = !conditions
                .iter()
                .any(|c| c.type_ == condition::WORKSPACE_BOUND);
            set_condition(
                conditions,
                condition::WORKSPACE_BOUND,
                bound,
                why,
                message.clone(),
                now,
                created,
            );
            if new {
                let c = conditions.pop().expect("just pushed");
                conditions.insert(at.min(conditions.len()), c);
            }
        }
    }

    /// The API server would not grow the claim (only volumes of a class
    /// that allows expansion grow): the claim stays as it is, and the
    /// workspace keeps working. `act` applies `growth.unchanged` next.
    pub fn on_growth_refused(&mut self, growth: &Growth, message: &str) {
        let note = format!(
            "the workspace claim {} cannot grow to {}: {message}",
            growth.unchanged.name_any(),
            growth.size,
        );
        let old = get_condition(&self.old, condition::WORKSPACE_BOUND);
        if old.is_none_or(|c| c.message != note) {
            let (_, at) = self.workspace_slot;
            let warning = Note {
                type_: EventType::Warning,
                reason: event::WORKSPACE_NOT_GROWN,
                note: note.clone(),
            };
            for outcome in self.outcomes() {
                outcome
                    .events
                    .insert(at.min(outcome.events.len()), warning.clone());
            }
        }
        self.growth_note = Some(note);
    }

    /// The API server refused the pod (400, 422): Failed, with its message.
    pub fn on_pod_refused(&mut self, message: &str) {
        self.back_to_before_pod();
        self.fail(
            reason::POD_FAILED,
            format!("the pod was refused: {message}"),
        );
        self.outcome.requeue = RECHECK_FAILED;
    }

    /// The API server refused to resize the pod in place (one without
    /// in-place resize, or a change it will not make in place): replacing
    /// it still works.
    pub fn on_resize_refused(&mut self, name: String, uid: Option<String>, message: &str) {
        self.back_to_before_pod();
        let why = format!("the in-place resize was refused ({message})");
        self.replace_pod(name, uid, &why);
    }

    fn back_to_before_pod(&mut self) {
        self.steps.clear();
        if let Some(before) = self.before_pod.take() {
            self.outcome = *before;
        }
    }

    fn outcomes(&mut self) -> impl Iterator<Item = &mut Outcome> {
        std::iter::once(&mut self.outcome).chain(self.before_pod.as_deref_mut())
    }

    /// How long until the next reconcile, from `now`: the plan's interval,
    /// or sooner for a login refresh or a recheck it waits for.
    pub fn requeue_after(&self, now: DateTime<Utc>) -> Duration {
        let o = &self.outcome;
        match o.refresh_at.into_iter().chain(o.recheck_at).min() {
            Some(at) => {
                let until = (at - now).to_std().unwrap_or_default();
                o.requeue.min(until.max(Duration::from_secs(1)))
            }
            None => o.requeue,
        }
    }

    /// The status to write, stamped with the generation its conditions
    /// saw; `None` when it did not change.
    pub fn status_to_write(&mut self, generation: Option<i64>) -> Option<&OwnedStatus> {
        for c in &mut self.outcome.status.conditions {
            c.observed_generation = generation;
        }
        (self.outcome.status != OwnedStatus::of(&self.old)).then_some(&self.outcome.status)
    }
}

/// Answers to a pod's apply that say it cannot be made as it is.
pub fn pod_refused(code: u16) -> bool {
    matches!(code, 400 | 422)
}

/// Answers to a resize that say it will not be made in place.
pub fn resize_refused(code: u16) -> bool {
    matches!(code, 400 | 404 | 405 | 422)
}

/// Answers to a claim's growth that say it cannot grow.
pub fn growth_refused(code: u16) -> bool {
    matches!(code, 403 | 422)
}
