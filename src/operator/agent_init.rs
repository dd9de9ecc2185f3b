//! `codex-mcp agent-init`: the main process of an agent's pod. Runs happen
//! through pods/exec, so this only prepares the agent's directories on the
//! workspace volume, answers the readiness probe (`--check`), reaps the
//! orphans runs leave behind (it is PID 1), and exits cleanly on SIGTERM.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use tokio::signal::unix::{signal, SignalKind};

use crate::api::layout::{CODEX_HOME_DIR, HOME_DIR, TMP_DIR, WORKSPACE_DIR};

const READY_MARKER: &str = "codex-mcp-agent.ready";

#[derive(Debug, thiserror::Error)]
pub enum AgentInitError {
    #[error("creating {0} failed: {1}")]
    CreateDir(PathBuf, #[source] std::io::Error),
    #[error("the workspace {0} is not writable: {1}")]
    WriteCheck(PathBuf, #[source] std::io::Error),
    #[error("writing the ready marker {0} failed: {1}")]
    Marker(PathBuf, #[source] std::io::Error),
    #[error("installing the signal handlers failed: {0}")]
    Signals(#[source] std::io::Error),
    #[error("not ready: {0}")]
    NotReady(String),
}

/// The agent's directories, from the pod's environment.
#[derive(Debug, Clone)]
pub struct AgentDirs {
    pub workspace: PathBuf,
    pub codex_home: PathBuf,
    pub home: PathBuf,
    pub tmp: PathBuf,
}

impl AgentDirs {
    pub fn from_env() -> Self {
        let var = |name: &str, default: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map_or_else(|| PathBuf::from(default), PathBuf::from)
        };
        Self {
            workspace: var("CODEX_MCP_WORKSPACE", WORKSPACE_DIR),
            codex_home: var("CODEX_HOME", CODEX_HOME_DIR),
            home: var("HOME", HOME_DIR),
            tmp: var("TMPDIR", TMP_DIR),
        }
    }

    fn marker(&self) -> PathBuf {
        self.tmp.join(READY_MARKER)
    }
}

/// Prepares the directories and marks the agent ready.
pub fn prepare(dirs: &AgentDirs) -> Result<(), AgentInitError> {
    for dir in [&dirs.workspace, &dirs.codex_home, &dirs.home] {
        std::fs::create_dir_all(dir).map_err(|e| AgentInitError::CreateDir(dir.clone(), e))?;
    }
    let probe = dirs.workspace.join(".codex-mcp-write-check");
    std::fs::write(&probe, b"ok")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| AgentInitError::WriteCheck(dirs.workspace.clone(), e))?;
    let marker = dirs.marker();
    std::fs::write(&marker, std::process::id().to_string())
        .map_err(|e| AgentInitError::Marker(marker, e))
}

/// The readiness check: prepared, and the workspace still there.
pub fn check(dirs: &AgentDirs) -> Result<(), AgentInitError> {
    let marker = dirs.marker();
    match std::fs::metadata(&marker) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(AgentInitError::NotReady(format!(
                "{} is missing: the agent is still preparing",
                marker.display()
            )))
        }
        Err(e) => {
            return Err(AgentInitError::NotReady(format!(
                "{}: {e}",
                marker.display()
            )))
        }
    }
    if !is_dir(&dirs.workspace) {
        return Err(AgentInitError::NotReady(format!(
            "the workspace {} is gone",
            dirs.workspace.display()
        )));
    }
    Ok(())
}

fn is_dir(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_dir())
}

/// Collects every exited child, so orphans of runs do not pile up as zombies.
fn reap() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Prepares, then idles until SIGTERM or SIGINT. Returns the exit code.
pub async fn main(check_only: bool) -> i32 {
    let dirs = AgentDirs::from_env();
    if check_only {
        return match check(&dirs) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("codex-mcp agent-init: {e}");
                1
            }
        };
    }
    match idle(&dirs).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("codex-mcp agent-init: {e}");
            1
        }
    }
}

async fn idle(dirs: &AgentDirs) -> Result<(), AgentInitError> {
    let mut term = signal(SignalKind::terminate()).map_err(AgentInitError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(AgentInitError::Signals)?;
    let mut child = signal(SignalKind::child()).map_err(AgentInitError::Signals)?;
    prepare(dirs)?;
    eprintln!(
        "codex-mcp agent-init: ready (workspace {}, CODEX_HOME {})",
        dirs.workspace.display(),
        dirs.codex_home.display()
    );
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = child.recv() => reap(),
        }
    }
    let _ = std::fs::remove_file(dirs.marker());
    eprintln!("codex-mcp agent-init: stopping");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(root: &Path) -> AgentDirs {
        AgentDirs {
            workspace: root.join("agent/workspace"),
            codex_home: root.join("agent/codex-home"),
            home: root.join("agent/home"),
            tmp: root.join("tmp"),
        }
    }

    #[test]
    fn not_ready_until_prepared() {
        let root = tempfile::tempdir().unwrap();
        let d = dirs(root.path());
        std::fs::create_dir_all(&d.tmp).unwrap();
        assert!(matches!(check(&d), Err(AgentInitError::NotReady(_))));
        prepare(&d).unwrap();
        check(&d).unwrap();
        assert!(d.codex_home.is_dir() && d.home.is_dir());
        std::fs::remove_dir_all(&d.workspace).unwrap();
        assert!(check(&d).is_err(), "a vanished workspace is not ready");
    }

    #[test]
    fn an_unwritable_workspace_fails_preparation() {
        let root = tempfile::tempdir().unwrap();
        let mut d = dirs(root.path());
        // A regular file where the workspace should be.
        std::fs::write(root.path().join("file"), b"x").unwrap();
        d.workspace = root.path().join("file");
        assert!(prepare(&d).is_err());
    }
}
