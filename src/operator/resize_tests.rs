use super::*;
use crate::api::crd::{
    AgentResources, CodexAgent, CodexAgentSpec, CpuMemory, PodOverrides, Toleration,
};
use crate::operator::desired::desired_pod;
use crate::operator::settings::{resolve, Defaults};
use k8s_openapi::api::core::v1::{PodCondition, PodStatus};

fn cpu_memory(cpu: &str, memory: &str) -> Option<CpuMemory> {
    Some(CpuMemory {
        cpu: Some(cpu.into()),
        memory: Some(memory.into()),
    })
}

fn pod_with(limits: Option<CpuMemory>, requests: Option<CpuMemory>) -> Pod {
    let spec = CodexAgentSpec {
        resources: Some(AgentResources { limits, requests }),
        ..CodexAgentSpec::default()
    };
    let mut a = CodexAgent::new("alice", spec);
    a.metadata.namespace = Some("team".into());
    a.metadata.uid = Some("uid-1".into());
    let settings = resolve(&a.spec, &Defaults::default()).unwrap();
    desired_pod(&a, &settings)
}

/// As the API server returns it: quantities canonical, QoS and generation
/// filled in.
fn running(mut pod: Pod, generation: i64) -> Pod {
    let qos = qos_class(
        pod.spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .filter_map(|c| c.resources.as_ref()),
    );
    for c in pod.spec.iter_mut().flat_map(|s| s.containers.iter_mut()) {
        let r = c.resources.as_mut().unwrap();
        for map in [r.limits.as_mut(), r.requests.as_mut()]
            .into_iter()
            .flatten()
        {
            for q in map.values_mut() {
                if q.0 == "2048Mi" {
                    q.0 = "2Gi".into();
                }
            }
        }
    }
    pod.metadata.generation = Some(generation);
    pod.status = Some(PodStatus {
        qos_class: Some(qos.as_str().into()),
        ..PodStatus::default()
    });
    pod
}

fn with_condition(mut pod: Pod, type_: &str, reason: &str, observed: i64) -> Pod {
    pod.status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new)
        .push(PodCondition {
            type_: type_.into(),
            status: "True".into(),
            reason: (!reason.is_empty()).then(|| reason.into()),
            message: Some("Node didn't have enough capacity: cpu".into()),
            observed_generation: Some(observed),
            ..PodCondition::default()
        });
    pod
}

#[test]
fn qos_classes() {
    let r = |limits: Option<CpuMemory>, requests: Option<CpuMemory>| {
        let q = |c: Option<CpuMemory>| {
            c.map(|c| {
                [("cpu", c.cpu), ("memory", c.memory)]
                    .into_iter()
                    .filter_map(|(k, v)| Some((k.to_string(), Quantity(v?))))
                    .collect()
            })
        };
        ResourceRequirements {
            limits: q(limits),
            requests: q(requests),
            ..ResourceRequirements::default()
        }
    };
    assert_eq!(qos_class([&r(None, None)]), QosClass::BestEffort);
    assert_eq!(
        qos_class([&r(cpu_memory("1", "1Gi"), None)]),
        QosClass::Guaranteed,
        "requests default to limits"
    );
    assert_eq!(
        qos_class([&r(cpu_memory("1", "1Gi"), cpu_memory("1000m", "1024Mi"))]),
        QosClass::Guaranteed,
        "equal in value, not in spelling"
    );
    assert_eq!(
        qos_class([&r(cpu_memory("1", "1Gi"), cpu_memory("500m", "1Gi"))]),
        QosClass::Burstable
    );
    let cpu_only = CpuMemory {
        cpu: Some("1".into()),
        memory: None,
    };
    assert_eq!(qos_class([&r(Some(cpu_only), None)]), QosClass::Burstable);
}

#[test]
fn an_unchanged_pod_needs_nothing() {
    let desired = pod_with(None, None);
    let pod = running(desired.clone(), 1);
    assert_eq!(pod_change(&desired, &pod, true), PodChange::None);
}

#[test]
fn a_resource_change_within_the_qos_class_is_a_resize() {
    let pod = running(pod_with(None, None), 1);
    let desired = pod_with(cpu_memory("2", "1Gi"), cpu_memory("200m", "512Mi"));
    match pod_change(&desired, &pod, true) {
        PodChange::Resize(r) => {
            assert_eq!(r.limits.unwrap()["cpu"].0, "2");
            assert_eq!(r.requests.unwrap()["memory"].0, "512Mi");
        }
        other => panic!("expected a resize, got {other:?}"),
    }
    // Without in-place resizing, the same change replaces the pod.
    assert!(matches!(
        pod_change(&desired, &pod, false),
        PodChange::Replace(_)
    ));
}

#[test]
fn a_qos_class_change_replaces_the_pod() {
    let pod = running(pod_with(None, None), 1);
    let desired = pod_with(cpu_memory("1", "1Gi"), cpu_memory("1", "1Gi"));
    match pod_change(&desired, &pod, true) {
        PodChange::Replace(why) => {
            assert!(why.contains("Guaranteed instead of Burstable"), "{why}")
        }
        other => panic!("expected a replacement, got {other:?}"),
    }
    // And back.
    let guaranteed = running(desired, 1);
    let burstable = pod_with(cpu_memory("1", "1Gi"), cpu_memory("500m", "1Gi"));
    assert!(matches!(
        pod_change(&burstable, &guaranteed, true),
        PodChange::Replace(_)
    ));
}

#[test]
fn any_other_change_replaces_the_pod() {
    let pod = running(pod_with(None, None), 1);
    let mut desired = pod_with(cpu_memory("2", "1Gi"), None);
    desired.spec.as_mut().unwrap().node_selector =
        Some([("disk".to_string(), "ssd".to_string())].into());
    let hash = crate::operator::desired::pod_template_hash(&desired);
    desired
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(crate::api::labels::POD_TEMPLATE_HASH.into(), hash);
    assert_eq!(
        pod_change(&desired, &pod, true),
        PodChange::Replace("the spec changed".into())
    );
    // Through the spec, too: tolerations are in the template.
    let mut a = CodexAgent::new(
        "alice",
        CodexAgentSpec {
            pod: Some(PodOverrides {
                tolerations: vec![Toleration {
                    key: Some("gpu".into()),
                    ..Toleration::default()
                }],
                ..PodOverrides::default()
            }),
            ..CodexAgentSpec::default()
        },
    );
    a.metadata.namespace = Some("team".into());
    a.metadata.uid = Some("uid-1".into());
    let settings = resolve(&a.spec, &Defaults::default()).unwrap();
    assert!(matches!(
        pod_change(&desired_pod(&a, &settings), &pod, true),
        PodChange::Replace(_)
    ));
}

#[test]
fn the_kubelets_verdict_on_a_resize() {
    let desired = pod_with(cpu_memory("2", "1Gi"), None);
    let resized = running(desired.clone(), 2);

    let infeasible = with_condition(resized.clone(), POD_RESIZE_PENDING, RESIZE_INFEASIBLE, 2);
    match pod_change(&desired, &infeasible, true) {
        PodChange::Replace(why) => assert!(why.contains("never fit"), "{why}"),
        other => panic!("an infeasible resize replaces the pod, got {other:?}"),
    }
    let deferred = with_condition(resized.clone(), POD_RESIZE_PENDING, RESIZE_DEFERRED, 2);
    assert!(matches!(
        pod_change(&desired, &deferred, true),
        PodChange::Resizing(m) if m.contains("deferred")
    ));
    let in_progress = with_condition(resized.clone(), POD_RESIZE_IN_PROGRESS, "", 2);
    assert_eq!(
        pod_change(&desired, &in_progress, true),
        PodChange::Resizing("resizing the pod in place".into())
    );
    let failing = with_condition(resized.clone(), POD_RESIZE_IN_PROGRESS, RESIZE_ERROR, 2);
    assert!(matches!(
        pod_change(&desired, &failing, true),
        PodChange::Resizing(m) if m.contains("retrying")
    ));
    // A verdict on an earlier generation (a resize since superseded) is
    // not about these resources.
    let stale = with_condition(resized, POD_RESIZE_PENDING, RESIZE_INFEASIBLE, 1);
    assert_eq!(pod_change(&desired, &stale, true), PodChange::None);
}
