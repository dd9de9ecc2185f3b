//! `--project [TENANT/]NAME=PATH`: which agent works on which repository.
//! Without a tenant the binding is the default tenant's agent NAME (the
//! one callers without a tenant token reach); a token of another tenant
//! addressing NAME gets that tenant's own agent, never this project.

use std::path::PathBuf;

use crate::agent::{AgentId, AgentName, Tenant};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BindingError {
    #[error("--project {0:?}: expected [TENANT/]NAME=PATH")]
    Shape(String),
    #[error("--project {0:?}: {1}")]
    Name(String, String),
    #[error("--project: agent {0} is bound to more than one project")]
    Duplicate(String),
}

/// One agent bound to one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectBinding {
    pub agent: AgentId,
    pub path: PathBuf,
}

/// An agent as a `--project` value names it: NAME for the default
/// tenant's, TENANT/NAME otherwise.
pub fn shown(agent: &AgentId) -> String {
    if agent.tenant.as_str() == Tenant::DEFAULT {
        agent.name.to_string()
    } else {
        agent.to_string()
    }
}

/// Parses one `[TENANT/]NAME=PATH`.
pub fn parse_binding(raw: &str) -> Result<ProjectBinding, BindingError> {
    let (who, path) = raw
        .split_once('=')
        .filter(|(w, p)| !w.trim().is_empty() && !p.trim().is_empty())
        .ok_or_else(|| BindingError::Shape(raw.to_owned()))?;
    let (tenant, name) = match who.trim().split_once('/') {
        Some((t, n)) => (
            Tenant::parse(t).map_err(|e| BindingError::Name(raw.to_owned(), e.to_string()))?,
            n,
        ),
        None => (Tenant::default_tenant(), who.trim()),
    };
    let name =
        AgentName::parse(name).map_err(|e| BindingError::Name(raw.to_owned(), e.to_string()))?;
    Ok(ProjectBinding {
        agent: AgentId { tenant, name },
        path: PathBuf::from(path.trim()),
    })
}

/// Parses every binding, refusing an agent bound twice.
pub fn parse_bindings(raw: &[String]) -> Result<Vec<ProjectBinding>, BindingError> {
    let mut out: Vec<ProjectBinding> = Vec::new();
    for r in raw.iter().filter(|r| !r.trim().is_empty()) {
        let b = parse_binding(r)?;
        if out.iter().any(|o| o.agent == b.agent) {
            return Err(BindingError::Duplicate(shown(&b.agent)));
        }
        out.push(b);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_and_without_tenant() {
        let b = parse_binding("web=/src/web").unwrap();
        assert_eq!(b.agent.tenant.as_str(), "default");
        assert_eq!(b.agent.name.as_str(), "web");
        assert_eq!(b.path, PathBuf::from("/src/web"));
        let b = parse_binding("team-a/api=../api=v2").unwrap();
        assert_eq!(b.agent.tenant.as_str(), "team-a");
        assert_eq!(b.agent.name.as_str(), "api");
        assert_eq!(
            b.path,
            PathBuf::from("../api=v2"),
            "only the first = splits"
        );
    }

    #[test]
    fn bad_bindings_are_explained() {
        assert!(matches!(parse_binding("web"), Err(BindingError::Shape(_))));
        assert!(matches!(parse_binding("=/x"), Err(BindingError::Shape(_))));
        assert!(matches!(parse_binding("web="), Err(BindingError::Shape(_))));
        let e = parse_binding("Web=/x").unwrap_err().to_string();
        assert!(e.contains("Web=/x") && e.contains("DNS-1123"), "{e}");
        let e = parse_bindings(&["a=/x".into(), "a=/y".into()]).unwrap_err();
        assert_eq!(e, BindingError::Duplicate("a".into()));
        let e = parse_bindings(&["t/a=/x".into(), "t/a=/y".into()]).unwrap_err();
        assert_eq!(e, BindingError::Duplicate("t/a".into()));
        assert_eq!(parse_bindings(&["".into()]).unwrap(), vec![]);
    }
}
