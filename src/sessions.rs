//! MCP sessions belong to whoever opened them. Every streamable-HTTP
//! session (`Mcp-Session-Id`) and legacy SSE session is bound to the
//! identity that opened it, is counted against caps per token and in
//! total, and is refused to anyone else: a session id is not a credential.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::agent::Tenant;

/// Between an id (a session's, a run's) and the tag of the gateway replica
/// that made it (see `gateway::replicas`).
pub const REPLICA_TAG_SEPARATOR: char = '~';

/// The id without the tag of the replica that made it.
pub fn untagged(id: &str) -> &str {
    id.split_once(REPLICA_TAG_SEPARATOR)
        .map_or(id, |(id, _)| id)
}

/// The identity a session is bound to: the tenant, the token (by a keyed
/// fingerprint, so the registry holds no token), and the agent addressed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SessionOwner {
    tenant: String,
    token: u64,
    agent: String,
}

impl SessionOwner {
    /// `authorization` is the request's header; `agent` the agent it
    /// addresses, or why that could not be read.
    pub fn new(
        tenant: &Tenant,
        authorization: Option<&str>,
        agent: &Result<String, String>,
    ) -> Self {
        static KEYS: OnceLock<RandomState> = OnceLock::new();
        let token = authorization
            .map(|h| h.trim().split_once(' ').map_or(h, |(_, t)| t).trim())
            .map_or(0, |t| KEYS.get_or_init(RandomState::new).hash_one(t));
        Self {
            tenant: tenant.as_str().to_owned(),
            token,
            agent: match agent {
                Ok(name) => name.clone(),
                Err(why) => format!("invalid: {why}"),
            },
        }
    }
}

/// The transport a session lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    Streamable,
    Sse,
}

/// Open MCP sessions at most, in total, unless told (`CODEX_MCP_MAX_SESSIONS`).
pub const DEFAULT_MAX_SESSIONS: usize = 1000;
/// Open MCP sessions at most per client token unless told
/// (`CODEX_MCP_MAX_SESSIONS_PER_TOKEN`).
pub const DEFAULT_MAX_SESSIONS_PER_TOKEN: usize = 100;

/// Session caps; `usize::MAX` means none.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub total: usize,
    pub per_token: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            total: usize::MAX,
            per_token: usize::MAX,
        }
    }
}

/// Why a new session was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    #[error("too many open MCP sessions for this token (limit {0}, CODEX_MCP_MAX_SESSIONS_PER_TOKEN): close one (DELETE /mcp with its Mcp-Session-Id, or close the SSE stream) or wait for idle ones to expire")]
    PerToken(usize),
    #[error("the gateway has its maximum of {0} open MCP sessions (CODEX_MCP_MAX_SESSIONS): try again later")]
    Total(usize),
    #[error("this MCP session was opened by another client (token, tenant or agent differ): open a session of your own")]
    NotOwner,
}

impl SessionError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::PerToken(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Total(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotOwner => StatusCode::FORBIDDEN,
        }
    }

    /// The refusal as an HTTP response with a JSON-RPC error body.
    pub fn response(&self, id: Option<serde_json::Value>) -> Response {
        let body = json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {"code": -32000, "message": self.to_string()},
        });
        (self.status(), axum::Json(body)).into_response()
    }
}

struct Entry {
    owner: SessionOwner,
    kind: SessionKind,
    since: Instant,
}

#[derive(Default)]
struct State {
    sessions: HashMap<String, Entry>,
    /// Slots held by sessions being opened, per token.
    reserved: HashMap<u64, usize>,
}

/// The open sessions of both transports, with their owners.
#[derive(Clone, Default)]
pub struct SessionRegistry {
    limits: SessionLimits,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for SessionRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRegistry")
            .field("limits", &self.limits)
            .field("open", &self.len())
            .finish()
    }
}

impl SessionRegistry {
    pub fn new(limits: SessionLimits) -> Self {
        Self {
            limits,
            state: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update leaves the maps consistent, so poisoning is moot.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Open sessions.
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Holds a slot for a session `owner` is opening, if the caps allow.
    pub fn reserve(&self, owner: &SessionOwner) -> Result<Reservation, SessionError> {
        let mut state = self.lock();
        let mine = state
            .sessions
            .values()
            .filter(|e| e.owner.token == owner.token)
            .count()
            + state.reserved.get(&owner.token).copied().unwrap_or(0);
        if mine >= self.limits.per_token {
            return Err(SessionError::PerToken(self.limits.per_token));
        }
        let reserved: usize = state.reserved.values().sum();
        if state.sessions.len() + reserved >= self.limits.total {
            return Err(SessionError::Total(self.limits.total));
        }
        *state.reserved.entry(owner.token).or_default() += 1;
        Ok(Reservation {
            registry: self.clone(),
            owner: Some(owner.clone()),
        })
    }

    /// Checks that `owner` may use session `id`; unknown ids pass, for the
    /// transport to answer as it does for them.
    pub fn check(&self, id: &str, owner: &SessionOwner) -> Result<(), SessionError> {
        match self.lock().sessions.get(id) {
            Some(e) if &e.owner != owner => Err(SessionError::NotOwner),
            _ => Ok(()),
        }
    }

    pub fn remove(&self, id: &str) {
        self.lock().sessions.remove(id);
    }

    /// Forgets streamable sessions the transport has closed on its own
    /// (idle expiry): those not in `live`, a snapshot taken at `taken`.
    pub fn prune_streamable(&self, live: &std::collections::HashSet<String>, taken: Instant) {
        self.lock().sessions.retain(|id, e| {
            e.kind != SessionKind::Streamable || e.since > taken || live.contains(id)
        });
    }
}

/// A slot for a session being opened; released unless bound to its id.
pub struct Reservation {
    registry: SessionRegistry,
    owner: Option<SessionOwner>,
}

impl Reservation {
    pub fn bind(mut self, id: String, kind: SessionKind) {
        if let Some(owner) = self.owner.take() {
            let mut state = self.registry.lock();
            release(&mut state, owner.token);
            let since = Instant::now();
            state.sessions.insert(id, Entry { owner, kind, since });
        }
    }
}

fn release(state: &mut State, token: u64) {
    if let Some(n) = state.reserved.get_mut(&token) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            state.reserved.remove(&token);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.take() {
            release(&mut self.registry.lock(), owner.token);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(token: &str, agent: &str) -> SessionOwner {
        SessionOwner::new(
            &Tenant::default_tenant(),
            Some(&format!("Bearer {token}")),
            &Ok(agent.to_owned()),
        )
    }

    #[test]
    fn owners_differ_by_token_and_agent() {
        assert_eq!(owner("a", "x"), owner("a", "x"));
        assert_eq!(
            owner("a", "x"),
            SessionOwner::new(
                &Tenant::default_tenant(),
                Some("bearer  a "),
                &Ok("x".into())
            )
        );
        assert_ne!(owner("a", "x"), owner("b", "x"));
        assert_ne!(owner("a", "x"), owner("a", "y"));
    }

    #[test]
    fn caps_count_open_and_reserved_sessions() {
        let reg = SessionRegistry::new(SessionLimits {
            total: 3,
            per_token: 2,
        });
        let a = owner("a", "x");
        reg.reserve(&a).unwrap().bind("s1".into(), SessionKind::Sse);
        let held = reg.reserve(&a).unwrap();
        assert_eq!(reg.reserve(&a).err(), Some(SessionError::PerToken(2)));
        drop(held);
        reg.reserve(&a)
            .unwrap()
            .bind("s2".into(), SessionKind::Streamable);
        let b = owner("b", "x");
        reg.reserve(&b).unwrap().bind("s3".into(), SessionKind::Sse);
        assert_eq!(reg.reserve(&b).err(), Some(SessionError::Total(3)));
        assert_eq!(reg.check("s1", &b), Err(SessionError::NotOwner));
        assert_eq!(reg.check("s1", &a), Ok(()));
        assert_eq!(reg.check("unknown", &b), Ok(()));
        reg.prune_streamable(&Default::default(), Instant::now());
        assert_eq!(reg.len(), 2, "the closed streamable session is gone");
        reg.remove("s1");
        assert!(reg.reserve(&a).is_ok());
    }
}
