//! `codex-mcp gateway`: the same gateway as `serve`, with the Kubernetes
//! backend (a CodexAgent per agent, runs exec'd into its pod).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use tracing::{error, info, warn};

use crate::api::crd::CodexAgent;
use crate::backend::kube::{KubeBackend, KubeSettings};
use crate::codex::SandboxMode;
use crate::credentials::CredentialProvider;
use crate::gateway::auth::{AuthError, ClientAuth};
use crate::gateway::replicas::{PeerLookup, ReplicaError, ReplicaSettings, Replicas};
use crate::gateway::{serve_until_signal, GatewaySettings, HttpError, Readiness};
use crate::kubeconfig::request_kind;
use crate::metrics::Metrics;
use crate::runs::{RunSettings, Runner};
use crate::telemetry::LogSettings;

/// How `codex-mcp gateway` runs, from its flags.
#[derive(Debug, Clone)]
pub struct KubeGatewaySettings {
    pub log: LogSettings,
    pub gateway: GatewaySettings,
    pub runs: RunSettings,
    /// `CODEX_APPROVAL_MODE` as given, for the warning that names it.
    pub approval_mode: String,
    /// In-cluster configuration (or ~/.kube/config) when `None`.
    pub kubeconfig: Option<PathBuf>,
    /// The CodexAgents' namespace; the gateway's own, else the
    /// kubeconfig's, when `None`.
    pub namespace: Option<String>,
    pub ready_timeout: Duration,
    pub run_lease_duration: Duration,
    /// This replica's identity in run Leases; the host name plus a random
    /// suffix when `None`.
    pub identity: Option<String>,
    /// The Secret with the Codex credentials every CodexAgent references.
    pub credentials_secret: String,
    /// The file of repository rules; no repositories from the gateway when `None`.
    pub repositories: Option<PathBuf>,
    /// This replica and its peers, for routing sessions; `None`: one gateway.
    pub replicas: Option<ReplicaSettings>,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Replicas(#[from] ReplicaError),
    #[error("client tokens are required: pass --auth-tokens FILE (or --no-auth on loopback)")]
    NoTokens,
    #[error("loading the kubeconfig failed: {0}")]
    Kubeconfig(String),
    #[error("creating the Kubernetes client failed: {0}")]
    Client(#[source] kube::Error),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Repositories(#[from] crate::source::rules::RulesError),
}

/// The namespace a pod runs in, from its service account mount.
const IN_CLUSTER_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

fn client_auth(g: &GatewaySettings) -> Result<ClientAuth, GatewayError> {
    if g.no_auth {
        if !g.listen.ip().is_loopback() {
            return Err(AuthError::OpenBeyondLoopback(g.listen.to_string()).into());
        }
        warn!("client authentication is off (--no-auth)");
        return Ok(ClientAuth::Open);
    }
    // No generated token file: replicas share no disk, so tokens come from a
    // mounted file (a Secret) that every replica reads.
    match &g.auth_tokens {
        Some(file) => Ok(ClientAuth::from_file(file)?),
        None => Err(GatewayError::NoTokens),
    }
}

fn identity(settings: &KubeGatewaySettings) -> String {
    settings.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "gateway".into());
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        format!("{host}-{}", &suffix[..8])
    })
}

pub async fn run(settings: KubeGatewaySettings) -> Result<(), GatewayError> {
    crate::telemetry::init(&settings.log);
    if settings.runs.write_sandbox != SandboxMode::External {
        warn!(
            approval_mode = %settings.approval_mode,
            "agent pods are the sandbox: Codex's own sandbox generally cannot start in an unprivileged pod; set CODEX_APPROVAL_MODE=external"
        );
    }
    let credentials = CredentialProvider::agent_secret(settings.credentials_secret.clone());
    let auth = client_auth(&settings.gateway)?;
    let repositories = match &settings.repositories {
        Some(path) => crate::source::rules::RepositoryRules::load(path)?,
        None => crate::source::rules::RepositoryRules::default(),
    };
    let config = crate::kubeconfig::load(settings.kubeconfig.as_deref())
        .await
        .map_err(GatewayError::Kubeconfig)?;
    let namespace = settings
        .namespace
        .clone()
        .or_else(|| {
            std::fs::read_to_string(IN_CLUSTER_NAMESPACE)
                .ok()
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| config.default_namespace.clone());
    let metrics = Arc::new(Metrics::new());
    let counted = metrics.clone();
    // Every request to the API server counted, so its load per call shows.
    let client = kube::client::ClientBuilder::try_from(config)
        .map_err(GatewayError::Client)?
        .with_layer(&tower::util::MapRequestLayer::new(
            move |req: http::Request<kube::client::Body>| {
                let (verb, resource) = request_kind(req.method(), req.uri());
                counted.kube_request(verb, &resource);
                req
            },
        ))
        .build();

    let readiness: Readiness = Arc::default();
    let agents: Api<CodexAgent> = Api::namespaced(client.clone(), &namespace);
    match agents.list(&ListParams::default().limit(1)).await {
        Ok(_) => info!(%namespace, "CodexAgents are served"),
        Err(e) => {
            let why = format!(
                "listing CodexAgents in namespace {namespace} failed ({e}); is the CRD installed and the gateway's Role bound?"
            );
            error!("{why}");
            *readiness.write().expect("readiness") = Some(why);
            // Recheck in the background, so the gateway turns ready once the
            // CRD or the RBAC appear.
            let readiness = readiness.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    if agents.list(&ListParams::default().limit(1)).await.is_ok() {
                        *readiness.write().expect("readiness") = None;
                        info!("CodexAgents are served now");
                        return;
                    }
                }
            });
        }
    }
    info!(credentials = %credentials.describe(), "Codex credentials");
    let kube_settings = KubeSettings {
        namespace: namespace.clone(),
        ready_timeout: settings.ready_timeout.max(Duration::from_secs(1)),
        lease_duration: settings.run_lease_duration.max(Duration::from_secs(3)),
        identity: identity(&settings),
        credentials_secret: settings.credentials_secret.clone(),
        repositories,
    };
    info!(identity = %kube_settings.identity, "gateway replica");
    let backend = Arc::new(KubeBackend::new(client.clone(), kube_settings));
    let runner = Arc::new(Runner::new(
        backend,
        credentials,
        settings.runs.clone(),
        metrics,
    ));
    // Runs a previous gateway (or a replica that went away) left going in
    // agents' pods, or finished but unrecorded.
    runner.recover_runs();

    let replicas = match settings.replicas.clone() {
        Some(r) => Some(Arc::new(Replicas::new(
            r.own,
            replica_pods(Api::namespaced(client.clone(), &namespace), r.selector),
        )?)),
        None => None,
    };
    let context = format!("namespace {namespace}");
    Ok(serve_until_signal(
        runner,
        auth,
        &settings.gateway,
        readiness,
        replicas,
        &context,
    )
    .await?)
}

/// The gateway replicas' pod IPs, listed by their labels: every pod with an
/// address, a terminating one too (it still holds its sessions).
fn replica_pods(pods: Api<Pod>, selector: String) -> PeerLookup {
    Arc::new(move || {
        let pods = pods.clone();
        let params = ListParams::default().labels(&selector);
        Box::pin(async move {
            let list = pods.list(&params).await.map_err(|e| e.to_string())?;
            Ok(list
                .items
                .into_iter()
                .filter_map(|p| p.status?.pod_ip?.parse().ok())
                .collect())
        })
    })
}
