//! codex-mcp: an MCP gateway that gives AI agents isolated, persistent
//! environments running OpenAI's Codex CLI, on one machine or on Kubernetes.
#![forbid(unsafe_code)]

pub(crate) mod agent;
pub mod api;
pub(crate) mod backend;
pub mod codex;
pub mod config;
pub mod credentials;
pub(crate) mod gateway;
pub mod gateway_kube;
pub(crate) mod kubeconfig;
pub(crate) mod lease;
pub(crate) mod metrics;
pub mod operator;
pub mod probe;
pub(crate) mod progress;
pub mod project;
pub(crate) mod runs;
pub mod serve;
pub(crate) mod sessions;
pub mod source;
pub mod sse;
pub(crate) mod telemetry;
pub(crate) mod tools;
pub(crate) mod workspace;

/// The CodexAgent name the gateway gives agent `name` of `tenant`, or why
/// they are not valid names.
pub fn resource_name(tenant: &str, name: &str) -> Result<String, agent::AgentNameError> {
    Ok(backend::kube::naming::resource_name(&agent::AgentId {
        tenant: agent::Tenant::parse(tenant)?,
        name: agent::AgentName::parse(name)?,
    }))
}
