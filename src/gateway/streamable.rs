//! What the gateway adds to rmcp's streamable-HTTP sessions (protocol
//! 2025-11-25 and earlier, `Mcp-Session-Id`): each session is bound to the
//! identity that opened it and counted against the session caps, and
//! closing the response stream of a request cancels that request, as the
//! stateless protocol (2026-07-28) and the legacy SSE transport do. rmcp
//! keeps a session's request running when its stream is dropped, for a
//! client to resume with `Last-Event-ID`; a run whose caller is gone would
//! hold the agent and spend tokens for nobody. A session's answer that is
//! ready at once goes out whole (`whole_answer`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{SessionId, SessionManager};
use serde::Deserialize;
use serde_json::json;

use super::whole_answer::{whole_if_quick, WHOLE_AT_MOST, WHOLE_WITHIN};
use crate::sessions::{SessionKind, SessionOwner, SessionRegistry};

pub(super) const SESSION_HEADER: &str = "mcp-session-id";

/// What [`guard`] needs.
#[derive(Clone)]
pub struct StreamableState {
    pub registry: SessionRegistry,
    pub sessions: Arc<LocalSessionManager>,
}

/// Just enough of a JSON-RPC message to route it.
#[derive(Deserialize)]
struct Envelope {
    method: Option<String>,
    id: Option<serde_json::Value>,
}

/// Binds, caps and cancels streamable-HTTP sessions; runs after
/// authentication, which attaches the [`SessionOwner`].
pub async fn guard(State(state): State<StreamableState>, req: Request, next: Next) -> Response {
    let owner = req
        .extensions()
        .get::<SessionOwner>()
        .cloned()
        .unwrap_or_default();
    let session = match req.headers().get(SESSION_HEADER).map(|v| v.to_str()) {
        None => None,
        Some(Ok(id)) => Some(id.to_owned()),
        Some(Err(_)) => {
            return (
                StatusCode::BAD_REQUEST,
                "Mcp-Session-Id is not visible ASCII",
            )
                .into_response()
        }
    };
    if let Some(id) = &session {
        if let Err(e) = state.registry.check(id, &owner) {
            tracing::warn!(tenant = %owner_tenant(&req), "refused a request on another client's MCP session");
            return e.response(None);
        }
    }
    let method = req.method().clone();
    let (req, envelope) = if method == Method::POST {
        match peek(req).await {
            Ok(pair) => pair,
            Err(resp) => return resp,
        }
    } else {
        (req, None)
    };
    let (rpc_method, rpc_id) = envelope.map_or((None, None), |e| (e.method, e.id));

    let reservation = if session.is_none() && rpc_method.as_deref() == Some("initialize") {
        prune(&state).await;
        match state.registry.reserve(&owner) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(%e, "refused a new MCP session");
                return e.response(rpc_id);
            }
        }
    } else {
        None
    };

    let resp = next.run(req).await;

    if let Some(reservation) = reservation {
        if let Some(id) = resp
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            reservation.bind(id.to_owned(), SessionKind::Streamable);
        }
    }
    let initialize = rpc_method.as_deref() == Some("initialize");
    match (&session, method) {
        (Some(id), Method::DELETE) if resp.status().is_success() => state.registry.remove(id),
        // A session's answer (stateless ones are rmcp's JSON already).
        (_, Method::POST) if is_event_stream(&resp) && (session.is_some() || initialize) => {
            let resp = match (&session, rpc_id) {
                (Some(id), Some(request_id)) if !initialize => {
                    cancel_on_drop(resp, &state, id, request_id)
                }
                _ => resp,
            };
            return whole_if_quick(resp, WHOLE_WITHIN, WHOLE_AT_MOST).await;
        }
        _ => {}
    }
    resp
}

fn owner_tenant(req: &Request) -> String {
    req.extensions()
        .get::<crate::tools::caller::Caller>()
        .map(|c| c.tenant.as_str().to_owned())
        .unwrap_or_default()
}

fn is_event_stream(resp: &Response) -> bool {
    resp.headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// Reads the body to learn the JSON-RPC method and id, and puts it back.
async fn peek(req: Request) -> Result<(Request, Option<Envelope>), Response> {
    let (parts, body) = req.into_parts();
    // The body limit layer outside bounds what this may hold.
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            let too_large = std::iter::successors(
                std::error::Error::source(&e),
                |s: &&(dyn std::error::Error + 'static)| s.source(),
            )
            .any(|s| s.is::<http_body_util::LengthLimitError>());
            return Err(if too_large {
                (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response()
            } else {
                (
                    StatusCode::BAD_REQUEST,
                    format!("reading the request body failed: {e}"),
                )
                    .into_response()
            });
        }
    };
    let envelope = serde_json::from_slice::<Envelope>(&bytes).ok();
    Ok((Request::from_parts(parts, Body::from(bytes)), envelope))
}

/// Forgets sessions rmcp closed on its own, so they stop counting.
async fn prune(state: &StreamableState) {
    let taken = Instant::now();
    let live: HashSet<String> = state
        .sessions
        .sessions
        .read()
        .await
        .keys()
        .map(|k| k.to_string())
        .collect();
    state.registry.prune_streamable(&live, taken);
}

/// Cancels request `request_id` of session `session` when its response
/// stream is dropped before it ended.
fn cancel_on_drop(
    resp: Response,
    state: &StreamableState,
    session: &str,
    request_id: serde_json::Value,
) -> Response {
    let guard = CancelGuard {
        armed: true,
        sessions: state.sessions.clone(),
        session: session.into(),
        request_id,
    };
    let (parts, body) = resp.into_parts();
    let stream = futures::stream::unfold(
        (body.into_data_stream(), guard),
        |(mut body, mut guard)| async move {
            match body.next().await {
                Some(item) => Some((item, (body, guard))),
                None => {
                    guard.disarm();
                    None
                }
            }
        },
    );
    Response::from_parts(parts, Body::from_stream(stream))
}

struct CancelGuard {
    armed: bool,
    sessions: Arc<LocalSessionManager>,
    session: SessionId,
    request_id: serde_json::Value,
}

impl CancelGuard {
    /// The stream ended: the request was answered.
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let message = json!({
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": self.request_id, "reason": "the client closed the response stream"},
        });
        let Ok(message) = serde_json::from_value::<ClientJsonRpcMessage>(message) else {
            return;
        };
        let sessions = self.sessions.clone();
        let session = self.session.clone();
        tracing::info!("a client closed its response stream: cancelling its request");
        // Drop cannot wait; the session may already be gone, which is fine.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = sessions.accept_message(&session, message).await;
            });
        }
    }
}
