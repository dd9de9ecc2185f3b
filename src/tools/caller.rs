//! Who is calling, and which agent they address. The gateway's HTTP layer
//! works this out once per request and attaches it to the request; tools read
//! it back from the request parts rmcp hands them.

use rmcp::service::RequestContext;
use rmcp::RoleServer;

use super::ToolError;
use crate::agent::{AgentId, AgentName, Tenant, AGENT_HEADER};

/// The authenticated caller of one HTTP request.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub tenant: Tenant,
    /// The agent the request addresses, or why its name is invalid.
    pub agent: Result<AgentName, String>,
    /// Agents this caller's token may use; `None` means any of its tenant's.
    pub allowed_agents: Option<Vec<AgentName>>,
    /// The `X-Codex-Repository` header (`URL[#REF]`), or why it cannot be read.
    pub repository: Result<Option<String>, String>,
    /// `streamable-http` or `sse`.
    pub transport: &'static str,
}

/// Picks the agent from an `/agents/{name}/...` path or the `X-Codex-Agent`
/// header (the path wins), else the default agent.
pub fn select_agent(path: &str, header: Option<&str>) -> Result<AgentName, String> {
    if let Some(rest) = path.strip_prefix("/agents/") {
        let name = rest.split('/').next().unwrap_or_default();
        let decoded = percent_decode(name);
        return AgentName::parse(&decoded).map_err(|e| e.to_string());
    }
    match header {
        Some(h) => AgentName::parse(h.trim()).map_err(|e| format!("{AGENT_HEADER} header: {e}")),
        None => Ok(AgentName::default_agent()),
    }
}

/// Decodes %XX escapes so an encoded name is judged as what it means
/// (`%2e%2e` is `..` and must be refused as such).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Caller {
    pub fn from_context(ctx: &RequestContext<RoleServer>) -> Result<Self, ToolError> {
        ctx.extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.extensions.get::<Caller>())
            .cloned()
            .ok_or_else(|| ToolError::Failed("the request carries no caller identity".into()))
    }

    /// The agent this call addresses, if the caller may use it.
    pub fn agent_id(&self) -> Result<AgentId, ToolError> {
        let name = self.agent.clone().map_err(ToolError::Refused)?;
        self.check_allowed(&name)?;
        Ok(AgentId {
            tenant: self.tenant.clone(),
            name,
        })
    }

    pub fn may_use(&self, name: &AgentName) -> bool {
        self.allowed_agents
            .as_ref()
            .is_none_or(|a| a.contains(name))
    }

    fn check_allowed(&self, name: &AgentName) -> Result<(), ToolError> {
        if self.may_use(name) {
            Ok(())
        } else {
            Err(ToolError::Refused(format!(
                "this token may not use agent {name}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_wins_over_header_and_default_applies() {
        assert_eq!(
            select_agent("/agents/alice/mcp", Some("bob"))
                .unwrap()
                .as_str(),
            "alice"
        );
        assert_eq!(select_agent("/mcp", Some("bob")).unwrap().as_str(), "bob");
        assert_eq!(select_agent("/mcp", None).unwrap().as_str(), "default");
        assert_eq!(
            select_agent("/agents/carol/message", None)
                .unwrap()
                .as_str(),
            "carol"
        );
    }

    #[test]
    fn bad_names_are_explained() {
        let e = select_agent("/mcp", Some("../x")).unwrap_err();
        assert!(e.contains("x-codex-agent") && e.contains("DNS-1123"), "{e}");
        assert!(select_agent("/agents/%2e%2e/mcp", None).is_err());
        assert!(select_agent("/agents/Alice/mcp", None).is_err());
        assert!(select_agent("/mcp", Some(&"a".repeat(300)))
            .unwrap_err()
            .contains("300"));
        assert!(select_agent("/mcp", Some("")).is_err());
    }

    #[test]
    fn allowed_agents_restrict_the_caller() {
        let c = Caller {
            tenant: Tenant::default_tenant(),
            agent: Ok(AgentName::parse("bob").unwrap()),
            allowed_agents: Some(vec![AgentName::parse("alice").unwrap()]),
            repository: Ok(None),
            transport: "sse",
        };
        assert!(matches!(c.agent_id(), Err(ToolError::Refused(_))));
        let c = Caller {
            allowed_agents: None,
            ..c
        };
        assert_eq!(c.agent_id().unwrap().name.as_str(), "bob");
    }
}
