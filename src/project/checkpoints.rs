//! Checkpoints: one commit per writing turn on `REFS/checkpoints/N`, whose
//! tree is the whole workspace (untracked files included, ignored ones
//! not), and restoring the workspace to one exactly.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::WorkspaceError;
use super::git::{Git, GitError};
use super::WorkspaceRepo;

/// One checkpoint, as `list_checkpoints` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CheckpointInfo {
    /// Pass this to `rollback` or to `get_changes` as `against`.
    pub id: String,
    pub commit: String,
    /// The tool whose turn it follows (implement or fix).
    pub tool: String,
    pub created_at: Option<DateTime<Utc>>,
    /// The Codex conversation the turn belonged to.
    pub thread_id: Option<String>,
    /// The agent's run count when it was taken.
    pub turn: Option<u64>,
    /// Files that differ from the previous checkpoint (or the base).
    pub files: Vec<String>,
}

/// What a checkpoint's commit message says about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    pub tool: String,
    pub thread_id: Option<String>,
    pub turn: Option<u64>,
    pub created_at: Option<DateTime<Utc>>,
}

/// The commit message recording `meta` for checkpoint `id`.
pub fn message(id: &str, meta: &Meta) -> String {
    let mut m = format!(
        "codex-mcp checkpoint {id} after {}\n\nTool: {}\n",
        meta.tool, meta.tool
    );
    if let Some(t) = &meta.thread_id {
        m.push_str(&format!("Thread: {t}\n"));
    }
    if let Some(t) = meta.turn {
        m.push_str(&format!("Turn: {t}\n"));
    }
    if let Some(t) = meta.created_at {
        m.push_str(&format!("Time: {}\n", t.to_rfc3339()));
    }
    m
}

/// Reads back what [`message`] wrote; unknown lines are ignored.
pub fn parse_message(text: &str) -> Meta {
    let mut meta = Meta::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(": ") else {
            continue;
        };
        let value = value.trim();
        match key {
            "Tool" => meta.tool = value.to_owned(),
            "Thread" => meta.thread_id = Some(value.to_owned()),
            "Turn" => meta.turn = value.parse().ok(),
            "Time" => {
                meta.created_at = DateTime::parse_from_rfc3339(value)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            }
            _ => {}
        }
    }
    meta
}

/// `AGENT@N`.
pub fn checkpoint_id(agent: &str, n: u64) -> String {
    format!("{agent}@{n}")
}

/// The number of checkpoint `id` of `agent`, or why it is not one of its.
pub fn parse_id(agent: &str, id: &str) -> Result<u64, WorkspaceError> {
    let unknown = || WorkspaceError::UnknownCheckpoint {
        id: id.to_owned(),
        agent: agent.to_owned(),
    };
    let (owner, n) = id.trim().rsplit_once('@').ok_or_else(unknown)?;
    if owner != agent {
        return Err(WorkspaceError::OtherAgentsCheckpoint {
            id: id.to_owned(),
            owner: owner.to_owned(),
            agent: agent.to_owned(),
        });
    }
    n.parse().map_err(|_| unknown())
}

/// The agent's checkpoints, oldest first: (number, commit, message).
fn raw_list(repo: &WorkspaceRepo) -> Result<Vec<(u64, String, String)>, GitError> {
    let prefix = format!("{}/checkpoints/", repo.refs);
    let out = repo.git().run(&[
        "for-each-ref",
        "--format=%(refname)%00%(objectname)%00%(contents)%1e",
        &prefix,
    ])?;
    let text = String::from_utf8_lossy(&out);
    let mut list: Vec<(u64, String, String)> = text
        .split('\u{1e}')
        .filter_map(|rec| {
            let mut parts = rec.trim_start_matches('\n').splitn(3, '\0');
            let n = parts.next()?.strip_prefix(&prefix)?.parse().ok()?;
            Some((n, parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .collect();
    list.sort_by_key(|(n, _, _)| *n);
    Ok(list)
}

/// Paths that differ between two commits or trees.
pub fn changed_paths(git: &Git, from: &str, to: &str) -> Result<Vec<String>, GitError> {
    let out = git.run(&[
        "diff-tree",
        "-r",
        "-z",
        "--name-only",
        "--no-renames",
        from,
        to,
    ])?;
    Ok(split_z(&out))
}

pub fn split_z(out: &[u8]) -> Vec<String> {
    out.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

pub fn list(repo: &WorkspaceRepo, base: &str) -> Result<Vec<CheckpointInfo>, WorkspaceError> {
    let git = repo.git();
    let mut previous = base.to_owned();
    let mut out = Vec::new();
    for (n, commit, msg) in raw_list(repo).map_err(WorkspaceError::Checkpoint)? {
        let meta = parse_message(&msg);
        out.push(CheckpointInfo {
            id: checkpoint_id(&repo.agent, n),
            files: changed_paths(&git, &previous, &commit).map_err(WorkspaceError::Checkpoint)?,
            commit: commit.clone(),
            tool: meta.tool,
            created_at: meta.created_at,
            thread_id: meta.thread_id,
            turn: meta.turn,
        });
        previous = commit;
    }
    Ok(out)
}

/// Records the workspace as it is now as the next checkpoint.
pub fn create(
    repo: &WorkspaceRepo,
    base: &str,
    meta: &Meta,
) -> Result<CheckpointInfo, WorkspaceError> {
    let tree = repo
        .git()
        .snapshot_tree()
        .map_err(WorkspaceError::Checkpoint)?;
    record(repo, base, meta, &tree)
}

/// Records the workspace as a checkpoint when it differs from the latest
/// one (or the base), so a rollback never loses what was not recorded
/// (a chat turn's edits, a sync): `None` when it does not differ.
pub fn save_unrecorded(
    repo: &WorkspaceRepo,
    base: &str,
    meta: &Meta,
) -> Result<Option<CheckpointInfo>, WorkspaceError> {
    let git = repo.git();
    let latest = raw_list(repo)
        .map_err(WorkspaceError::Checkpoint)?
        .pop()
        .map_or_else(|| base.to_owned(), |(_, c, _)| c);
    let tree = git.snapshot_tree().map_err(WorkspaceError::Checkpoint)?;
    let latest_tree = git
        .line(&["rev-parse", &format!("{latest}^{{tree}}")])
        .map_err(WorkspaceError::Checkpoint)?;
    if tree == latest_tree {
        return Ok(None);
    }
    record(repo, base, meta, &tree).map(Some)
}

fn record(
    repo: &WorkspaceRepo,
    base: &str,
    meta: &Meta,
    tree: &str,
) -> Result<CheckpointInfo, WorkspaceError> {
    let git = repo.git();
    let existing = raw_list(repo).map_err(WorkspaceError::Checkpoint)?;
    let n = existing.last().map_or(1, |(n, _, _)| n + 1);
    let parent = existing
        .last()
        .map_or_else(|| base.to_owned(), |(_, c, _)| c.clone());
    let id = checkpoint_id(&repo.agent, n);
    let commit = git
        .commit_tree(tree, Some(&parent), &message(&id, meta))
        .map_err(WorkspaceError::Checkpoint)?;
    git.update_ref(&repo.checkpoint_ref(n), &commit)
        .map_err(WorkspaceError::Checkpoint)?;
    Ok(CheckpointInfo {
        id,
        files: changed_paths(&git, &parent, &commit).map_err(WorkspaceError::Checkpoint)?,
        commit,
        tool: meta.tool.clone(),
        created_at: meta.created_at,
        thread_id: meta.thread_id.clone(),
        turn: meta.turn,
    })
}

/// The commit of checkpoint `id`, refusing ids of other agents and ones
/// that do not exist.
pub fn resolve(repo: &WorkspaceRepo, id: &str) -> Result<(u64, String), WorkspaceError> {
    let n = parse_id(&repo.agent, id)?;
    let commit = repo.git().resolve(&repo.checkpoint_ref(n)).ok_or_else(|| {
        WorkspaceError::UnknownCheckpoint {
            id: id.to_owned(),
            agent: repo.agent.clone(),
        }
    })?;
    Ok((n, commit))
}

/// Makes the workspace's files exactly those of `target` (a commit or
/// tree): files it lacks are deleted, the others written as they are
/// there. Ignored files are left alone. Returns the paths it changed.
pub fn restore(git: &Git, target: &str) -> Result<Vec<String>, WorkspaceError> {
    let current = git.snapshot_tree().map_err(WorkspaceError::Restore)?;
    let out = git
        .run(&[
            "diff-tree",
            "-r",
            "-z",
            "--name-status",
            "--no-renames",
            &current,
            target,
        ])
        .map_err(WorkspaceError::Restore)?;
    let fields = split_z(&out);
    let mut write = Vec::new();
    let mut changed = Vec::new();
    for pair in fields.chunks(2) {
        let [status, path] = pair else { continue };
        changed.push(path.clone());
        if status == "D" {
            let file = git.work_tree.join(path);
            if file.symlink_metadata().is_ok() {
                std::fs::remove_file(&file).map_err(|e| WorkspaceError::RemoveFile {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            }
            remove_empty_parents(&git.work_tree, &file);
        } else {
            write.push(path.clone());
        }
    }
    if !write.is_empty() {
        let scratch = super::git::scratch_dir().map_err(WorkspaceError::Restore)?;
        let scratch_git = git.with_index(&scratch.path().join("index"));
        let mut list = write.join("\0").into_bytes();
        list.push(0);
        scratch_git
            .run(&["read-tree", target])
            .and_then(|_| scratch_git.run_with(&["checkout-index", "-f", "-z", "--stdin"], &list))
            .map_err(WorkspaceError::Restore)?;
    }
    Ok(changed)
}

fn remove_empty_parents(root: &std::path::Path, file: &std::path::Path) {
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) || std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_the_meta_both_ways() {
        let meta = Meta {
            tool: "implement".into(),
            thread_id: Some("th-1".into()),
            turn: Some(4),
            created_at: Some("2026-11-30T06:00:00Z".parse().unwrap()),
        };
        let m = message("alice@2", &meta);
        assert!(
            m.starts_with("codex-mcp checkpoint alice@2 after implement\n"),
            "{m}"
        );
        assert_eq!(parse_message(&m), meta);
        assert_eq!(parse_message("junk"), Meta::default());
    }

    #[test]
    fn ids_name_their_agent() {
        assert_eq!(checkpoint_id("alice", 3), "alice@3");
        assert_eq!(parse_id("alice", "alice@3").unwrap(), 3);
        let e = parse_id("alice", "bob@3").unwrap_err().to_string();
        assert!(e.contains("bob") && e.contains("alice"), "{e}");
        let e = parse_id("alice", "alice@x").unwrap_err().to_string();
        assert!(e.contains("no checkpoint alice@x"), "{e}");
        assert!(parse_id("alice", "3").is_err());
    }
}
