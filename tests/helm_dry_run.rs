//! Every object the Helm chart renders, for each set of values the chart
//! tests use, passes the test cluster's server-side dry run (its API
//! versions, schemas and admission), and so does its CRD. Rendered by Helm 4
//! (`tests/helm_chart.rs` and `tests/helm_values.rs` check Helm 3's offline
//! render too).
//! Needs CODEX_MCP_TEST_KUBECONFIG.

mod support;

use serde_json::{json, Value};
use support::cluster::{self, TestNamespace};
use support::helm::values::{api_key_only, existing, exposed, RELEASE};
use support::helm::{self, Helm};
use support::kube_gateway;

/// A stand-in for the Prometheus Operator's ServiceMonitor CRD, which is not
/// on the test cluster (nor fetchable here): the real schema's types for the
/// fields the chart sets, and no other field. The API server prunes what a
/// structural schema does not name, so the test compares what comes back.
const SERVICE_MONITOR_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servicemonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [selector]
            properties:
              selector:
                type: object
                properties:
                  matchLabels: {type: object, additionalProperties: {type: string}}
              namespaceSelector:
                type: object
                properties:
                  any: {type: boolean}
                  matchNames: {type: array, items: {type: string}}
              endpoints:
                type: array
                items:
                  type: object
                  properties:
                    port: {type: string}
                    path: {type: string}
                    interval: {type: string, pattern: '^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$'}
"#;

/// The stand-in CRD, created only when the cluster has none and then
/// removed again, even when the test fails: the cluster is shared.
struct ServiceMonitorCrd {
    created: bool,
}

impl ServiceMonitorCrd {
    const NAME: &'static str = "crd/servicemonitors.monitoring.coreos.com";

    fn ensure() -> Self {
        let present = std::process::Command::new("kubectl")
            .args(["get", Self::NAME])
            .env("KUBECONFIG", cluster::kubeconfig_path())
            .output()
            .unwrap()
            .status
            .success();
        if !present {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("servicemonitor-crd.yaml");
            std::fs::write(&file, SERVICE_MONITOR_CRD).unwrap();
            kube_gateway::kubectl_ok(&["apply", "-f", &file.to_string_lossy()]);
            kube_gateway::kubectl_ok(&[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                Self::NAME,
            ]);
        }
        ServiceMonitorCrd { created: !present }
    }
}

impl Drop for ServiceMonitorCrd {
    fn drop(&mut self) {
        if self.created {
            let _ = std::process::Command::new("kubectl")
                .args(["delete", Self::NAME, "--wait=true"])
                .env("KUBECONFIG", cluster::kubeconfig_path())
                .output();
        }
    }
}

#[tokio::test]
async fn every_rendered_object_passes_a_server_side_dry_run() {
    support::kubectl::install_crd().await;
    let ns = TestNamespace::create("helm-dry").await;
    let _service_monitors = ServiceMonitorCrd::ensure();
    let dir = tempfile::tempdir().unwrap();
    for (what, values) in [
        ("defaults", json!({})),
        ("exposed", exposed()),
        ("existing", existing()),
        ("api key", api_key_only(true)),
    ] {
        // Rendered as an install on this cluster would be (its API versions).
        let r = helm::template_for_cluster(Helm::V4, RELEASE, ns.name(), &values);
        let file = dir.path().join("release.yaml");
        std::fs::write(&file, r.yaml()).unwrap();
        let out = kube_gateway::kubectl_ok(&[
            "apply",
            "--dry-run=server",
            "-o",
            "json",
            "-f",
            &file.to_string_lossy(),
        ]);
        let answer: Value = serde_json::from_str(&out).unwrap();
        let items = answer["items"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| vec![answer.clone()]);
        assert_eq!(
            items.len(),
            r.objects.len(),
            "{what}: every object accepted ({})",
            r.summary()
        );
        for sent in r.of_kind("ServiceMonitor") {
            let back = items
                .iter()
                .find(|i| {
                    i["kind"] == "ServiceMonitor"
                        && i["metadata"]["name"] == sent["metadata"]["name"]
                })
                .unwrap();
            assert_eq!(
                back["spec"], sent["spec"],
                "{what}: nothing pruned from the ServiceMonitor"
            );
        }
    }
    // The CRD the chart installs from crds/ is accepted too.
    let crd = cluster::repo_root().join("charts/codex-mcp/crds/codexagents.codexmcp.dev.yaml");
    kube_gateway::kubectl_ok(&["apply", "--dry-run=server", "-f", &crd.to_string_lossy()]);
    ns.cleanup().await;
}
