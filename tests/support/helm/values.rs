//! Sets of values the chart tests render, lint and dry-run, besides the
//! defaults; and small readers of rendered objects.

use base64::Engine;
use serde_json::{json, Value};

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
