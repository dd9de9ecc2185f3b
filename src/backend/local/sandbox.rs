//! The local backend's isolation: every run in a mount, PID, IPC and user
//! namespace of its own (bubblewrap), seeing only the system (read-only),
//! its agent's workspace, Codex home and scratch directory, and the two
//! binaries it runs. The gateway's files (client tokens, data directory,
//! credentials) and other agents' directories do not exist in there.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The Debian package that provides `bwrap`.
pub const BWRAP_PACKAGE: &str = "bubblewrap";

/// System directories every run sees read-only; missing ones are skipped.
const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

/// The files and directories of `/etc` that programs need to resolve names,
/// verify TLS, find users and load libraries; nothing else of `/etc`.
const ETC_ENTRIES: &[&str] = &[
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/ca-certificates.conf",
    "/etc/pki",
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/mime.types",
    "/etc/gitconfig",
    "/etc/bash.bashrc",
    "/etc/profile",
    "/etc/inputrc",
];

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "bubblewrap (bwrap) was not found, so runs cannot be isolated from each other and from the gateway's files: install the Debian package `{BWRAP_PACKAGE}` (apt-get install {BWRAP_PACKAGE}), or start with --unsafe-no-isolation to run agents unisolated"
    )]
    Missing,
    #[error(
        "bubblewrap at {0} does not work here ({1}); --unsafe-no-isolation runs agents unisolated"
    )]
    Broken(String, String),
}

/// How runs are isolated.
#[derive(Debug, Clone)]
pub enum Isolation {
    /// A bubblewrap sandbox per run, with this `bwrap` binary.
    Bwrap(PathBuf),
    /// None (`--unsafe-no-isolation`): every run sees all this user sees.
    Unsafe,
}

impl Isolation {
    /// Finds `bwrap` on `PATH` and checks that it can create a sandbox here.
    pub async fn detect() -> Result<Self, SandboxError> {
        let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
        let bwrap = std::env::split_paths(&path)
            .map(|d| d.join("bwrap"))
            .find(|p| p.is_file())
            .ok_or(SandboxError::Missing)?;
        let out = tokio::process::Command::new(&bwrap)
            .args(["--unshare-user", "--unshare-pid", "--die-with-parent"])
            .args(["--ro-bind", "/", "/", "--", "true"])
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| SandboxError::Broken(bwrap.display().to_string(), e.to_string()))?;
        if !out.status.success() {
            return Err(SandboxError::Broken(
                bwrap.display().to_string(),
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ));
        }
        Ok(Self::Bwrap(bwrap))
    }
}

/// What one run's sandbox holds.
#[derive(Debug, Clone)]
pub struct RunMounts<'a> {
    /// Bound read-write: the agent's workspace, Codex home and scratch.
    pub writable: Vec<PathBuf>,
    /// The Codex CLI (as agent-run will run it: an absolute, resolved path).
    pub codex_bin: &'a Path,
    /// The `codex-mcp` binary that provides agent-run.
    pub agent_run_bin: &'a Path,
    /// What else the run reads (the directory of the login it follows),
    /// bound read-only.
    pub read_only: Vec<PathBuf>,
    /// Bound read-only over the writable ones: a project's git directory
    /// inside a working tree Codex edits in place (its hooks and config
    /// run as the user later).
    pub protected: Vec<PathBuf>,
    /// Codex runs without its own sandbox: nothing in here may keep
    /// capabilities, as its commands run directly under it.
    pub no_inner_sandbox: bool,
    /// A durable run: it outlives the gateway, so the sandbox must not die
    /// with its parent (everything else stays the same).
    pub detached: bool,
    pub cwd: &'a Path,
}

/// Directories of the Codex CLI to make visible: the binary's own directory
/// and, for the npm package's layout (`vendor/TRIPLE/{bin,codex-path,
/// codex-resources}`), the package's platform directory.
pub fn codex_dirs(codex_bin: &Path) -> Vec<PathBuf> {
    let Some(bin_dir) = codex_bin.parent() else {
        return Vec::new();
    };
    match bin_dir.parent() {
        Some(platform) if platform.join("codex-package.json").is_file() => {
            vec![platform.to_path_buf()]
        }
        _ => vec![bin_dir.to_path_buf()],
    }
}

/// bwrap's arguments up to and including `--`. Later binds win, so the
/// agent's directories come after the `/tmp` tmpfs they may live under.
pub fn bwrap_args(m: &RunMounts<'_>) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |items: &[&std::ffi::OsStr]| a.extend(items.iter().map(|s| s.to_os_string()));
    // The user namespace keeps root's capabilities inside (the nested Codex
    // sandbox needs them) from counting outside it.
    push(&[
        "--unshare-user".as_ref(),
        "--unshare-pid".as_ref(),
        "--unshare-ipc".as_ref(),
        "--unshare-uts".as_ref(),
        "--new-session".as_ref(),
    ]);
    if !m.detached {
        push(&["--die-with-parent".as_ref()]);
    }
    if m.no_inner_sandbox {
        push(&["--cap-drop".as_ref(), "ALL".as_ref()]);
    }
    for dir in SYSTEM_DIRS.iter().map(Path::new) {
        match std::fs::read_link(dir) {
            Ok(target) => push(&["--symlink".as_ref(), target.as_os_str(), dir.as_os_str()]),
            Err(_) if dir.is_dir() => {
                push(&["--ro-bind".as_ref(), dir.as_os_str(), dir.as_os_str()])
            }
            Err(_) => {}
        }
    }
    for entry in ETC_ENTRIES.iter().map(Path::new) {
        push(&[
            "--ro-bind-try".as_ref(),
            entry.as_os_str(),
            entry.as_os_str(),
        ]);
    }
    push(&[
        "--dev".as_ref(),
        "/dev".as_ref(),
        "--proc".as_ref(),
        "/proc".as_ref(),
        "--tmpfs".as_ref(),
        "/tmp".as_ref(),
    ]);
    push(&[
        "--ro-bind".as_ref(),
        m.agent_run_bin.as_os_str(),
        m.agent_run_bin.as_os_str(),
    ]);
    // A missing Codex is agent-run's to explain, not a bwrap failure.
    for p in codex_dirs(m.codex_bin) {
        push(&["--ro-bind-try".as_ref(), p.as_os_str(), p.as_os_str()]);
    }
    for p in &m.read_only {
        push(&["--ro-bind-try".as_ref(), p.as_os_str(), p.as_os_str()]);
    }
    for p in &m.writable {
        push(&["--bind".as_ref(), p.as_os_str(), p.as_os_str()]);
    }
    for p in &m.protected {
        push(&["--ro-bind-try".as_ref(), p.as_os_str(), p.as_os_str()]);
    }
    push(&["--chdir".as_ref(), m.cwd.as_os_str(), "--".as_ref()]);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(args: &[OsString], window: &[&str]) -> bool {
        args.windows(window.len())
            .any(|w| w.iter().zip(window).all(|(a, b)| a == b))
    }

    #[test]
    fn only_the_agents_directories_are_writable_and_nothing_of_the_gateway_is_bound() {
        let mounts = RunMounts {
            writable: vec![
                "/data/agents/a/workspace".into(),
                "/data/agents/a/codex-home".into(),
            ],
            codex_bin: Path::new("/opt/codex/bin/codex"),
            agent_run_bin: Path::new("/opt/codex-mcp"),
            read_only: vec!["/data/run-login".into()],
            protected: vec!["/data/agents/a/workspace/.git".into()],
            no_inner_sandbox: false,
            detached: false,
            cwd: Path::new("/data/agents/a/workspace"),
        };
        let a = bwrap_args(&mounts);
        assert!(has(
            &a,
            &[
                "--bind",
                "/data/agents/a/workspace",
                "/data/agents/a/workspace"
            ]
        ));
        assert!(has(
            &a,
            &["--ro-bind-try", "/opt/codex/bin", "/opt/codex/bin"]
        ));
        assert!(has(&a, &["--ro-bind", "/opt/codex-mcp", "/opt/codex-mcp"]));
        assert!(has(
            &a,
            &["--ro-bind-try", "/data/run-login", "/data/run-login"]
        ));
        assert!(has(&a, &["--unshare-user", "--unshare-pid"]));
        assert!(!a.iter().any(|x| x == "/data" || x == "/" || x == "/etc"));
        assert!(!a.iter().any(|x| x == "--cap-drop"));
        // The agent's binds come after the /tmp tmpfs they may live under.
        let pos = |s: &str| a.iter().position(|x| x == s).unwrap();
        assert!(pos("/data/agents/a/codex-home") > pos("--tmpfs"));
        assert!(
            pos("/data/agents/a/workspace/.git") > pos("/data/agents/a/workspace"),
            "the protected git directory is laid over the writable workspace"
        );
        assert_eq!(a.last().unwrap(), "--");

        let a = bwrap_args(&RunMounts {
            no_inner_sandbox: true,
            ..mounts.clone()
        });
        assert!(has(&a, &["--cap-drop", "ALL"]));
        assert!(has(&a, &["--die-with-parent"]));

        // A durable run differs in that one flag only.
        let b = bwrap_args(&RunMounts {
            no_inner_sandbox: true,
            detached: true,
            ..mounts.clone()
        });
        let without: Vec<_> = a.iter().filter(|x| *x != "--die-with-parent").collect();
        assert_eq!(b.iter().collect::<Vec<_>>(), without);
    }

    #[test]
    fn npm_layout_binds_the_platform_directory() {
        let dir = tempfile::tempdir().unwrap();
        let platform = dir.path().join("vendor/x86_64");
        std::fs::create_dir_all(platform.join("bin")).unwrap();
        std::fs::write(platform.join("codex-package.json"), "{}").unwrap();
        assert_eq!(codex_dirs(&platform.join("bin/codex")), [platform]);
        assert_eq!(
            codex_dirs(Path::new("/usr/local/bin/codex")),
            [PathBuf::from("/usr/local/bin")]
        );
    }
}
