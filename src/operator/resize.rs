//! What to do with a running agent pod whose spec moved on: nothing, resize
//! it in place (Kubernetes 1.35+: the `pods/resize` subresource; the
//! container keeps running, and so do the agent's runs), wait for a resize
//! under way, or replace it. Pure: it decides from the desired pod and the
//! running one as the API server reports it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::desired::pod_hash;
use super::settings::parse_quantity;
use crate::api::layout::CONTAINER_NAME;

/// Pod conditions the kubelet reports a resize with.
pub const POD_RESIZE_PENDING: &str = "PodResizePending";
pub const POD_RESIZE_IN_PROGRESS: &str = "PodResizeInProgress";
/// `PodResizePending` reasons: the node can never fit it, or not right now.
pub const RESIZE_INFEASIBLE: &str = "Infeasible";
pub const RESIZE_DEFERRED: &str = "Deferred";
/// The `PodResizeInProgress` reason when actuating it failed (retried).
pub const RESIZE_ERROR: &str = "Error";

/// A pod's quality-of-service class, which a resize may not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Guaranteed => "Guaranteed",
            Self::Burstable => "Burstable",
            Self::BestEffort => "BestEffort",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "Guaranteed" => Some(Self::Guaranteed),
            "Burstable" => Some(Self::Burstable),
            "BestEffort" => Some(Self::BestEffort),
            _ => None,
        }
    }
}

/// The class Kubernetes gives a pod whose containers have these resources
/// (cpu and memory only): Guaranteed when every container has both limits
/// and requests equal to them (a missing request is its limit), BestEffort
/// when none sets anything.
pub fn qos_class<'a>(containers: impl IntoIterator<Item = &'a ResourceRequirements>) -> QosClass {
    let mut any = false;
    let mut guaranteed = true;
    for r in containers {
        for resource in ["cpu", "memory"] {
            let limit = quantity(r.limits.as_ref(), resource);
            let request = quantity(r.requests.as_ref(), resource).or(limit);
            any |= limit.is_some() || request.is_some();
            guaranteed &= limit.is_some() && request == limit;
        }
    }
    match (any, guaranteed) {
        (false, _) => QosClass::BestEffort,
        (true, true) => QosClass::Guaranteed,
        (true, false) => QosClass::Burstable,
    }
}

fn quantity(map: Option<&BTreeMap<String, Quantity>>, resource: &str) -> Option<f64> {
    map?.get(resource).and_then(|q| parse_quantity(&q.0))
}

/// Whether two cpu/memory maps ask for the same: the API server stores
/// quantities in canonical form (`0.5` as `500m`, `2048Mi` as `2Gi`).
fn same_quantities(
    a: Option<&BTreeMap<String, Quantity>>,
    b: Option<&BTreeMap<String, Quantity>>,
) -> bool {
    ["cpu", "memory"]
        .iter()
        .all(|r| quantity(a, r) == quantity(b, r))
}

fn same_resources(a: &ResourceRequirements, b: &ResourceRequirements) -> bool {
    same_quantities(a.limits.as_ref(), b.limits.as_ref())
        && same_quantities(a.requests.as_ref(), b.requests.as_ref())
}

fn agent_resources(pod: &Pod) -> ResourceRequirements {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .find(|c| c.name == CONTAINER_NAME)
        .and_then(|c| c.resources.clone())
        .unwrap_or_default()
}

/// What to do with the running pod.
#[derive(Debug, Clone, PartialEq)]
pub enum PodChange {
    /// It is what the spec asks for.
    None,
    /// Only the agent container's resources differ, and the pod can take
    /// these in place: patch its `resize` subresource with them.
    Resize(ResourceRequirements),
    /// A resize was asked for and the kubelet has not finished it; the pod
    /// keeps serving meanwhile. The text says where it is, for people.
    Resizing(String),
    /// Delete it (a new one is built next); the text says why, for people.
    Replace(String),
}

/// Decides what the running pod needs. `in_place` off (a cluster whose
/// kubelets cannot resize) makes every resource change a replacement.
pub fn pod_change(desired: &Pod, running: &Pod, in_place: bool) -> PodChange {
    if pod_hash(running) != pod_hash(desired) {
        return PodChange::Replace("the spec changed".into());
    }
    let want = agent_resources(desired);
    if !same_resources(&want, &agent_resources(running)) {
        if !in_place {
            return PodChange::Replace("the resources changed".into());
        }
        let spec = running.spec.as_ref();
        let from = running
            .status
            .as_ref()
            .and_then(|s| s.qos_class.as_deref())
            .and_then(QosClass::parse)
            .unwrap_or_else(|| {
                qos_class(
                    spec.iter()
                        .flat_map(|s| s.containers.iter())
                        .filter_map(|c| c.resources.as_ref()),
                )
            });
        let to = qos_class(
            desired
                .spec
                .iter()
                .flat_map(|s| s.containers.iter())
                .filter_map(|c| c.resources.as_ref()),
        );
        if from != to {
            return PodChange::Replace(format!(
                "the new resources make the pod {} instead of {}, which a running pod cannot become",
                to.as_str(),
                from.as_str()
            ));
        }
        return PodChange::Resize(want);
    }
    resize_progress(running)
}

/// The kubelet's word on the last resize, ignoring conditions about an
/// older generation of the pod (a resize since superseded).
fn resize_progress(pod: &Pod) -> PodChange {
    let generation = pod.metadata.generation;
    let conditions = pod
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .filter(|c| c.status == "True")
        .filter(|c| match (c.observed_generation, generation) {
            (Some(seen), Some(current)) => seen >= current,
            _ => true,
        });
    for c in conditions {
        let message = c.message.clone().unwrap_or_default();
        let detail = |what: &str| {
            if message.is_empty() {
                what.to_string()
            } else {
                format!("{what}: {message}")
            }
        };
        match (c.type_.as_str(), c.reason.as_deref()) {
            (POD_RESIZE_PENDING, Some(RESIZE_INFEASIBLE)) => {
                return PodChange::Replace(detail("the node can never fit the new resources"));
            }
            (POD_RESIZE_PENDING, _) => {
                return PodChange::Resizing(detail(
                    "resize deferred until the node has room (the pod keeps its old resources meanwhile)",
                ));
            }
            (POD_RESIZE_IN_PROGRESS, Some(RESIZE_ERROR)) => {
                return PodChange::Resizing(detail("resizing in place, retrying after an error"));
            }
            (POD_RESIZE_IN_PROGRESS, _) => {
                return PodChange::Resizing("resizing the pod in place".into());
            }
            _ => {}
        }
    }
    PodChange::None
}

#[cfg(test)]
#[path = "resize_tests.rs"]
mod tests;
