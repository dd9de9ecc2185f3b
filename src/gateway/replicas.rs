//! Sessions stay on the replica that opened them, whichever replica a
//! request reaches. A handshake-era MCP session (`Mcp-Session-Id`) and a
//! legacy SSE session live in one gateway process: its MCP service, its
//! open streams. Behind a load balancer that spreads requests (every
//! Gateway API controller does, per request), the next request of a
//! session may reach another replica. Sticky sessions would need the
//! client to keep a cookie (MCP clients built on `fetch` do not) or the
//! controller to hash a header (few can), so the gateway routes instead:
//! the id of a session names the replica that holds it, and a replica
//! that gets a request for another's session forwards it there, streams
//! included.
//!
//! A replica forwards only to the address of one of the gateway's own
//! pods, as the API server lists them (no cluster DNS needed), so a
//! made-up id cannot send requests anywhere else.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::sync::Arc;

use crate::metrics::Metrics;

use super::streamable::SESSION_HEADER;
use crate::sessions::REPLICA_TAG_SEPARATOR as SEPARATOR;
/// Set on a forwarded request: the replica that gets it serves it or
/// answers that the session is gone, and never forwards it again.
pub const FORWARDED_HEADER: &str = "x-codex-mcp-forwarded";
/// How long a list of the replicas is trusted for a known address; an
/// address not in it is looked up again at once (a new replica).
const PEERS_TTL: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("building the HTTP client for forwarding to other replicas failed: {0}")]
    Client(#[source] reqwest::Error),
}

/// Where this replica is reached, and how its peers are known.
#[derive(Debug, Clone)]
pub struct ReplicaSettings {
    /// This replica's pod IP and listening port.
    pub own: SocketAddr,
    /// The label selector of the gateway's pods (in the CodexAgents'
    /// namespace); every replica listens on the same port.
    pub selector: String,
}

/// Lists the replicas' IP addresses.
pub type PeerLookup = Arc<
    dyn Fn() -> futures::future::BoxFuture<'static, Result<HashSet<IpAddr>, String>> + Send + Sync,
>;

/// This replica, and how it finds the others.
pub struct Replicas {
    own: SocketAddr,
    /// `~TAG`, after the ids minted here.
    suffix: String,
    peers: PeerLookup,
    known: Mutex<Option<(Instant, HashSet<IpAddr>)>>,
    client: reqwest::Client,
}

impl std::fmt::Debug for Replicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicas")
            .field("own", &self.own)
            .finish_non_exhaustive()
    }
}

/// Where a session lives, from its id.
#[derive(Debug, PartialEq, Eq)]
pub enum Home<'a> {
    /// On this replica; the id as its transport knows it.
    Here(&'a str),
    /// On the replica at this address.
    Peer(SocketAddr),
    /// Nowhere a replica could find it: a tag that names no address.
    Unknown,
}

impl Replicas {
    /// `own`: the address the other replicas reach this one at (its pod
    /// IP and port); `peers`: lists the replicas' addresses.
    pub fn new(own: SocketAddr, peers: PeerLookup) -> Result<Self, ReplicaError> {
        // Replicas talk over the pod network: a proxy from the environment
        // is for the way out, not for this.
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .http1_only()
            .build()
            .map_err(ReplicaError::Client)?;
        Ok(Self {
            own,
            suffix: format!("{SEPARATOR}{}", tag_of(own)),
            peers,
            known: Mutex::default(),
            client,
        })
    }

    /// A session id minted here, as clients see it.
    pub fn tagged(&self, id: &str) -> String {
        format!("{id}{}", self.id_suffix())
    }

    /// What follows the id of a session (or run) minted here.
    pub fn id_suffix(&self) -> &str {
        &self.suffix
    }

    /// Where the session with the id a client sent lives. An id without a
    /// tag is this replica's (a gateway that ran without replicas).
    pub fn home<'a>(&self, id: &'a str) -> Home<'a> {
        let inner = crate::sessions::untagged(id);
        if inner.len() == id.len() || id.ends_with(&self.suffix) {
            return Home::Here(inner);
        }
        let tag = &id[inner.len() + SEPARATOR.len_utf8()..];
        match addr_of(tag) {
            Some(addr) if addr == self.own => Home::Here(inner),
            Some(addr) => Home::Peer(addr),
            None => Home::Unknown,
        }
    }

    /// Whether `addr` is one of the replicas.
    async fn is_peer(&self, addr: SocketAddr) -> bool {
        if addr.port() != self.own.port() {
            return false;
        }
        let known = self.known.lock().ok().is_some_and(|k| {
            k.as_ref()
                .is_some_and(|(at, set)| at.elapsed() < PEERS_TTL && set.contains(&addr.ip()))
        });
        if known {
            return true;
        }
        let found = match (self.peers)().await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!("listing the other gateway replicas failed: {e}");
                return false;
            }
        };
        let is = found.contains(&addr.ip());
        if let Ok(mut known) = self.known.lock() {
            *known = Some((Instant::now(), found));
        }
        is
    }

    /// Sends a request to the replica at `peer` and streams its answer back.
    async fn forward(
        &self,
        peer: SocketAddr,
        parts: &axum::http::request::Parts,
        body: Bytes,
    ) -> Result<Response, String> {
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut headers = without_hop_headers(&parts.headers);
        headers.insert(FORWARDED_HEADER, HeaderValue::from_static("1"));
        let answer = self
            .client
            .request(parts.method.clone(), format!("http://{peer}{path}"))
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("the replica at {peer} did not answer: {e}"))?;
        let mut resp = Response::builder().status(answer.status());
        if let Some(h) = resp.headers_mut() {
            *h = without_hop_headers(answer.headers());
        }
        // An answer of known length (a single JSON-RPC message) is relayed
        // whole, in one write as the replica that made it wrote it, so the
        // edge in front gets it as one piece (see `with_json_response`);
        // a stream is relayed as it comes.
        let body = if answer.content_length().is_some() {
            Body::from(
                answer
                    .bytes()
                    .await
                    .map_err(|e| format!("reading the answer of {peer} failed: {e}"))?,
            )
        } else {
            Body::from_stream(answer.bytes_stream())
        };
        resp.body(body)
            .map_err(|e| format!("relaying the answer failed: {e}"))
    }

    /// Forwards to `peer` if it is a replica and the request was not
    /// forwarded already; `Err` says why not, or why it failed.
    async fn forward_checked(
        &self,
        peer: SocketAddr,
        parts: &axum::http::request::Parts,
        body: Bytes,
        metrics: &Metrics,
    ) -> Result<Response, &'static str> {
        if parts.headers.contains_key(FORWARDED_HEADER) {
            return Err("forwarded once already");
        }
        if !self.is_peer(peer).await {
            metrics.replica_forward("not_a_replica");
            return Err("the replica that held it is gone");
        }
        tracing::debug!(%peer, "forwarding a request to the replica that holds its session or run");
        match self.forward(peer, parts, body).await {
            Ok(resp) => {
                metrics.replica_forward("forwarded");
                Ok(resp)
            }
            Err(why) => {
                tracing::warn!(%peer, "forwarding a request to the replica that holds it failed: {why}");
                metrics.replica_forward("unreachable");
                Err("the replica that held it does not answer")
            }
        }
    }
}

/// The run a stateless request asks about: the `taskId` of `tasks/get`,
/// `tasks/result` and `tasks/cancel`, or the `run_id` of `get_run` and
/// `cancel_run`.
fn run_asked_about(body: &[u8]) -> Option<String> {
    let message: serde_json::Value = serde_json::from_slice(body).ok()?;
    let params = message.get("params")?;
    let id = match message.get("method")?.as_str()? {
        "tasks/get" | "tasks/result" | "tasks/cancel" => params.get("taskId")?,
        "tools/call" => match params.get("name")?.as_str()? {
            "get_run" | "cancel_run" => params.get("arguments")?.get("run_id")?,
            _ => return None,
        },
        _ => return None,
    };
    id.as_str().map(str::to_owned)
}

/// A replica's tag: its address, in characters a header and a query
/// string carry as they are.
fn tag_of(addr: SocketAddr) -> String {
    URL_SAFE_NO_PAD.encode(addr.to_string())
}

fn addr_of(tag: &str) -> Option<SocketAddr> {
    let bytes = URL_SAFE_NO_PAD.decode(tag).ok()?;
    std::str::from_utf8(&bytes).ok()?.parse().ok()
}

/// Hop-by-hop headers (RFC 9110 7.6.1) belong to one connection, and the
/// length is the client's to set again.
fn without_hop_headers(headers: &HeaderMap) -> HeaderMap {
    const HOP: [HeaderName; 6] = [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::CONTENT_LENGTH,
    ];
    let mut out = headers.clone();
    for name in HOP {
        out.remove(name);
    }
    out.remove("keep-alive");
    out.remove("proxy-connection");
    out
}

/// The session id a request names: `Mcp-Session-Id`, or a legacy SSE
/// message's `sessionId`. `Err` for a header that is not text.
fn session_of(req: &Request) -> Result<Option<(String, bool)>, ()> {
    if let Some(v) = req.headers().get(SESSION_HEADER) {
        return v
            .to_str()
            .map(|s| Some((s.to_owned(), true)))
            .map_err(|_| ());
    }
    let query = axum::extract::Query::<crate::sse::MessageQuery>::try_from_uri(req.uri()).ok();
    Ok(query.and_then(|q| q.0.session_id).map(|id| (id, false)))
}

/// The request's parts and its body, read whole (an outer layer holds it
/// to the body limit).
async fn buffered(req: Request) -> Result<(axum::http::request::Parts, Bytes), Response> {
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => Ok((parts, body)),
        Err(e) => Err((StatusCode::BAD_REQUEST, format!("reading the body: {e}")).into_response()),
    }
}

/// The answer for a session no replica holds: 404, after which an MCP
/// client opens a new session.
fn session_gone(why: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("Not Found: Session not found ({why}); open a new session"),
    )
        .into_response()
}

/// What [`route`] needs.
#[derive(Clone)]
pub struct RouteState {
    /// None: a single gateway, nothing to route.
    pub replicas: Option<Arc<Replicas>>,
    pub metrics: Arc<Metrics>,
}

/// Routes a request of a session to the replica that holds it; tags the
/// id of a streamable-HTTP session opened here. Runs after authentication,
/// so only a client with a valid token is forwarded (and the replica that
/// gets it checks the token again, and the session's owner).
pub async fn route(State(state): State<RouteState>, mut req: Request, next: Next) -> Response {
    let Some(replicas) = state.replicas else {
        return next.run(req).await;
    };
    let metrics = state.metrics;
    let session = match session_of(&req) {
        Ok(s) => s,
        Err(()) => {
            return (
                StatusCode::BAD_REQUEST,
                "Mcp-Session-Id is not visible ASCII",
            )
                .into_response()
        }
    };
    if let Some((id, in_header)) = &session {
        match replicas.home(id) {
            Home::Here(inner) => {
                // Streamable sessions are rmcp's, which knows them by their
                // own ids; SSE sessions are minted with the tag.
                if *in_header {
                    if let Ok(v) = HeaderValue::from_str(inner) {
                        req.headers_mut().insert(SESSION_HEADER, v);
                    }
                }
            }
            Home::Unknown => return session_gone("its id names no gateway replica"),
            Home::Peer(peer) => {
                let (parts, body) = match buffered(req).await {
                    Ok(pair) => pair,
                    Err(resp) => return resp,
                };
                return match replicas.forward_checked(peer, &parts, body, &metrics).await {
                    Ok(resp) => resp,
                    Err(why) => session_gone(why),
                };
            }
        }
    } else if req.method() == axum::http::Method::POST {
        // A stateless poll of a run: served by the replica that runs it
        // while that one lives (it alone knows a run still waiting for its
        // agent), by this one from the agent's state otherwise. Only a body
        // that holds a tag can name another replica's run, so most are not
        // parsed here.
        let (parts, body) = match buffered(req).await {
            Ok(pair) => pair,
            Err(resp) => return resp,
        };
        let tagged = body.contains(&(SEPARATOR as u8));
        if let Some(Home::Peer(peer)) = tagged
            .then(|| run_asked_about(&body))
            .flatten()
            .as_deref()
            .map(|run| replicas.home(run))
        {
            if let Ok(resp) = replicas
                .forward_checked(peer, &parts, body.clone(), &metrics)
                .await
            {
                return resp;
            }
        }
        req = Request::from_parts(parts, Body::from(body));
    }
    let mut resp = next.run(req).await;
    if let Some(id) = resp
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        if let Ok(v) = HeaderValue::from_str(&replicas.tagged(id)) {
            resp.headers_mut().insert(SESSION_HEADER, v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replicas(own: &str) -> Replicas {
        let peers: PeerLookup = Arc::new(|| {
            Box::pin(async {
                Ok(["10.244.0.5", "10.244.0.6"]
                    .map(|ip| ip.parse().unwrap())
                    .into())
            })
        });
        Replicas::new(own.parse().unwrap(), peers).unwrap()
    }

    #[tokio::test]
    async fn only_listed_replicas_on_the_same_port_are_peers() {
        let r = replicas("10.244.0.5:8210");
        assert!(r.is_peer("10.244.0.6:8210".parse().unwrap()).await);
        assert!(!r.is_peer("10.244.0.6:22".parse().unwrap()).await);
        assert!(!r.is_peer("169.254.169.254:8210".parse().unwrap()).await);
    }

    #[test]
    fn an_id_minted_here_is_at_home_here() {
        let r = replicas("10.244.0.5:8210");
        let id = r.tagged("0b6d1c2e-uuid");
        assert!(
            !id.contains(':') && !id.contains('/') && !id.contains('&'),
            "{id}"
        );
        assert_eq!(r.home(&id), Home::Here("0b6d1c2e-uuid"));
        assert_eq!(r.home("untagged"), Home::Here("untagged"));
    }

    #[test]
    fn an_id_of_another_replica_names_it() {
        let a = replicas("10.244.0.5:8210");
        let b = replicas("10.244.0.6:8210");
        let id = a.tagged("s1");
        assert_eq!(b.home(&id), Home::Peer("10.244.0.5:8210".parse().unwrap()));
        let v6 = replicas("[fd00::7]:8210");
        assert_eq!(
            b.home(&v6.tagged("s2")),
            Home::Peer("[fd00::7]:8210".parse().unwrap())
        );
        assert_eq!(b.home("s1~not-an-address"), Home::Unknown);
        assert_eq!(b.home("s1~"), Home::Unknown);
    }

    #[test]
    fn polls_of_a_run_name_it() {
        let run = |body: serde_json::Value| run_asked_about(body.to_string().as_bytes());
        assert_eq!(
            run(
                serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"taskId": "a.1~t"}})
            ),
            Some("a.1~t".into())
        );
        assert_eq!(
            run(
                serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "get_run", "arguments": {"run_id": "a.2~t"}}})
            ),
            Some("a.2~t".into())
        );
        assert_eq!(
            run(
                serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "chat", "arguments": {"run_id": "a.2~t"}}})
            ),
            None
        );
        assert_eq!(run_asked_about(b"not json"), None);
    }

    #[test]
    fn hop_headers_stay_behind() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        h.insert(header::HOST, HeaderValue::from_static("codex.example"));
        let out = without_hop_headers(&h);
        assert_eq!(out.len(), 2);
        assert_eq!(out[header::HOST], "codex.example");
    }

    #[test]
    fn the_session_comes_from_the_header_or_the_query() {
        let req = Request::builder()
            .uri("/message?x=1&sessionId=abc~tag")
            .body(Body::empty())
            .unwrap();
        assert_eq!(session_of(&req), Ok(Some(("abc~tag".into(), false))));
        let escaped = Request::builder()
            .uri("/agents/a/message?sessionId=abc%7Etag")
            .body(Body::empty())
            .unwrap();
        assert_eq!(session_of(&escaped), Ok(Some(("abc~tag".into(), false))));
        let req = Request::builder()
            .uri("/mcp")
            .header(SESSION_HEADER, "s~t")
            .body(Body::empty())
            .unwrap();
        assert_eq!(session_of(&req), Ok(Some(("s~t".into(), true))));
        let req = Request::builder().uri("/mcp").body(Body::empty()).unwrap();
        assert_eq!(session_of(&req), Ok(None));
    }
}
