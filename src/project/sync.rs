//! `sync_files`: the caller's local state into the workspace, all or
//! nothing. A patch is checked by `git apply --check` before anything is
//! written (git refuses paths outside the work tree and through symlinks);
//! files are checked against the real workspace, symlinks included. If a
//! write still fails, the workspace is restored to the snapshot taken
//! first.

use base64::Engine;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::changes::{parse_name_status, ChangedFile};
use super::checkpoints::restore;
use super::error::WorkspaceError;
use super::WorkspaceRepo;
use crate::workspace::resolve_in_workspace;

/// One file to bring into the workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SyncFile {
    /// Path relative to the workspace root.
    pub path: String,
    /// The file's full new content, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The file's full new content, base64-encoded (for binary files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_base64: Option<String>,
    /// Delete the file instead (no error if it is not there).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete: bool,
}

/// What a sync changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SyncResult {
    /// Files that now differ from before the sync.
    pub changed: Vec<ChangedFile>,
}

enum Action {
    Write(Vec<u8>),
    Delete,
}

fn action(f: &SyncFile) -> Result<Action, WorkspaceError> {
    let bad = |why: &str| WorkspaceError::Path {
        path: f.path.clone(),
        reason: why.to_owned(),
    };
    match (&f.content, &f.content_base64, f.delete) {
        (Some(text), None, false) => Ok(Action::Write(text.clone().into_bytes())),
        (None, Some(b64), false) => base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map(Action::Write)
            .map_err(|e| bad(&format!("content_base64 is not base64: {e}"))),
        (None, None, true) => Ok(Action::Delete),
        _ => Err(bad(
            "give exactly one of content, content_base64 or delete: true",
        )),
    }
}

pub fn sync(
    repo: &WorkspaceRepo,
    files: &[SyncFile],
    patch: Option<&str>,
) -> Result<SyncResult, WorkspaceError> {
    let git = repo.git();
    // Everything is checked before the first write.
    let mut planned = Vec::new();
    for f in files {
        let target =
            resolve_in_workspace(&repo.work_tree, &f.path).map_err(|e| WorkspaceError::Path {
                path: f.path.clone(),
                reason: e.to_string(),
            })?;
        if target.is_dir() {
            return Err(WorkspaceError::Path {
                path: f.path.clone(),
                reason: "is a directory in the workspace".into(),
            });
        }
        planned.push((f.path.clone(), target, action(f)?));
    }
    let patch = patch.filter(|p| !p.trim().is_empty());
    if let Some(p) = patch {
        git.run_with(
            &["apply", "--check", "--whitespace=nowarn", "-"],
            p.as_bytes(),
        )
        .map_err(WorkspaceError::Patch)?;
    }
    let before = git.snapshot_tree().map_err(WorkspaceError::Checkpoint)?;
    let written = (|| {
        if let Some(p) = patch {
            git.run_with(&["apply", "--whitespace=nowarn", "-"], p.as_bytes())
                .map_err(WorkspaceError::Patch)?;
        }
        for (path, target, act) in &planned {
            let done = match act {
                Action::Write(bytes) => target
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|_| std::fs::write(target, bytes)),
                Action::Delete => match std::fs::remove_file(target) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    other => other,
                },
            };
            done.map_err(|e| WorkspaceError::Write {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        }
        Ok(())
    })();
    if let Err(e) = written {
        restore(&git, &before)?;
        return Err(e);
    }
    let after = git.snapshot_tree().map_err(WorkspaceError::Checkpoint)?;
    let out = git
        .run(&[
            "diff-tree",
            "-r",
            "-z",
            "-M",
            "--name-status",
            &before,
            &after,
        ])
        .map_err(WorkspaceError::Diff)?;
    Ok(SyncResult {
        changed: parse_name_status(&out),
    })
}
