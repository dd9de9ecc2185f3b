//! Flags of the commands that run on Kubernetes: the gateway with the
//! Kubernetes backend, the operator, and an agent pod's main process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::run_settings::run_settings;
use super::{
    CodexArgs, CredentialChoiceArgs, GatewayArgs, LimitsArgs, LogArgs, RefreshArgs, SettingsError,
    DEFAULT_CREDENTIALS_SECRET,
};
use crate::api::crd::PullPolicy;
use crate::backend::kube::{DEFAULT_READY_TIMEOUT_SECS, DEFAULT_RUN_LEASE_DURATION_SECS};
use crate::credentials::AuthMethod;
use crate::gateway::replicas::ReplicaSettings;
use crate::gateway_kube::KubeGatewaySettings;
use crate::operator::leader::{
    DEFAULT_LEADER_ELECT, DEFAULT_LEASE_DURATION_SECS, DEFAULT_LEASE_NAME,
    DEFAULT_RENEW_DEADLINE_SECS, DEFAULT_RETRY_PERIOD_SECS,
};
use crate::operator::login::LoginSettings;
use crate::operator::settings::{
    memory_setting_to_quantity, Defaults, LeaseSettings, OperatorSettings, DEFAULT_AGENT_IMAGE,
    DEFAULT_CPU_LIMIT, DEFAULT_CPU_REQUEST, DEFAULT_MEMORY_LIMIT, DEFAULT_MEMORY_REQUEST,
    DEFAULT_METRICS_LISTEN, DEFAULT_PULL_POLICY, DEFAULT_RESIZE_IN_PLACE, DEFAULT_SOURCE_MAX_SIZE,
    DEFAULT_STORAGE_SIZE,
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
    #[arg(long, env = "CODEX_MCP_READY_TIMEOUT", default_value_t = DEFAULT_READY_TIMEOUT_SECS)]
    pub ready_timeout: u64,
    /// Seconds a per-agent run Lease stays valid without renewal.
    #[arg(long, env = "CODEX_MCP_RUN_LEASE_DURATION", default_value_t = DEFAULT_RUN_LEASE_DURATION_SECS)]
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
    /// IP, from the downward API). With `--replica-selector`, a request of
    /// an MCP session (or a poll of a run) that reaches another replica is
    /// forwarded to the one that holds it, so no sticky sessions are needed.
    #[arg(long, env = "CODEX_MCP_REPLICA_IP", requires = "replica_selector")]
    pub replica_ip: Option<std::net::IpAddr>,
    /// The label selector of the gateway replicas' pods, in the CodexAgents'
    /// namespace: the only addresses requests are forwarded to.
    #[arg(long, env = "CODEX_MCP_REPLICA_SELECTOR", requires = "replica_ip")]
    pub replica_selector: Option<String>,
}

impl KubeGatewayArgs {
    pub fn settings(&self) -> Result<KubeGatewaySettings, SettingsError> {
        Ok(KubeGatewaySettings {
            log: self.gateway.log.settings(),
            gateway: self.gateway.settings(),
            runs: run_settings(&self.codex, &self.limits)?,
            approval_mode: self.codex.approval_mode.clone(),
            kubeconfig: self.kubeconfig.clone(),
            namespace: self.namespace.clone(),
            ready_timeout: Duration::from_secs(self.ready_timeout),
            run_lease_duration: Duration::from_secs(self.run_lease_duration),
            identity: self.identity.clone(),
            credentials_secret: self.credentials_secret.clone(),
            repositories: self.repositories.clone(),
            replicas: self
                .replica_ip
                .zip(self.replica_selector.clone())
                .map(|(ip, selector)| ReplicaSettings {
                    own: SocketAddr::new(ip, self.gateway.listen.port()),
                    selector,
                }),
        })
    }
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
    #[arg(long, env = "CODEX_MCP_OPERATOR_LISTEN", default_value = DEFAULT_METRICS_LISTEN)]
    pub metrics_listen: SocketAddr,
    /// Elect a leader through a Lease, so only one replica reconciles.
    #[arg(long, env = "CODEX_MCP_LEADER_ELECT", default_value_t = DEFAULT_LEADER_ELECT, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Name of the leader-election Lease.
    #[arg(long, env = "CODEX_MCP_LEASE_NAME", default_value = DEFAULT_LEASE_NAME)]
    pub lease_name: String,
    /// Namespace of the Lease (default: --namespace, else the operator's own namespace).
    #[arg(long, env = "CODEX_MCP_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Seconds a Lease is valid without renewal before another replica may take it.
    #[arg(long, env = "CODEX_MCP_LEASE_DURATION", default_value_t = DEFAULT_LEASE_DURATION_SECS)]
    pub lease_duration: u64,
    /// Seconds the leader keeps trying to renew before it gives up leading.
    #[arg(long, env = "CODEX_MCP_LEASE_RENEW_DEADLINE", default_value_t = DEFAULT_RENEW_DEADLINE_SECS)]
    pub lease_renew_deadline: u64,
    /// Seconds between attempts to acquire or renew the Lease.
    #[arg(long, env = "CODEX_MCP_LEASE_RETRY_PERIOD", default_value_t = DEFAULT_RETRY_PERIOD_SECS)]
    pub lease_retry_period: u64,
    /// This replica's identity in the Lease (default: host name plus a random suffix).
    #[arg(long, env = "CODEX_MCP_OPERATOR_IDENTITY")]
    pub identity: Option<String>,
    /// Agent image (holding `codex` and `codex-mcp`) for specs that name none.
    #[arg(long, env = "CODEX_MCP_AGENT_IMAGE", default_value = DEFAULT_AGENT_IMAGE)]
    pub agent_image: String,
    /// Image pull policy for specs that name none.
    #[arg(long, env = "CODEX_MCP_IMAGE_PULL_POLICY", default_value = DEFAULT_PULL_POLICY.as_str(),
          value_parser = PULL_POLICIES.map(PullPolicy::as_str))]
    pub image_pull_policy: String,
    /// CPU limit of an agent's pod, in cores.
    #[arg(long, env = "CONTAINER_CPU_LIMIT", default_value = DEFAULT_CPU_LIMIT)]
    pub cpu_limit: String,
    /// Memory limit of an agent's pod: Docker notation (2048m = 2048 MiB) or a Kubernetes quantity (2Gi).
    #[arg(long, env = "CONTAINER_MEMORY_LIMIT", default_value = DEFAULT_MEMORY_LIMIT)]
    pub memory_limit: String,
    /// CPU an agent's pod requests (capped at its limit).
    #[arg(long, env = "CODEX_MCP_CPU_REQUEST", default_value = DEFAULT_CPU_REQUEST)]
    pub cpu_request: String,
    /// Memory an agent's pod requests (capped at its limit).
    #[arg(long, env = "CODEX_MCP_MEMORY_REQUEST", default_value = DEFAULT_MEMORY_REQUEST)]
    pub memory_request: String,
    /// Seconds without activity after which an agent is suspended (0: never).
    #[arg(long, env = "SESSION_TIMEOUT", default_value_t = crate::agent::DEFAULT_SESSION_TIMEOUT_SECS)]
    pub session_timeout: u64,
    /// Workspace size for specs that name none.
    #[arg(long, env = "CODEX_MCP_STORAGE_SIZE", default_value = DEFAULT_STORAGE_SIZE)]
    pub storage_size: String,
    /// Storage class for specs that name none (default: the cluster's default class).
    #[arg(long, env = "CODEX_MCP_STORAGE_CLASS")]
    pub storage_class: Option<String>,
    /// Largest clone of an agent's `spec.source` repository (git directory
    /// and files together); a larger one fails with `SourceReady=False`,
    /// reason `TooLarge`.
    #[arg(long, env = "CODEX_MCP_SOURCE_MAX_SIZE", default_value = DEFAULT_SOURCE_MAX_SIZE)]
    pub source_max_size: String,
    /// Apply changed agent resources to running pods in place (Kubernetes
    /// 1.35+ `pods/resize`: no restart, runs go on); off, a resource change
    /// replaces the pod. Turn it off for kubelets that cannot resize.
    #[arg(long, env = "CODEX_MCP_RESIZE_IN_PLACE", default_value_t = DEFAULT_RESIZE_IN_PLACE, action = clap::ArgAction::Set)]
    pub resize_in_place: bool,
    // Which of a referenced Secret's credentials agents get.
    #[command(flatten)]
    pub choice: CredentialChoiceArgs,
    #[command(flatten)]
    pub refresh: RefreshArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// The values `--image-pull-policy` takes.
const PULL_POLICIES: [PullPolicy; 3] = [
    PullPolicy::Always,
    PullPolicy::IfNotPresent,
    PullPolicy::Never,
];

impl OperatorArgs {
    /// The operator's settings, checked before it starts: a bad default
    /// fails the operator rather than every agent.
    pub fn settings(&self) -> Result<OperatorSettings, SettingsError> {
        let defaults = self.defaults()?;
        let method =
            AuthMethod::parse(&self.choice.auth_method).map_err(SettingsError::AuthMethod)?;
        let refresh = self.refresh.settings();
        Ok(OperatorSettings {
            log: self.log.settings(),
            kubeconfig: self.kubeconfig.clone(),
            namespace: self.namespace.clone(),
            metrics_listen: self.metrics_listen,
            leader_elect: self.leader_elect,
            lease: LeaseSettings {
                name: self.lease_name.clone(),
                namespace: self.lease_namespace.clone(),
                duration: Duration::from_secs(self.lease_duration),
                renew_deadline: Duration::from_secs(self.lease_renew_deadline),
                retry_period: Duration::from_secs(self.lease_retry_period),
            },
            identity: self.identity.clone(),
            defaults,
            login: LoginSettings {
                method,
                prefer_oauth: self.choice.prefer_oauth,
                token_url: refresh.token_url,
                client_id: refresh.client_id,
                margin: refresh.margin,
            },
        })
    }

    /// The defaults for agents' specs.
    pub fn defaults(&self) -> Result<Defaults, SettingsError> {
        let pull_policy = PULL_POLICIES
            .into_iter()
            .find(|p| p.as_str() == self.image_pull_policy)
            .unwrap_or(DEFAULT_PULL_POLICY);
        let defaults = Defaults {
            image: self.agent_image.clone(),
            pull_policy,
            cpu_limit: self.cpu_limit.trim().to_string(),
            memory_limit: memory_setting_to_quantity(&self.memory_limit),
            cpu_request: self.cpu_request.trim().to_string(),
            memory_request: self.memory_request.trim().to_string(),
            idle_timeout_secs: i64::try_from(self.session_timeout).unwrap_or(i64::MAX),
            storage_size: self.storage_size.trim().to_string(),
            storage_class: self.storage_class.clone().filter(|s| !s.is_empty()),
            resize_in_place: self.resize_in_place,
            source_max_size: self.source_max_size.trim().to_string(),
        };
        defaults.validate()?;
        Ok(defaults)
    }
}

/// `codex-mcp agent-init`, the main process of an agent's pod.
#[derive(Debug, Clone, Args)]
pub struct AgentInitArgs {
    /// Only check readiness (for the pod's probe) and exit.
    #[arg(long)]
    pub check: bool,
}
