//! Agent identity: the name a client picks for its environment, and the
//! tenant it belongs to.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest agent name accepted. Leaves room in a 63-character DNS label for a
/// tenant prefix and a hash on Kubernetes.
pub const MAX_AGENT_NAME_LEN: usize = 40;

/// The agent used when a client names none.
pub const DEFAULT_AGENT: &str = "default";

/// Seconds without a call after which an agent is idle unless told
/// (`SESSION_TIMEOUT`, read by both): the gateway stops counting it as
/// active, the operator suspends it.
pub const DEFAULT_SESSION_TIMEOUT_SECS: u64 = 3600;

/// The HTTP header that names the agent a connection talks to.
pub const AGENT_HEADER: &str = "x-codex-agent";
/// `URL[#REF]`: the repository a new agent works on (Kubernetes).
pub const REPOSITORY_HEADER: &str = "x-codex-repository";

/// Why a string is not a valid agent name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AgentNameError {
    #[error("agent name is empty")]
    Empty,
    #[error("agent name is {0} characters long; at most {MAX_AGENT_NAME_LEN} are allowed")]
    TooLong(usize),
    #[error(
        "agent name {0:?} is not a DNS-1123 label: use lower-case letters, digits and '-', starting and ending with a letter or digit"
    )]
    NotDnsLabel(String),
}

/// A validated agent name: a DNS-1123 label of at most [`MAX_AGENT_NAME_LEN`]
/// characters, so it is safe as a directory name and inside Kubernetes names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AgentName(String);

impl AgentName {
    pub fn parse(raw: &str) -> Result<Self, AgentNameError> {
        if raw.is_empty() {
            return Err(AgentNameError::Empty);
        }
        let len = raw.chars().count();
        if len > MAX_AGENT_NAME_LEN {
            return Err(AgentNameError::TooLong(len));
        }
        let bytes = raw.as_bytes();
        let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
        let edge_ok = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if !bytes.iter().all(allowed) || !edge_ok(&bytes[0]) || !edge_ok(&bytes[bytes.len() - 1]) {
            return Err(AgentNameError::NotDnsLabel(raw.chars().take(64).collect()));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn default_agent() -> Self {
        Self(DEFAULT_AGENT.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for AgentName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        AgentName::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for AgentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The tenant a client token belongs to. Agents are scoped by tenant: two
/// tenants may both have an agent called `default` without sharing anything.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tenant(String);

impl Tenant {
    pub const DEFAULT: &'static str = "default";

    /// Tenants follow the same naming rule as agents: they end up in paths and
    /// Kubernetes names too.
    pub fn parse(raw: &str) -> Result<Self, AgentNameError> {
        AgentName::parse(raw).map(|n| Self(n.0))
    }

    pub fn default_tenant() -> Self {
        Self(Self::DEFAULT.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One agent, fully qualified.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentId {
    pub tenant: Tenant,
    pub name: AgentName,
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["a", "default", "alice-2", "0abc", &"x".repeat(40)] {
            assert_eq!(AgentName::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_bad_names_with_the_reason() {
        assert_eq!(AgentName::parse(""), Err(AgentNameError::Empty));
        assert_eq!(
            AgentName::parse(&"x".repeat(300)),
            Err(AgentNameError::TooLong(300))
        );
        for bad in ["../x", "Alice", "-a", "a-", "a_b", "a.b", "a/b", "é"] {
            assert!(
                matches!(AgentName::parse(bad), Err(AgentNameError::NotDnsLabel(_))),
                "{bad} should be rejected"
            );
        }
        let msg = AgentName::parse("../x").unwrap_err().to_string();
        assert!(msg.contains("DNS-1123"), "{msg}");
    }

    #[test]
    fn deserialize_validates() {
        assert!(serde_json::from_str::<AgentName>("\"ok-1\"").is_ok());
        assert!(serde_json::from_str::<AgentName>("\"../etc\"").is_err());
    }
}
