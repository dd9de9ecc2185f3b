//! Client authentication: bearer tokens from a file, each mapped to a tenant
//! and optionally to the agents it may use.

use std::path::{Path, PathBuf};

use crate::agent::{AgentName, Tenant};

/// One accepted client token.
#[derive(Clone)]
pub struct TokenEntry {
    token: String,
    pub tenant: Tenant,
    pub agents: Option<Vec<AgentName>>,
}

impl TokenEntry {
    /// The token itself, for a client of this gateway (`codex-mcp probe`).
    pub fn token(&self) -> &str {
        &self.token
    }
}

impl std::fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenEntry")
            .field("tenant", &self.tenant)
            .field("agents", &self.agents)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("reading the client token file {0} failed: {1}")]
    Read(String, String),
    #[error("client token file line {line}: {reason}")]
    Parse { line: usize, reason: String },
    #[error("the client token file {0} has no tokens")]
    Empty(String),
    #[error("refusing to listen on {0} without client tokens: --no-auth is only allowed on a loopback address")]
    OpenBeyondLoopback(String),
    #[error("writing the generated client token to {0} failed: {1}")]
    Generate(String, String),
}

/// Why a request was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    MissingToken,
    InvalidToken,
}

impl Denied {
    /// What the client's user reads: the problem and how to fix it. Clients
    /// show the body of a 401, not its challenge.
    pub fn message(self) -> &'static str {
        match self {
            Self::MissingToken => {
                "this gateway needs a client token: send the header \
                 `Authorization: Bearer <token>` (the token is a line of the file given \
                 with --auth-tokens, or, without that option, the file client-token in \
                 the gateway's data directory)"
            }
            Self::InvalidToken => {
                "the client token is not valid for this gateway: send a token from the \
                 file given with --auth-tokens, or, without that option, from the file \
                 client-token in the gateway's data directory, as \
                 `Authorization: Bearer <token>`"
            }
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 3 and 3.1): a request without
    /// credentials gets no error code; a wrong token gets `invalid_token`.
    /// `resource_metadata` (RFC 9728 5.1) points at the endpoint's metadata,
    /// which names no authorization server: tokens are issued by whoever
    /// runs the gateway, not through OAuth.
    pub fn challenge(self, resource_metadata: Option<&str>) -> String {
        let mut challenge = "Bearer realm=\"codex-mcp\"".to_owned();
        if self == Self::InvalidToken {
            challenge.push_str(
                ", error=\"invalid_token\", \
                 error_description=\"the client token is not valid for this gateway\"",
            );
        }
        if let Some(url) = resource_metadata {
            challenge.push_str(&format!(", resource_metadata=\"{url}\""));
        }
        challenge
    }
}

/// Who may call the gateway.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// Explicitly open (loopback only): every caller is the default tenant.
    Open,
    Tokens(Vec<TokenEntry>),
}

/// Compares without an early exit, so timing does not reveal how much of a
/// guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Only the length may leak, which says nothing about the token's value.
    let mut diff = u8::from(a.len() != b.len());
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    diff == 0
}

/// Parses `TOKEN [TENANT [AGENT,AGENT...]]` lines; `#` starts a comment.
pub fn parse_tokens(text: &str) -> Result<Vec<TokenEntry>, AuthError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let perr = |reason: String| AuthError::Parse {
            line: i + 1,
            reason,
        };
        let mut fields = line.split_whitespace();
        let token = fields.next().unwrap_or_default().to_owned();
        if token.len() < 16 {
            return Err(perr("token is shorter than 16 characters".into()));
        }
        let tenant = match fields.next() {
            Some(t) => Tenant::parse(t).map_err(|e| perr(format!("tenant: {e}")))?,
            None => Tenant::default_tenant(),
        };
        let agents = match fields.next() {
            Some(list) => Some(
                list.split(',')
                    .map(|a| AgentName::parse(a.trim()).map_err(|e| perr(format!("agent: {e}"))))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            None => None,
        };
        if fields.next().is_some() {
            return Err(perr("expected `TOKEN [TENANT [AGENT,AGENT...]]`".into()));
        }
        out.push(TokenEntry {
            token,
            tenant,
            agents,
        });
    }
    Ok(out)
}

impl ClientAuth {
    pub fn from_file(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AuthError::Read(path.display().to_string(), e.to_string()))?;
        let entries = parse_tokens(&text)?;
        if entries.is_empty() {
            return Err(AuthError::Empty(path.display().to_string()));
        }
        Ok(Self::Tokens(entries))
    }

    /// Reuses or creates a random token in `path` (mode 0600), for a gateway
    /// started without a token file: secure by default, usable at once.
    pub fn generated(path: &PathBuf) -> Result<Self, AuthError> {
        let gen_err =
            |e: std::io::Error| AuthError::Generate(path.display().to_string(), e.to_string());
        if !path.exists() {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(gen_err)?;
            }
            let token = format!(
                "cxm_{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(gen_err)?;
            writeln!(f, "{token}").map_err(gen_err)?;
        }
        Self::from_file(path)
    }

    pub fn is_open(&self) -> bool {
        matches!(self, Self::Open)
    }

    /// Checks an `Authorization` header value.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
    ) -> Result<(Tenant, Option<Vec<AgentName>>), Denied> {
        let entries = match self {
            Self::Open => return Ok((Tenant::default_tenant(), None)),
            Self::Tokens(e) => e,
        };
        let presented = authorization
            .and_then(|h| {
                let (scheme, rest) = h.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(Denied::MissingToken)?;
        // Check every entry so the time taken does not depend on which matched.
        let mut found = None;
        for e in entries {
            if constant_time_eq(e.token.as_bytes(), presented.as_bytes()) && found.is_none() {
                found = Some(e);
            }
        }
        found
            .map(|e| (e.tenant.clone(), e.agents.clone()))
            .ok_or(Denied::InvalidToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "tok-aaaaaaaaaaaaaaaa";
    const T2: &str = "tok-bbbbbbbbbbbbbbbb";

    #[test]
    fn parses_tenants_and_agent_lists() {
        let e = parse_tokens(&format!(
            "# comment\n{T1}\n\n{T2} team-b alice,bob # note\n"
        ))
        .unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].tenant.as_str(), "default");
        assert!(e[0].agents.is_none());
        assert_eq!(e[1].tenant.as_str(), "team-b");
        assert_eq!(e[1].agents.as_ref().unwrap().len(), 2);
    }

    #[test]
    fn parse_errors_name_the_line_and_never_the_token() {
        let err = parse_tokens(&format!("{T1}\nshort\n")).unwrap_err();
        assert_eq!(
            err,
            AuthError::Parse {
                line: 2,
                reason: "token is shorter than 16 characters".into()
            }
        );
        let err = parse_tokens(&format!("{T1} Bad_Tenant\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1") && !err.contains(T1), "{err}");
    }

    #[test]
    fn authenticates_bearer_tokens() {
        let auth = ClientAuth::Tokens(parse_tokens(&format!("{T1}\n{T2} team-b\n")).unwrap());
        assert_eq!(auth.authenticate(None), Err(Denied::MissingToken));
        assert_eq!(
            auth.authenticate(Some("Basic abc")),
            Err(Denied::MissingToken)
        );
        assert_eq!(
            auth.authenticate(Some("Bearer nope-nope-nope-nope")),
            Err(Denied::InvalidToken)
        );
        assert_eq!(
            auth.authenticate(Some(&format!("Bearer {T1}x"))),
            Err(Denied::InvalidToken)
        );
        assert_eq!(
            auth.authenticate(Some(&format!("bearer {T2}")))
                .unwrap()
                .0
                .as_str(),
            "team-b"
        );
        assert!(ClientAuth::Open.authenticate(None).is_ok());
    }

    #[test]
    fn constant_time_eq_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn generated_token_is_private_and_stable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client-token");
        ClientAuth::generated(&path).unwrap();
        let first = std::fs::read_to_string(&path).unwrap();
        ClientAuth::generated(&path).unwrap();
        assert_eq!(first, std::fs::read_to_string(&path).unwrap());
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
