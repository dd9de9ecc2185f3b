//! Sets of values the chart tests render, lint and dry-run, besides the
//! defaults; and small readers of rendered objects.

use base64::Engine;
use serde_json::{json, Value};

use crate::support::fake_model::{FakeModel, API_KEY_ENV, MODEL};
use crate::support::gateway::TEST_API_KEY;

/// The release and namespace the chart is rendered as.
pub const RELEASE: &str = "codex-mcp";
pub const NS: &str = "codex-mcp";

/// Ingress with TLS, monitoring, the dashboard, an all-namespaces operator,
/// replicas, credentials and tokens from values, changed settings.
pub fn exposed() -> Value {
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
pub fn existing() -> Value {
    json!({
        "credentials": {"existingSecret": "my-openai"},
        "clientTokens": {"existingSecret": "my-tokens", "secretKey": "tokens.txt"},
        "networkPolicy": {"enabled": false},
        "metrics": {"podAnnotations": false},
        "testCluster": {"enabled": true},
    })
}

pub fn api_key_only(keep: bool) -> Value {
    json!({"credentials": {"apiKey": "sk-only", "keep": keep}})
}

pub fn decode(secret: &Value, key: &str) -> String {
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

pub fn pod_spec(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]
}

/// A port free on every address of the machine now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The release the cluster tests install: the Dockerfile's images, the
/// fake model, small resources, both components on the host network on
/// the given ports.
pub fn cluster_release(model: &FakeModel, gateway_port: u16, operator_port: u16) -> Value {
    let (repo, tag) = super::split_image(&super::runtime_image());
    let (agent_repo, agent_tag) = super::split_image(&crate::support::kube_gateway::agent_image());
    let small = json!({"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}});
    json!({
        "image": {"repository": repo, "tag": tag, "pullPolicy": "Never"},
        "agent": {"image": {"repository": agent_repo, "tag": agent_tag, "pullPolicy": "Never"},
                  "cpuRequest": "10m", "memoryRequest": "32Mi", "storage": {"size": "64Mi"}},
        "config": {"CODEX_MODEL": MODEL, "CODEX_PROVIDER": "fake", "CONTAINER_CPU_LIMIT": "1",
                   "CONTAINER_MEMORY_LIMIT": "1Gi", "LOG_LEVEL": "codex_mcp=debug,info"},
        "provider": {"baseUrl": model.base_url(), "envKey": API_KEY_ENV},
        "credentials": {"apiKey": TEST_API_KEY},
        "gateway": {"port": gateway_port, "resources": small, "readyTimeout": 240},
        "operator": {"port": operator_port, "resources": small},
        "networkPolicy": {"agents": {"modelApi": {"cidrs": ["10.87.0.1/32"], "ports": [model.addr().port()]}}},
        "testCluster": {"enabled": true},
    })
}
