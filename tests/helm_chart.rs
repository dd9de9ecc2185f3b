//! The Helm chart (`charts/codex-mcp`) through the real Helm engine
//! (helm-python-sdk): it lints clean, renders what each set of values asks
//! for (least-privilege RBAC, locked-down pods, the settings as the
//! binary's environment variables), its CRD and `manifests/` are not stale,
//! and every object it renders passes the test cluster's server-side dry
//! run. The real install is `tests/helm_install.rs`.

mod support;

use std::collections::BTreeMap;

use base64::Engine;
use codex_mcp::operator::desired::{APP_NAME, LABEL_MANAGED_BY, LABEL_NAME, MANAGED_BY};
use serde_json::{json, Value};
use support::cluster::{self, TestNamespace};
use support::helm::{self, container_env, Rendered};
use support::kube_gateway;

const RELEASE: &str = "codex-mcp";
const NS: &str = "codex-mcp";

/// Exactly what `tests/gateway_kube.rs` proves the gateway needs.
fn gateway_rules() -> Value {
    json!([
        {"apiGroups": ["codexmcp.dev"], "resources": ["codexagents"], "verbs": ["get", "list", "watch", "create", "patch"]},
        {"apiGroups": ["codexmcp.dev"], "resources": ["codexagents/status"], "verbs": ["patch"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]},
    ])
}

/// Ingress with TLS, monitoring, the dashboard, an all-namespaces operator,
/// replicas, credentials and tokens from values, changed settings.
fn exposed() -> Value {
    json!({
        "ingress": {"enabled": true, "className": "nginx", "host": "codex.example.org",
                    "tls": {"enabled": true}, "annotations": {"example.org/team": "ai"}},
        "metrics": {"serviceMonitor": {"enabled": true, "labels": {"release": "prom"}}},
        "grafanaDashboard": {"enabled": true},
        "operator": {"watchAllNamespaces": true, "replicas": 2},
        "gateway": {"replicas": 2},
        "credentials": {"apiKey": "sk-from-values", "authJson": "{\"auth_mode\":\"chatgpt\"}"},
        "clientTokens": {"tokens": ["tok-a acme", "tok-b acme alice,bob"]},
        "config": {"MAX_CONCURRENT_SESSIONS": 7, "CODEX_MODEL": "gpt-5.5", "SESSION_TIMEOUT": 0,
                   "CONTAINER_MEMORY_LIMIT": "1Gi"},
    })
}

/// Existing Secrets, no network policies or scrape annotations, and the
/// test cluster's host-network block.
fn existing() -> Value {
    json!({
        "credentials": {"existingSecret": "my-openai"},
        "clientTokens": {"existingSecret": "my-tokens", "secretKey": "tokens.txt"},
        "networkPolicy": {"enabled": false},
        "metrics": {"podAnnotations": false},
        "testCluster": {"enabled": true},
    })
}

fn api_key_only(keep: bool) -> Value {
    json!({"credentials": {"apiKey": "sk-only", "keep": keep}})
}

fn render(values: &Value) -> Rendered {
    helm::template(RELEASE, NS, values)
}

fn decode(secret: &Value, key: &str) -> String {
    let b64 = secret["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no key {key}"));
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

fn pod_spec(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]
}

/// Names the binary reads, from `codex-mcp SUBCOMMAND --help`.
fn env_names_of(subcommand: &str) -> Vec<String> {
    let out = std::process::Command::new(support::codex_mcp_bin())
        .args([subcommand, "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    help.split("[env: ")
        .skip(1)
        .map(|s| s.split(['=', ']']).next().unwrap().to_owned())
        .collect()
}

#[test]
fn chart_crd_versions_and_pins_follow_the_crate() {
    let chart =
        std::fs::read_to_string(cluster::repo_root().join("charts/codex-mcp/Chart.yaml")).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        chart.lines().any(|l| l == format!("version: {version}")),
        "Chart.yaml version is not {version}"
    );
    assert!(
        chart
            .lines()
            .any(|l| l == format!("appVersion: \"{version}\"")),
        "Chart.yaml appVersion is not {version}"
    );

    let out = std::process::Command::new(support::codex_mcp_bin())
        .arg("crd")
        .output()
        .unwrap();
    assert!(out.status.success());
    let committed = std::fs::read(
        cluster::repo_root().join("charts/codex-mcp/crds/codexagents.codexmcp.dev.yaml"),
    )
    .unwrap_or_default();
    assert!(
        out.stdout == committed,
        "charts/codex-mcp/crds/codexagents.codexmcp.dev.yaml is stale: regenerate it with `make crds`"
    );

    // The agent image installs the Codex CLI the tests use.
    let pin = |file: &str, prefix: &str| {
        let text = std::fs::read_to_string(cluster::repo_root().join(file)).unwrap();
        text.lines()
            .find_map(|l| {
                l.strip_prefix(prefix)
                    .map(|v| v.trim_matches(['"', '}']).to_owned())
            })
            .unwrap_or_else(|| panic!("{file} has no line starting with {prefix}"))
    };
    assert_eq!(
        pin("Dockerfile", "ARG CODEX_VERSION="),
        pin(
            "scripts/install-codex.sh",
            "VERSION=\"${CODEX_CLI_VERSION:-"
        ),
        "the Dockerfile's Codex CLI differs from scripts/install-codex.sh's"
    );
}

#[test]
fn committed_manifests_match_the_chart() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("manifests");
    helm::helm_py(&["manifests", helm::CHART, out.to_str().unwrap()]);
    let read = |d: &std::path::Path| -> BTreeMap<String, String> {
        std::fs::read_dir(d)
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().path())
                    .map(|p| {
                        (
                            p.file_name().unwrap().to_string_lossy().into_owned(),
                            std::fs::read_to_string(&p).unwrap(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (fresh, committed) = (read(&out), read(&cluster::repo_root().join("manifests")));
    assert_eq!(fresh.keys().collect::<Vec<_>>(), committed.keys().collect::<Vec<_>>(), "manifests/ has other files than the chart renders: regenerate it with `scripts/render-manifests.sh` (or `make manifests`)");
    for (name, text) in &fresh {
        assert!(text == &committed[name], "manifests/{name} is stale: regenerate it with `scripts/render-manifests.sh` (or `make manifests`)");
    }
    // Nothing secret is committed.
    assert!(
        !fresh.values().any(|t| t.contains("kind: Secret")),
        "manifests/ must not hold Secrets"
    );
}

#[test]
fn lint_is_clean_with_every_set_of_values() {
    for values in [json!({}), exposed(), existing(), api_key_only(false)] {
        let problems = helm::lint(&values);
        assert!(
            problems.is_empty(),
            "helm lint --strict with {values}: {problems:#?}"
        );
    }
}

#[test]
fn defaults_are_least_privilege_and_locked_down() {
    let r = render(&json!({}));

    // RBAC: the gateway exactly its proven Role, nothing on Secrets.
    let gateway_role = r.get("Role", "codex-mcp-gateway");
    assert_eq!(gateway_role["rules"], gateway_rules());
    let operator_role = r.get("Role", "codex-mcp-operator");
    assert_eq!(operator_role["metadata"]["namespace"], NS);
    let rule_for = |role: &Value, resource: &str| -> Vec<String> {
        role["rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|rule| {
                rule["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x == resource)
            })
            .flat_map(|rule| {
                rule["verbs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
            })
            .collect()
    };
    assert_eq!(
        rule_for(operator_role, "secrets"),
        ["get", "list", "watch", "create", "patch", "update"]
    );
    assert_eq!(
        rule_for(operator_role, "pods"),
        ["get", "list", "watch", "create", "patch", "delete"]
    );
    assert_eq!(rule_for(operator_role, "codexagents/status"), ["patch"]);
    assert!(
        rule_for(operator_role, "leases").is_empty(),
        "leases only in the leader Role"
    );
    let leader = r.get("Role", "codex-mcp-operator-leader");
    assert_eq!(
        leader["rules"][0]["resourceNames"],
        json!(["codex-mcp-operator"])
    );
    assert!(r.of_kind("ClusterRole").is_empty() && r.of_kind("ClusterRoleBinding").is_empty());
    for role in r.of_kind("Role") {
        assert!(
            !role.to_string().contains("\"*\""),
            "no wildcards: {}",
            role["metadata"]["name"]
        );
    }
    for binding in r.of_kind("RoleBinding") {
        let name = binding["metadata"]["name"].as_str().unwrap();
        let account = if name.contains("gateway") {
            "codex-mcp-gateway"
        } else {
            "codex-mcp-operator"
        };
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": account, "namespace": NS}]),
            "{name}"
        );
    }

    // Both pods: non-root, read-only, no capabilities, seccomp, probes, scraping.
    for (name, port, account) in [
        ("codex-mcp-gateway", 8210, "codex-mcp-gateway"),
        ("codex-mcp-operator", 8211, "codex-mcp-operator"),
    ] {
        let d = r.get("Deployment", name);
        let pod = pod_spec(d);
        assert_eq!(pod["serviceAccountName"], account);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(pod["securityContext"]["runAsUser"], 65532, "{name}");
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{name}"
        );
        assert!(pod.get("hostNetwork").is_none(), "{name}");
        let c = &pod["containers"][0];
        assert_eq!(
            c["securityContext"]["readOnlyRootFilesystem"], true,
            "{name}"
        );
        assert_eq!(
            c["securityContext"]["allowPrivilegeEscalation"], false,
            "{name}"
        );
        assert_eq!(
            c["securityContext"]["capabilities"]["drop"],
            json!(["ALL"]),
            "{name}"
        );
        assert_eq!(c["ports"][0]["containerPort"], port, "{name}");
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/health", "{name}");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/ready", "{name}");
        assert!(c["resources"]["limits"]["memory"].is_string(), "{name}");
        let annotations = &d["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"], "true", "{name}");
        assert_eq!(
            annotations["prometheus.io/port"],
            port.to_string(),
            "{name}"
        );
        assert_eq!(annotations["prometheus.io/path"], "/metrics", "{name}");
    }

    // The settings, as the variables each binary reads.
    let gateway = r.get("Deployment", "codex-mcp-gateway");
    let env = container_env(gateway);
    for (k, v) in [
        ("CODEX_APPROVAL_MODE", "external"),
        ("CODEX_MCP_NAMESPACE", NS),
        ("CODEX_MCP_LISTEN", "0.0.0.0:8210"),
        ("CODEX_MCP_CREDENTIALS_SECRET", "codex-mcp-credentials"),
        ("CODEX_MCP_LOG_FORMAT", "json"),
        (
            "CODEX_MCP_AUTH_TOKENS",
            "/etc/codex-mcp/client-tokens/tokens",
        ),
        ("MAX_CONCURRENT_SESSIONS", "20"),
        ("SESSION_TIMEOUT", "3600"),
        ("CODEX_MODEL", "gpt-5"),
        ("LOG_LEVEL", "info"),
        ("CODEX_MCP_MAX_BODY_BYTES", "4194304"),
    ] {
        assert_eq!(env.get(k).map(String::as_str), Some(v), "gateway {k}");
    }
    assert!(env["CODEX_MCP_ALLOWED_HOSTS"]
        .split(',')
        .any(|h| h == "codex-mcp-gateway.codex-mcp.svc"));
    // The gateway holds no credentials at all: it only names their Secret.
    let gateway_pod = pod_spec(gateway).to_string();
    for never in ["OPENAI_API_KEY", "secretKeyRef", "envFrom", "auth.json"] {
        assert!(
            !gateway_pod.contains(never),
            "the gateway's pod mentions {never}"
        );
    }
    let volumes = pod_spec(gateway)["volumes"].to_string();
    assert!(
        volumes.contains("codex-mcp-client-tokens") && !volumes.contains("codex-mcp-credentials")
    );

    let operator = container_env(r.get("Deployment", "codex-mcp-operator"));
    for (k, v) in [
        ("CODEX_MCP_NAMESPACE", NS),
        ("CODEX_MCP_LEASE_NAMESPACE", NS),
        ("CODEX_MCP_LEADER_ELECT", "true"),
        ("CODEX_MCP_LEASE_NAME", "codex-mcp-operator"),
        ("CODEX_MCP_OPERATOR_LISTEN", "0.0.0.0:8211"),
        ("CODEX_MCP_AGENT_IMAGE", "codex-mcp-agent:0.1.0"),
        ("CONTAINER_CPU_LIMIT", "4.0"),
        ("CONTAINER_MEMORY_LIMIT", "2048m"),
        ("SESSION_TIMEOUT", "3600"),
        ("CODEX_MCP_STORAGE_SIZE", "10Gi"),
        ("CODEX_MCP_REFRESH_MARGIN", "300"),
    ] {
        assert_eq!(operator.get(k).map(String::as_str), Some(v), "operator {k}");
    }
    assert!(
        !operator.contains_key("CODEX_MCP_STORAGE_CLASS")
            && !operator.contains_key("CODEX_REFRESH_TOKEN_URL_OVERRIDE"),
        "unset values are left out"
    );
    let (gateway_reads, operator_reads) = (env_names_of("gateway"), env_names_of("operator"));
    for name in env.keys().filter(|n| *n != "HOME") {
        assert!(
            gateway_reads.contains(name),
            "codex-mcp gateway does not read {name}"
        );
    }
    for name in operator.keys() {
        assert!(
            operator_reads.contains(name),
            "codex-mcp operator does not read {name}"
        );
    }

    // Disruption budgets, network policies, nothing optional.
    assert_eq!(
        r.get("PodDisruptionBudget", "codex-mcp-gateway")["spec"]["maxUnavailable"],
        1
    );
    assert!(
        r.find("PodDisruptionBudget", "codex-mcp-operator")
            .is_none(),
        "one operator replica: no budget"
    );
    let agents = r.get("NetworkPolicy", "codex-mcp-agents");
    assert_eq!(
        agents["spec"]["podSelector"]["matchLabels"],
        json!({LABEL_NAME: APP_NAME, LABEL_MANAGED_BY: MANAGED_BY})
    );
    assert_eq!(agents["spec"]["ingress"], json!([]));
    assert_eq!(agents["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    let egress = agents["spec"]["egress"].to_string();
    assert!(
        egress.contains("\"port\":53")
            && egress.contains("\"port\":443")
            && egress.contains("169.254.0.0/16"),
        "{egress}"
    );
    assert_eq!(
        r.get("NetworkPolicy", "codex-mcp-gateway")["spec"]["ingress"][0]["ports"][0]["port"],
        8210
    );
    assert_eq!(
        r.get("NetworkPolicy", "codex-mcp-operator")["spec"]["ingress"][0]["ports"][0]["port"],
        8211
    );
    for kind in ["Ingress", "ServiceMonitor", "ConfigMap", "ClusterRole"] {
        assert!(r.of_kind(kind).is_empty(), "no {kind} by default");
    }

    // One generated client token; no credentials Secret, and NOTES say how to make one.
    let tokens = decode(r.get("Secret", "codex-mcp-client-tokens"), "tokens");
    let fields: Vec<&str> = tokens.trim_end().split(' ').collect();
    assert!(
        tokens.lines().count() == 1
            && fields.len() == 2
            && fields[0].len() == 48
            && fields[1] == "default",
        "a generated `TOKEN default` line"
    );
    assert!(r.find("Secret", "codex-mcp-credentials").is_none());
    for needle in [
        "create secret generic codex-mcp-credentials",
        "claude mcp add --transport http codex \"$URL/mcp\" -H \"Authorization: Bearer $TOKEN\"",
        "claude mcp add --transport sse codex \"$URL/sse\"",
        "get codexagents",
        "get cxa -o wide",
        "describe cxa NAME",
    ] {
        assert!(
            r.notes.contains(needle),
            "NOTES.txt lacks {needle:?}:\n{}",
            r.notes
        );
    }
}

#[test]
fn ingress_monitoring_replicas_and_an_all_namespaces_operator() {
    let r = render(&exposed());
    let ingress = r.get("Ingress", "codex-mcp-gateway");
    let a = &ingress["metadata"]["annotations"];
    for (k, v) in [
        ("proxy-buffering", "off"),
        ("proxy-request-buffering", "off"),
        ("proxy-read-timeout", "3600"),
        ("proxy-send-timeout", "3600"),
        ("affinity", "cookie"),
    ] {
        assert_eq!(a[format!("nginx.ingress.kubernetes.io/{k}")], v, "{k}");
    }
    assert_eq!(
        a["example.org/team"], "ai",
        "the user's annotations are kept"
    );
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    assert_eq!(
        ingress["spec"]["tls"],
        json!([{"hosts": ["codex.example.org"], "secretName": "codex-mcp-tls"}])
    );
    assert_eq!(ingress["spec"]["rules"][0]["host"], "codex.example.org");
    assert_eq!(
        ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"],
        json!({"name": "codex-mcp-gateway", "port": {"name": "http"}})
    );
    let env = container_env(r.get("Deployment", "codex-mcp-gateway"));
    assert!(
        env["CODEX_MCP_ALLOWED_HOSTS"]
            .split(',')
            .any(|h| h == "codex.example.org"),
        "the ingress host passes the Host check"
    );
    assert_eq!(env["MAX_CONCURRENT_SESSIONS"], "7");
    assert_eq!(env["CODEX_MODEL"], "gpt-5.5");
    assert_eq!(env["SESSION_TIMEOUT"], "0", "zero is a value, not unset");
    assert_eq!(
        r.get("Service", "codex-mcp-gateway")["spec"]["sessionAffinity"],
        "ClientIP"
    );
    assert!(
        r.notes.contains("URL=https://codex.example.org"),
        "{}",
        r.notes
    );

    // Monitoring: one ServiceMonitor per component, selecting its Service.
    for component in ["gateway", "operator"] {
        let name = format!("codex-mcp-{component}");
        let sm = r.get("ServiceMonitor", &name);
        assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
        assert_eq!(sm["metadata"]["labels"]["release"], "prom");
        assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
        let service_labels = &r.get("Service", &name)["metadata"]["labels"];
        for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
            assert_eq!(&service_labels[k], v, "{name} selects its Service");
        }
        assert_eq!(
            sm["spec"]["endpoints"][0]["port"],
            r.get("Service", &name)["spec"]["ports"][0]["name"]
        );
    }
    let dashboard = r.get("ConfigMap", "codex-mcp-dashboard");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let file = std::fs::read_to_string(
        cluster::repo_root().join("charts/codex-mcp/dashboards/codex-mcp.json"),
    )
    .unwrap();
    let shipped: Value =
        serde_json::from_str(dashboard["data"]["codex-mcp.json"].as_str().unwrap())
            .expect("dashboard JSON");
    assert_eq!(shipped, serde_json::from_str::<Value>(&file).unwrap());

    // All namespaces: a ClusterRole (named per release namespace), no namespace filter.
    assert!(r.find("Role", "codex-mcp-operator").is_none());
    let binding = r.get("ClusterRoleBinding", "codex-mcp-codex-mcp-operator");
    assert_eq!(
        binding["roleRef"]["name"],
        r.get("ClusterRole", "codex-mcp-codex-mcp-operator")["metadata"]["name"]
    );
    let operator = container_env(r.get("Deployment", "codex-mcp-operator"));
    assert!(
        !operator.contains_key("CODEX_MCP_NAMESPACE"),
        "unset: every namespace"
    );
    assert_eq!(operator["CODEX_MCP_LEASE_NAMESPACE"], NS);
    assert_eq!(operator["CONTAINER_MEMORY_LIMIT"], "1Gi");
    assert_eq!(
        r.get("PodDisruptionBudget", "codex-mcp-operator")["spec"]["minAvailable"],
        1
    );

    // Credentials and tokens from values.
    let creds = r.get("Secret", "codex-mcp-credentials");
    assert_eq!(decode(creds, "OPENAI_API_KEY"), "sk-from-values");
    assert_eq!(decode(creds, "auth.json"), "{\"auth_mode\":\"chatgpt\"}");
    assert_eq!(
        creds["metadata"]["annotations"]["helm.sh/hook"], "pre-install",
        "a login is created once, never rewritten by upgrades"
    );
    assert_eq!(
        decode(r.get("Secret", "codex-mcp-client-tokens"), "tokens"),
        "tok-a acme\ntok-b acme alice,bob\n"
    );
}

#[test]
fn existing_secrets_host_network_and_optional_parts_off() {
    let r = render(&existing());
    assert!(
        r.of_kind("Secret").is_empty(),
        "existing Secrets are used, none created: {}",
        r.summary()
    );
    assert!(r.of_kind("NetworkPolicy").is_empty());
    let gateway = r.get("Deployment", "codex-mcp-gateway");
    let env = container_env(gateway);
    assert_eq!(env["CODEX_MCP_CREDENTIALS_SECRET"], "my-openai");
    assert_eq!(
        env["CODEX_MCP_AUTH_TOKENS"],
        "/etc/codex-mcp/client-tokens/tokens.txt"
    );
    assert!(pod_spec(gateway)["volumes"]
        .to_string()
        .contains("\"secretName\":\"my-tokens\""));
    assert!(!r.notes.contains("No Codex credentials yet"), "{}", r.notes);
    for name in ["codex-mcp-gateway", "codex-mcp-operator"] {
        let d = r.get("Deployment", name);
        assert_eq!(pod_spec(d)["hostNetwork"], true, "{name}");
        assert_eq!(
            pod_spec(d)["dnsPolicy"],
            "ClusterFirstWithHostNet",
            "{name}"
        );
        assert_eq!(
            d["spec"]["strategy"]["type"], "Recreate",
            "{name}: one host port"
        );
        let env = container_env(d);
        assert_eq!(env["KUBERNETES_SERVICE_HOST"], "127.0.0.1", "{name}");
        assert_eq!(env["KUBERNETES_SERVICE_PORT"], "16443", "{name}");
        assert!(
            d["spec"]["template"]["metadata"]["annotations"]
                .get("prometheus.io/scrape")
                .is_none(),
            "{name}"
        );
    }

    // An API key alone is an ordinary part of the release, kept on uninstall unless asked not to.
    let kept = render(&api_key_only(true));
    let creds = kept.get("Secret", "codex-mcp-credentials");
    assert_eq!(
        creds["metadata"]["annotations"],
        json!({"helm.sh/resource-policy": "keep"})
    );
    assert_eq!(decode(creds, "OPENAI_API_KEY"), "sk-only");
    let plain = render(&api_key_only(false));
    assert!(plain.get("Secret", "codex-mcp-credentials")["metadata"]
        .get("annotations")
        .is_none());
}

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

#[tokio::test]
async fn every_rendered_object_passes_a_server_side_dry_run() {
    kube_gateway::install_crd().await;
    let ns = TestNamespace::create("helm-dry").await;
    // Created only when absent, and then removed again: the cluster is shared.
    let had_crd = std::process::Command::new("kubectl")
        .args(["get", "crd", "servicemonitors.monitoring.coreos.com"])
        .env("KUBECONFIG", cluster::kubeconfig_path())
        .output()
        .unwrap()
        .status
        .success();
    let dir = tempfile::tempdir().unwrap();
    let crd_file = dir.path().join("servicemonitor-crd.yaml");
    std::fs::write(&crd_file, SERVICE_MONITOR_CRD).unwrap();
    let crd_path = crd_file.to_string_lossy().into_owned();
    if !had_crd {
        kube_gateway::kubectl_ok(&["apply", "-f", &crd_path]);
        kube_gateway::kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/servicemonitors.monitoring.coreos.com",
        ]);
    }

    for (what, values) in [
        ("defaults", json!({})),
        ("exposed", exposed()),
        ("existing", existing()),
        ("api key", api_key_only(true)),
    ] {
        // Rendered as an install on this cluster would be (its API versions).
        let r = helm::template_for_cluster(RELEASE, ns.name(), &values);
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

    if !had_crd {
        kube_gateway::kubectl_ok(&["delete", "-f", &crd_path, "--wait=true"]);
    }
    ns.cleanup().await;
}
