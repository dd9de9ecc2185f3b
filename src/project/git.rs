//! Running git on an agent's workspace. Every call names its work tree and,
//! for a workspace that is no repository of its own, the separate git
//! directory; the environment is pinned so a user's global configuration,
//! pager or editor never changes what a command does.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Commits made by codex-mcp carry this identity: a user's own identity is
/// not configured where agents run (a pod), and commits by an agent should
/// say so.
const AUTHOR_NAME: &str = "Codex (codex-mcp)";
const AUTHOR_EMAIL: &str = "codex-mcp@localhost";

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git was not found on this machine's PATH (install git): {0}")]
    Missing(std::io::Error),
    #[error("running `git {command}` failed: {reason}")]
    Run { command: String, reason: String },
    #[error("`git {command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("creating a temporary index failed: {0}")]
    Scratch(std::io::Error),
}

/// A temporary directory for an index of its own.
pub fn scratch_dir() -> Result<tempfile::TempDir, GitError> {
    tempfile::tempdir().map_err(GitError::Scratch)
}

/// One workspace as git sees it.
#[derive(Debug, Clone)]
pub struct Git {
    pub work_tree: PathBuf,
    /// The repository's git directory when it is not found from the work
    /// tree (a plain agent's workspace keeps it next to, not in, the files).
    pub git_dir: Option<PathBuf>,
    /// An index other than the repository's own, for snapshots that must
    /// not disturb what the user has staged.
    pub index: Option<PathBuf>,
    /// A worktree's shared git directory (`GIT_COMMON_DIR`).
    pub common_dir: Option<PathBuf>,
    /// More environment for every command: a remote's credentials
    /// (`project::remote`), never put into argv or the repository's config.
    pub envs: Vec<(String, String)>,
}

/// Settings that would make git run a program: off for every git command
/// here, which runs outside the run's sandbox on files a run wrote. A
/// nested repository Codex made is not looked into (its config is the
/// run's), and the user's hooks are not run by our own commits.
const NO_PROGRAMS: &[&str] = &[
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "diff.ignoreSubmodules=all",
    "-c",
    "submodule.recurse=false",
];

impl Git {
    pub fn new(work_tree: &Path, git_dir: Option<&Path>) -> Self {
        Self {
            work_tree: work_tree.to_path_buf(),
            git_dir: git_dir.map(Path::to_path_buf),
            index: None,
            common_dir: None,
            envs: Vec::new(),
        }
    }

    pub fn with_envs(&self, envs: &[(String, String)]) -> Self {
        Self {
            envs: envs.to_vec(),
            ..self.clone()
        }
    }

    pub fn with_index(&self, index: &Path) -> Self {
        Self {
            index: Some(index.to_path_buf()),
            ..self.clone()
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("git");
        cmd.current_dir(&self.work_tree)
            .args(["-c", "core.quotepath=false", "-c", "core.autocrlf=false"])
            .args(NO_PROGRAMS)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_PAGER", "cat")
            .env("GIT_AUTHOR_NAME", AUTHOR_NAME)
            .env("GIT_AUTHOR_EMAIL", AUTHOR_EMAIL)
            .env("GIT_COMMITTER_NAME", AUTHOR_NAME)
            .env("GIT_COMMITTER_EMAIL", AUTHOR_EMAIL)
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_COMMON_DIR")
            .env_remove("GIT_INDEX_FILE")
            .env_remove("GIT_CONFIG_COUNT")
            .env_remove("GIT_SSH_COMMAND")
            .envs(self.envs.iter().map(|(k, v)| (k, v)));
        if std::env::var_os("PATH").is_none() {
            // agent-run may start with an empty environment.
            cmd.env("PATH", "/usr/local/bin:/usr/bin:/bin");
        }
        if let Some(dir) = &self.git_dir {
            cmd.env("GIT_DIR", dir)
                .env("GIT_WORK_TREE", &self.work_tree);
        }
        if let Some(dir) = &self.common_dir {
            cmd.env("GIT_COMMON_DIR", dir);
        }
        if let Some(index) = &self.index {
            cmd.env("GIT_INDEX_FILE", index);
        }
        cmd
    }

    /// Runs `git ARGS` with `stdin`; its standard output if it succeeded.
    pub fn run_with(&self, args: &[&str], stdin: &[u8]) -> Result<Vec<u8>, GitError> {
        let command = args.join(" ");
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => GitError::Missing(e),
                _ => GitError::Run {
                    command: command.clone(),
                    reason: e.to_string(),
                },
            })?;
        let mut input = child.stdin.take().expect("piped stdin");
        let feeding = {
            let bytes = stdin.to_vec();
            std::thread::spawn(move || {
                let _ = input.write_all(&bytes);
            })
        };
        let out = child.wait_with_output().map_err(|e| GitError::Run {
            command: command.clone(),
            reason: e.to_string(),
        })?;
        let _ = feeding.join();
        if !out.status.success() {
            return Err(GitError::Failed {
                command,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(out.stdout)
    }

    pub fn run(&self, args: &[&str]) -> Result<Vec<u8>, GitError> {
        self.run_with(args, &[])
    }

    /// `git ARGS`'s output as one trimmed line.
    pub fn line(&self, args: &[&str]) -> Result<String, GitError> {
        Ok(String::from_utf8_lossy(&self.run(args)?).trim().to_owned())
    }

    /// The object id `rev` names, if it names one.
    pub fn resolve(&self, rev: &str) -> Option<String> {
        self.line(&[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ])
        .ok()
        .filter(|s| !s.is_empty())
    }

    /// The tree of the work tree as it is now: tracked, changed and
    /// untracked files, ignored ones left out. Built in a temporary index
    /// (seeded with the real one, so unchanged files are not hashed again),
    /// so what the user has staged stays as it is.
    pub fn snapshot_tree(&self) -> Result<String, GitError> {
        let scratch = scratch_dir()?;
        let index = scratch.path().join("index");
        if let Ok(real) = self.line(&["rev-parse", "--git-path", "index"]) {
            let real = self.work_tree.join(real);
            if real.is_file() {
                let _ = std::fs::copy(&real, &index);
            }
        }
        let git = self.with_index(&index);
        git.stage_all()?;
        git.line(&["write-tree"])
    }

    /// A commit of `tree` with `parent` (if any) and `message`.
    pub fn commit_tree(
        &self,
        tree: &str,
        parent: Option<&str>,
        message: &str,
    ) -> Result<String, GitError> {
        let mut args = vec!["commit-tree", tree];
        if let Some(p) = parent {
            args.extend(["-p", p]);
        }
        args.extend(["-m", message]);
        self.line(&args)
    }

    /// Points `reference` at `commit`.
    pub fn update_ref(&self, reference: &str, commit: &str) -> Result<(), GitError> {
        self.run(&["update-ref", reference, commit]).map(|_| ())
    }
}
