//! Shared helpers for the integration tests: where the installed test
//! dependencies live, and handles to the real parts the tests drive.
#![allow(dead_code)]

pub mod chart_flows;
pub mod cluster;
pub mod edge;
pub mod fake_auth;
pub mod fake_model;
pub mod gateway;
pub mod git_server;
pub mod helm;
pub mod images;
pub mod kube_gateway;
pub mod kubectl;
pub mod long_turn;
pub mod mcp_client;
pub mod net_probe;
pub mod projects;
pub mod prometheus;
pub mod raw_mcp;
pub mod tasks_client;
pub mod tenants;

use std::path::PathBuf;

/// The cache that `scripts/install-test-deps.sh` fills (Codex CLI, Python venv, Prometheus,
/// cluster binaries).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("CODEX_MCP_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/codex-mcp")
        })
}

/// The real Codex CLI binary installed from npm.
pub fn codex_bin() -> PathBuf {
    std::env::var_os("CODEX_MCP_TEST_CODEX_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("bin/codex"))
}

/// The binary under test, built by cargo for this test run.
pub fn codex_mcp_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_codex-mcp"))
}

/// Ends a child process as a service manager would: SIGTERM, then SIGKILL
/// after 10 s; a child already reaped is left alone (its pid may belong to
/// another process by now).
pub fn terminate(child: &mut std::process::Child) {
    use std::time::{Duration, Instant};
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}
