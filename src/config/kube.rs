//! Flags of the commands that run on Kubernetes: the gateway with the
//! Kubernetes backend, the operator, and an agent pod's main process.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::{
    CodexArgs, GatewayArgs, LimitsArgs, LogFormat, RefreshArgs, DEFAULT_CREDENTIALS_SECRET,
};

/// `codex-mcp gateway`: the gateway with the Kubernetes backend. Agent pods
/// are the sandbox there: set `CODEX_APPROVAL_MODE=external`, as Codex's own
/// sandbox generally cannot start in an unprivileged pod.
#[derive(Debug, Clone, Args)]
pub struct KubeGatewayArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    #[command(flatten)]
    pub codex: CodexArgs,
    #[command(flatten)]
    pub limits: LimitsArgs,
    /// Kubeconfig to use; in-cluster configuration (or ~/.kube/config) when unset.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of the CodexAgents (default: the gateway's own, else the kubeconfig's).
    #[arg(long, env = "CODEX_MCP_NAMESPACE")]
    pub namespace: Option<String>,
    /// Seconds to wait for an agent's pod to become ready.
    #[arg(long, env = "CODEX_MCP_READY_TIMEOUT", default_value_t = 300)]
    pub ready_timeout: u64,
    /// Seconds a per-agent run Lease stays valid without renewal.
    #[arg(long, env = "CODEX_MCP_RUN_LEASE_DURATION", default_value_t = 30)]
    pub run_lease_duration: u64,
    /// This replica's identity in run Leases (default: host name plus a random suffix).
    #[arg(long, env = "CODEX_MCP_GATEWAY_IDENTITY")]
    pub identity: Option<String>,
    /// The Secret (in the agents' namespace) with the Codex credentials:
    /// `OPENAI_API_KEY` and/or `auth.json`. Every CodexAgent the gateway
    /// creates references it; the operator gives each agent its own copy
    /// (a ChatGPT login without its refresh token) and the gateway itself
    /// never reads it. Load it with `codex-mcp auth import`.
    #[arg(
        long,
        env = "CODEX_MCP_CREDENTIALS_SECRET",
        default_value = DEFAULT_CREDENTIALS_SECRET
    )]
    pub credentials_secret: String,
    /// Which repositories each tenant's new agents may work on, and the
    /// Secret with their credentials: a file of lines
    /// `TENANT SECRET|- PATTERN... [default=URL[#REF]]` (see the README's
    /// "Agents on a repository"). Without it, no agent gets a repository
    /// from the gateway (`X-Codex-Repository` is refused).
    #[arg(long, env = "CODEX_MCP_REPOSITORIES")]
    pub repositories: Option<PathBuf>,
    /// This replica's IP address as the other replicas reach it (its pod
    /// IP, from the downward API). With `--replica-peers`, a request of an
    /// MCP session that reaches another replica is forwarded to the one
    /// that holds the session, so no sticky sessions are needed.
    #[arg(long, env = "CODEX_MCP_REPLICA_IP", requires = "replica_peers")]
    pub replica_ip: Option<std::net::IpAddr>,
    /// `HOST:PORT` of a name resolving to every gateway replica (a headless
    /// Service); the only addresses requests are forwarded to.
    #[arg(long, env = "CODEX_MCP_REPLICA_PEERS", requires = "replica_ip")]
    pub replica_peers: Option<String>,
}

/// The operator: where it watches, how it elects a leader, and the defaults
/// for what a CodexAgent's spec leaves empty.
#[derive(Debug, Clone, Args)]
pub struct OperatorArgs {
    /// Kubeconfig to use; in-cluster configuration (or ~/.kube/config) when unset.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace to watch; all namespaces when unset.
    #[arg(long, env = "CODEX_MCP_NAMESPACE")]
    pub namespace: Option<String>,
    /// Address serving /health, /ready and /metrics.
    #[arg(
        long,
        env = "CODEX_MCP_OPERATOR_LISTEN",
        default_value = "0.0.0.0:8211"
    )]
    pub metrics_listen: SocketAddr,
    /// Elect a leader through a Lease, so only one replica reconciles.
    #[arg(long, env = "CODEX_MCP_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "CODEX_MCP_LEASE_NAME",
        default_value = "codex-mcp-operator"
    )]
    pub lease_name: String,
    /// Namespace of the Lease (default: --namespace, else the operator's own namespace).
    #[arg(long, env = "CODEX_MCP_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Seconds a Lease is valid without renewal before another replica may take it.
    #[arg(long, env = "CODEX_MCP_LEASE_DURATION", default_value_t = 15)]
    pub lease_duration: u64,
    /// Seconds the leader keeps trying to renew before it gives up leading.
    #[arg(long, env = "CODEX_MCP_LEASE_RENEW_DEADLINE", default_value_t = 10)]
    pub lease_renew_deadline: u64,
    /// Seconds between attempts to acquire or renew the Lease.
    #[arg(long, env = "CODEX_MCP_LEASE_RETRY_PERIOD", default_value_t = 2)]
    pub lease_retry_period: u64,
    /// This replica's identity in the Lease (default: host name plus a random suffix).
    #[arg(long, env = "CODEX_MCP_OPERATOR_IDENTITY")]
    pub identity: Option<String>,
    /// Agent image (holding `codex` and `codex-mcp`) for specs that name none.
    #[arg(long, env = "CODEX_MCP_AGENT_IMAGE", default_value = concat!("codex-mcp-agent:", env!("CARGO_PKG_VERSION")))]
    pub agent_image: String,
    /// Image pull policy for specs that name none.
    #[arg(long, env = "CODEX_MCP_IMAGE_PULL_POLICY", default_value = "IfNotPresent",
          value_parser = ["Always", "IfNotPresent", "Never"])]
    pub image_pull_policy: String,
    /// CPU limit of an agent's pod, in cores.
    #[arg(long, env = "CONTAINER_CPU_LIMIT", default_value = "4.0")]
    pub cpu_limit: String,
    /// Memory limit of an agent's pod: Docker notation (2048m = 2048 MiB) or a Kubernetes quantity (2Gi).
    #[arg(long, env = "CONTAINER_MEMORY_LIMIT", default_value = "2048m")]
    pub memory_limit: String,
    /// CPU an agent's pod requests (capped at its limit).
    #[arg(long, env = "CODEX_MCP_CPU_REQUEST", default_value = "100m")]
    pub cpu_request: String,
    /// Memory an agent's pod requests (capped at its limit).
    #[arg(long, env = "CODEX_MCP_MEMORY_REQUEST", default_value = "256Mi")]
    pub memory_request: String,
    /// Seconds without activity after which an agent is suspended (0: never).
    #[arg(long, env = "SESSION_TIMEOUT", default_value_t = 3600)]
    pub session_timeout: u64,
    /// Workspace size for specs that name none.
    #[arg(long, env = "CODEX_MCP_STORAGE_SIZE", default_value = "10Gi")]
    pub storage_size: String,
    /// Storage class for specs that name none (default: the cluster's default class).
    #[arg(long, env = "CODEX_MCP_STORAGE_CLASS")]
    pub storage_class: Option<String>,
    /// Largest clone of an agent's `spec.source` repository (git directory
    /// and files together); a larger one fails with `SourceReady=False`,
    /// reason `TooLarge`.
    #[arg(long, env = "CODEX_MCP_SOURCE_MAX_SIZE", default_value = "2Gi")]
    pub source_max_size: String,
    /// Apply changed agent resources to running pods in place (Kubernetes
    /// 1.35+ `pods/resize`: no restart, runs go on); off, a resource change
    /// replaces the pod. Turn it off for kubelets that cannot resize.
    #[arg(long, env = "CODEX_MCP_RESIZE_IN_PLACE", default_value_t = true, action = clap::ArgAction::Set)]
    pub resize_in_place: bool,
    /// Which credential of a referenced Secret agents get: auto, api_key or oauth.
    #[arg(long, env = "CODEX_AUTH_METHOD", default_value = "auto")]
    pub auth_method: String,
    /// With auto: prefer the Secret's ChatGPT login (auth.json) over its API key.
    #[arg(long, env = "CODEX_PREFER_OAUTH", default_value_t = false, action = clap::ArgAction::Set)]
    pub prefer_oauth: bool,
    #[command(flatten)]
    pub refresh: RefreshArgs,
    /// Log level or filter.
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format.
    #[arg(long, env = "CODEX_MCP_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// `codex-mcp agent-init`, the main process of an agent's pod.
#[derive(Debug, Clone, Args)]
pub struct AgentInitArgs {
    /// Only check readiness (for the pod's probe) and exit.
    #[arg(long)]
    pub check: bool,
}
