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
//! A replica forwards only to an address its peers' DNS name resolves to
//! (a headless Service of the gateway's pods), so a made-up id cannot send
//! requests anywhere else.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::sync::Arc;

use crate::metrics::Metrics;

/// Between a session's own id and the replica's tag.
const SEPARATOR: char = '~';
const SESSION_HEADER: &str = "mcp-session-id";
/// Set on a forwarded request: the replica that gets it serves it or
/// answers that the session is gone, and never forwards it again.
pub const FORWARDED_HEADER: &str = "x-codex-mcp-forwarded";
/// How long a lookup of the peers' name is trusted for a known address;
/// an address not in it is looked up again at once (a new replica).
const PEERS_TTL: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("building the HTTP client for forwarding to other replicas failed: {0}")]
    Client(#[source] reqwest::Error),
}

/// Where this replica is reached, and the name of all of them.
#[derive(Debug, Clone)]
pub struct ReplicaSettings {
    /// This replica's pod IP and listening port.
    pub own: SocketAddr,
    /// `host:port` of a name resolving to every replica.
    pub peers: String,
}

/// This replica, and how it finds the others.
#[derive(Debug)]
pub struct Replicas {
    own: SocketAddr,
    own_tag: String,
    /// `host:port`, resolving to every replica.
    peers: String,
    known: Mutex<Option<(Instant, HashSet<SocketAddr>)>>,
    client: reqwest::Client,
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
    /// IP and port); `peers`: `host:port` of a name resolving to them all.
    pub fn new(own: SocketAddr, peers: String) -> Result<Self, ReplicaError> {
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
            own_tag: tag_of(own),
            peers,
            known: Mutex::default(),
            client,
        })
    }

    /// A session id minted here, as clients see it.
    pub fn tagged(&self, id: &str) -> String {
        format!("{id}{}", self.id_suffix())
    }

    /// What follows the id of a session minted here.
    pub fn id_suffix(&self) -> String {
        format!("{SEPARATOR}{}", self.own_tag)
    }

    /// Where the session with the id a client sent lives. An id without a
    /// tag is this replica's (a gateway that ran without replicas).
    pub fn home<'a>(&self, id: &'a str) -> Home<'a> {
        let Some((inner, tag)) = id.rsplit_once(SEPARATOR) else {
            return Home::Here(id);
        };
        if tag == self.own_tag {
            return Home::Here(inner);
        }
        match addr_of(tag) {
            Some(addr) if addr == self.own => Home::Here(inner),
            Some(addr) => Home::Peer(addr),
            None => Home::Unknown,
        }
    }

    /// Whether `addr` is one of the replicas, by the peers' name.
    async fn is_peer(&self, addr: SocketAddr) -> bool {
        if let Some((at, set)) = self.known.lock().ok().and_then(|k| k.clone()) {
            if at.elapsed() < PEERS_TTL && set.contains(&addr) {
                return true;
            }
        }
        let found: HashSet<SocketAddr> = match tokio::net::lookup_host(&self.peers).await {
            Ok(addrs) => addrs.collect(),
            Err(e) => {
                tracing::warn!(peers = %self.peers, "looking up the other gateway replicas failed: {e}");
                return false;
            }
        };
        let is = found.contains(&addr);
        if let Ok(mut known) = self.known.lock() {
            *known = Some((Instant::now(), found));
        }
        is
    }

    /// Sends `req` to the replica at `peer` and streams its answer back.
    async fn forward(&self, peer: SocketAddr, req: Request) -> Result<Response, String> {
        let (parts, body) = req.into_parts();
        // Bodies are already held to the body limit by an outer layer.
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .map_err(|e| format!("reading the request body failed: {e}"))?;
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut headers = without_hop_headers(&parts.headers);
        headers.insert(FORWARDED_HEADER, HeaderValue::from_static("1"));
        let answer = self
            .client
            .request(parts.method, format!("http://{peer}{path}"))
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("the replica at {peer} did not answer: {e}"))?;
        let mut resp = Response::builder().status(answer.status());
        if let Some(h) = resp.headers_mut() {
            *h = without_hop_headers(answer.headers());
        }
        resp.body(Body::from_stream(answer.bytes_stream()))
            .map_err(|e| format!("relaying the answer failed: {e}"))
    }
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
    let id = req.uri().query().and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "sessionId")
            // A client may escape what it echoes.
            .map(|(_, v)| v.replace("%7E", "~").replace("%7e", "~"))
    });
    Ok(id.map(|id| (id, false)))
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
                if req.headers().contains_key(FORWARDED_HEADER) {
                    return session_gone("forwarded once already");
                }
                if !replicas.is_peer(peer).await {
                    metrics.replica_forward("not_a_replica");
                    return session_gone("the replica that held it is gone");
                }
                tracing::debug!(%peer, "forwarding a request to the replica that holds its session");
                return match replicas.forward(peer, req).await {
                    Ok(resp) => {
                        metrics.replica_forward("forwarded");
                        resp
                    }
                    Err(why) => {
                        tracing::warn!(%peer, "forwarding a request to its session's replica failed: {why}");
                        metrics.replica_forward("unreachable");
                        session_gone("the replica that held it does not answer")
                    }
                };
            }
        }
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
        Replicas::new(own.parse().unwrap(), "peers.example:8210".into()).unwrap()
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
