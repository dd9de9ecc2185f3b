//! `codex-mcp agent-run workspace`: one [`WorkspaceRequest`] JSON line on
//! stdin, one [`WorkspaceAnswer`] line on stdout. Runs where the workspace
//! is (a child process locally, pods/exec on Kubernetes).

use chrono::Utc;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use super::changes::{changes, ChangesPage};
use super::checkpoints::{self, CheckpointInfo, Meta};
pub use super::error::WorkspaceError;
use super::sync::{sync, SyncFile, SyncResult};
use super::{notes, PushTarget, WorkspaceRepo};

/// Largest request accepted (files with content travel in it).
const MAX_REQUEST_BYTES: u64 = 64 << 20;

/// What to do to the workspace.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Make sure the workspace has a history and a base.
    Prepare,
    Sync {
        files: Vec<SyncFile>,
        patch: Option<String>,
    },
    Changes {
        against: Option<String>,
        cursor: Option<String>,
        page_bytes: Option<usize>,
    },
    Checkpoint {
        tool: String,
        thread_id: Option<String>,
        turn: Option<u64>,
    },
    ListCheckpoints,
    Rollback {
        checkpoint: String,
    },
    Push {
        message: Option<String>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkspaceRequest {
    pub repo: WorkspaceRepo,
    #[serde(flatten)]
    pub op: Op,
}

/// The one line `agent-run workspace` answers with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceAnswer {
    Ok(Value),
    Error(String),
}

/// The agent's checkpoints and what they are relative to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CheckpointList {
    /// The commit the first checkpoint (and `get_changes` by default) compares with.
    pub base_commit: String,
    /// Oldest first.
    pub checkpoints: Vec<CheckpointInfo>,
}

/// What a rollback did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RollbackResult {
    pub checkpoint: String,
    /// Files deleted or rewritten to match the checkpoint.
    pub restored_files: Vec<String>,
    /// Later checkpoints whose changes are undone (they stay listed).
    pub undone_checkpoints: Vec<String>,
    /// What the agent's next turn is told.
    pub note: String,
    /// The workspace differed from its latest checkpoint (a chat turn's
    /// edits, a sync): that state was kept first as this checkpoint, so the
    /// rollback can be undone by rolling back to it.
    pub saved: Option<String>,
}

/// What `push` committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PushResult {
    /// The branch in your repository.
    pub branch: String,
    /// The branch's commit after the push.
    pub commit: String,
    /// False when there was nothing new to commit.
    pub committed: bool,
    /// Files the new commit changed.
    pub files: Vec<String>,
    /// The repository the branch was pushed to (an agent with a source
    /// repository); unset when the branch is in your own repository already.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_to: Option<String>,
}

/// Gives the workspace a history (a plain agent's, on first use) and a
/// base; returns the base commit.
pub fn prepare(repo: &WorkspaceRepo) -> Result<String, WorkspaceError> {
    let git = repo.git();
    if let Some(dir) = &repo.git_dir {
        if !dir.join("HEAD").exists() {
            std::fs::create_dir_all(&repo.work_tree).map_err(WorkspaceError::CreateWorkspace)?;
            git.run(&["init", "--quiet"])
                .map_err(WorkspaceError::Prepare)?;
        }
    }
    if let Some(base) = git.resolve(&repo.base_ref()) {
        return Ok(base);
    }
    let tree = git.snapshot_tree().map_err(WorkspaceError::Prepare)?;
    let base = git
        .commit_tree(&tree, None, "codex-mcp: the workspace as it was first seen")
        .map_err(WorkspaceError::Prepare)?;
    git.update_ref(&repo.base_ref(), &base)
        .map_err(WorkspaceError::Prepare)?;
    Ok(base)
}

fn rollback(repo: &WorkspaceRepo, base: &str, id: &str) -> Result<RollbackResult, WorkspaceError> {
    let (n, commit) = checkpoints::resolve(repo, id)?;
    let before = Meta {
        tool: "rollback".into(),
        thread_id: None,
        turn: None,
        created_at: Some(Utc::now()),
    };
    let saved = checkpoints::save_unrecorded(repo, base, &before)?.map(|c| c.id);
    let restored = checkpoints::restore(&repo.git(), &commit)?;
    let undone: Vec<String> = checkpoints::list(repo, base)?
        .into_iter()
        .filter(|c| checkpoints::parse_id(&repo.agent, &c.id).is_ok_and(|m| m > n))
        .map(|c| c.id)
        .collect();
    let note = notes::rollback_note(id, &undone, &restored);
    notes::leave(&repo.codex_home, &note).map_err(WorkspaceError::LeaveNote)?;
    Ok(RollbackResult {
        saved,
        checkpoint: id.to_owned(),
        restored_files: restored,
        undone_checkpoints: undone,
        note,
    })
}

fn push(repo: &WorkspaceRepo, message: Option<&str>) -> Result<PushResult, WorkspaceError> {
    let (branch, remote) = match &repo.push {
        PushTarget::Branch(b) => (b.clone(), None),
        PushTarget::Source(b) => match std::env::var("CODEX_MCP_SOURCE_URL") {
            Ok(url) if !url.is_empty() => (b.clone(), Some(url)),
            _ => {
                return Err(WorkspaceError::NothingToPushTo(format!(
                    "agent {} has no source repository to push to: create the agent with an \
                     X-Codex-Repository header (or a CodexAgent with spec.source.git), or take \
                     the changes with get_changes",
                    repo.agent
                )))
            }
        },
        PushTarget::Nowhere(why) => return Err(WorkspaceError::NothingToPushTo(why.clone())),
    };
    let failed = |source| WorkspaceError::Push {
        branch: branch.clone(),
        source,
    };
    let git = repo.git();
    let on = git
        .line(&["symbolic-ref", "--quiet", "--short", "HEAD"])
        .map_err(failed)?;
    if on != branch {
        return Err(WorkspaceError::NothingToPushTo(format!(
            "the workspace is on {on:?}, not on {branch}"
        )));
    }
    git.stage_all().map_err(failed)?;
    let staged = git.run(&["diff", "--cached", "--quiet"]).is_err();
    if staged {
        let message = message
            .filter(|m| !m.trim().is_empty())
            .unwrap_or("Changes by Codex (codex-mcp)");
        git.run(&["commit", "--quiet", "--no-verify", "-m", message])
            .map_err(failed)?;
    }
    let commit = git.line(&["rev-parse", "HEAD"]).map_err(failed)?;
    let files = if staged {
        checkpoints::changed_paths(&git, &format!("{commit}^"), &commit).map_err(failed)?
    } else {
        Vec::new()
    };
    if let Some(url) = &remote {
        push_to(&git, url, &branch)?;
    }
    Ok(PushResult {
        branch,
        commit,
        committed: staged,
        files,
        pushed_to: remote,
    })
}

/// Pushes the branch to the source repository with the credentials the
/// pod mounts, through git's environment only.
fn push_to(git: &super::git::Git, url: &str, branch: &str) -> Result<(), WorkspaceError> {
    use super::remote::{self as auth, classify, network_envs, redact};
    use crate::api::source_ready::reason;
    let failed = |reason: String| WorkspaceError::PushRemote {
        branch: branch.to_owned(),
        url: url.to_owned(),
        reason,
    };
    let dir = std::env::var_os("CODEX_MCP_GIT_CREDENTIALS_DIR").map_or_else(
        || crate::api::layout::GIT_CREDENTIALS_DIR.into(),
        std::path::PathBuf::from,
    );
    let credentials = auth::prepare(&dir, url).map_err(|o| failed(o.message))?;
    let git = git.with_envs(&network_envs(&credentials.envs));
    let refspec = format!("HEAD:refs/heads/{branch}");
    git.run(&["push", "--quiet", url, &refspec]).map_err(|e| {
        let text = redact(&e.to_string(), &credentials.secrets());
        match classify(&text) {
            reason::AUTH_REFUSED => failed(format!(
                "the server refused the credentials, or they have no write access: {text}"
            )),
            _ => failed(text),
        }
    })?;
    Ok(())
}

fn to_value<T: Serialize>(t: T) -> Value {
    serde_json::to_value(t).expect("answers serialize")
}

/// Carries out one request.
pub fn execute(req: WorkspaceRequest) -> Result<Value, WorkspaceError> {
    let repo = &req.repo;
    let base = prepare(repo)?;
    Ok(match req.op {
        Op::Prepare => to_value(serde_json::json!({ "base_commit": base })),
        Op::Sync { files, patch } => to_value::<SyncResult>(sync(repo, &files, patch.as_deref())?),
        Op::Changes {
            against,
            cursor,
            page_bytes,
        } => {
            let (name, commit) = match against.filter(|a| !a.trim().is_empty() && a != "base") {
                Some(id) => {
                    let (_, commit) = checkpoints::resolve(repo, &id)?;
                    (id, commit)
                }
                None => ("base".to_owned(), base),
            };
            to_value::<ChangesPage>(changes(repo, name, commit, cursor.as_deref(), page_bytes)?)
        }
        Op::Checkpoint {
            tool,
            thread_id,
            turn,
        } => {
            let meta = Meta {
                tool,
                thread_id,
                turn,
                created_at: Some(Utc::now()),
            };
            to_value(checkpoints::create(repo, &base, &meta)?)
        }
        Op::ListCheckpoints => to_value(CheckpointList {
            checkpoints: checkpoints::list(repo, &base)?,
            base_commit: base,
        }),
        Op::Rollback { checkpoint } => to_value(rollback(repo, &base, &checkpoint)?),
        Op::Push { message } => to_value(push(repo, message.as_deref())?),
    })
}

/// `agent-run workspace`: returns the exit code.
pub async fn main() -> i32 {
    let mut line = String::new();
    let read = tokio::io::BufReader::new(tokio::io::stdin())
        .take(MAX_REQUEST_BYTES)
        .read_line(&mut line)
        .await;
    let answer = match read {
        Err(e) => Err(WorkspaceError::Request(e.to_string())),
        Ok(_) => match serde_json::from_str::<WorkspaceRequest>(&line) {
            Err(e) => Err(WorkspaceError::Request(e.to_string())),
            Ok(req) => tokio::task::spawn_blocking(move || execute(req))
                .await
                .unwrap_or_else(|e| Err(WorkspaceError::Aborted(e.to_string()))),
        },
    };
    let (answer, code) = match answer {
        Ok(v) => (WorkspaceAnswer::Ok(v), 0),
        Err(e) => (WorkspaceAnswer::Error(e.to_string()), 1),
    };
    let mut out = serde_json::to_vec(&answer).expect("answer serializes");
    out.push(b'\n');
    let mut stdout = tokio::io::stdout();
    let _ = stdout.write_all(&out).await;
    let _ = stdout.flush().await;
    code
}
