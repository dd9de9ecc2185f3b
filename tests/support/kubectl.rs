//! `kubectl` against the cluster under test, and the CodexAgent CRD
//! installed as a person would install it.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use codex_mcp::api::crd::CodexAgent;
use kube::api::{Api, ListParams};

use super::cluster;

/// The CRD file committed with the project (`make crds` writes it; a test
/// fails when it differs from `codex-mcp crd`).
pub const CRD_FILE: &str = "crds/codexagents.codexmcp.dev.yaml";

/// The test cluster's own kubectl when the harness built one, else the one
/// on PATH.
fn binary() -> PathBuf {
    let harness = super::cache_dir().join("kubernetes/bin/kubectl");
    if harness.exists() {
        harness
    } else {
        PathBuf::from("kubectl")
    }
}

/// Runs kubectl with `stdin`; panics with its stderr when it fails.
pub fn kubectl_with(args: &[&str], stdin: Option<&str>) -> String {
    match kubectl_outcome(args, stdin) {
        Ok(stdout) => stdout,
        Err(stderr) => panic!("kubectl {args:?} failed: {stderr}"),
    }
}

/// Runs kubectl with `stdin`: its stdout when it succeeds, its stderr when
/// it fails (for tests of what the API server refuses).
pub fn kubectl_outcome(args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let out = kubectl_output(args, stdin);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Runs kubectl; panics with its stderr when it fails.
pub fn kubectl(args: &[&str]) -> String {
    kubectl_with(args, None)
}

/// Applies the committed CRD (server-side) once per test binary and waits
/// until CodexAgents are served.
pub async fn install_crd() {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| async {
        // Applied as a person would, which also checks that the file parses.
        let path = cluster::repo_root().join(CRD_FILE);
        kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            &path.to_string_lossy(),
        ]);
        kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/codexagents.codexmcp.dev",
        ]);
        // Discovery may lag behind Established for a moment.
        let agents: Api<CodexAgent> = Api::all(cluster::client());
        let deadline = Instant::now() + Duration::from_secs(30);
        while agents.list(&ListParams::default().limit(1)).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "the CodexAgent API is not served"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        // kubectl caches discovery (the `apply` above filled it before the
        // CRD existed) and resolves short names like `cxa` from that cache;
        // a lookup by the full name that misses refreshes it.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !Command::new(binary())
            .arg("--kubeconfig")
            .arg(cluster::kubeconfig_path())
            .args(["get", "codexagents", "-A"])
            .env_remove("KUBECONFIG")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            assert!(
                Instant::now() < deadline,
                "kubectl does not see CodexAgents"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await;
}

/// Runs kubectl with `stdin` and returns how it ended, failure included.
pub fn kubectl_output(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let bin = binary();
    let mut child = Command::new(&bin)
        .arg("--kubeconfig")
        .arg(cluster::kubeconfig_path())
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
    {
        use std::io::Write;
        let mut pipe = child.stdin.take().expect("stdin");
        if let Some(input) = stdin {
            pipe.write_all(input.as_bytes())
                .expect("writing kubectl's stdin");
        }
    }
    child.wait_with_output().expect("kubectl")
}
