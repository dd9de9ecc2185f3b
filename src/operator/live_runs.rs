//! Whether a run is still going in an agent's pod. The gateway's
//! `activeRuns` marker says so while a gateway works on the agent; a run
//! outlives its gateway, though (see `codex::detached`), and then only the
//! run's lock in the pod tells. The operator asks the pod (`agent-run
//! list` through exec) before suspending an idle agent whose marker is
//! stale, so a run whose gateway died is not killed by the suspension.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use tokio::io::AsyncReadExt;

use crate::api::layout::{CONTAINER_NAME, RUNS_DIR};

/// Longest wait for the pod's answer; without one the agent counts as idle.
const ASK_TIMEOUT: Duration = Duration::from_secs(20);

/// Whether `agent-run list` output names a run that is still going.
pub fn any_running(list_output: &str) -> bool {
    list_output.lines().any(|l| {
        serde_json::from_str::<serde_json::Value>(l)
            .is_ok_and(|v| v.get("running").and_then(serde_json::Value::as_bool) == Some(true))
    })
}

/// Asks the pod; false when it cannot answer (no pod, no permission, an
/// older image), which leaves the idle decision as it was.
pub async fn runs_going(pods: &Api<Pod>, pod: &str) -> bool {
    let params = AttachParams::default()
        .container(CONTAINER_NAME)
        .stdin(false)
        .stdout(true)
        .stderr(false);
    let ask = async {
        let mut process = pods
            .exec(
                pod,
                ["codex-mcp", "agent-run", "list", "--runs-dir", RUNS_DIR],
                &params,
            )
            .await
            .ok()?;
        let mut out = String::new();
        process.stdout()?.read_to_string(&mut out).await.ok()?;
        Some(out)
    };
    match tokio::time::timeout(ASK_TIMEOUT, ask).await {
        Ok(Some(out)) => any_running(&out),
        _ => {
            tracing::debug!(pod, "could not ask the pod for runs in progress");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_run_holding_its_lock_counts() {
        let out = "{\"run_id\":\"a.1\",\"running\":false}\n{\"run_id\":\"a.2\",\"running\":true}\n";
        assert!(any_running(out));
        assert!(!any_running("{\"run_id\":\"a.1\",\"running\":false}\n"));
        assert!(!any_running(""));
        assert!(!any_running("agent-run: error\n"));
    }
}
