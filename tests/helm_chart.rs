//! The Helm chart (`charts/codex-mcp`) through the `helm` command, Helm 4
//! and Helm 3, offline: its CRD, versions and `manifests/` are not stale, it
//! lints clean, it refuses a Kubernetes older than its `kubeVersion`, and its
//! defaults render least-privilege RBAC, locked-down pods and the settings as
//! the variables the binaries read.
//! Other values: `tests/helm_values.rs`; the API server's verdict:
//! `tests/helm_dry_run.rs`; a real install: `tests/helm_install.rs`.

mod support;

use std::collections::BTreeMap;

use codex_mcp::api::labels::{APP_NAME, LABEL_MANAGED_BY, LABEL_NAME, MANAGED_BY};
use serde_json::{json, Value};
use support::cluster;
use support::helm::values::{api_key_only, decode, existing, exposed, pod_spec, NS, RELEASE};
use support::helm::{self, container_env, with_each_helm, Helm, Rendered};

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

fn render(helm: Helm, values: &Value) -> Rendered {
    helm::template(helm, RELEASE, NS, values)
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

/// `scripts/render-manifests.sh DIR` run with this Helm: the files it wrote.
fn rendered_manifests(helm: Helm) -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("manifests");
    let run = std::process::Command::new(cluster::repo_root().join("scripts/render-manifests.sh"))
        .arg(&out)
        .env("HELM", helm.binary())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "scripts/render-manifests.sh with {helm}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    read_dir(&out)
}

fn read_dir(dir: &std::path::Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
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
}

#[test]
fn committed_manifests_match_the_chart() {
    let committed = read_dir(&cluster::repo_root().join("manifests"));
    // Rendered by Helm 4, as `make manifests` does; Helm 3 writes the same.
    with_each_helm(|helm| {
        let fresh = rendered_manifests(helm);
        assert_eq!(fresh.keys().collect::<Vec<_>>(), committed.keys().collect::<Vec<_>>(), "manifests/ has other files than the chart renders: regenerate it with `scripts/render-manifests.sh` (or `make manifests`)");
        for (name, text) in &fresh {
            assert!(text == &committed[name], "manifests/{name} is stale ({helm} renders it otherwise): regenerate it with `scripts/render-manifests.sh` (or `make manifests`)");
        }
        // Nothing secret is committed.
        assert!(
            !fresh.values().any(|t| t.contains("kind: Secret")),
            "manifests/ must not hold Secrets"
        );
    });
}

#[test]
fn lint_is_clean_with_every_set_of_values() {
    with_each_helm(|helm| {
        for values in [json!({}), exposed(), existing(), api_key_only(false)] {
            let problems = helm::lint(helm, &values);
            assert!(
                problems.is_empty(),
                "{helm} lint --strict with {values}: {problems:#?}"
            );
        }
    });
}

/// `kubeVersion` in Chart.yaml: both majors refuse to render (and so to
/// install) for an older cluster, naming the constraint, and accept the
/// oldest version it allows.
#[test]
fn a_kubernetes_older_than_the_charts_kube_version_is_refused() {
    let chart =
        std::fs::read_to_string(cluster::repo_root().join("charts/codex-mcp/Chart.yaml")).unwrap();
    assert!(
        chart.lines().any(|l| l == "kubeVersion: \">=1.35.0-0\""),
        "Chart.yaml's kubeVersion is not >=1.35.0-0"
    );
    with_each_helm(|helm| {
        let kube = |version: &str| {
            helm::try_template(helm, RELEASE, NS, &json!({}), &["--kube-version", version])
        };
        let refused = kube("1.34.0")
            .err()
            .unwrap_or_else(|| panic!("{helm} rendered the chart for Kubernetes 1.34"));
        assert!(
            refused.contains(
                "chart requires kubeVersion: >=1.35.0-0 which is incompatible with Kubernetes v1.34.0"
            ),
            "{refused}"
        );
        let oldest = kube("1.35.0").unwrap_or_else(|e| panic!("Kubernetes 1.35: {e}"));
        assert!(oldest.find("Deployment", "codex-mcp-gateway").is_some());
    });
}

#[test]
fn defaults_are_least_privilege_and_locked_down() {
    with_each_helm(|helm| defaults_render_least_privilege(&render(helm, &json!({}))));

    // No credentials Secret, so NOTES say how to make one; and how to connect.
    let notes = helm::notes(RELEASE, NS, &json!({}));
    for needle in [
        "create secret generic codex-mcp-credentials",
        "claude mcp add --transport http codex \"$URL/mcp\" -H \"Authorization: Bearer $TOKEN\"",
        "claude mcp add --transport sse codex \"$URL/sse\"",
        "get codexagents",
        "get cxa -o wide",
        "describe cxa NAME",
    ] {
        assert!(
            notes.contains(needle),
            "NOTES.txt lacks {needle:?}:\n{notes}"
        );
    }
}

fn defaults_render_least_privilege(r: &Rendered) {
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
    assert_eq!(rule_for(operator_role, "pods/resize"), ["patch"]);
    // Asks an idle agent's pod whether a run still goes on before suspending it.
    assert_eq!(rule_for(operator_role, "pods/exec"), ["create", "get"]);
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

    // One generated client token; no credentials Secret.
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
}
