//! Where things are in an agent's pod: its directories, its containers, the
//! keys of its credentials Secret, and the names of the objects it owns.
//! The operator builds the pod this way; the gateway, `agent-run`, the
//! `source` init container and `auth import` rely on it.

use kube::ResourceExt;

use super::crd::CodexAgent;

/// Where the workspace volume is mounted in the agent's pod.
pub const AGENT_ROOT: &str = "/agent";
/// The agent's files (Codex's `-C` directory), on the workspace volume.
pub const WORKSPACE_DIR: &str = "/agent/workspace";
/// `CODEX_HOME`: thread history, config and auth, on the workspace volume.
pub const CODEX_HOME_DIR: &str = "/agent/codex-home";
/// The agent's durable runs (`agent-run start`), on its volume next to the
/// workspace and the Codex home.
pub const RUNS_DIR: &str = "/agent/runs";
/// `HOME`, on the workspace volume so tool configuration persists.
pub const HOME_DIR: &str = "/agent/home";
/// Where the agent's credentials Secret is mounted, read-only.
pub const CREDENTIALS_DIR: &str = "/var/run/codex-mcp/credentials";
/// The writable scratch space; the root filesystem is read-only.
pub const TMP_DIR: &str = "/tmp";

/// The uid and gid agents run as unless their spec says otherwise.
pub const DEFAULT_UID: i64 = 1000;

/// The container in the agent's pod that runs are executed in.
pub const CONTAINER_NAME: &str = "agent";
/// The init container that clones `spec.source` into the workspace.
pub const SOURCE_CONTAINER_NAME: &str = "source";
/// Where the agent's pod mounts the Secret `spec.source.git.secretRef` names.
pub const GIT_CREDENTIALS_DIR: &str = "/var/run/codex-mcp/git";

/// Keys of the agent's credentials Secret (and files in `CREDENTIALS_DIR`).
pub const API_KEY_FILE: &str = "OPENAI_API_KEY";
pub const AUTH_JSON_FILE: &str = "auth.json";

/// The agent's pod.
pub fn pod_name(agent: &CodexAgent) -> String {
    agent.name_any()
}

/// The agent's workspace claim.
pub fn pvc_name(agent: &CodexAgent) -> String {
    format!("{}-workspace", agent.name_any())
}

/// The agent's own credentials Secret.
pub fn secret_name(agent: &CodexAgent) -> String {
    format!("{}-credentials", agent.name_any())
}
