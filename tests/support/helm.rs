//! The Helm chart through the real Helm engine: `scripts/helm.py`, run by
//! the test venv's Python with PyPI's helm-python-sdk (Helm v4 as a library;
//! `scripts/install-test-deps.sh` installs it). Lint and render are offline;
//! installs go to the test cluster.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use super::cluster;

/// The chart, relative to the repository root.
pub const CHART: &str = "charts/codex-mcp";

/// One rendered object.
#[derive(Clone, Debug)]
pub struct Object {
    /// The template it came from.
    pub source: String,
    pub kind: String,
    pub name: String,
    pub object: Value,
    /// Its YAML as rendered.
    pub text: String,
}

/// A rendered release: its objects in install order and its NOTES.txt.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub objects: Vec<Object>,
    pub notes: String,
}

impl Rendered {
    pub fn find(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects
            .iter()
            .find(|o| o.kind == kind && o.name == name)
            .map(|o| &o.object)
    }

    /// The object; fails with the list of what was rendered (never its
    /// contents, which include Secrets).
    pub fn get(&self, kind: &str, name: &str) -> &Value {
        self.find(kind, name)
            .unwrap_or_else(|| panic!("no {kind} {name} rendered; got: {}", self.summary()))
    }

    pub fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|o| o.kind == kind)
            .map(|o| &o.object)
            .collect()
    }

    /// `Kind/name` of every object.
    pub fn summary(&self) -> String {
        self.objects
            .iter()
            .map(|o| format!("{}/{}", o.kind, o.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Every object as one YAML stream, for `kubectl apply -f`.
    pub fn yaml(&self) -> String {
        self.objects
            .iter()
            .map(|o| format!("---\n{}", o.text))
            .collect()
    }
}

fn script() -> PathBuf {
    cluster::repo_root().join("scripts/helm.py")
}

/// Runs `scripts/helm.py ARGS`: its JSON answer, or its error output.
pub fn try_helm_py(args: &[&str]) -> Result<Value, String> {
    let out = Command::new(super::mcp_client::python())
        .arg(script())
        .args(args)
        .current_dir(cluster::repo_root())
        .output()
        .unwrap_or_else(|e| {
            panic!("running scripts/helm.py (scripts/install-test-deps.sh sets up its venv): {e}")
        });
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&out.stdout).expect("scripts/helm.py prints JSON"))
}

/// Runs `scripts/helm.py ARGS` and returns its JSON answer; fails the test
/// with its error output.
pub fn helm_py(args: &[&str]) -> Value {
    try_helm_py(args)
        .unwrap_or_else(|e| panic!("scripts/helm.py {}: {e}", args.first().unwrap_or(&"")))
}

/// `helm lint --strict` with these values: the messages of severity
/// warning or error.
pub fn lint(values: &Value) -> Vec<String> {
    let report = helm_py(&["lint", CHART, "--values", &values.to_string()]);
    report["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["severity"].as_u64().unwrap_or(0) >= 2)
        .map(|m| format!("{}: {}", m["path"], m["error"]))
        .collect()
}

fn parse(answer: Value) -> Rendered {
    let objects = answer["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| Object {
            source: o["source"].as_str().unwrap_or_default().to_owned(),
            kind: o["kind"].as_str().unwrap_or_default().to_owned(),
            name: o["name"].as_str().unwrap_or_default().to_owned(),
            object: o["object"].clone(),
            text: o["text"].as_str().unwrap_or_default().to_owned(),
        })
        .collect();
    Rendered {
        objects,
        notes: answer["notes"].as_str().unwrap_or_default().to_owned(),
    }
}

/// `helm template`: the chart rendered offline.
pub fn template(release: &str, namespace: &str, values: &Value) -> Rendered {
    render(release, namespace, values, None)
}

/// The chart rendered for the test cluster, as an install there would:
/// its API versions, `lookup` of live objects. Creates nothing.
pub fn template_for_cluster(release: &str, namespace: &str, values: &Value) -> Rendered {
    render(release, namespace, values, Some(cluster::kubeconfig_path()))
}

fn render(release: &str, namespace: &str, values: &Value, kubeconfig: Option<PathBuf>) -> Rendered {
    try_render(release, namespace, values, kubeconfig)
        .unwrap_or_else(|e| panic!("helm template: {e}"))
}

/// `helm template`, or why Helm refused the values.
pub fn try_render(
    release: &str,
    namespace: &str,
    values: &Value,
    kubeconfig: Option<PathBuf>,
) -> Result<Rendered, String> {
    let values = values.to_string();
    let mut args = vec![
        "template",
        CHART,
        "--name",
        release,
        "--namespace",
        namespace,
        "--values",
        &values,
    ];
    let kubeconfig = kubeconfig.map(|k| k.to_string_lossy().into_owned());
    if let Some(k) = &kubeconfig {
        args.extend(["--kubeconfig", k.as_str()]);
    }
    try_helm_py(&args).map(parse)
}

/// `helm install|upgrade|uninstall` on the test cluster, waiting (up to
/// `timeout_secs`) until the release's workloads are ready or gone.
pub fn release(command: &str, release: &str, namespace: &str, values: &Value, timeout_secs: u64) {
    let kubeconfig = cluster::kubeconfig_path();
    let timeout = timeout_secs.to_string();
    let values = values.to_string();
    let mut args = vec![command];
    if command != "uninstall" {
        args.extend([CHART, "--values", &values]);
    }
    args.extend([
        "--name",
        release,
        "--namespace",
        namespace,
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--timeout",
        &timeout,
    ]);
    let answer = helm_py(&args);
    if command != "uninstall" {
        assert_eq!(answer["status"], "deployed", "helm {command}: {answer}");
    }
}

/// The first container's environment of a Deployment, `name -> value`
/// (`valueFrom` entries as their JSON).
pub fn container_env(deployment: &Value) -> std::collections::BTreeMap<String, String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let value = match &e["value"] {
                Value::String(s) => s.clone(),
                _ => e["valueFrom"].to_string(),
            };
            (e["name"].as_str().unwrap_or_default().to_owned(), value)
        })
        .collect()
}

/// The runtime image of the gateway and the operator, as the Dockerfile's
/// default target makes it: this build's `codex-mcp` and the libraries it
/// links, no shell, entrypoint `codex-mcp`.
pub fn runtime_image() -> String {
    static IMAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    IMAGE
        .get_or_init(|| {
            super::kube_gateway::image_of_this_build(
                "codex-mcp-test/runtime",
                "runtime",
                &[
                    "--user",
                    "65532",
                    "--entrypoint",
                    "/usr/local/bin/codex-mcp",
                ],
            )
        })
        .clone()
}

/// `repository` and `tag` of an image reference, as the chart's values take them.
pub fn split_image(image: &str) -> (String, String) {
    let (repo, tag) = image.rsplit_once(':').expect("an image with a tag");
    (repo.to_owned(), tag.to_owned())
}

/// Sets of values the chart tests render, lint and dry-run, besides the
/// defaults; and small readers of rendered objects.
pub mod values {
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
}
