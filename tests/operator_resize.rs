//! Changes to running agents on a real cluster
//! (`CODEX_MCP_TEST_KUBECONFIG`): a resource change within the pod's QoS
//! class resizes the running pod (same pod, same processes), one that
//! changes the class replaces it. And a workspace whose storage class cannot expand, asked to grow.

mod support;

#[allow(dead_code)]
#[path = "operator/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use codex_mcp::api::crd::CodexAgent;
use harness::{
    agent, agent_pods, create, events, patch_spec, status, wait_event, wait_ready, Operator,
    OperatorOptions, READY_TIMEOUT,
};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::json;
use support::cluster::{self, TestNamespace};
use support::kubectl::install_crd;

const WORKSPACE_FILE: &str = "/agent/workspace/kept.txt";

fn pod_uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

async fn write_file(pods: &Api<Pod>, pod: &str, content: &str) {
    let script = format!("printf %s '{content}' > {WORKSPACE_FILE}");
    cluster::exec_ok(pods, pod, &["sh", "-c", &script]).await;
}

async fn read_file(pods: &Api<Pod>, pod: &str) -> String {
    cluster::exec_ok(pods, pod, &["cat", WORKSPACE_FILE]).await
}

fn agent_container_resources(pod: &Pod, from_status: bool) -> (String, String) {
    let resources = if from_status {
        pod.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.iter().find(|c| c.name == "agent"))
            .and_then(|c| c.resources.clone())
    } else {
        pod.spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == "agent"))
            .and_then(|c| c.resources.clone())
    };
    let limits = resources.and_then(|r| r.limits).unwrap_or_default();
    let get = |r: &str| limits.get(r).map(|q| q.0.clone()).unwrap_or_default();
    (get("cpu"), get("memory"))
}

fn qos(pod: &Pod) -> Option<String> {
    pod.status.as_ref().and_then(|s| s.qos_class.clone())
}

/// Waits for a PodReplaced event whose message says `why`.
async fn wait_replaced_because(namespace: &str, name: &str, why: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = events(namespace, name).await;
        if all
            .iter()
            .any(|(r, m)| r == "PodReplaced" && m.contains(why))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no PodReplaced event saying {why:?}: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn resources_change_in_place_unless_the_qos_class_changes() {
    install_crd().await;
    let ns = TestNamespace::create("op-resize").await;
    let mut op = Operator::start(ns.name(), OperatorOptions::named("op-resize")).await;
    let agents: Api<CodexAgent> = ns.api();
    let pods: Api<Pod> = ns.api();
    create(
        &agents,
        &agent(
            "ivy",
            json!({"resources": {"limits": {"cpu": "150m", "memory": "96Mi"}}}),
        ),
    )
    .await;
    wait_ready(&agents, "ivy").await;
    let first = cluster::wait_for_pod_running(&pods, "ivy", READY_TIMEOUT).await;
    assert_eq!(qos(&first).as_deref(), Some("Burstable"));
    write_file(&pods, "ivy", "v1").await;
    // A process of the agent's, as a run would be.
    cluster::exec_ok(
        &pods,
        "ivy",
        &[
            "sh",
            "-c",
            "sleep 600 </dev/null >/dev/null 2>&1 & echo $! > /tmp/run.pid",
        ],
    )
    .await;

    let bigger = json!({"resources": {"limits": {"cpu": "250m", "memory": "128Mi"}}});
    let wanted = ("250m".to_string(), "128Mi".to_string());
    patch_spec(&agents, "ivy", bigger).await;
    let resized = cluster::wait_for(
        &pods,
        "ivy",
        READY_TIMEOUT,
        "the resize to be actuated",
        |p| agent_container_resources(p, true) == wanted,
    )
    .await;
    assert_eq!(pod_uid(&resized), pod_uid(&first), "resized, not replaced");
    assert_eq!(agent_container_resources(&resized, false), wanted);
    let restarts = resized
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .restart_count;
    assert_eq!(restarts, 0, "the container was not restarted");
    let note = wait_event(ns.name(), "ivy", "PodResized").await;
    assert!(note.contains("cpu 10m/250m, memory 32Mi/128Mi"), "{note}");
    cluster::exec_ok(&pods, "ivy", &["sh", "-c", "kill -0 $(cat /tmp/run.pid)"]).await;
    assert_eq!(read_file(&pods, "ivy").await, "v1");
    let ready = wait_ready(&agents, "ivy").await;
    assert_eq!(status(&ready).pod_name.as_deref(), Some("ivy"));

    // Requests equal to limits make the pod Guaranteed, which a running pod
    // cannot become: replaced, same workspace.
    let before = pods.get("ivy").await.expect("pod");
    patch_spec(
        &agents,
        "ivy",
        json!({"resources": {"limits": {"cpu": "250m", "memory": "128Mi"},
                             "requests": {"cpu": "250m", "memory": "128Mi"}}}),
    )
    .await;
    cluster::wait_for(&pods, "ivy", READY_TIMEOUT, "the Guaranteed pod", |p| {
        pod_uid(p) != pod_uid(&before)
            && p.metadata.deletion_timestamp.is_none()
            && qos(p).as_deref() == Some("Guaranteed")
    })
    .await;
    wait_replaced_because(ns.name(), "ivy", "Guaranteed instead of Burstable").await;
    wait_ready(&agents, "ivy").await;
    cluster::wait_for_pod_running(&pods, "ivy", READY_TIMEOUT).await;
    assert_eq!(read_file(&pods, "ivy").await, "v1");
    assert!(agent_pods(&pods, "ivy").await.len() <= 1, "never two pods");

    assert_eq!(op.stop().await, Some(0), "{}", op.log());
    ns.cleanup().await;
}

/// The test cluster's storage class does not allow expansion: a larger
/// `storage.size` is accepted (the CRD lets sizes grow), the claim keeps its
/// size, the agent keeps working, and the status and an event say why.
#[tokio::test]
async fn a_workspace_that_cannot_grow_says_why_and_keeps_working() {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    use k8s_openapi::api::storage::v1::StorageClass;
    install_crd().await;
    let classes: Api<StorageClass> = Api::all(cluster::client());
    let expandable = classes.list(&Default::default()).await.map(|l| {
        l.items
            .iter()
            .any(|c| c.allow_volume_expansion == Some(true))
    });
    if expandable.unwrap_or(true) {
        eprintln!("a storage class of this cluster may expand volumes: skipping");
        return;
    }
    let ns = TestNamespace::create("op-grow").await;
    let mut op = Operator::start(ns.name(), OperatorOptions::named("op-grow")).await;
    let agents: Api<CodexAgent> = ns.api();
    create(&agents, &agent("gus", json!({"storage": {"size": "16Mi"}}))).await;
    wait_ready(&agents, "gus").await;
    patch_spec(&agents, "gus", json!({"storage": {"size": "32Mi"}})).await;
    let note = wait_event(ns.name(), "gus", "WorkspaceNotGrown").await;
    assert!(note.contains("cannot grow to 32Mi"), "{note}");
    let agent = wait_ready(&agents, "gus").await;
    let bound = harness::condition(&agent, "WorkspaceBound").expect("WorkspaceBound");
    assert_eq!(bound.status, "True");
    assert!(bound.message.contains("cannot grow to 32Mi"), "{bound:?}");
    let pvcs: Api<PersistentVolumeClaim> = ns.api();
    let pvc = pvcs.get("gus-workspace").await.expect("claim");
    let size = pvc.spec.unwrap().resources.unwrap().requests.unwrap()["storage"]
        .0
        .clone();
    assert_eq!(size, "16Mi");
    assert_eq!(op.stop().await, Some(0), "{}", op.log());
    ns.cleanup().await;
}
