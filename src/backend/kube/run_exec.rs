//! How `agent-run`'s durable commands reach a Kubernetes agent: pods/exec
//! in the agent's pod, with the runs on its volume (`/agent/runs`, next to
//! the workspace and the Codex home, outside the workspace). `start`
//! detaches the run into its own session in the pod, so the run survives
//! the exec stream (and the gateway) going away; `follow` can be started
//! again from any byte offset by any replica.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use tokio::io::{AsyncWriteExt, BufReader};

use super::exec::{incarnation, pod_trouble, Incarnation};
use super::naming::resource_name;
use crate::agent::AgentId;
use crate::api::layout::{CONTAINER_NAME, RUNS_DIR};
use crate::backend::run_client::{AgentRunExec, ExecOutput};
use crate::backend::BackendError;
use crate::codex::RunRequest;

/// The agent's runs, on its volume.
pub fn runs_dir() -> PathBuf {
    PathBuf::from(RUNS_DIR)
}

/// `codex-mcp agent-run ARGS` as run in the pod; Codex is on the image's PATH.
fn command(args: Vec<String>) -> Vec<String> {
    let mut cmd = vec!["codex-mcp".to_owned(), "agent-run".to_owned()];
    cmd.extend(args);
    cmd
}

/// The `start` command for a run in `run_dir`.
fn start_args(run_dir: &Path) -> Vec<String> {
    vec![
        "--codex-bin".into(),
        crate::codex::DEFAULT_CODEX_BIN.into(),
        "start".into(),
        "--run-dir".into(),
        run_dir.to_string_lossy().into_owned(),
    ]
}

pub struct KubeExec {
    pub pods: Api<Pod>,
    /// The pod (and which incarnation of it) each agent's last run started
    /// in, to say what happened to a run that was lost.
    pub started_in: Mutex<HashMap<String, (String, Incarnation)>>,
}

impl KubeExec {
    pub fn new(pods: Api<Pod>) -> Self {
        Self {
            pods,
            started_in: Mutex::default(),
        }
    }
}

impl KubeExec {
    /// The agent's pod. Named after its CodexAgent (`layout::pod_name`), so
    /// no read of the CodexAgent is needed to find it.
    fn pod(&self, agent: &AgentId) -> String {
        resource_name(agent)
    }

    /// Runs `cmd` in the agent's pod; `stdin` is written, then closed
    /// unless `keep_stdin` (the detached start reads one line and returns).
    async fn run(
        &self,
        agent: &AgentId,
        cmd: Vec<String>,
        stdin: Option<Vec<u8>>,
        keep_stdin: bool,
    ) -> Result<ExecOutput, BackendError> {
        let pod = self.pod(agent);
        tracing::debug!(agent = %agent, pod, command = ?cmd.get(2..4), "agent-run through exec");
        let params = AttachParams::default()
            .container(CONTAINER_NAME)
            .stdin(stdin.is_some())
            .stdout(true)
            .stderr(false);
        let mut process =
            self.pods.exec(&pod, cmd, &params).await.map_err(|e| {
                BackendError::Spawn(format!("exec into the agent's pod {pod}: {e}"))
            })?;
        let mut writer = process.stdin();
        if let (Some(bytes), Some(w)) = (stdin, writer.as_mut()) {
            w.write_all(&bytes)
                .await
                .map_err(|e| BackendError::Spawn(format!("writing to agent-run: {e}")))?;
            w.flush()
                .await
                .map_err(|e| BackendError::Spawn(format!("writing to agent-run: {e}")))?;
        }
        if !keep_stdin {
            // Shut down, not just dropped: the stream's other half lives on in
            // the exec's message loop, which sends the end of stdin (a stream
            // close on protocol v5) only once it reads the shutdown.
            if let Some(mut w) = writer.take() {
                let _ = w.shutdown().await;
            }
        }
        let stdout = process.stdout().expect("stdout requested");
        tracing::debug!(agent = %agent, "agent-run through exec: started");
        Ok(ExecOutput {
            stdout: Box::pin(BufReader::new(stdout)),
            _keep: Box::new((process, writer)),
        })
    }
}

#[async_trait]
impl AgentRunExec for KubeExec {
    async fn exec(
        &self,
        agent: &AgentId,
        args: Vec<String>,
        stdin: Vec<u8>,
    ) -> Result<ExecOutput, BackendError> {
        let stdin = (!stdin.is_empty()).then_some(stdin);
        self.run(agent, command(args), stdin, false).await
    }

    async fn start(
        &self,
        agent: &AgentId,
        run_dir: &Path,
        request: &RunRequest,
    ) -> Result<ExecOutput, BackendError> {
        // The request (credentials included) travels on stdin, never in argv.
        let mut line = serde_json::to_vec(request).expect("request serializes");
        line.push(b'\n');
        let pod = self.pod(agent);
        if let Ok(p) = self.pods.get(&pod).await {
            self.started_in
                .lock()
                .expect("started_in lock")
                .insert(agent.to_string(), (pod, incarnation(&p)));
        }
        self.run(agent, command(start_args(run_dir)), Some(line), true)
            .await
    }

    fn runs_dir(&self, _agent: &AgentId) -> PathBuf {
        runs_dir()
    }

    async fn lost_reason(&self, agent: &AgentId) -> Option<String> {
        let (pod, started_in) = self
            .started_in
            .lock()
            .expect("started_in lock")
            .get(&agent.to_string())
            .cloned()?;
        pod_trouble(&self.pods, &pod, &started_in).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_live_on_the_volume_outside_the_workspace() {
        let runs = runs_dir();
        assert!(runs.starts_with(crate::api::layout::AGENT_ROOT));
        assert!(!runs.starts_with(crate::api::layout::WORKSPACE_DIR));
        assert!(!runs.starts_with(crate::api::layout::CODEX_HOME_DIR));
        let cmd = command(start_args(&runs.join("r1")));
        assert_eq!(
            cmd,
            [
                "codex-mcp",
                "agent-run",
                "--codex-bin",
                "codex",
                "start",
                "--run-dir",
                "/agent/runs/r1"
            ]
        );
    }
}
