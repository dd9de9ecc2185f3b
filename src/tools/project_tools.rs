//! The tools that move code in and out of an agent's workspace and undo
//! turns: `sync_files`, `get_changes`, `list_checkpoints`, `rollback` and
//! `push`. The gateway checks paths by their text only; the work happens
//! in the agent's environment (`agent-run workspace`), which checks them
//! again against the real files.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, Json, RoleServer};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::{check_paths, Call, CodexTools, ToolError};
use crate::metrics::ToolKind;
use crate::project::changes::ChangesPage;
use crate::project::ops::{CheckpointList, Op, PushResult, RollbackResult};
use crate::project::sync::{SyncFile, SyncResult};
use crate::tools::responses::RunInfo;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct SyncFilesArgs {
    /// Files to write or delete, paths relative to the workspace root. For
    /// each give `content` (text), `content_base64` (binary) or `delete: true`.
    #[serde(default)]
    pub files: Vec<SyncFile>,
    /// A unified diff as `git diff` prints it (paths a/... b/...), applied
    /// with `git apply` semantics before `files`. Give your uncommitted
    /// changes this way: `git diff --binary HEAD` (plus new files in
    /// `files`); `--binary` carries binary files and text in encodings
    /// other than UTF-8.
    #[serde(default)]
    pub patch: Option<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct GetChangesArgs {
    /// Compare with this checkpoint (an id from `list_checkpoints` or an
    /// implement/fix result) instead of the base: what the workspace
    /// started from (on a project, your repository's state including
    /// uncommitted files when the agent was first started on it).
    #[serde(default)]
    pub against: Option<String>,
    /// The `next_cursor` of the previous page, to get the next one.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Largest page of diff text in bytes (default 262144, from 128 to 4194304).
    #[serde(default)]
    pub page_bytes: Option<usize>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct RollbackArgs {
    /// The checkpoint to return to (`AGENT@N`, from `list_checkpoints` or an
    /// implement/fix result).
    pub checkpoint: String,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct PushArgs {
    /// The commit message (a default one names codex-mcp).
    #[serde(default)]
    pub message: Option<String>,
}

/// Paths a unified diff names (`diff --git`, `---` and `+++` lines), as
/// written there without their `a/` `b/` prefixes.
pub fn patch_paths(patch: &str) -> Vec<String> {
    let strip = |p: &str| {
        let p = p.split('\t').next().unwrap_or(p).trim();
        p.strip_prefix("a/")
            .or_else(|| p.strip_prefix("b/"))
            .unwrap_or(p)
            .to_owned()
    };
    let mut out = Vec::new();
    for line in patch.lines() {
        let named: Vec<String> = if let Some(rest) = line.strip_prefix("diff --git ") {
            rest.split_once(" b/")
                .map(|(a, b)| vec![strip(a), b.to_owned()])
                .unwrap_or_default()
        } else if let Some(p) = line
            .strip_prefix("--- ")
            .or_else(|| line.strip_prefix("+++ "))
        {
            vec![strip(p)]
        } else if let Some(p) = ["rename from ", "rename to ", "copy from ", "copy to "]
            .iter()
            .find_map(|k| line.strip_prefix(k))
        {
            vec![p.trim().to_owned()]
        } else {
            Vec::new()
        };
        for p in named {
            if p != "/dev/null" && !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

impl CodexTools {
    /// Runs a workspace operation for the calling agent and reads its answer.
    async fn workspace<T: DeserializeOwned>(&self, call: &Call, op: Op) -> Result<T, ToolError> {
        let answer = self
            .runner
            .workspace_op(&call.agent, op, &call.progress, &call.cancel)
            .await?
            .map_err(ToolError::Failed)?;
        serde_json::from_value(answer)
            .map_err(|e| ToolError::Failed(format!("the workspace's answer is malformed: {e}")))
    }

    /// Gives a plain agent's workspace its history before its first writing
    /// turn, so the base is what it held before. A failure is not the
    /// turn's: the checkpoint after it reports it.
    pub(super) async fn prepare_history(&self, call: &Call) {
        let _ = self.workspace::<serde_json::Value>(call, Op::Prepare).await;
    }

    /// Records the checkpoint after a writing turn: its id, or a warning
    /// saying why there is none (the turn's result stands either way).
    pub(super) async fn checkpoint_after(
        &self,
        call: &Call,
        tool: ToolKind,
        run: &RunInfo,
    ) -> Result<String, String> {
        let turn = match self.runner.backend().get_agent(&call.agent).await {
            Ok(Some(r)) => Some(r.runs),
            _ => None,
        };
        let op = Op::Checkpoint {
            tool: tool.as_str().to_owned(),
            thread_id: run.thread_id.clone(),
            turn,
        };
        self.workspace::<crate::project::checkpoints::CheckpointInfo>(call, op)
            .await
            .map(|c| c.id)
            .map_err(|e| format!("no checkpoint was recorded: {e}"))
    }
}

/// The workflow every one of these tools' descriptions ends with.
macro_rules! workflow {
    () => {
        " Workflow: sync_files brings your local changes in; implement/fix/chat do the work \
         (each implement and fix records a checkpoint); get_changes returns the result as one \
         patch for `git apply` (or push commits it on the agent's branch); rollback returns to \
         a checkpoint if a turn went wrong."
    };
}

#[tool_router(router = project_tools, vis = "pub(super)")]
impl CodexTools {
    /// Bring the caller's local files or patch into the workspace.
    #[tool(
        description = concat!("Bring your local state into your agent's workspace before asking it to work: files with their full content, deletions, and/or a unified diff (applied like `git apply`). All or nothing: if any path or hunk fails, the error names it and the workspace is left unchanged. Paths are relative to the workspace root.", workflow!()),
        annotations(destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn sync_files(
        &self,
        Parameters(args): Parameters<SyncFilesArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<SyncResult>, ToolError> {
        let patch = args.patch.filter(|p| !p.trim().is_empty());
        if args.files.is_empty() && patch.is_none() {
            return Err(ToolError::InvalidParams(
                "give `files` (with content, content_base64 or delete) and/or `patch`".into(),
            ));
        }
        check_paths(args.files.iter().map(|f| f.path.as_str()))?;
        if let Some(p) = &patch {
            check_paths(patch_paths(p).iter().map(String::as_str))?;
        }
        let call = self.call(&ctx).await?;
        let op = Op::Sync {
            files: args.files,
            patch,
        };
        self.workspace(&call, op).await.map(Json)
    }

    /// The workspace's changes as one git diff, paged.
    #[tool(
        description = concat!("Get your agent's changes as one git-format diff (renames, deletions and binary files included) that `git apply` accepts in your checkout: against the workspace's base (on a project: your repository's state when the agent started on it) or against a checkpoint. Large diffs come in pages: call again with next_cursor until it is absent and apply the pages concatenated in order.", workflow!()),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_changes(
        &self,
        Parameters(args): Parameters<GetChangesArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<ChangesPage>, ToolError> {
        let call = self.call(&ctx).await?;
        let op = Op::Changes {
            against: args.against,
            cursor: args.cursor,
            page_bytes: args.page_bytes,
        };
        self.workspace(&call, op).await.map(Json)
    }

    /// The agent's checkpoints.
    #[tool(
        description = concat!("List your agent's checkpoints, oldest first: one after every implement and fix, with its id (AGENT@N), the tool, time, conversation and the files it changed. Give an id to rollback, or to get_changes as `against`.", workflow!()),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_checkpoints(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<CheckpointList>, ToolError> {
        let call = self.call(&ctx).await?;
        self.workspace(&call, Op::ListCheckpoints).await.map(Json)
    }

    /// Restore the workspace to a checkpoint.
    #[tool(
        description = concat!("Return your agent's workspace to a checkpoint exactly: files changed since are restored, files created since are deleted (ignored files are left alone). The agent's conversation is told at the start of its next turn which checkpoint it was rolled back to and what was undone. Later checkpoints stay listed, so a rollback can itself be undone.", workflow!()),
        annotations(destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn rollback(
        &self,
        Parameters(args): Parameters<RollbackArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<RollbackResult>, ToolError> {
        super::require_text("checkpoint", &args.checkpoint)?;
        let call = self.call(&ctx).await?;
        let op = Op::Rollback {
            checkpoint: args.checkpoint,
        };
        self.workspace(&call, op).await.map(Json)
    }

    /// Commit the workspace on the agent's branch.
    #[tool(
        description = concat!("Commit your agent's changes on its branch (codex/NAME) in your repository, for an agent working on a project in a worktree, and say what was committed (branch, commit, files). An agent without a project, or one working in place, has no branch to push to: use get_changes instead.", workflow!()),
        annotations(destructive_hint = false, open_world_hint = false)
    )]
    async fn push(
        &self,
        Parameters(args): Parameters<PushArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<PushResult>, ToolError> {
        let call = self.call(&ctx).await?;
        let op = Op::Push {
            message: args.message,
        };
        self.workspace(&call, op).await.map(Json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_paths_are_read_from_every_header() {
        let patch = "diff --git a/src/x.rs b/src/x.rs\nindex 1..2 100644\n--- a/src/x.rs\n+++ b/src/x.rs\n@@ -1 +1 @@\n-a\n+b\n\
                     diff --git a/old b/new\nrename from old\nrename to new\n\
                     diff --git a/n.txt b/n.txt\nnew file mode 100644\n--- /dev/null\n+++ b/n.txt\n";
        assert_eq!(patch_paths(patch), ["src/x.rs", "old", "new", "n.txt"]);
        assert_eq!(
            patch_paths("--- ../../etc/passwd\n+++ b/../x\n"),
            ["../../etc/passwd", "../x"]
        );
        assert!(workflow!().contains("get_changes"));
    }
}
