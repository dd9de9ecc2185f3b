//! The chart's security promises, with the cluster enforcing them: installed
//! with `helm` into a namespace labelled for Pod Security "restricted" (as
//! users label theirs), the gateway and the operator on the pod network (not
//! the `testCluster` host network, which no Pod Security level admits), and
//! agents created through the gateway by an MCP client. The test cluster
//! enforces NetworkPolicies (tests/cluster/up.sh runs kube-network-policies).
//!
//! Each check has a control that fails without the enforcement: a pod that
//! breaks "restricted" is refused in the same namespace, and once the chart's
//! policies are deleted the blocked connections go through (or are refused
//! by the closed port instead of dropped). Needs CODEX_MCP_TEST_KUBECONFIG.

mod support;

use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams};
use kube::ResourceExt;
use serde_json::{json, Value};
use support::cluster::{self, TestNamespace};
use support::fake_model::{FakeModel, Reply};
use support::helm::values::cluster_release;
use support::helm::{self, Helm, Step};
use support::kube_gateway::{self, HOST_ON_POD_NETWORK};
use support::kubectl;
use support::mcp_client::{McpClient, Transport};
use support::net_probe::{
    assert_answers, host_listener, listen_in_background, outsider_pod, probe_until, Reach,
    LISTEN_PORT,
};

const RELEASE: &str = "codex-mcp";
const GATEWAY_PORT: u16 = 8210;
const OPERATOR_PORT: u16 = 8211;
/// The `kubernetes` Service, which is the API server.
const API_SERVICE: (&str, u16) = ("10.96.0.1", 443);
const TIMEOUT_SECS: u64 = 300;
const CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// Labels a user sets to hold a namespace to Pod Security "restricted".
const RESTRICTED: [&str; 4] = [
    "pod-security.kubernetes.io/enforce=restricted",
    "pod-security.kubernetes.io/enforce-version=latest",
    "pod-security.kubernetes.io/warn=restricted",
    "pod-security.kubernetes.io/warn-version=latest",
];

/// The cluster tests' release, with gateway and operator on the pod network
/// (not the test cluster's host network), where the policies apply to them.
fn values(model: &FakeModel) -> Value {
    let mut values = cluster_release(model, GATEWAY_PORT, OPERATOR_PORT);
    values.as_object_mut().unwrap().remove("testCluster");
    values
}

#[tokio::test]
async fn a_restricted_namespace_admits_the_chart_and_its_policies_hold() {
    let (ns, model) = kube_gateway::namespace_with_model("enforced").await;
    kubectl::kubectl(&[&["label", "namespace", ns.name()][..], &RESTRICTED[..]].concat());
    let outsider = TestNamespace::create("outsider").await;

    let (name, vals) = (ns.name().to_owned(), values(&model));
    let helm_said = tokio::task::spawn_blocking(move || {
        helm::release(Helm::V4, Step::Install, RELEASE, &name, &vals, TIMEOUT_SECS)
    })
    .await
    .expect("helm install");
    // With `warn=restricted`, the API server would warn about any pod
    // template of the chart that breaks the level, and helm would print it.
    assert!(
        !helm_said.contains("PodSecurity") && !helm_said.contains("arning"),
        "helm install printed warnings: {helm_said}"
    );

    // Two agents, made the way users make them: by calling the gateway. Their
    // Codex reaches the fake model through the agents' egress policy.
    let gateway_ip = pod_ip(&ns, "app.kubernetes.io/component=gateway").await;
    let token = kube_gateway::client_token(&ns).await;
    let service_host = format!("{RELEASE}-gateway.{}.svc:{GATEWAY_PORT}", ns.name());
    model.push(Reply::text("PONG"));
    model.push(Reply::text("PONG"));
    let clients = ["alpha", "beta"].map(|agent| {
        McpClient::new(
            format!("http://{gateway_ip}:{GATEWAY_PORT}/mcp"),
            Transport::Http,
        )
        .bearer(&token)
        .header("X-Codex-Agent", agent)
        // As a client in the cluster names it: the gateway takes only its
        // Service's names in the Host header (DNS rebinding).
        .header("Host", &service_host)
        .request_timeout(CALL_TIMEOUT)
    });
    let chats = join_all(
        clients
            .iter()
            .map(|c| c.call_tool("chat", json!({"message": "ping"}))),
    )
    .await;
    for chat in &chats {
        assert!(chat.ok() && !chat.is_error(), "{chat}");
        assert_eq!(chat.structured().unwrap()["reply"], "PONG", "{chat}");
    }

    pods_meet_restricted(&ns).await;
    policies_hold(&ns, &outsider, &model).await;

    outsider.cleanup().await;
    ns.cleanup().await;
}

/// Every pod of the release, agents included, is admitted under "restricted"
/// with no warning, while a pod that breaks it is refused.
async fn pods_meet_restricted(ns: &TestNamespace) {
    let pods = ns
        .api::<Pod>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let kinds: Vec<String> = pods
        .iter()
        .map(|p| {
            let labels = p.labels();
            labels
                .get("app.kubernetes.io/component")
                .or_else(|| labels.get("app.kubernetes.io/name"))
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    for (kind, count) in [("gateway", 1), ("operator", 1), ("codex-agent", 2)] {
        let n = kinds.iter().filter(|k| *k == kind).count();
        assert_eq!(n, count, "{kind} pods among {kinds:?}");
    }
    for pod in &pods {
        let out = dry_run_create(ns, &pod_copy(pod));
        assert!(
            out.success && !out.stderr.contains("Warning"),
            "pod {} under Pod Security restricted: {}",
            pod.name_any(),
            out.stderr
        );
    }
    let events = ns
        .api::<Event>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let refused: Vec<_> = events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("FailedCreate"))
        .filter_map(|e| e.message.clone())
        .collect();
    assert!(refused.is_empty(), "pods were refused: {refused:?}");

    let mut rogue = pod_copy(&pods[0]);
    rogue["spec"]["securityContext"] = json!({});
    for c in rogue["spec"]["containers"].as_array_mut().unwrap() {
        c["securityContext"] = json!({"allowPrivilegeEscalation": true});
    }
    let out = dry_run_create(ns, &rogue);
    assert!(
        !out.success
            && out
                .stderr
                .contains("violates PodSecurity \"restricted:latest\""),
        "a pod that breaks restricted was not refused: {}",
        out.stderr
    );
}

/// A pod's spec under a new name, as a new pod would be created from it.
fn pod_copy(pod: &Pod) -> Value {
    let mut spec = serde_json::to_value(pod.spec.as_ref().unwrap()).unwrap();
    spec.as_object_mut().unwrap().remove("nodeName");
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{}-copy", pod.name_any()), "labels": {"codex-mcp.dev/copy": "true"}},
        "spec": spec,
    })
}

struct KubectlOutput {
    success: bool,
    stderr: String,
}

/// `kubectl create --dry-run=server`: admission runs (Pod Security's
/// warnings and refusals included), nothing is created.
fn dry_run_create(ns: &TestNamespace, object: &Value) -> KubectlOutput {
    let out = kubectl::kubectl_output(
        &[
            "create",
            "--dry-run=server",
            "-n",
            ns.name(),
            "-o",
            "name",
            "-f",
            "-",
        ],
        Some(&object.to_string()),
    );
    KubectlOutput {
        success: out.status.success(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn policies_hold(ns: &TestNamespace, outsider: &TestNamespace, model: &FakeModel) {
    let alpha = kube_gateway::ready_pod(ns, "alpha").await;
    let beta = kube_gateway::ready_pod(ns, "beta").await;
    let beta_ip = pod_ip_of(ns, &beta).await;
    let gateway_ip = pod_ip(ns, "app.kubernetes.io/component=gateway").await;
    let operator_ip = pod_ip(ns, "app.kubernetes.io/component=operator").await;
    // Listeners that would answer anyone who gets through: one in agent beta,
    // one in a pod of another namespace, one on the machine (the pods'
    // gateway address, where the model also listens).
    cluster::exec_ok(
        &ns.api::<Pod>(),
        &beta,
        &["sh", "-c", &listen_in_background()],
    )
    .await;
    let stranger = outsider_pod(outsider).await;
    let stranger_ip = pod_ip_of(outsider, &stranger).await;
    let host = host_listener().await;
    // The machine is not policed: this shows the listeners are up.
    for addr in [
        format!("{beta_ip}:{LISTEN_PORT}"),
        format!("{stranger_ip}:{LISTEN_PORT}"),
    ] {
        assert_answers(&addr).await;
    }

    let model_port = model.addr().port();
    let host_ip = std::net::Ipv4Addr::from(HOST_ON_POD_NETWORK).to_string();
    let from_alpha: Vec<(&str, String, u16, Reach)> = vec![
        (
            "the model API",
            host_ip.clone(),
            model_port,
            Reach::Answered,
        ),
        (
            "another port of the machine",
            host_ip.clone(),
            host.port(),
            Reach::Dropped,
        ),
        (
            "another agent",
            beta_ip.clone(),
            LISTEN_PORT,
            Reach::Dropped,
        ),
        (
            "the gateway",
            gateway_ip.clone(),
            GATEWAY_PORT,
            Reach::Dropped,
        ),
        (
            "the operator",
            operator_ip.clone(),
            OPERATOR_PORT,
            Reach::Dropped,
        ),
        (
            "the API server",
            API_SERVICE.0.to_owned(),
            API_SERVICE.1,
            Reach::Dropped,
        ),
        (
            "a pod of another namespace",
            stranger_ip.clone(),
            LISTEN_PORT,
            Reach::Dropped,
        ),
    ];
    let from_stranger: Vec<(&str, String, u16, Reach)> = vec![
        (
            "the gateway's port",
            gateway_ip.clone(),
            GATEWAY_PORT,
            Reach::Answered,
        ),
        (
            "another port of the gateway",
            gateway_ip.clone(),
            9999,
            Reach::Dropped,
        ),
        ("an agent", beta_ip.clone(), LISTEN_PORT, Reach::Dropped),
    ];
    probe_until(
        "with the chart's policies",
        (ns, &alpha, &from_alpha),
        (outsider, &stranger, &from_stranger),
    )
    .await;
    // A query the cluster's DNS answers "no such name" (NXDOMAIN; Node.js's
    // resolver, asking the pod's nameserver itself, calls it ENOTFOUND): the
    // answer came back through the policy. busybox's nslookup where there is
    // one, Node.js in the Dockerfile's agent image.
    let query = "if command -v nslookup >/dev/null 2>&1; then nslookup codex-mcp-test.invalid; \
                 else node -e 'require(\"dns\").resolve4(\"codex-mcp-test.invalid\", \
                 (e) => console.log(e ? e.code : \"found\"))'; fi";
    let dns = cluster::exec(&ns.api::<Pod>(), &alpha, &["sh", "-c", query]).await;
    let said = format!("{}{}", dns.stdout, dns.stderr);
    assert!(
        said.contains("NXDOMAIN") || said.contains("ENOTFOUND"),
        "DNS from an agent: {dns:?}"
    );

    // The control: without the chart's policies the same connections go
    // through, and a closed port is refused rather than dropped.
    let policies: Api<NetworkPolicy> = ns.api();
    for name in [
        format!("{RELEASE}-agents"),
        format!("{RELEASE}-gateway"),
        format!("{RELEASE}-operator"),
    ] {
        policies
            .delete(&name, &DeleteParams::default())
            .await
            .unwrap();
    }
    let open_alpha: Vec<(&str, String, u16, Reach)> = vec![
        (
            "another agent",
            beta_ip.clone(),
            LISTEN_PORT,
            Reach::Answered,
        ),
        (
            "the API server",
            API_SERVICE.0.to_owned(),
            API_SERVICE.1,
            Reach::Answered,
        ),
        (
            "another port of the machine",
            host_ip,
            host.port(),
            Reach::Answered,
        ),
    ];
    let open_stranger: Vec<(&str, String, u16, Reach)> = vec![
        (
            "another port of the gateway",
            gateway_ip,
            9999,
            Reach::Refused,
        ),
        ("an agent", beta_ip, LISTEN_PORT, Reach::Answered),
    ];
    probe_until(
        "without the policies",
        (ns, &alpha, &open_alpha),
        (outsider, &stranger, &open_stranger),
    )
    .await;
}

async fn pod_ip_of(ns: &TestNamespace, pod: &str) -> String {
    let pod = ns.api::<Pod>().get(pod).await.unwrap();
    pod.status.and_then(|s| s.pod_ip).expect("a pod IP")
}

/// The IP of the one running pod with `selector`.
async fn pod_ip(ns: &TestNamespace, selector: &str) -> String {
    let lp = ListParams::default()
        .labels(selector)
        .fields("status.phase=Running");
    let pods = ns.api::<Pod>().list(&lp).await.unwrap().items;
    assert_eq!(pods.len(), 1, "one running pod with {selector}");
    pods[0]
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .expect("a pod IP")
}
