//! Binding agents to the user's repositories when `serve` starts: every
//! PATH is checked before anything is created, then each agent gets its
//! worktree (or works in place).
//!
//! A worktree from an earlier start is reused as it is, with its branch,
//! base and checkpoints: the agent's work persists across restarts. Where
//! only the branch is left (the data directory was removed), the worktree
//! is created again on it; the user's other worktrees are never pruned or
//! overridden. Only a first start takes a snapshot of the
//! user's working tree. In place, the base is the working tree as it is at
//! each start.

use std::path::{Path, PathBuf};

use super::binding::{shown, ProjectBinding};
use super::git::{Git, GitError};
use super::{branch_name, ref_prefix, ProjectMode, PushTarget, WorkspaceRepo};
use crate::agent::AgentId;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("--project {agent}={path}: not a directory")]
    NotDirectory { agent: String, path: String },
    #[error("--project {agent}={path}: not a git repository ({reason})")]
    NotRepository {
        agent: String,
        path: String,
        reason: String,
    },
    #[error(
        "--project {agent}={path}: this is inside the repository at {top}; give its top level"
    )]
    NotTopLevel {
        agent: String,
        path: String,
        top: String,
    },
    #[error("--project {agent}: {dir} exists but is not a worktree of {repo}; move it away")]
    ForeignWorktree {
        agent: String,
        dir: String,
        repo: String,
    },
    #[error("--project {agent}: its branch {branch} is checked out in {path}; check out another branch there")]
    BranchElsewhere {
        agent: String,
        branch: String,
        path: String,
    },
    #[error("--project {agent}: creating its worktree failed: {source}")]
    Worktree { agent: String, source: GitError },
    #[error("--project {agent}: snapshotting the working tree failed: {source}")]
    Snapshot { agent: String, source: GitError },
    #[error("--project {agent}: creating {dir} failed: {source}")]
    Directory {
        agent: String,
        dir: String,
        source: std::io::Error,
    },
}

/// An agent bound to a repository, ready for runs.
#[derive(Debug, Clone)]
pub struct BoundProject {
    pub agent: AgentId,
    /// The repository's top level.
    pub repo: PathBuf,
    pub mode: ProjectMode,
    /// Where Codex works: the worktree, or the repository itself.
    pub workspace: PathBuf,
    /// The workspace's git directory (a worktree's own, inside the
    /// repository's), named to git explicitly: `agent-run workspace` runs
    /// git outside the run's sandbox, so it must never find its git
    /// directory, or the config git reads, through a file a run can write
    /// (a worktree's `.git` file, its `commondir`).
    pub git_dir: PathBuf,
    /// The repository's shared git directory, for a worktree.
    pub common_dir: Option<PathBuf>,
    /// Seen read-only by runs: the repository's git directory (a worktree's
    /// own included), which holds hooks and config the user runs.
    pub read_only: Vec<PathBuf>,
    /// Writable for runs besides the workspace.
    pub writable: Vec<PathBuf>,
    /// Laid read-only over the writable ones (in place: the `.git`
    /// directory inside the working tree; a worktree: its `.git` file).
    pub protected: Vec<PathBuf>,
}

impl BoundProject {
    pub fn workspace_repo(&self, codex_home: &Path) -> WorkspaceRepo {
        WorkspaceRepo {
            agent: self.agent.name.to_string(),
            work_tree: self.workspace.clone(),
            git_dir: Some(self.git_dir.clone()),
            common_dir: self.common_dir.clone(),
            refs: ref_prefix(&self.agent),
            push: match self.mode {
                ProjectMode::Worktree => PushTarget::Branch(branch_name(&self.agent)),
                ProjectMode::InPlace => PushTarget::Nowhere(format!(
                    "agent {} works in place in {}: its changes are in that working tree \
                     already; commit them there",
                    self.agent.name,
                    self.repo.display()
                )),
            },
            codex_home: codex_home.to_path_buf(),
        }
    }
}

/// One entry of `git worktree list --porcelain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedWorktree {
    pub path: PathBuf,
    /// The branch checked out there, without `refs/heads/`.
    pub branch: Option<String>,
}

pub fn parse_worktrees(porcelain: &str) -> Vec<ListedWorktree> {
    let mut out: Vec<ListedWorktree> = Vec::new();
    for line in porcelain.lines() {
        if let Some(path) = line.strip_prefix("worktree ") {
            out.push(ListedWorktree {
                path: PathBuf::from(path),
                branch: None,
            });
        } else if let (Some(b), Some(last)) = (line.strip_prefix("branch "), out.last_mut()) {
            last.branch = Some(b.strip_prefix("refs/heads/").unwrap_or(b).to_owned());
        }
    }
    out
}

/// A binding whose PATH was found to be a repository's top level.
struct Checked<'a> {
    binding: &'a ProjectBinding,
    top: PathBuf,
}

fn check(binding: &ProjectBinding) -> Result<Checked<'_>, SetupError> {
    let agent = shown(&binding.agent);
    let path = binding.path.display().to_string();
    if !binding.path.is_dir() {
        return Err(SetupError::NotDirectory { agent, path });
    }
    let real = std::fs::canonicalize(&binding.path).map_err(|_| SetupError::NotDirectory {
        agent: agent.clone(),
        path: path.clone(),
    })?;
    let top = Git::new(&real, None)
        .line(&["rev-parse", "--show-toplevel"])
        .map_err(|e| SetupError::NotRepository {
            agent: agent.clone(),
            path: path.clone(),
            reason: match e {
                GitError::Failed { stderr, .. } => stderr,
                other => other.to_string(),
            },
        })?;
    let top = std::fs::canonicalize(&top).unwrap_or_else(|_| PathBuf::from(&top));
    if top != real {
        return Err(SetupError::NotTopLevel {
            agent,
            path,
            top: top.display().to_string(),
        });
    }
    Ok(Checked { binding, top })
}

/// Checks every binding, then prepares each; `agent_dir` says where an
/// agent's directory is (its worktree goes in there).
pub fn bind_all(
    bindings: &[ProjectBinding],
    mode: ProjectMode,
    agent_dir: impl Fn(&AgentId) -> PathBuf,
) -> Result<Vec<BoundProject>, SetupError> {
    let checked = bindings.iter().map(check).collect::<Result<Vec<_>, _>>()?;
    checked
        .into_iter()
        .map(|c| match mode {
            ProjectMode::Worktree => bind_worktree(&c, &agent_dir(&c.binding.agent)),
            ProjectMode::InPlace => bind_in_place(&c),
        })
        .collect()
}

/// A commit of the working tree as it is (uncommitted and untracked files
/// included) on top of HEAD, pointed at by the agent's base ref.
fn snapshot(repo: &Git, agent: &AgentId) -> Result<String, GitError> {
    let tree = repo.snapshot_tree()?;
    let head = repo.resolve("HEAD");
    let commit = repo.commit_tree(
        &tree,
        head.as_deref(),
        &format!("codex-mcp: the working tree as agent {agent} started from"),
    )?;
    repo.update_ref(&format!("{}/base", ref_prefix(agent)), &commit)?;
    Ok(commit)
}

fn absolute(base: &Path, p: &str) -> PathBuf {
    let p = base.join(p);
    std::fs::canonicalize(&p).unwrap_or(p)
}

fn bind_worktree(c: &Checked<'_>, agent_dir: &Path) -> Result<BoundProject, SetupError> {
    let agent = &c.binding.agent;
    let name = shown(agent);
    let repo = Git::new(&c.top, None);
    let wt = agent_dir.join("project");
    let wt_err = |source| SetupError::Worktree {
        agent: name.clone(),
        source,
    };
    let common = absolute(
        &c.top,
        &repo
            .line(&["rev-parse", "--git-common-dir"])
            .map_err(wt_err)?,
    );
    {
        use std::os::unix::fs::DirBuilderExt;
        // Private, as every agent directory the backend creates.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(agent_dir)
    }
    .map_err(|source| SetupError::Directory {
        agent: name.clone(),
        dir: agent_dir.display().to_string(),
        source,
    })?;
    let branch = branch_name(agent);
    let listed = repo
        .run(&["worktree", "list", "--porcelain"])
        .map_err(wt_err)?;
    let worktrees = parse_worktrees(&String::from_utf8_lossy(&listed));
    if let Some(other) = worktrees
        .iter()
        .find(|w| w.branch.as_deref() == Some(branch.as_str()) && w.path != wt)
    {
        return Err(SetupError::BranchElsewhere {
            agent: name,
            branch,
            path: other.path.display().to_string(),
        });
    }
    // Only this agent's own registration, left by a worktree directory that
    // was removed, is overridden: the user's other worktrees stay as they are.
    let add: &[&str] = if worktrees.iter().any(|w| w.path == wt) {
        &["worktree", "add", "--quiet", "--force"]
    } else {
        &["worktree", "add", "--quiet"]
    };
    let base_ref = format!("{}/base", ref_prefix(agent));
    let wt_arg = wt.to_string_lossy().into_owned();
    if wt.join(".git").exists() {
        let theirs = Git::new(&wt, None)
            .line(&["rev-parse", "--git-common-dir"])
            .map(|d| absolute(&wt, &d));
        if theirs.as_ref().ok() != Some(&common) {
            return Err(SetupError::ForeignWorktree {
                agent: name,
                dir: wt.display().to_string(),
                repo: c.top.display().to_string(),
            });
        }
    } else if repo.resolve(&format!("refs/heads/{branch}")).is_some() {
        repo.run(&[add, &[wt_arg.as_str(), branch.as_str()]].concat())
            .map_err(wt_err)?;
    } else {
        let base = snapshot(&repo, agent).map_err(|source| SetupError::Snapshot {
            agent: name.clone(),
            source,
        })?;
        repo.run(
            &[
                add,
                &["-b", branch.as_str(), wt_arg.as_str(), base.as_str()],
            ]
            .concat(),
        )
        .map_err(wt_err)?;
    }
    if repo.resolve(&base_ref).is_none() {
        let tip = repo.resolve(&format!("refs/heads/{branch}"));
        if let Some(tip) = tip {
            repo.update_ref(&base_ref, &tip).map_err(wt_err)?;
        }
    }
    let admin = Git::new(&wt, None)
        .line(&["rev-parse", "--absolute-git-dir"])
        .map_err(wt_err)?;
    Ok(BoundProject {
        agent: agent.clone(),
        repo: c.top.clone(),
        mode: ProjectMode::Worktree,
        protected: vec![wt.join(".git")],
        workspace: wt,
        git_dir: PathBuf::from(admin),
        common_dir: Some(common.clone()),
        read_only: vec![common],
        writable: Vec::new(),
    })
}

fn bind_in_place(c: &Checked<'_>) -> Result<BoundProject, SetupError> {
    let agent = &c.binding.agent;
    let repo = Git::new(&c.top, None);
    snapshot(&repo, agent).map_err(|source| SetupError::Snapshot {
        agent: shown(agent),
        source,
    })?;
    let mut protected = Vec::new();
    for arg in ["--absolute-git-dir", "--git-common-dir"] {
        if let Ok(d) = repo.line(&["rev-parse", arg]) {
            let d = absolute(&c.top, &d);
            if !protected.contains(&d) {
                protected.push(d);
            }
        }
    }
    let git_dir = protected
        .first()
        .cloned()
        .unwrap_or_else(|| c.top.join(".git"));
    let common_dir = protected.get(1).cloned();
    Ok(BoundProject {
        agent: agent.clone(),
        repo: c.top.clone(),
        mode: ProjectMode::InPlace,
        workspace: c.top.clone(),
        git_dir,
        common_dir,
        read_only: Vec::new(),
        writable: Vec::new(),
        protected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worktree_lists_are_read_with_their_branches() {
        let listed = "worktree /src/web\nHEAD 7c63\nbranch refs/heads/main\n\n\
                      worktree /data/agents/web/project\nHEAD 7c63\nbranch refs/heads/codex/web\n\
                      prunable gitdir file points to non-existent location\n\n\
                      worktree /tmp/detached\nHEAD 7c63\ndetached\n";
        let w = parse_worktrees(listed);
        assert_eq!(w.len(), 3);
        assert_eq!(w[1].path, PathBuf::from("/data/agents/web/project"));
        assert_eq!(w[1].branch.as_deref(), Some("codex/web"));
        assert_eq!(w[2].branch, None);
    }
}
