//! `codex-mcp agent-source`: the `source` init container of an agent with
//! `spec.source.git`. Clones the repository into the empty workspace on a
//! branch of the agent's own, once: a pod that starts again finds the
//! clone (its marker in the git directory) and does nothing. It ends with
//! one line, `REASON: message`, in its termination message, which the
//! operator turns into the `SourceReady` condition.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{check_ref, check_url};
use crate::api::source_ready::{reason, Outcome};
use crate::project::git::{Git, GitError};
use crate::project::remote::{self as auth, classify, network_envs, redact};

/// In the git directory once the clone is complete.
pub const DONE_MARKER: &str = "codex-mcp-source.json";
/// Next to the workspace while a clone is under way: a clone cut short
/// (the pod killed) is removed and done again.
const CLONING_MARKER: &str = "workspace.cloning";
/// Written before the pod's own directories exist; `agent-init` removes it.
const WRITE_CHECK: &str = ".codex-mcp-write-check";

/// What the operator puts into the init container's environment.
#[derive(Debug, Clone)]
pub struct CloneSettings {
    pub workspace: PathBuf,
    pub url: String,
    pub ref_: Option<String>,
    /// `codex/<agent>`.
    pub branch: String,
    /// The agent's private refs (`refs/codex-mcp/TENANT/AGENT`): the base
    /// `get_changes` compares with is the commit cloned.
    pub refs: String,
    pub max_bytes: u64,
    pub credentials_dir: PathBuf,
}

impl CloneSettings {
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self {
            workspace: var("CODEX_MCP_WORKSPACE").map_or_else(
                || PathBuf::from(crate::api::layout::WORKSPACE_DIR),
                PathBuf::from,
            ),
            url: var("CODEX_MCP_SOURCE_URL").unwrap_or_default(),
            ref_: var("CODEX_MCP_SOURCE_REF"),
            branch: var("CODEX_MCP_SOURCE_BRANCH").unwrap_or_default(),
            refs: var("CODEX_MCP_SOURCE_REFS").unwrap_or_default(),
            max_bytes: var("CODEX_MCP_SOURCE_MAX_BYTES")
                .and_then(|v| v.parse().ok())
                .unwrap_or(u64::MAX),
            credentials_dir: var("CODEX_MCP_GIT_CREDENTIALS_DIR").map_or_else(
                || PathBuf::from(crate::api::layout::GIT_CREDENTIALS_DIR),
                PathBuf::from,
            ),
        }
    }

    pub fn git_dir(&self) -> PathBuf {
        crate::project::plain_git_dir(&self.workspace)
    }
}

/// What the done marker records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cloned {
    pub url: String,
    #[serde(rename = "ref")]
    pub ref_: Option<String>,
    /// `None` for an empty repository.
    pub commit: Option<String>,
    pub branch: String,
    pub cloned_at: chrono::DateTime<chrono::Utc>,
}

/// The clone recorded in `git_dir`, if it is complete.
pub fn recorded(git_dir: &Path) -> Option<Cloned> {
    let text = std::fs::read_to_string(git_dir.join(DONE_MARKER)).ok()?;
    serde_json::from_str(&text).ok()
}

fn describe(c: &Cloned) -> String {
    let at = c
        .commit
        .as_deref()
        .map_or("an empty repository".to_owned(), |s| {
            format!("commit {}", &s[..s.len().min(12)])
        });
    let from = c
        .ref_
        .as_deref()
        .map_or(String::new(), |r| format!(" ({r})"));
    format!("{}{from} at {at}, on branch {}", c.url, c.branch)
}

/// Clones, or finds the clone done; never panics.
pub fn run(s: &CloneSettings) -> Outcome {
    let git_dir = s.git_dir();
    if let Some(done) = recorded(&git_dir) {
        return Outcome::new(
            reason::CLONED,
            format!("the workspace holds {}", describe(&done)),
        );
    }
    // Names only the operator knows: a guess would put the clone on a
    // branch and base the gateway never looks at.
    if s.branch.is_empty() || s.refs.is_empty() {
        return failed(
            "the pod's environment lacks CODEX_MCP_SOURCE_BRANCH or CODEX_MCP_SOURCE_REFS, \
             which the operator sets: was this pod made by the operator?"
                .into(),
        );
    }
    if let Err(e) = check_url(&s.url) {
        return Outcome::new(reason::INVALID_URL, e.to_string());
    }
    if let Some(e) = s.ref_.as_deref().and_then(|r| check_ref(r).err()) {
        return Outcome::new(reason::UNKNOWN_REF, e.to_string());
    }
    let cloning = s.workspace.with_file_name(CLONING_MARKER);
    if cloning.exists() {
        if let Err(e) = wipe(&s.workspace, &git_dir) {
            return failed(format!("removing an unfinished clone failed: {e}"));
        }
    } else if git_dir.exists() {
        return Outcome::new(
            reason::WORKSPACE_NOT_EMPTY,
            "the agent's workspace already has a history of its own (it was used without a \
             source): a source is cloned only into a new agent's empty workspace",
        );
    } else if !is_empty(&s.workspace) {
        return Outcome::new(
            reason::WORKSPACE_NOT_EMPTY,
            "the agent's workspace already holds files: a source is cloned only into a new \
             agent's empty workspace",
        );
    }
    if let Err(e) =
        std::fs::create_dir_all(&s.workspace).and_then(|()| std::fs::write(&cloning, b""))
    {
        return failed(format!("preparing {} failed: {e}", s.workspace.display()));
    }
    let credentials = match auth::prepare(&s.credentials_dir, &s.url) {
        Ok(a) => a,
        Err(o) => return o,
    };
    let outcome = clone(s, &git_dir, &credentials);
    let outcome = Outcome {
        message: redact(&outcome.message, &credentials.secrets()),
        ..outcome
    };
    if !outcome.is_success() {
        // Leave nothing half made: the next attempt starts clean.
        let _ = wipe(&s.workspace, &git_dir);
    }
    let _ = std::fs::remove_file(&cloning);
    outcome
}

fn failed(message: String) -> Outcome {
    Outcome::new(reason::CLONE_FAILED, message)
}

fn git_failed(what: &str, e: &GitError) -> Outcome {
    let text = e.to_string();
    let reason = classify(&text);
    let meaning = match reason {
        reason::AUTH_REFUSED => {
            "the server refused the credentials (or wants some and the source's Secret has none)"
        }
        reason::REPOSITORY_NOT_FOUND => {
            "the server has no repository there (or hides it from these credentials)"
        }
        reason::UNREACHABLE => "the server could not be reached from the agent's pod",
        _ => "git failed",
    };
    Outcome::new(reason, format!("{what}: {meaning}: {text}"))
}

fn clone(s: &CloneSettings, git_dir: &Path, credentials: &auth::GitAuth) -> Outcome {
    let envs = network_envs(&credentials.envs);
    let init = Git::new(&s.workspace, None);
    let separate = format!("--separate-git-dir={}", git_dir.display());
    if let Err(e) = init.run(&["init", "--quiet", &separate]) {
        return git_failed("git init", &e);
    }
    let git = Git::new(&s.workspace, Some(git_dir)).with_envs(&envs);
    if let Err(e) = git.run(&["remote", "add", "origin", &s.url]) {
        return git_failed("adding the remote", &e);
    }
    if let Err(e) = git.run(&[
        "fetch",
        "--quiet",
        "--tags",
        "origin",
        "+refs/heads/*:refs/remotes/origin/*",
    ]) {
        return git_failed(&format!("fetching {}", s.url), &e);
    }
    let commit = match target(&git, s) {
        Ok(c) => c,
        Err(o) => return o,
    };
    let checkout = match &commit {
        Some(c) => git
            .run(&["checkout", "--quiet", "--no-track", "-B", &s.branch, c])
            .and_then(|_| git.run(&["update-ref", &format!("{}/base", s.refs), c])),
        None => git.run(&["symbolic-ref", "HEAD", &format!("refs/heads/{}", s.branch)]),
    };
    if let Err(e) = checkout {
        return git_failed("checking out", &e);
    }
    let size = dir_size(git_dir) + dir_size(&s.workspace);
    if size > s.max_bytes {
        return Outcome::new(
            reason::TOO_LARGE,
            format!(
                "the clone of {} takes {}, more than the {} allowed (the operator's \
                 --source-max-size)",
                s.url,
                human_size(size),
                human_size(s.max_bytes)
            ),
        );
    }
    let done = Cloned {
        url: s.url.clone(),
        ref_: s.ref_.clone(),
        commit,
        branch: s.branch.clone(),
        cloned_at: chrono::Utc::now(),
    };
    let json = serde_json::to_vec_pretty(&done).expect("the marker serializes");
    if let Err(e) = std::fs::write(git_dir.join(DONE_MARKER), json) {
        return failed(format!("recording the clone failed: {e}"));
    }
    Outcome::new(reason::CLONED, format!("cloned {}", describe(&done)))
}

/// The commit to start from: the ref asked for, or the remote's default
/// branch; `None` for a repository without commits.
fn target(git: &Git, s: &CloneSettings) -> Result<Option<String>, Outcome> {
    let Some(r) = s.ref_.as_deref() else {
        let head = git
            .line(&["ls-remote", "--symref", "origin", "HEAD"])
            .map_err(|e| git_failed("asking for the default branch", &e))?;
        let branch = head
            .lines()
            .find_map(|l| l.strip_prefix("ref: refs/heads/"))
            .and_then(|l| l.split_whitespace().next());
        return Ok(match branch {
            Some(b) => git.resolve(&format!("refs/remotes/origin/{b}")),
            None => None,
        });
    };
    for candidate in [format!("refs/remotes/origin/{r}"), format!("refs/tags/{r}")] {
        if let Some(c) = git.resolve(&candidate) {
            return Ok(Some(c));
        }
    }
    let is_commit_id = r.len() >= 7 && r.chars().all(|c| c.is_ascii_hexdigit());
    if is_commit_id {
        if let Some(c) = git.resolve(r) {
            return Ok(Some(c));
        }
        // A commit no branch reaches: servers that allow it hand it out by id.
        if git.run(&["fetch", "--quiet", "origin", r]).is_ok() {
            if let Some(c) = git.resolve("FETCH_HEAD") {
                return Ok(Some(c));
            }
        }
    }
    Err(Outcome::new(
        reason::UNKNOWN_REF,
        format!("{} has no branch, tag or commit {r:?}", s.url),
    ))
}

fn is_empty(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.all(|e| e.is_ok_and(|e| e.file_name() == WRITE_CHECK)),
        Err(_) => true,
    }
}

/// Empties the workspace (keeping the directory, a mount point in some
/// setups) and removes the git directory.
fn wipe(workspace: &Path, git_dir: &Path) -> std::io::Result<()> {
    if let Ok(entries) = std::fs::read_dir(workspace) {
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() && !path.is_symlink() {
                std::fs::remove_dir_all(&path)?;
            } else {
                std::fs::remove_file(&path)?;
            }
        }
    }
    match std::fs::remove_dir_all(git_dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30)),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1u32 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} bytes"),
    }
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// Where the kubelet reads the termination message from.
const TERMINATION_LOG: &str = "/dev/termination-log";

/// The init container's main: the exit code.
pub fn main() -> i32 {
    let settings = CloneSettings::from_env();
    let outcome = run(&settings);
    let line = outcome.line();
    eprintln!("codex-mcp agent-source: {line}");
    let _ = std::fs::write(TERMINATION_LOG, &line);
    i32::from(!outcome.is_success())
}

#[cfg(test)]
#[path = "clone_tests.rs"]
mod tests;
