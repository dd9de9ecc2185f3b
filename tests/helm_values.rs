//! What the Helm chart renders for values other than its defaults: an
//! ingress with TLS, an HTTPRoute, the `helm test` pod, monitoring, the
//! dashboard, replicas, an all-namespaces operator, credentials and tokens
//! from values or existing Secrets, the test cluster's host network,
//! optional parts turned off.
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
    // No controller's annotations of the chart's own: the user's, as given.
    assert_eq!(
        ingress["metadata"]["annotations"],
        json!({"example.org/team": "ai"}),
        "only the user's annotations"
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
fn an_httproute_to_the_gateway_whose_hostnames_pass_the_host_check() {
    with_each_helm(|helm| {
        let parents =
            json!([{"name": "shared", "namespace": "gateway-system", "sectionName": "https"}]);
        let values = json!({"httpRoute": {
            "enabled": true, "parentRefs": parents,
            "hostnames": ["codex.example.org", "mcp.example.org"],
            "timeouts": {"request": "0s"},
            "annotations": {"example.org/team": "ai"},
        }});
        let r = render(helm, &values);
        let route = r.get("HTTPRoute", "codex-mcp-gateway");
        assert_eq!(route["apiVersion"], "gateway.networking.k8s.io/v1");
        assert_eq!(route["metadata"]["annotations"]["example.org/team"], "ai");
        assert_eq!(route["spec"]["parentRefs"], parents);
        assert_eq!(
            route["spec"]["hostnames"],
            json!(["codex.example.org", "mcp.example.org"])
        );
        let rule = &route["spec"]["rules"][0];
        assert_eq!(
            rule["matches"],
            json!([{"path": {"type": "PathPrefix", "value": "/"}}])
        );
        assert_eq!(
            rule["backendRefs"],
            json!([{"name": "codex-mcp-gateway", "port": 8210}])
        );
        assert_eq!(rule["timeouts"], json!({"request": "0s"}));
        let env = container_env(r.get("Deployment", "codex-mcp-gateway"));
        for host in ["codex.example.org", "mcp.example.org"] {
            assert!(
                env["CODEX_MCP_ALLOWED_HOSTS"].split(',').any(|h| h == host),
                "{host} passes the Host check: {}",
                env["CODEX_MCP_ALLOWED_HOSTS"]
            );
        }
        assert!(r.find("Ingress", "codex-mcp-gateway").is_none());
        let notes = helm::notes(RELEASE, NS, &values);
        assert!(notes.contains("URL=https://codex.example.org"), "{notes}");

        // No timeouts unless asked for: the controller's own apply.
        let plain = render(
            helm,
            &json!({"httpRoute": {"enabled": true, "parentRefs": [{"name": "shared"}]}}),
        );
        let rule = &plain.get("HTTPRoute", "codex-mcp-gateway")["spec"]["rules"][0];
        assert!(rule.get("timeouts").is_none(), "{rule}");
        assert!(render(helm, &json!({}))
            .find("HTTPRoute", "codex-mcp-gateway")
            .is_none());

        for (values, named) in [
            (
                json!({"httpRoute": {"enabled": true}}),
                "httpRoute.parentRefs",
            ),
            (
                json!({"httpRoute": {"timeouts": {"request": "1 hour"}}}),
                "request",
            ),
            (
                json!({"httpRoute": {"timeout": {"request": "1h"}}}),
                "timeout",
            ),
            (
                json!({"ingress": {"sseAnnotations": true}}),
                "sseAnnotations",
            ),
        ] {
            assert_refused(helm, &values, named);
        }
    });
}

#[test]
fn the_helm_test_pod_probes_the_gateway_with_the_release_token() {
    with_each_helm(|helm| {
        let from = json!([{"namespaceSelector": {"matchLabels": {"team": "ai"}}}]);
        let r = render(helm, &json!({"networkPolicy": {"gateway": {"from": from}}}));
        let pod = r.get("Pod", "codex-mcp-test-gateway");
        assert_eq!(pod["metadata"]["annotations"]["helm.sh/hook"], "test");
        let spec = &pod["spec"];
        assert_eq!(spec["restartPolicy"], "Never");
        assert_eq!(spec["automountServiceAccountToken"], false);
        assert!(spec.get("hostNetwork").is_none());
        // Pod Security "restricted", like the chart's other pods.
        assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            spec["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        let c = &spec["containers"][0];
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
        let gateway = &pod_spec(r.get("Deployment", "codex-mcp-gateway"))["containers"][0];
        assert_eq!(c["image"], gateway["image"], "the gateway's image");
        assert_eq!(c["command"], json!(["codex-mcp"]));
        assert_eq!(
            c["args"],
            json!([
                "probe",
                "--url",
                "http://codex-mcp-gateway.codex-mcp.svc:8210",
                "--token-file",
                "/etc/codex-mcp/client-tokens/tokens"
            ])
        );
        assert!(spec["volumes"]
            .to_string()
            .contains("\"secretName\":\"codex-mcp-client-tokens\""));

        // The gateway's policy admits it, and the other gateway replicas
        // (which forward a session's requests), beside the peers the values
        // list.
        let peers = &r.get("NetworkPolicy", "codex-mcp-gateway")["spec"]["ingress"][0]["from"];
        assert_eq!(peers[0], from[0]);
        let component = |i: usize| {
            peers[i]["podSelector"]["matchLabels"]["app.kubernetes.io/component"].clone()
        };
        assert_eq!(component(1), "gateway", "{peers}");
        let selector = peers[2]["podSelector"]["matchLabels"].as_object().unwrap();
        for (k, v) in selector {
            assert_eq!(&pod["metadata"]["labels"][k], v, "{k}");
        }
        assert_eq!(component(2), "test", "{peers}");

        // Pointed elsewhere when the Service is not the way in.
        let pointed = render(helm, &json!({"helmTest": {"url": "http://10.1.2.3:8210"}}));
        let args = &pointed.get("Pod", "codex-mcp-test-gateway")["spec"]["containers"][0]["args"];
        assert_eq!(args[2], "http://10.1.2.3:8210");

        // The test cluster: no cluster DNS or kube-proxy, so the host
        // network and the gateway's port on loopback, as the gateway runs.
        let tc = render(helm, &existing());
        let pod = tc.get("Pod", "codex-mcp-test-gateway");
        assert_eq!(pod["spec"]["hostNetwork"], true);
        let args = &pod["spec"]["containers"][0]["args"];
        assert_eq!(args[2], "http://127.0.0.1:8210");
        assert_eq!(args[4], "/etc/codex-mcp/client-tokens/tokens.txt");
        assert!(pod["spec"]["volumes"]
            .to_string()
            .contains("\"secretName\":\"my-tokens\""));

        let off = render(
            helm,
            &json!({"helmTest": {"enabled": false}, "networkPolicy": {"gateway": {"from": from}}}),
        );
        assert!(off.find("Pod", "codex-mcp-test-gateway").is_none());
        let peers = &off.get("NetworkPolicy", "codex-mcp-gateway")["spec"]["ingress"][0]["from"];
        assert_eq!(
            peers.as_array().unwrap().len(),
            2,
            "the values' peers and the replicas: {peers}"
        );
        assert_eq!(peers[0], from[0]);
    });
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
        assert_refused(helm, &values, named);
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

/// The schema refuses `values`, naming `named`.
fn assert_refused(helm: Helm, values: &Value, named: &str) {
    let refused = helm::try_template(helm, RELEASE, NS, values, &[])
        .err()
        .unwrap_or_else(|| panic!("{helm}: {values} was accepted"));
    assert!(
        refused.contains(named),
        "the error names {named}: {refused}"
    );
}
