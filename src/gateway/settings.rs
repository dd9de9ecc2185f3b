//! How the gateway listens and whom it serves, and what it does unless told
//! otherwise. The flags (`config`) refer to these defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::server::ConnLimits;
use super::HttpError;
use crate::sessions::SessionLimits;
use crate::sse::KEEP_ALIVE;

pub use crate::sse::DEFAULT_MAX_BODY_BYTES;

/// The address listened on unless told (`CODEX_MCP_LISTEN`): loopback, so
/// nothing beyond this machine reaches a gateway nobody configured.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8210";
/// Seconds a connection has to complete its request headers
/// (`CODEX_MCP_HEADER_READ_TIMEOUT`).
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 10;
/// Seconds a connection may stay silent (`CODEX_MCP_IDLE_TIMEOUT`).
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 120;
/// Open connections at most (`CODEX_MCP_MAX_CONNECTIONS`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// How the gateway listens and who may talk to it.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub listen: SocketAddr,
    /// The client token file (`TOKEN [TENANT [AGENT,...]]` lines).
    pub auth_tokens: Option<PathBuf>,
    /// Accept clients without a token (refused beyond loopback).
    pub no_auth: bool,
    /// Host header values accepted besides loopback names; `*` accepts any.
    pub allowed_hosts: Vec<String>,
    pub max_body_bytes: usize,
    pub edge: EdgeSettings,
}

/// What the HTTP listener lets clients hold.
#[derive(Debug, Clone, Copy)]
pub struct EdgeSettings {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub sessions: SessionLimits,
}

impl EdgeSettings {
    /// The listener's limits, or why these settings cannot serve.
    pub(super) fn conn_limits(&self) -> Result<ConnLimits, HttpError> {
        let config = |m: String| HttpError::Config(m);
        if self.header_read_timeout.is_zero() {
            return Err(config(
                "CODEX_MCP_HEADER_READ_TIMEOUT must be at least 1 second".into(),
            ));
        }
        // Open MCP streams send a keep-alive now and then; a shorter idle
        // timeout would cut healthy streams.
        let min_idle = KEEP_ALIVE + Duration::from_secs(5);
        if self.idle_timeout < min_idle {
            return Err(config(format!(
                "CODEX_MCP_IDLE_TIMEOUT must be at least {} seconds (MCP streams send a keep-alive every {} s), not {}",
                min_idle.as_secs(),
                KEEP_ALIVE.as_secs(),
                self.idle_timeout.as_secs()
            )));
        }
        if self.max_connections == 0 || self.sessions.total == 0 || self.sessions.per_token == 0 {
            return Err(config(
                "CODEX_MCP_MAX_CONNECTIONS, CODEX_MCP_MAX_SESSIONS and CODEX_MCP_MAX_SESSIONS_PER_TOKEN must be at least 1".into(),
            ));
        }
        Ok(ConnLimits {
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge() -> EdgeSettings {
        EdgeSettings {
            header_read_timeout: Duration::from_secs(DEFAULT_HEADER_READ_TIMEOUT_SECS),
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            sessions: SessionLimits {
                total: crate::sessions::DEFAULT_MAX_SESSIONS,
                per_token: crate::sessions::DEFAULT_MAX_SESSIONS_PER_TOKEN,
            },
        }
    }

    #[test]
    fn the_defaults_serve_and_silly_limits_are_refused() {
        assert!(edge().conn_limits().is_ok());
        let short_idle = EdgeSettings {
            idle_timeout: Duration::from_secs(19),
            ..edge()
        };
        let err = short_idle.conn_limits().unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid HTTP setting: CODEX_MCP_IDLE_TIMEOUT must be at least 20 seconds \
             (MCP streams send a keep-alive every 15 s), not 19"
        );
        let no_headers = EdgeSettings {
            header_read_timeout: Duration::ZERO,
            ..edge()
        };
        assert!(no_headers.conn_limits().is_err());
        let mut no_sessions = edge();
        no_sessions.sessions.per_token = 0;
        assert!(no_sessions.conn_limits().is_err());
    }
}
