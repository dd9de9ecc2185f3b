//! What the Helm chart renders for values other than its defaults: an
//! ingress for SSE with TLS, monitoring, the dashboard, replicas, an
//! all-namespaces operator, credentials and tokens from values or existing
//! Secrets, the test cluster's host network, optional parts turned off.
//! Rendered by `helm template`, Helm 4 and Helm 3.

mod support;

use serde_json::{json, Value};
use support::cluster;
use support::helm::values::{api_key_only, decode, existing, exposed, pod_spec, NS, RELEASE};
use support::helm::{self, container_env, with_each_helm, Helm, Rendered};

fn render(helm: Helm, values: &Value) -> Rendered {
    helm::template(helm, RELEASE, NS, values)
}

#[test]
fn ingress_monitoring_replicas_and_an_all_namespaces_operator() {
    with_each_helm(|helm| exposed_release(&render(helm, &exposed())));
    let notes = helm::notes(RELEASE, NS, &exposed());
    assert!(notes.contains("URL=https://codex.example.org"), "{notes}");
}

fn exposed_release(r: &Rendered) {
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
    with_each_helm(existing_secrets_and_optional_parts);
    let notes = helm::notes(RELEASE, NS, &existing());
    assert!(
        notes.contains("kubectl -n codex-mcp get codexagents"),
        "{notes}"
    );
    assert!(!notes.contains("No Codex credentials yet"), "{notes}");
}

fn existing_secrets_and_optional_parts(helm: Helm) {
    let r = render(helm, &existing());
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
    let kept = render(helm, &api_key_only(true));
    let creds = kept.get("Secret", "codex-mcp-credentials");
    assert_eq!(
        creds["metadata"]["annotations"],
        json!({"helm.sh/resource-policy": "keep"})
    );
    assert_eq!(decode(creds, "OPENAI_API_KEY"), "sk-only");
    let plain = render(helm, &api_key_only(false));
    assert!(plain.get("Secret", "codex-mcp-credentials")["metadata"]
        .get("annotations")
        .is_none());
}

#[test]
fn misspelt_or_invalid_values_are_refused_by_the_schema() {
    with_each_helm(schema_refuses);
}

fn schema_refuses(helm: Helm) {
    for (values, named) in [
        (json!({"gatway": {"replicas": 2}}), "gatway"),
        (json!({"gateway": {"replica": 2}}), "replica"),
        (
            json!({"config": {"CODEX_APPROVAL_MODE": "yolo"}}),
            "CODEX_APPROVAL_MODE",
        ),
        (
            json!({"config": {"SESSION_TIMEOUT": -1}}),
            "SESSION_TIMEOUT",
        ),
        (json!({"logFormat": "xml"}), "logFormat"),
    ] {
        let refused = helm::try_template(helm, RELEASE, NS, &values, &[])
            .err()
            .unwrap_or_else(|| panic!("{helm}: {values} was accepted"));
        assert!(
            refused.contains(named),
            "the error names {named}: {refused}"
        );
    }
}

#[test]
fn repository_rules_become_the_gateways_rules_file() {
    with_each_helm(|helm| {
        let values = json!({
            "agent": {"sourceMaxSize": "512Mi"},
            "repositories": [
                {"tenant": "default", "secret": "git-acme",
                 "allow": ["https://git.example.com/acme/*", "https://git.example.com/shared/**"],
                 "default": "https://git.example.com/acme/app.git#main"},
                {"tenant": "team", "allow": ["git@git.example.com:team/*"]}
            ]
        });
        let r = render(helm, &values);
        let gateway = r.get("Deployment", "codex-mcp-gateway");
        let env = container_env(gateway);
        assert_eq!(
            env["CODEX_MCP_REPOSITORIES"],
            "/etc/codex-mcp/repositories/rules"
        );
        assert!(pod_spec(gateway)["volumes"]
            .to_string()
            .contains("codex-mcp-gateway-repositories"));
        let text = r.get("ConfigMap", "codex-mcp-gateway-repositories")["data"]["rules"]
            .as_str()
            .unwrap()
            .to_owned();
        // The file the gateway reads, read as the gateway reads it.
        if let Err(e) = codex_mcp::source::rules::RepositoryRules::parse(&text) {
            panic!("the rendered rules do not parse: {e}\n{text}");
        }
        assert!(text.contains(
            "default git-acme https://git.example.com/acme/* https://git.example.com/shared/** \
             default=https://git.example.com/acme/app.git#main"
        ), "{text}");
        assert!(text.contains("team - git@git.example.com:team/*"), "{text}");
        let operator = r.get("Deployment", "codex-mcp-operator");
        assert_eq!(
            container_env(operator)["CODEX_MCP_SOURCE_MAX_SIZE"],
            "512Mi"
        );

        let none = render(helm, &json!({}));
        assert!(none
            .find("ConfigMap", "codex-mcp-gateway-repositories")
            .is_none());
        assert!(!container_env(none.get("Deployment", "codex-mcp-gateway"))
            .contains_key("CODEX_MCP_REPOSITORIES"));
    });
}
