//! The error a workspace operation fails with: what `agent-run workspace`
//! reports for any operation, whichever step (sync, changes,
//! checkpoints, push) went wrong.

use super::git::GitError;

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("reading the request failed: {0}")]
    Request(String),
    #[error("the workspace operation stopped unexpectedly: {0}")]
    Aborted(String),
    #[error("preparing the workspace's history failed: {0}")]
    Prepare(GitError),
    #[error("path {path:?}: {reason}; nothing was changed")]
    Path { path: String, reason: String },
    #[error("the patch does not apply, nothing was changed: {0}")]
    Patch(GitError),
    #[error("writing {path:?} failed: {reason}; the workspace was restored as it was")]
    Write { path: String, reason: String },
    #[error("restoring the workspace failed: {0}")]
    Restore(GitError),
    #[error("restoring the workspace failed: removing {path:?}: {reason}")]
    RemoveFile { path: String, reason: String },
    #[error("creating the workspace failed: {0}")]
    CreateWorkspace(std::io::Error),
    #[error("leaving the note for the next turn failed: {0}")]
    LeaveNote(std::io::Error),
    #[error("agent {agent} has no checkpoint {id}; list_checkpoints shows its checkpoints")]
    UnknownCheckpoint { id: String, agent: String },
    #[error("checkpoint {id} belongs to agent {owner}, not to agent {agent} you are using")]
    OtherAgentsCheckpoint {
        id: String,
        owner: String,
        agent: String,
    },
    #[error("recording the checkpoint failed: {0}")]
    Checkpoint(GitError),
    #[error("computing the changes failed: {0}")]
    Diff(GitError),
    #[error("computing the changes failed: {0}")]
    NotUtf8(String),
    #[error("bad cursor: {0}")]
    Cursor(String),
    #[error("nothing to push to: {0}")]
    NothingToPushTo(String),
    #[error("committing on {branch} failed: {source}")]
    Push { branch: String, source: GitError },
    #[error("pushing {branch} to {url} failed: {reason}; the commit stays on the branch in the workspace")]
    PushRemote {
        branch: String,
        url: String,
        reason: String,
    },
}
