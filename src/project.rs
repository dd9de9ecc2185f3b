//! Agents on the user's own code: a workspace that is a git work tree, so
//! the caller's changes can be synced in, Codex's changes read back as one
//! diff (or committed on a branch), and every writing turn checkpointed.
//!
//! The gateway only describes a workspace ([`WorkspaceRepo`]) and asks;
//! every operation on its files runs as `codex-mcp agent-run workspace`
//! in the agent's environment ([`ops`]), a child process locally and
//! pods/exec on Kubernetes, so the gateway never reads the agent's disk.
//!
//! Private refs, per agent: `refs/codex-mcp/TENANT/AGENT/base` (what
//! `get_changes` compares with) and `.../checkpoints/N` (one commit per
//! `implement` or `fix`). Checkpoint ids shown to callers are `AGENT@N`.

pub mod binding;
pub mod changes;
pub mod checkpoints;
pub mod error;
pub mod git;
mod nested;
pub mod notes;
pub mod ops;
pub mod remote;
pub mod setup;
pub mod sync;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::agent::AgentId;

/// How an agent works on its project (`--project-mode`, whose help says
/// the same to users).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProjectMode {
    /// In a git worktree on the branch `codex/NAME`; the user's working
    /// tree is never touched.
    Worktree,
    /// In the repository's working tree itself.
    InPlace,
}

/// How agents work on their project unless told (`CODEX_MCP_PROJECT_MODE`).
pub const DEFAULT_PROJECT_MODE: ProjectMode = ProjectMode::Worktree;

/// Where `push` commits an agent's work, or why it cannot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushTarget {
    /// The branch checked out in the workspace (a worktree of the user's
    /// repository, so the branch is there already).
    Branch(String),
    /// This branch, pushed to the agent's source repository (Kubernetes:
    /// the pod's `CODEX_MCP_SOURCE_URL`, with the credentials mounted there).
    Source(String),
    /// Nothing to push to, and why.
    Nowhere(String),
}

/// An agent's workspace as git sees it: everything `agent-run workspace`
/// needs besides the operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceRepo {
    /// The agent's name, which checkpoint ids carry.
    pub agent: String,
    /// The directory Codex works in.
    pub work_tree: PathBuf,
    /// A git directory apart from the files, for a workspace that is no
    /// repository (a plain agent's); created on first use.
    #[serde(default)]
    pub git_dir: Option<PathBuf>,
    /// The shared git directory of a worktree's repository (git would
    /// otherwise read it from the worktree's `commondir` file).
    #[serde(default)]
    pub common_dir: Option<PathBuf>,
    /// This agent's private refs: `refs/codex-mcp/TENANT/AGENT`.
    pub refs: String,
    pub push: PushTarget,
    /// The agent's Codex home: a rollback leaves its note for the next turn there.
    pub codex_home: PathBuf,
}

/// `refs/codex-mcp/TENANT/AGENT`.
pub fn ref_prefix(agent: &AgentId) -> String {
    format!("refs/codex-mcp/{}/{}", agent.tenant, agent.name)
}

/// The branch an agent on a project works on: `codex/NAME`, with the
/// tenant in between for agents beyond the default tenant.
pub fn branch_name(agent: &AgentId) -> String {
    if agent.tenant.as_str() == crate::agent::Tenant::DEFAULT {
        format!("codex/{}", agent.name)
    } else {
        format!("codex/{}/{}", agent.tenant, agent.name)
    }
}

/// Where a plain agent keeps its workspace's history: next to the
/// workspace on the same volume, so the files Codex sees stay as they are.
pub fn plain_git_dir(workspace: &Path) -> PathBuf {
    workspace.with_file_name("workspace.git")
}

impl WorkspaceRepo {
    /// A plain agent's workspace (no project).
    pub fn plain(agent: &AgentId, workspace: &Path, codex_home: &Path) -> Self {
        Self {
            agent: agent.name.to_string(),
            work_tree: workspace.to_path_buf(),
            git_dir: Some(plain_git_dir(workspace)),
            common_dir: None,
            refs: ref_prefix(agent),
            push: PushTarget::Nowhere(format!(
                "agent {} has no project, so there is no branch to push to: start the gateway \
                 with --project {}=PATH to work on a git repository, or take the changes with \
                 get_changes",
                agent.name, agent.name
            )),
            codex_home: codex_home.to_path_buf(),
        }
    }

    pub fn base_ref(&self) -> String {
        format!("{}/base", self.refs)
    }

    pub fn checkpoint_ref(&self, n: u64) -> String {
        format!("{}/checkpoints/{n}", self.refs)
    }

    pub fn git(&self) -> git::Git {
        let mut git = git::Git::new(&self.work_tree, self.git_dir.as_deref());
        git.common_dir.clone_from(&self.common_dir);
        git
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{AgentName, Tenant};

    fn id(tenant: &str, name: &str) -> AgentId {
        AgentId {
            tenant: Tenant::parse(tenant).unwrap(),
            name: AgentName::parse(name).unwrap(),
        }
    }

    #[test]
    fn refs_and_branches_name_the_tenant_and_agent() {
        let a = id("default", "alice");
        assert_eq!(ref_prefix(&a), "refs/codex-mcp/default/alice");
        assert_eq!(branch_name(&a), "codex/alice");
        assert_eq!(branch_name(&id("team", "alice")), "codex/team/alice");
        let repo =
            WorkspaceRepo::plain(&a, Path::new("/d/agents/alice/workspace"), Path::new("/h"));
        assert_eq!(repo.base_ref(), "refs/codex-mcp/default/alice/base");
        assert_eq!(
            repo.checkpoint_ref(3),
            "refs/codex-mcp/default/alice/checkpoints/3"
        );
        assert_eq!(
            repo.git_dir.as_deref(),
            Some(Path::new("/d/agents/alice/workspace.git"))
        );
        assert!(
            matches!(repo.push, PushTarget::Nowhere(ref why) if why.contains("--project alice=PATH"))
        );
    }
}
