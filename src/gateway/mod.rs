//! The HTTP front: MCP over streamable HTTP (`/mcp`) and legacy SSE (`/sse` +
//! `/message`), each also under `/agents/{name}/`, plus `/health`, `/ready`
//! and `/metrics`. Authentication and agent selection happen here, once per
//! request; tools read the result from the request.

pub mod auth;
pub mod jsonrpc;
pub mod replicas;
pub mod resource_metadata;
pub mod resume;
pub mod server;
mod settings;
pub mod streamable;
mod whole_answer;

pub use settings::{
    EdgeSettings, GatewaySettings, DEFAULT_HEADER_READ_TIMEOUT_SECS, DEFAULT_IDLE_TIMEOUT_SECS,
    DEFAULT_LISTEN, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONNECTIONS,
};

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;

use crate::agent::{AGENT_HEADER, REPOSITORY_HEADER};
use crate::runs::Runner;
use crate::sessions::{SessionLimits, SessionOwner, SessionRegistry};
use crate::sse::{sse_router, SseServerConfig, SseSessions};
use crate::tools::caller::{select_agent, Caller};
use crate::tools::CodexTools;
use auth::ClientAuth;

/// HTTP settings.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Extra Host header values accepted besides loopback names; `*` accepts any.
    pub allowed_hosts: Vec<String>,
    pub max_body_bytes: usize,
    pub shutdown: CancellationToken,
    pub session_limits: SessionLimits,
    /// The other gateway replicas, when there are any.
    pub replicas: Option<Arc<replicas::Replicas>>,
}

/// Why the gateway is not ready, if it is not.
pub type Readiness = Arc<std::sync::RwLock<Option<String>>>;

#[derive(Clone)]
struct AppState {
    runner: Arc<Runner>,
    auth: Arc<ClientAuth>,
    allowed_hosts: Arc<Vec<String>>,
    sse_sessions: SseSessions,
    readiness: Readiness,
}

const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// Whether a Host header may reach the MCP endpoints: loopback names always,
/// others only when configured. Guards local gateways against DNS rebinding.
pub fn host_allowed(host: Option<&str>, allowed: &[String]) -> bool {
    if allowed.iter().any(|a| a == "*") {
        return true;
    }
    let Some(host) = host else { return false };
    let name = match host.rsplit_once(':') {
        Some((n, port)) if port.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() => n,
        _ => host,
    };
    let name = name.to_ascii_lowercase();
    LOOPBACK_HOSTS.contains(&name.as_str())
        || allowed
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&name) || a.eq_ignore_ascii_case(host))
}

fn json_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// The JSON-RPC error code of a 401 (implementation-defined server error
/// range): clients that read the body as JSON-RPC show its message.
const UNAUTHENTICATED: i64 = -32001;

/// Authenticates, checks the Host, and attaches the [`Caller`].
async fn mcp_guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if let Some(refused) = host_refused(&state, &req) {
        return refused;
    }
    // Two credentials would leave it to chance which one is checked and
    // which one a proxy or a later hop believes.
    if req.headers().get_all(header::AUTHORIZATION).iter().count() > 1 {
        return json_error(
            StatusCode::BAD_REQUEST,
            "more than one Authorization header: send exactly one `Authorization: Bearer <token>`",
        );
    }
    let authz = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let (tenant, allowed_agents) = match state.auth.authenticate(authz) {
        Ok(ok) => ok,
        Err(denied) => {
            let mut resp = jsonrpc::error_response(
                StatusCode::UNAUTHORIZED,
                UNAUTHENTICATED,
                denied.message(),
                serde_json::Value::Null,
            );
            let metadata = resource_metadata::metadata_url(req.headers(), req.uri().path());
            if let Ok(v) = HeaderValue::from_str(&denied.challenge(metadata.as_deref())) {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            return resp;
        }
    };
    let path = req.uri().path().to_owned();
    let agent = agent_from(&path, req.headers());
    // An open gateway has no identities to tell apart beyond the agent.
    let token = if state.auth.is_open() { None } else { authz };
    let owner = SessionOwner::new(&tenant, token, &agent.clone().map(|a| a.to_string()));
    req.extensions_mut().insert(owner);
    if let (Ok(name), Some(allowed)) = (&agent, &allowed_agents) {
        if !allowed.contains(name) {
            return json_error(
                StatusCode::FORBIDDEN,
                &format!("this token may not use agent {name}"),
            );
        }
    }
    let caller = Caller {
        tenant,
        agent,
        allowed_agents,
        repository: repository_from(req.headers()),
        transport: transport_of(&path),
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// The agent a request addresses: the path's, else the `X-Codex-Agent`
/// header's, else the default; or why the header cannot name one (an
/// unreadable header must not quietly mean the default agent).
fn agent_from(path: &str, headers: &http::HeaderMap) -> Result<crate::agent::AgentName, String> {
    if path.starts_with("/agents/") {
        return select_agent(path, None);
    }
    let mut values = headers.get_all(AGENT_HEADER).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(format!(
            "more than one {AGENT_HEADER} header: send one agent name"
        ));
    }
    match first.map(|v| v.to_str()) {
        Some(Err(_)) => Err(format!(
            "{AGENT_HEADER} header is not ASCII: an agent name is a DNS-1123 label (lowercase letters, digits and '-')"
        )),
        h => select_agent(path, h.and_then(Result::ok)),
    }
}

/// The `X-Codex-Repository` header, if there is exactly one readable one.
fn repository_from(headers: &http::HeaderMap) -> Result<Option<String>, String> {
    let mut values = headers.get_all(REPOSITORY_HEADER).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(format!(
            "more than one {REPOSITORY_HEADER} header: send one URL[#REF]"
        ));
    }
    first
        .map(|v| {
            v.to_str()
                .map(|s| s.trim().to_owned())
                .map_err(|_| format!("{REPOSITORY_HEADER} header is not ASCII"))
        })
        .transpose()
        .map(|v| v.filter(|s| !s.is_empty()))
}

/// The transport a request path belongs to. The routes accept a trailing
/// slash (`/agents/NAME/mcp/`), so the name is judged without it.
fn transport_of(path: &str) -> &'static str {
    let path = path.trim_end_matches('/');
    if path.ends_with("/sse") || path.ends_with("/message") {
        "sse"
    } else {
        "streamable-http"
    }
}

/// Counts requests by route template and status.
async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let resp = next.run(req).await;
    state
        .runner
        .metrics()
        .http_request(&route, resp.status().as_u16());
    resp
}

/// The Host check alone, for public documents that name the gateway by it.
async fn host_guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match host_refused(&state, &req) {
        Some(refused) => refused,
        None => next.run(req).await,
    }
}

/// 403 for a Host header that is not accepted.
fn host_refused(state: &AppState, req: &Request) -> Option<Response> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    (!host_allowed(host, &state.allowed_hosts)).then(|| {
        json_error(
            StatusCode::FORBIDDEN,
            "Host header not allowed; add it with --allowed-hosts (CODEX_MCP_ALLOWED_HOSTS)",
        )
    })
}

async fn not_found(uri: axum::http::Uri) -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        &format!(
            "no such endpoint {}: MCP is served at /mcp (streamable HTTP) and /sse (legacy SSE), \
             also under /agents/NAME/",
            uri.path()
        ),
    )
}

async fn health(State(state): State<AppState>) -> Json<serde_json::Value> {
    let report = crate::tools::session::health(&state.runner, None);
    Json(json!({
        "status": report.status,
        "problems": report.problems,
        "version": report.version,
        "uptime_seconds": report.uptime_seconds,
        "backend": report.backend,
        "active_agents": report.active_agents,
        "sse_sessions": state.sse_sessions.len(),
        "auth": if state.auth.is_open() { "open" } else { "token" },
    }))
}

async fn ready(State(state): State<AppState>) -> Response {
    let why = state.readiness.read().expect("readiness").clone();
    // Without a credential every run fails: not ready until one appears.
    match why.or_else(|| state.runner.credentials().problem()) {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let m = state.runner.metrics();
    m.sse_sessions.set(state.sse_sessions.len() as i64);
    state.runner.active_agents();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.render(),
    )
        .into_response()
}

/// Why the HTTP server stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {0}: {1}")]
    Listen(std::net::SocketAddr, std::io::Error),
    #[error("invalid HTTP setting: {0}")]
    Config(String),
}

/// Serves the gateway on its listen address until SIGINT or SIGTERM, then
/// ends open MCP sessions. `context` names the backend's home in the
/// start-up log line.
pub async fn serve_until_signal(
    runner: Arc<Runner>,
    auth: ClientAuth,
    gateway: &GatewaySettings,
    readiness: Readiness,
    replicas: Option<Arc<replicas::Replicas>>,
    context: &str,
) -> Result<(), HttpError> {
    let listen = gateway.listen;
    let shutdown = CancellationToken::new();
    let conn_limits = gateway.edge.conn_limits()?.fit_to_file_limit();
    let app = router(
        runner,
        auth,
        HttpConfig {
            allowed_hosts: gateway.allowed_hosts.clone(),
            max_body_bytes: gateway.max_body_bytes,
            shutdown: shutdown.clone(),
            session_limits: gateway.edge.sessions,
            replicas,
        },
        readiness,
    );
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| HttpError::Listen(listen, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| HttpError::Listen(listen, e))?;
    tracing::info!(
        "codex-mcp listening on http://{addr} (streamable HTTP: /mcp, SSE: /sse, per agent: /agents/NAME/mcp; {context})"
    );
    server::serve(listener, app, conn_limits, async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        shutdown.cancel();
    })
    .await;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Builds the gateway's router.
pub fn router(
    runner: Arc<Runner>,
    auth: ClientAuth,
    config: HttpConfig,
    readiness: Readiness,
) -> Router {
    let tools_runner = runner.clone();
    // Ids of sessions and runs minted here name this replica.
    let id_suffix: Arc<str> = config
        .replicas
        .as_ref()
        .map_or("", |r| r.id_suffix())
        .into();
    let run_id_suffix = id_suffix.clone();
    let factory =
        move || CodexTools::new(tools_runner.clone()).with_run_id_suffix(run_id_suffix.clone());
    let mcp_config = StreamableHttpServerConfig::default()
        // Host checks are done by `mcp_guard` for both transports alike.
        .disable_allowed_hosts()
        .with_max_request_body_bytes(config.max_body_bytes)
        .with_sse_keep_alive(Some(crate::sse::KEEP_ALIVE))
        // A stateless request answered by one message gets it as JSON, in
        // one write with its length, rather than as a one-event stream
        // whose end comes in a later write. Go proxies (Traefik, Caddy)
        // can tear down their upstream connection just after forwarding a
        // POST's body (golang/go#40747); an answer already in their read
        // buffer survives that, a stream's tail does not.
        .with_json_response(true)
        .with_cancellation_token(config.shutdown.child_token());
    let session_manager = Arc::new(LocalSessionManager::default());
    let registry = SessionRegistry::new(config.session_limits);
    let streamable = StreamableHttpService::new(
        {
            let f = factory.clone();
            move || Ok(f())
        },
        session_manager.clone(),
        mcp_config,
    );
    let (sse, sse_sessions) = sse_router(
        Arc::new(factory),
        SseServerConfig {
            keep_alive: crate::sse::KEEP_ALIVE,
            max_body_bytes: config.max_body_bytes,
            cancellation: config.shutdown.child_token(),
            registry: registry.clone(),
            id_suffix: id_suffix.to_string(),
        },
    );
    let route_state = replicas::RouteState {
        replicas: config.replicas.clone(),
        metrics: runner.metrics().clone(),
    };
    let state = AppState {
        runner,
        auth: Arc::new(auth),
        allowed_hosts: Arc::new(config.allowed_hosts),
        sse_sessions,
        readiness,
    };
    let streamable_state = streamable::StreamableState {
        registry,
        sessions: session_manager,
    };
    let streamable = tower::ServiceBuilder::new()
        .layer(middleware::from_fn(resume::resume_after_last_event))
        .service(streamable);
    let mcp = Router::new()
        .nest_service("/mcp", streamable.clone())
        .nest_service("/agents/{name}/mcp", streamable)
        .layer(middleware::from_fn_with_state(
            streamable_state,
            streamable::guard,
        ))
        .merge(sse.clone())
        .nest("/agents/{name}", sse)
        .route_layer(middleware::from_fn_with_state(
            config.max_body_bytes,
            jsonrpc::check_body,
        ))
        .route_layer(middleware::from_fn_with_state(route_state, replicas::route))
        // Route layers only: a path that matches nothing is a 404 for anyone,
        // not a 401 that sends clients looking for a way to log in.
        .route_layer(middleware::from_fn_with_state(state.clone(), mcp_guard));
    let well_known = Router::new()
        .route(
            resource_metadata::WELL_KNOWN,
            get(resource_metadata::for_origin),
        )
        .route(
            &format!("{}/{{*endpoint}}", resource_metadata::WELL_KNOWN),
            get(resource_metadata::for_endpoint),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), host_guard));
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state.clone())
        .merge(well_known)
        .merge(mcp)
        .fallback(not_found)
        // Outside the body limit, so refused bodies (413) are counted too.
        .layer(RequestBodyLimitLayer::new(config.max_body_bytes))
        .layer(middleware::from_fn_with_state(state, count_requests))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_follows_the_endpoint_with_or_without_a_slash() {
        for (path, want) in [
            ("/mcp", "streamable-http"),
            ("/agents/a/mcp/", "streamable-http"),
            ("/agents/a/mcp", "streamable-http"),
            ("/sse", "sse"),
            ("/agents/a/sse/", "sse"),
            ("/agents/a/message", "sse"),
        ] {
            assert_eq!(transport_of(path), want, "{path}");
        }
    }

    #[test]
    fn host_check() {
        let none: Vec<String> = vec![];
        assert!(host_allowed(Some("127.0.0.1:8210"), &none));
        assert!(host_allowed(Some("localhost"), &none));
        assert!(host_allowed(Some("[::1]:8210"), &none));
        assert!(!host_allowed(Some("evil.example:8210"), &none));
        assert!(!host_allowed(None, &none));
        let cfg = vec!["codex.example.com".to_string()];
        assert!(host_allowed(Some("codex.example.com"), &cfg));
        assert!(host_allowed(Some("CODEX.example.com:443"), &cfg));
        assert!(host_allowed(Some("anything"), &["*".to_string()]));
    }
}
