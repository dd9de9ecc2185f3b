//! One run through pods/exec: `codex-mcp agent-run` in the agent's pod, the
//! request on its stdin, Codex's events and the result on its stdout.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

use crate::api::layout::CONTAINER_NAME;
use crate::backend::{BackendError, EventSender};
use crate::codex::{AgentRunLine, RunOutcome, RunRequest};

/// The command run in the pod. Codex is found on the image's PATH; the end
/// of stdin (the exec connection closing) cancels the run, and agent-run then
/// kills Codex's whole process group.
pub const AGENT_RUN: [&str; 5] = [
    "codex-mcp",
    "agent-run",
    "--cancel-on-stdin-eof",
    "--codex-bin",
    crate::codex::DEFAULT_CODEX_BIN,
];

/// How long a cancelled run's output may keep coming before the connection
/// is dropped.
const CANCEL_DRAIN: Duration = Duration::from_secs(5);

/// Which pod incarnation a run started in: the operator recreates a pod
/// under the same name, so the name alone cannot tell that it died.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Incarnation {
    uid: Option<String>,
    restarts: i32,
}

pub(super) fn incarnation(pod: &Pod) -> Incarnation {
    let restarts = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == CONTAINER_NAME))
        .map_or(0, |c| c.restart_count);
    Incarnation {
        uid: pod.metadata.uid.clone(),
        restarts,
    }
}

/// Why the pod could not finish the run, in words for the caller.
pub(super) async fn pod_trouble(
    pods: &Api<Pod>,
    pod: &str,
    started_in: &Incarnation,
) -> Option<String> {
    let p = match pods.get_opt(pod).await {
        Ok(Some(p)) => p,
        Ok(None) => return Some(format!("the agent's pod {pod} was deleted during the run")),
        Err(e) => return Some(format!("the agent's pod {pod} could not be read: {e}")),
    };
    if p.metadata.deletion_timestamp.is_some() {
        return Some(format!("the agent's pod {pod} was deleted during the run"));
    }
    let now = incarnation(&p);
    if now.uid != started_in.uid {
        return Some(format!(
            "the agent's pod {pod} was replaced during the run (the old one was deleted or died)"
        ));
    }
    (now.restarts != started_in.restarts)
        .then(|| format!("the agent's container in pod {pod} restarted during the run"))
}

pub async fn run_in_pod(
    pods: &Api<Pod>,
    pod: &str,
    request: &RunRequest,
    events: EventSender,
    cancel: CancellationToken,
) -> Result<RunOutcome, BackendError> {
    let params = AttachParams::default()
        .container(CONTAINER_NAME)
        .stdin(true)
        .stdout(true)
        .stderr(true);
    let started_in = pods
        .get(pod)
        .await
        .map(|p| incarnation(&p))
        .map_err(|e| BackendError::Spawn(format!("reading the agent's pod {pod}: {e}")))?;
    let mut process = pods
        .exec(pod, AGENT_RUN, &params)
        .await
        .map_err(|e| BackendError::Spawn(format!("exec into the agent's pod {pod}: {e}")))?;
    let mut stdin = process.stdin();
    let stdout = process.stdout().expect("stdout requested");
    let stderr = process.stderr().expect("stderr requested");
    let status = process.take_status().expect("status not taken yet");

    // The request (credentials included) travels on stdin, never in argv.
    let mut line = serde_json::to_vec(request).expect("request serializes");
    line.push(b'\n');
    if let Some(s) = stdin.as_mut() {
        s.write_all(&line)
            .await
            .map_err(|e| BackendError::Spawn(format!("sending the run request: {e}")))?;
        s.flush()
            .await
            .map_err(|e| BackendError::Spawn(format!("sending the run request: {e}")))?;
    }

    let stderr_tail = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut last = String::new();
        while let Ok(Some(l)) = lines.next_line().await {
            if !l.trim().is_empty() {
                last = l;
            }
        }
        last
    });
    let mut lines = BufReader::new(stdout).lines();
    let mut outcome: Option<RunOutcome> = None;
    let mut cancelled = false;
    let drain = tokio::time::sleep(Duration::from_secs(365 * 86_400));
    tokio::pin!(drain);
    loop {
        tokio::select! {
            next = lines.next_line() => match next {
                Ok(Some(l)) => match AgentRunLine::parse(&l) {
                    Some(AgentRunLine::Result(o)) => outcome = Some(o),
                    Some(AgentRunLine::Event(ev)) => {
                        let _ = events.send(ev);
                    }
                    None => {}
                },
                _ => break,
            },
            _ = cancel.cancelled(), if !cancelled => {
                cancelled = true;
                // Shutting stdin down ends the exec stream (the 1.20 protocol
                // has no half-close), which ends agent-run's stdin in the pod.
                if let Some(mut s) = stdin.take() {
                    let _ = s.shutdown().await;
                }
                drain.as_mut().reset(tokio::time::Instant::now() + CANCEL_DRAIN);
            }
            _ = &mut drain => break,
        }
    }
    drop(stdin);
    let exit = tokio::time::timeout(Duration::from_secs(2), status)
        .await
        .ok()
        .flatten();
    process.abort();
    let last_stderr = tokio::time::timeout(Duration::from_secs(2), stderr_tail)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    match outcome {
        Some(o) => Ok(o),
        None if cancelled => Ok(RunOutcome {
            ok: false,
            error: Some("run cancelled".into()),
            ..Default::default()
        }),
        None => {
            let mut why = match pod_trouble(pods, pod, &started_in).await {
                Some(trouble) => trouble,
                None => match exit.and_then(|s| s.message) {
                    Some(m) => format!("agent-run in pod {pod} ended without a result: {m}"),
                    None => format!("agent-run in pod {pod} ended without a result"),
                },
            };
            if !last_stderr.is_empty() {
                why.push_str(&format!(" ({last_stderr})"));
            }
            Err(BackendError::NoResult(why))
        }
    }
}
