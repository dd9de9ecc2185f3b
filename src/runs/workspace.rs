//! Workspace operations (`agent-run workspace`) under the same per-agent
//! lock as runs: a sync or rollback must not change files under a turn
//! that is running, nor a checkpoint catch one half way.

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{RunError, Runner};
use crate::agent::AgentId;
use crate::progress::Progress;
use crate::project::ops::{Op, WorkspaceRequest};

impl Runner {
    /// Carries out `op` on the agent's workspace, in its environment, once
    /// its current call is done: the answer, or the reason the operation
    /// gave for failing (`Ok(Err(..))`).
    pub async fn workspace_op(
        &self,
        agent: &AgentId,
        op: Op,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> Result<Result<Value, String>, RunError> {
        let slot = self.slot(agent);
        let _agent_guard = slot.lock(agent, progress, cancel).await?;
        self.touch(agent);
        self.backend
            .ensure_agent(agent, &|m| progress.send(m))
            .await?;
        let hold = self.backend.hold_runs(agent, cancel, &|| {}).await?;
        let client = self.backend.run_client().ok_or_else(|| {
            RunError::Unsupported("this backend has no agent-run client for workspaces".into())
        })?;
        let request = WorkspaceRequest {
            repo: self.backend.workspace_repo(agent),
            op,
        };
        let answer = client.workspace(agent, &request).await;
        if let Some(h) = hold {
            h.release().await;
        }
        Ok(answer?)
    }
}
