//! The labels and annotations on a CodexAgent and the objects it owns, and
//! the owner reference that ties those to it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};

use super::crd::CodexAgent;

pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_AGENT: &str = "codexmcp.dev/agent";
/// The tenant the agent belongs to, on the CodexAgent (the gateway) and on
/// its children (the operator).
pub const LABEL_TENANT: &str = "codexmcp.dev/tenant";
pub const APP_NAME: &str = "codex-agent";
pub const MANAGED_BY: &str = "codex-mcp-operator";
/// The selector that finds every object this operator manages.
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=codex-mcp-operator";

/// Hash of the pod as built, so a spec change that affects the pod is seen by
/// comparing the running pod's annotation with a fresh build. The agent
/// container's resources are left out: they change in place (see
/// `operator/resize.rs`).
pub const POD_TEMPLATE_HASH: &str = "codexmcp.dev/pod-template-hash";

/// The agent's name as the client gave it (the CodexAgent's own name is
/// encoded and may be truncated).
pub const LABEL_AGENT_NAME: &str = "codexmcp.dev/agent-name";
/// Codex's cumulative usage of the current thread, `input,cached,output`:
/// needed to count a resumed thread's new tokens, and not a status field.
pub const ANNOTATION_THREAD_USAGE: &str = "codexmcp.dev/thread-usage";

/// The CodexAgent as the controlling owner, so children are
/// garbage-collected with it and their events reach the operator.
pub fn owner_reference(agent: &CodexAgent) -> OwnerReference {
    owner_reference_to(
        &agent.name_any(),
        agent.metadata.uid.as_deref().unwrap_or_default(),
    )
}

/// The same, from the CodexAgent's name and uid alone.
pub fn owner_reference_to(name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: CodexAgent::api_version(&()).into_owned(),
        kind: CodexAgent::kind(&()).into_owned(),
        name: name.to_owned(),
        uid: uid.to_owned(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}
