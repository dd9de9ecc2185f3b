//! The parts of a Kubernetes deployment, as host processes on the test
//! cluster: the CRD, the agent image (busybox, `codex` and this build's
//! `codex-mcp`), a `codex-mcp operator` and `codex-mcp gateway` processes.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use codex_mcp::api::crd::{CodexAgent, Phase};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use super::cluster::{self, TestNamespace};
use super::fake_model::{FakeModel, API_KEY_ENV, MODEL, NO_RETRIES};
use super::gateway::TEST_API_KEY;
use super::kubectl::kubectl_with;

/// The host's address on the pods' bridge: where pods reach a fake model.
pub const HOST_ON_POD_NETWORK: [u8; 4] = [10, 87, 0, 1];

/// What every gateway test on the cluster starts from: the agent image of
/// this build and the CRD (both shared and cached), a fresh namespace, and a
/// fake model its pods can reach.
pub async fn namespace_with_model(prefix: &str) -> (TestNamespace, FakeModel) {
    let _ = tokio::task::spawn_blocking(agent_image).await;
    super::kubectl::install_crd().await;
    let ns = TestNamespace::create(prefix).await;
    (ns, pod_reachable_model().await)
}

/// A fake model pods can reach.
pub async fn pod_reachable_model() -> FakeModel {
    FakeModel::start_on(SocketAddr::from((HOST_ON_POD_NETWORK, 0)))
        .await
        .expect("binding the fake model on the pod bridge (is the test cluster up?)")
}

/// `kubectl` with the test cluster's kubeconfig; panics on failure.
pub fn kubectl_ok(args: &[&str]) -> String {
    kubectl_with(args, None)
}

/// `kubectl apply -f -` of a manifest in `namespace`.
pub fn kubectl_apply(namespace: &str, manifest: &str) -> String {
    // Server-side: client-side apply would keep a copy of the manifest
    // (a Secret's values included) in an annotation.
    kubectl_with(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-n",
            namespace,
            "-f",
            "-",
        ],
        Some(manifest),
    )
}

/// The name of the credentials Secret the gateway references by default.
pub const CREDENTIALS_SECRET: &str = codex_mcp::config::DEFAULT_CREDENTIALS_SECRET;

/// Stores `entries` (key, value) in the namespace's credentials Secret, as
/// `codex-mcp auth import` or a person would.
pub fn put_credentials(namespace: &str, entries: &[(&str, &str)]) {
    let data: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
        .collect();
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": CREDENTIALS_SECRET},
        "stringData": data,
    });
    kubectl_apply(namespace, &secret.to_string());
}

/// The agent image as a user builds it: the `Dockerfile`'s `agent` target
/// (the real Codex CLI from npm, git, this source's `codex-mcp`; uid 1000).
pub fn agent_image() -> String {
    super::images::dockerfile_images().agent.clone()
}

/// A host process whose stderr is collected; killed on drop.
pub struct Process {
    child: Option<Child>,
    logs: Arc<Mutex<Vec<String>>>,
    pub what: String,
}

impl Process {
    fn spawn(what: &str, mut cmd: Command, ready_marker: &str) -> (Process, String) {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what}: {e}"));
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        {
            let logs = logs.clone();
            let marker = ready_marker.to_owned();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(i) = line.find(&marker) {
                        let url: String = line[i + marker.len()..]
                            .chars()
                            .take_while(|c| !c.is_whitespace() && *c != '"')
                            .collect();
                        let _ = tx.send(url);
                    }
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let mut p = Process {
            child: Some(child),
            logs,
            what: what.to_owned(),
        };
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => (p, url),
            Err(_) => {
                p.kill();
                panic!("{what} did not start:\n{}", p.logs().join("\n"));
            }
        }
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            super::terminate(&mut child);
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = self.logs();
            let tail: Vec<&String> = logs.iter().rev().take(40).collect();
            eprintln!("--- last lines of {} ---", self.what);
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
        self.stop();
    }
}

/// `codex-mcp operator` for one namespace, with the Codex agent image.
pub fn start_operator(namespace: &str) -> Process {
    start_operator_with(namespace, &[])
}

/// [`start_operator`] with extra flags.
pub fn start_operator_with(namespace: &str, extra: &[&str]) -> Process {
    let mut cmd = Command::new(super::codex_mcp_bin());
    cmd.arg("operator")
        .arg("--kubeconfig")
        .arg(cluster::kubeconfig_path())
        .args(["--namespace", namespace, "--lease-namespace", namespace])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .args(["--identity", &format!("op-{namespace}")])
        .args([
            "--agent-image",
            &agent_image(),
            "--image-pull-policy",
            "Never",
        ])
        .args(["--cpu-limit", "1", "--memory-limit", "1Gi"])
        .args(["--cpu-request", "10m", "--memory-request", "32Mi"])
        .args(["--storage-size", "64Mi", "--session-timeout", "3600"])
        .args(["--log-level", "codex_mcp=debug,info"])
        .args(extra)
        .env_remove("KUBECONFIG");
    Process::spawn("the operator", cmd, "operator listening on ").0
}

/// A running `codex-mcp gateway`.
pub struct KubeGateway {
    pub process: Process,
    pub url: String,
    namespace: String,
    model_url: String,
    extra: Vec<String>,
}

impl KubeGateway {
    /// Starts a gateway for `namespace`, open on loopback, whose runs use
    /// `model` (reachable from pods).
    pub fn start(namespace: &str, model: &FakeModel, extra: &[&str]) -> KubeGateway {
        Self::start_with(
            namespace,
            model.base_url(),
            extra.iter().map(|s| s.to_string()).collect(),
        )
    }

    fn start_with(namespace: &str, model_url: String, extra: Vec<String>) -> KubeGateway {
        // The agents' credentials (an API key the fake model accepts), unless
        // the test brings its own Secret.
        if !extra.iter().any(|a| a == "--credentials-secret") {
            put_credentials(namespace, &[("OPENAI_API_KEY", TEST_API_KEY)]);
        }
        let mut cmd = Command::new(super::codex_mcp_bin());
        cmd.arg("gateway");
        // `extra` may bring its own (e.g. a service account's).
        if !extra.iter().any(|a| a == "--kubeconfig") {
            cmd.arg("--kubeconfig").arg(cluster::kubeconfig_path());
        }
        // Open on loopback unless the test hands out client tokens.
        if !extra.iter().any(|a| a == "--auth-tokens") {
            cmd.arg("--no-auth");
        }
        cmd.args(["--namespace", namespace, "--listen", "127.0.0.1:0"])
            .args(["--approval-mode", "external"])
            .args(["--ready-timeout", "180", "--log-format", "json"])
            .args(&extra)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::temp_dir())
            .env("CODEX_MODEL", MODEL)
            .env("CODEX_PROVIDER", "fake")
            .env("CODEX_PROVIDER_BASE_URL", &model_url)
            .env("CODEX_PROVIDER_ENV_KEY", API_KEY_ENV)
            .env("CODEX_MCP_CODEX_CONFIG", NO_RETRIES.join(";"))
            .env("LOG_LEVEL", "codex_mcp=debug,info");
        let (process, url) = Process::spawn("the gateway", cmd, "listening on http://");
        KubeGateway {
            process,
            url: format!("http://{url}"),
            namespace: namespace.to_owned(),
            model_url,
            extra,
        }
    }

    /// Stops this gateway and starts a fresh one with the same settings.
    pub fn restart(mut self) -> KubeGateway {
        self.process.stop();
        Self::start_with(&self.namespace, self.model_url.clone(), self.extra.clone())
    }

    /// Kills this gateway with SIGKILL (nothing of it runs on) and starts a
    /// fresh one with the same settings.
    pub fn kill_and_restart(mut self) -> KubeGateway {
        self.process.kill();
        Self::start_with(&self.namespace, self.model_url.clone(), self.extra.clone())
    }

    /// Kills this gateway with SIGKILL, as a replica lost with its node.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.url)
    }

    pub fn sse_url(&self) -> String {
        format!("{}/sse", self.url)
    }
}

/// The one CodexAgent of the default tenant's `agent`.
pub async fn codex_agent(ns: &TestNamespace, agent: &str) -> CodexAgent {
    let api: Api<CodexAgent> = ns.api();
    let lp = ListParams::default().labels(&format!("codexmcp.dev/agent-name={agent}"));
    let mut items = api.list(&lp).await.unwrap().items;
    assert_eq!(items.len(), 1, "one CodexAgent for {agent}");
    items.remove(0)
}

/// Polls until the agent's pod is running and ready, returning its name.
pub async fn ready_pod(ns: &TestNamespace, agent: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let cr = codex_agent(ns, agent).await;
        let status = cr.status.clone().unwrap_or_default();
        if status.phase == Some(Phase::Ready) {
            if let Some(pod) = status.pod_name {
                return pod;
            }
        }
        assert!(
            Instant::now() < deadline,
            "agent {agent} not ready: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The run's processes in the agent's pod (agent-run and Codex), by `ps`.
pub async fn run_processes(pods: &Api<Pod>, pod: &str) -> Vec<String> {
    let out = cluster::exec_with(
        pods,
        pod,
        Some("agent"),
        &["ps", "-o", "pid,args"],
        None,
        Duration::from_secs(30),
    )
    .await;
    out.stdout
        .lines()
        .filter(|l| l.contains("codex") && !l.contains("agent-init") && !l.contains("ps -o"))
        .map(str::to_owned)
        .collect()
}

/// A token of the service account, from a token Secret made for it.
pub async fn service_account_token(ns: &TestNamespace, account: &str) -> String {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::PostParams;
    // Since 1.24 no token Secret is made per account; one asked for with
    // the account's annotation is still filled in by the token controller.
    let secrets: Api<Secret> = ns.api();
    let name = format!("{account}-token");
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": name,
            "annotations": {"kubernetes.io/service-account.name": account},
        },
        "type": "kubernetes.io/service-account-token",
    }))
    .unwrap();
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("creating a token Secret for {account}: {e}"),
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let secret = secrets.get(&name).await.unwrap();
        if let Some(token) = secret.data.and_then(|d| d.get("token").cloned()) {
            return String::from_utf8(token.0).unwrap();
        }
        assert!(Instant::now() < deadline, "no token for {account}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The chart's generated client token (the first field of the token file's
/// line in the `codex-mcp-client-tokens` Secret).
pub async fn client_token(ns: &TestNamespace) -> String {
    let secret = ns
        .api::<k8s_openapi::api::core::v1::Secret>()
        .get("codex-mcp-client-tokens")
        .await
        .unwrap();
    let file = secret
        .data
        .unwrap()
        .remove("tokens")
        .expect("a tokens key")
        .0;
    let file = String::from_utf8(file).unwrap();
    file.split_whitespace().next().expect("a token").to_owned()
}
