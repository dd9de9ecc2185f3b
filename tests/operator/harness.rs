//! What the operator tests share: the CRD installed once, the agent image
//! built once, operator processes started and stopped by each test, and
//! small helpers to read agents, events and metrics.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use codex_mcp::api::crd::{CodexAgent, CodexAgentStatus, Condition};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::Value;

use crate::support::cluster;

/// How long an agent may take to become ready on a busy two-core machine.
pub const READY_TIMEOUT: Duration = Duration::from_secs(150);

/// The agent image as a user builds it (the `Dockerfile`'s `agent` target).
pub fn agent_image() -> String {
    crate::support::kube_gateway::agent_image()
}

/// Options an operator process is started with.
#[derive(Clone)]
pub struct OperatorOptions {
    pub identity: String,
    pub extra: Vec<String>,
}

impl OperatorOptions {
    pub fn named(identity: &str) -> Self {
        Self {
            identity: identity.into(),
            extra: Vec::new(),
        }
    }
}

/// A `codex-mcp operator` process for one test namespace, killed when dropped.
pub struct Operator {
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
    pub identity: String,
    pub url: String,
}

impl Operator {
    /// Starts an operator watching `namespace` (its Lease lives there too)
    /// with short lease timings, and waits until it serves HTTP.
    pub async fn start(namespace: &str, options: OperatorOptions) -> Operator {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("operator.log");
        let file = File::create(&log).expect("creating the operator log");
        let image = agent_image();
        let mut cmd = Command::new(crate::support::codex_mcp_bin());
        cmd.arg("operator")
            .arg("--kubeconfig")
            .arg(cluster::kubeconfig_path())
            .args(["--namespace", namespace, "--lease-namespace", namespace])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(["--identity", &options.identity])
            .args(["--lease-duration", "8", "--lease-renew-deadline", "6"])
            .args(["--lease-retry-period", "1"])
            .args(["--agent-image", &image, "--image-pull-policy", "Never"])
            .args(["--cpu-limit", "200m", "--memory-limit", "128Mi"])
            .args(["--cpu-request", "10m", "--memory-request", "32Mi"])
            .args(["--storage-size", "16Mi", "--session-timeout", "3600"])
            .args([
                "--log-level",
                "codex_mcp=debug,info",
                "--log-format",
                "text",
            ])
            .args(&options.extra)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file));
        let child = cmd.spawn().expect("starting codex-mcp operator");
        let mut op = Operator {
            child: Some(child),
            log,
            _dir: dir,
            identity: options.identity,
            url: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&op.log).unwrap_or_default();
            if let Some(rest) = text.split("operator listening on ").nth(1) {
                op.url = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                break;
            }
            if let Some(status) = op.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("the operator exited with {status}:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "the operator did not start:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        op
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Resident memory of the process, in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("{}{path}", self.url))
            .await
            .unwrap_or_else(|e| panic!("GET {path} from operator {}: {e}", self.identity));
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    pub async fn metrics(&self) -> String {
        let (status, body) = self.get("/metrics").await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// SIGTERM, then waits (up to 20 s) for a clean exit; returns the exit code.
    pub async fn stop(&mut self) -> Option<i32> {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let child = self.child.as_mut()?;
            if let Some(status) = child.try_wait().expect("waiting for the operator") {
                self.child = None;
                return status.code();
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!("the operator ignored SIGTERM for 20 s:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL: the operator gets no chance to release its Lease.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        if let Some(child) = &self.child {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, signal);
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!(
                "--- last lines of operator {} ---\n{}",
                self.identity,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        self.kill();
    }
}

/// The value of a metric series (exact line prefix, labels included).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// A CodexAgent from a JSON spec.
pub fn agent(name: &str, spec: Value) -> CodexAgent {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "codexmcp.dev/v1alpha1",
        "kind": "CodexAgent",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("a valid CodexAgent")
}

pub async fn create(api: &Api<CodexAgent>, agent: &CodexAgent) -> CodexAgent {
    api.create(&PostParams::default(), agent)
        .await
        .unwrap_or_else(|e| panic!("creating CodexAgent {}: {e}", agent.name_any()))
}

/// Merge-patches the spec, as a person with kubectl or the gateway would.
pub async fn patch_spec(api: &Api<CodexAgent>, name: &str, spec: Value) -> CodexAgent {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "spec": spec })),
    )
    .await
    .unwrap_or_else(|e| panic!("patching CodexAgent {name}: {e}"))
}

pub fn status(agent: &CodexAgent) -> CodexAgentStatus {
    agent.status.clone().unwrap_or_default()
}

pub fn condition(agent: &CodexAgent, type_: &str) -> Option<Condition> {
    status(agent)
        .conditions
        .into_iter()
        .find(|c| c.type_ == type_)
}

pub fn condition_is(agent: &CodexAgent, type_: &str, value: &str) -> bool {
    condition(agent, type_).is_some_and(|c| c.status == value)
}

pub fn phase_is(agent: &CodexAgent, phase: &str) -> bool {
    status(agent).phase.map(|p| p.as_str()) == Some(phase)
}

/// Waits until the agent is Ready with a ready pod and returns it.
pub async fn wait_ready(api: &Api<CodexAgent>, name: &str) -> CodexAgent {
    cluster::wait_for(api, name, READY_TIMEOUT, "the agent to be Ready", |a| {
        phase_is(a, "Ready")
            && condition_is(a, "Ready", "True")
            && status(a).observed_generation == a.metadata.generation
    })
    .await
}

pub async fn wait_phase(api: &Api<CodexAgent>, name: &str, phase: &str) -> CodexAgent {
    cluster::wait_for(api, name, READY_TIMEOUT, &format!("phase {phase}"), |a| {
        phase_is(a, phase)
    })
    .await
}

/// The agent's events as (reason, message).
pub async fn events(namespace: &str, name: &str) -> Vec<(String, String)> {
    let api: Api<Event> = Api::namespaced(cluster::client(), namespace);
    let params = ListParams::default().fields(&format!(
        "involvedObject.kind=CodexAgent,involvedObject.name={name}"
    ));
    api.list(&params)
        .await
        .map(|l| {
            l.items
                .into_iter()
                .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the agent has an event with this reason.
pub async fn wait_event(namespace: &str, name: &str, reason: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = events(namespace, name).await;
        if let Some((_, message)) = all.iter().find(|(r, _)| r == reason) {
            return message.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {reason} event for {name}; events: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The agent's pods (by label), to check there is never more than one.
pub async fn agent_pods(pods: &Api<Pod>, name: &str) -> Vec<Pod> {
    pods.list(&ListParams::default().labels(&format!("codexmcp.dev/agent={name}")))
        .await
        .expect("listing the agent's pods")
        .items
}

/// String data of a Secret.
pub fn secret_text(secret: &k8s_openapi::api::core::v1::Secret) -> BTreeMap<String, String> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}
