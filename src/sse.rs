//! The legacy HTTP+SSE transport of MCP (protocol revision 2024-11-05).
//!
//! `GET /sse` opens a session and announces, as its first `endpoint` event,
//! where the client must `POST` its JSON-RPC messages; every server message
//! then travels down the same event stream. rmcp no longer ships a server for
//! this transport, so each session drives a fresh rmcp service over a
//! sink/stream pair.

use std::collections::HashMap;
use std::future::ready;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, OriginalUri, Query, Request, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Extension;
use axum::Router;
use bytes::Bytes;
use futures::channel::mpsc as server_channel;
use futures::{stream, Stream, StreamExt};
use rmcp::model::{ClientJsonRpcMessage, GetExtensions, ServerJsonRpcMessage};
use rmcp::service::serve_server_with_ct;
use rmcp::ServerHandler;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::sessions::{SessionKind, SessionOwner, SessionRegistry};

/// Messages buffered per direction before the sender waits: enough for a
/// burst of pipelined requests, small enough to push back on a runaway client.
const CHANNEL_CAPACITY: usize = 64;

/// Feeds a session's service with what its client POSTs.
type Inbox = mpsc::Sender<ClientJsonRpcMessage>;

/// Creates the MCP service that serves one session.
pub type ServiceFactory<S> = Arc<dyn Fn() -> S + Send + Sync>;

/// How often an open stream sends a keep-alive, on both transports. Here,
/// below the gateway, so the SSE router's own default is the gateway's.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Largest accepted request body on both transports unless told
/// (`CODEX_MCP_MAX_BODY_BYTES`); here for the same reason.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 << 20;

/// Settings of the SSE transport.
#[derive(Debug, Clone)]
pub struct SseServerConfig {
    /// Interval of the comment lines that keep idle proxies from closing the stream.
    pub keep_alive: Duration,
    /// Largest accepted `POST /message` body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Cancelling it ends every session, for a graceful shutdown.
    pub cancellation: CancellationToken,
    /// Counts sessions against the caps shared with streamable HTTP.
    pub registry: SessionRegistry,
    /// Appended to every session id minted here: the replica's tag, so
    /// that a message reaching another replica is routed back here.
    pub id_suffix: String,
}

impl Default for SseServerConfig {
    fn default() -> Self {
        Self {
            keep_alive: KEEP_ALIVE,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            cancellation: CancellationToken::new(),
            registry: SessionRegistry::default(),
            id_suffix: String::new(),
        }
    }
}

/// The open sessions of one [`sse_router`], shared by all places it is mounted.
#[derive(Debug, Clone, Default)]
pub struct SseSessions {
    inner: Arc<Mutex<HashMap<String, (Inbox, SessionOwner)>>>,
}

impl SseSessions {
    /// Number of open sessions.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Inbox, SessionOwner)>> {
        // The map stays consistent under a panic elsewhere, so poisoning is moot.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn insert(&self, id: String, sender: Inbox, owner: SessionOwner) {
        self.lock().insert(id, (sender, owner));
    }

    fn session(&self, id: &str) -> Option<(Inbox, SessionOwner)> {
        self.lock().get(id).cloned()
    }

    fn remove(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// Why a `POST /message` was refused.
#[derive(Debug, thiserror::Error)]
pub enum SseError {
    #[error("missing query parameter sessionId")]
    MissingSessionId,
    #[error("unknown session {0}: open one with GET /sse")]
    UnknownSession(String),
    #[error("session {0} has ended: open a new one with GET /sse")]
    SessionEnded(String),
    #[error("malformed JSON-RPC message: {0}")]
    MalformedMessage(#[from] serde_json::Error),
    #[error("this SSE session was opened by another client (token, tenant or agent differ): open a session of your own with GET /sse")]
    NotOwner,
}

impl IntoResponse for SseError {
    fn into_response(self) -> Response {
        let status = match self {
            Self::MissingSessionId | Self::MalformedMessage(_) => StatusCode::BAD_REQUEST,
            Self::UnknownSession(_) | Self::SessionEnded(_) => StatusCode::NOT_FOUND,
            Self::NotOwner => StatusCode::FORBIDDEN,
        };
        (status, self.to_string()).into_response()
    }
}

struct Shared<S> {
    factory: ServiceFactory<S>,
    config: SseServerConfig,
    sessions: SseSessions,
}

/// Builds the `GET /sse` and `POST /message` routes.
///
/// The router may be merged at the root and nested under prefixes at the same
/// time; each session announces the message route under the prefix it was
/// opened at.
pub fn sse_router<S: ServerHandler>(
    factory: ServiceFactory<S>,
    config: SseServerConfig,
) -> (Router, SseSessions) {
    let sessions = SseSessions::default();
    let max_body_bytes = config.max_body_bytes;
    let shared = Arc::new(Shared {
        factory,
        config,
        sessions: sessions.clone(),
    });
    let router = Router::new()
        .route("/sse", get(open_session::<S>))
        .route(
            "/message",
            post(post_message::<S>).layer(DefaultBodyLimit::max(max_body_bytes)),
        )
        .with_state(shared);
    (router, sessions)
}

async fn open_session<S: ServerHandler>(
    State(shared): State<Arc<Shared<S>>>,
    request: Request,
) -> Result<Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>, Response> {
    let (mut parts, _body) = request.into_parts();
    let owner = parts
        .extensions
        .get::<SessionOwner>()
        .cloned()
        .unwrap_or_default();
    let reservation = shared.config.registry.reserve(&owner).map_err(|e| {
        tracing::warn!(%e, "refused a new SSE session");
        e.response(None)
    })?;
    // A router that is served directly, not through an outer axum Router,
    // gets no OriginalUri; tool code reads it to recover the agent prefix.
    if parts.extensions.get::<OriginalUri>().is_none() {
        let uri = parts.uri.clone();
        parts.extensions.insert(OriginalUri(uri));
    }
    let id = format!("{}{}", Uuid::new_v4(), shared.config.id_suffix);
    let endpoint = message_endpoint(&parts, &id);
    let session_ct = shared.config.cancellation.child_token();

    let (client_tx, client_rx) = mpsc::channel(CHANNEL_CAPACITY);
    let (server_tx, server_rx) = server_channel::channel::<ServerJsonRpcMessage>(CHANNEL_CAPACITY);
    shared.sessions.insert(id.clone(), client_tx, owner);
    reservation.bind(id.clone(), SessionKind::Sse);
    // The id is a bearer of the session: never at INFO.
    tracing::info!(path = %endpoint_path(&endpoint), "SSE session opened");
    tracing::debug!(session = %id, "SSE session id");

    let incoming = ReceiverStream::new(client_rx).map(move |message| with_parts(message, &parts));
    tokio::spawn(run_session(
        (shared.factory)(),
        (server_tx, incoming),
        session_ct.clone(),
        id.clone(),
    ));

    // Dropped with the response stream, i.e. when the client goes away.
    let guard = SessionGuard {
        id,
        sessions: shared.sessions.clone(),
        registry: shared.config.registry.clone(),
        ct: session_ct.clone(),
    };
    let events = stream::once(ready(Event::default().event("endpoint").data(endpoint)))
        .chain(server_rx.filter_map(|message| ready(message_event(&message))))
        .take_until(session_ct.cancelled_owned())
        .map(move |event| {
            let _alive = &guard;
            Ok(event)
        });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(shared.config.keep_alive)))
}

async fn run_session<S, St>(
    service: S,
    transport: (server_channel::Sender<ServerJsonRpcMessage>, St),
    ct: CancellationToken,
    id: String,
) where
    S: ServerHandler,
    St: Stream<Item = ClientJsonRpcMessage> + Send + Unpin + 'static,
{
    match serve_server_with_ct(service, transport, ct.clone()).await {
        Ok(running) => match running.waiting().await {
            Ok(reason) => tracing::debug!(session = %id, ?reason, "MCP service ended"),
            Err(error) => tracing::warn!(session = %id, %error, "MCP service task failed"),
        },
        Err(error) => tracing::debug!(session = %id, %error, "MCP session did not initialize"),
    }
    // Ends the event stream too, so the client learns the session is gone.
    ct.cancel();
}

struct SessionGuard {
    id: String,
    sessions: SseSessions,
    registry: SessionRegistry,
    ct: CancellationToken,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        // Cancelling the service's token also cancels its in-flight requests.
        self.ct.cancel();
        self.sessions.remove(&self.id);
        self.registry.remove(&self.id);
        tracing::info!("SSE session closed");
        tracing::debug!(session = %self.id, "SSE session id closed");
    }
}

/// The query of a `POST /message`.
#[derive(Deserialize)]
pub struct MessageQuery {
    #[serde(rename = "sessionId")]
    pub session_id: Option<String>,
}

async fn post_message<S: ServerHandler>(
    State(shared): State<Arc<Shared<S>>>,
    Query(query): Query<MessageQuery>,
    poster: Option<Extension<SessionOwner>>,
    body: Bytes,
) -> Result<StatusCode, SseError> {
    let id = query.session_id.ok_or(SseError::MissingSessionId)?;
    let (sender, owner) = shared
        .sessions
        .session(&id)
        .ok_or_else(|| SseError::UnknownSession(id.clone()))?;
    // Messages run as the session's opener: only the opener may send them.
    if poster.map(|Extension(p)| p).unwrap_or_default() != owner {
        tracing::warn!("refused a message on another client's SSE session");
        return Err(SseError::NotOwner);
    }
    let message: ClientJsonRpcMessage = serde_json::from_slice(&body)?;
    tracing::debug!(session = %id, "message received");
    sender
        .send(message)
        .await
        .map_err(|_| SseError::SessionEnded(id))?;
    Ok(StatusCode::ACCEPTED)
}

/// The message route under the same prefix as the `/sse` route that was hit.
fn message_endpoint(parts: &http::request::Parts, id: &str) -> String {
    let path = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(parts.uri.path(), |original| original.path());
    let prefix = path.rsplit_once('/').map_or("", |(prefix, _)| prefix);
    format!("{prefix}/message?sessionId={id}")
}

fn endpoint_path(endpoint: &str) -> &str {
    endpoint.split_once('?').map_or(endpoint, |(path, _)| path)
}

/// Gives handlers the HTTP request that opened the session: the client's
/// identity headers and the agent prefix belong to it, and clients need not
/// repeat them on every POST.
fn with_parts(
    mut message: ClientJsonRpcMessage,
    parts: &http::request::Parts,
) -> ClientJsonRpcMessage {
    match &mut message {
        ClientJsonRpcMessage::Request(request) => {
            request.request.extensions_mut().insert(parts.clone());
        }
        ClientJsonRpcMessage::Notification(notification) => {
            notification
                .notification
                .extensions_mut()
                .insert(parts.clone());
        }
        _ => {}
    }
    message
}

fn message_event(message: &ServerJsonRpcMessage) -> Option<Event> {
    match serde_json::to_string(message) {
        Ok(json) => Some(Event::default().event("message").data(json)),
        Err(error) => {
            tracing::error!(%error, "dropping unserializable server message");
            None
        }
    }
}
