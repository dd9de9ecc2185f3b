//! The Kubernetes operator: reconciles each `CodexAgent` into a credentials
//! Secret, a PVC workspace and a pod, suspends idle agents and resumes them,
//! and reports status and events. One replica leads (through a Lease); the
//! others stand by. `/health`, `/ready` and `/metrics` are served on the
//! operator's own port.

pub mod act;
pub mod agent_init;
pub mod context;
pub mod decide;
mod decide_pod;
pub mod desired;
pub mod leader;
pub mod live_runs;
pub mod login;
pub mod metrics;
pub mod observe;
pub mod plan;
pub mod reconcile;
pub mod resize;
pub mod settings;
pub mod shared;
pub mod source_state;
pub mod status;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use kube::api::{Api, ListParams};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, Controller};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::api::crd::CodexAgent;
use crate::api::labels;
use leader::{LeaderElector, LeaseConfig};
use login::LoginKeeper;
use metrics::OperatorMetrics;
use reconcile::{error_policy, reconcile, Context, FIELD_MANAGER};
use settings::OperatorSettings;

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("loading the kubeconfig failed: {0}")]
    Kubeconfig(String),
    #[error("creating the Kubernetes client failed: {0}")]
    Client(#[source] kube::Error),
    #[error(
        "the CodexAgent CRD is not installed: `codex-mcp crd | kubectl apply -f -` (or apply crds/codexagents.codexmcp.dev.yaml)"
    )]
    CrdMissing,
    #[error("checking for the CodexAgent CRD failed: {0}")]
    CrdCheck(#[source] kube::Error),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, #[source] std::io::Error),
    #[error(transparent)]
    Leader(#[from] leader::LeaderError),
    #[error("the lease renewal task failed: {0}")]
    LeaseTask(#[source] tokio::task::JoinError),
}

/// What the HTTP endpoints report.
struct Shared {
    metrics: Arc<OperatorMetrics>,
    store: RwLock<Option<Store<CodexAgent>>>,
    ready: AtomicBool,
    identity: String,
}

async fn client(settings: &OperatorSettings) -> Result<Client, OperatorError> {
    let config = crate::kubeconfig::load(settings.kubeconfig.as_deref())
        .await
        .map_err(OperatorError::Kubeconfig)?;
    Client::try_from(config).map_err(OperatorError::Client)
}

/// Runs the operator until SIGTERM/SIGINT (`Ok`) or until leadership is lost
/// (`Err`: the process must exit so that it never reconciles unled).
pub async fn run(settings: OperatorSettings) -> Result<(), OperatorError> {
    crate::telemetry::init(&settings.log);
    let defaults = settings.defaults.clone();
    let client = client(&settings).await?;
    let identity = settings
        .identity
        .clone()
        .filter(|i| !i.is_empty())
        .unwrap_or_else(leader::default_identity);
    let metrics = Arc::new(OperatorMetrics::new());
    let logins = LoginKeeper::new(settings.login.clone(), metrics.clone());
    let shared = Arc::new(Shared {
        metrics: metrics.clone(),
        store: RwLock::new(None),
        ready: AtomicBool::new(false),
        identity: identity.clone(),
    });

    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            shutdown_signal().await;
            info!("shutting down");
            shutdown.cancel();
        }
    });
    serve_http(settings.metrics_listen, shared.clone()).await?;

    let agents: Api<CodexAgent> = match &settings.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    match agents.list(&ListParams::default().limit(1)).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => return Err(OperatorError::CrdMissing),
        Err(e) => return Err(OperatorError::CrdCheck(e)),
    }
    info!(
        namespace = settings.namespace.as_deref().unwrap_or("<all>"),
        %identity,
        image = %defaults.image,
        "operator starting"
    );
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: FIELD_MANAGER.into(),
            instance: Some(identity.clone()),
        },
    );
    let ctx = Arc::new(Context::new(
        client.clone(),
        defaults,
        recorder,
        metrics.clone(),
        logins,
    ));

    let namespace = settings.namespace.as_deref();
    if !settings.leader_elect {
        shared.ready.store(true, Ordering::SeqCst);
        metrics.leader.set(1);
        run_controller(client, namespace, ctx, shutdown, &shared).await;
        return Ok(());
    }

    let lease = &settings.lease;
    let lease_namespace = lease
        .namespace
        .clone()
        .or_else(|| settings.namespace.clone())
        .or_else(|| {
            std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| client.default_namespace().to_string());
    let mut elector = LeaderElector::new(
        client.clone(),
        LeaseConfig {
            name: lease.name.clone(),
            namespace: lease_namespace,
            identity,
            lease_duration: lease.duration,
            renew_deadline: lease.renew_deadline,
            retry_period: lease.retry_period,
        },
    )?;
    // A standby replica is healthy and ready; it just does not reconcile.
    shared.ready.store(true, Ordering::SeqCst);
    if elector.acquire(&shutdown).await.is_none() {
        return Ok(());
    }
    metrics.leader.set(1);
    let stop_renewing = CancellationToken::new();
    let mut holding = tokio::spawn({
        let stop = stop_renewing.clone();
        async move {
            let held = elector.hold(&stop).await;
            (elector, held)
        }
    });
    tokio::select! {
        () = run_controller(client, namespace, ctx, shutdown, &shared) => {
            stop_renewing.cancel();
            let (mut elector, held) = holding.await.map_err(OperatorError::LeaseTask)?;
            metrics.leader.set(0);
            held?;
            if let Err(e) = elector.release().await {
                warn!("{e}");
            }
            Ok(())
        }
        joined = &mut holding => {
            // Dropping the controller aborts its in-flight reconciles.
            metrics.leader.set(0);
            let (_, held) = joined.map_err(OperatorError::LeaseTask)?;
            let err = held.err().unwrap_or_else(|| leader::LeaderError::Lost(lease.name.clone()));
            error!("{err}: stopping so that another replica can lead");
            Err(err.into())
        }
    }
}

/// Runs the controller until `shutdown`, letting in-flight reconciles finish.
async fn run_controller(
    client: Client,
    ns: Option<&str>,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
    shared: &Shared,
) {
    fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let managed = watcher::Config::default().labels(labels::MANAGED_SELECTOR);
    // Credentials Secrets people (or `codex-mcp auth import`) write, and the
    // operator itself rewrites on refresh: a change reaches every agent that
    // references the Secret at once.
    let unmanaged = watcher::Config::default().labels(&format!(
        "{}!={}",
        labels::LABEL_MANAGED_BY,
        labels::MANAGED_BY
    ));
    let controller = Controller::new(api::<CodexAgent>(&client, ns), watcher::Config::default());
    let agents = controller.store();
    let controller = controller
        .owns(api::<Pod>(&client, ns), managed.clone())
        .owns(api::<PersistentVolumeClaim>(&client, ns), managed.clone())
        .owns(api::<Secret>(&client, ns), managed)
        .watches(api::<Secret>(&client, ns), unmanaged, move |secret| {
            referencing(&agents, &secret)
        })
        .graceful_shutdown_on(async move { shutdown.cancelled_owned().await });
    if let Ok(mut store) = shared.store.write() {
        *store = Some(controller.store());
    }
    info!("reconciling CodexAgents");
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((agent, _)) => debug!(agent = %agent.name, "reconciled"),
                // Failed reconciles are logged by the error policy.
                Err(kube::runtime::controller::Error::ReconcilerFailed(..)) => {}
                Err(e) => warn!("controller: {e}"),
            }
        })
        .await;
    info!("controller stopped");
}

/// The agents whose credentials come from `secret`.
fn referencing(agents: &Store<CodexAgent>, secret: &Secret) -> Vec<ObjectRef<CodexAgent>> {
    let namespace = secret.namespace();
    let name = secret.name_any();
    agents
        .state()
        .iter()
        .filter(|a| a.namespace() == namespace)
        .filter(|a| {
            a.spec
                .credentials
                .as_ref()
                .is_some_and(|c| c.secret_ref.name == name)
        })
        .map(|a| ObjectRef::from_obj(a.as_ref()))
        .collect()
}

async fn serve_http(listen: SocketAddr, shared: Arc<Shared>) -> Result<(), OperatorError> {
    let app = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| OperatorError::Listen(listen, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| OperatorError::Listen(listen, e))?;
    info!("operator listening on http://{addr} (/health, /ready, /metrics)");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            error!("the HTTP server failed: {e}");
        }
    });
    Ok(())
}

async fn health(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    Json(serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "identity": shared.identity,
        "leader": shared.metrics.leader.get() == 1,
    }))
}

async fn ready(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    if shared.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

async fn metrics_text(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let store = shared.store.read().ok().and_then(|s| s.clone());
    if let Some(store) = store {
        shared.metrics.set_agents(
            store
                .state()
                .iter()
                .map(|a| a.status.as_ref().and_then(|s| s.phase)),
        );
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        shared.metrics.render(),
    )
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            warn!("cannot watch for SIGTERM ({e}); stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
