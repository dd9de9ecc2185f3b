//! How an agent maps to Kubernetes objects, and a CodexAgent back to the
//! gateway's record. Pure functions, unit-tested without a cluster.

use chrono::{DateTime, Utc};

use crate::agent::AgentId;
use crate::api::crd::{condition, reason, ApprovalMode, CodexAgent, Phase};
use crate::api::labels::{ANNOTATION_THREAD_USAGE, LABEL_AGENT_NAME, LABEL_TENANT};
use crate::backend::AgentRecord;
use crate::codex::agent_settings::{config_entry, provider_id, ConfigEntryError};
use crate::codex::{AgentCodexSettings, SandboxMode, Usage};

const HASH_HEX: usize = 10;
/// The operator derives child names by suffixing this one (`-credentials` is
/// the longest), and they must stay within a 63-character label.
const MAX_NAME: usize = 50;

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The CodexAgent's name: `<tenant>-<agent>` (truncated) plus a hash of the
/// exact pair. The hash is always there because `-` is allowed in both
/// parts (`a-b`/`c` and `a`/`b-c` would otherwise meet), and it keeps
/// truncated names apart.
pub fn resource_name(agent: &AgentId) -> String {
    let hash = fnv1a(format!("{}/{}", agent.tenant, agent.name).as_bytes());
    let hash = format!("{hash:016x}");
    let mut readable = format!("{}-{}", agent.tenant, agent.name);
    readable.truncate(MAX_NAME - HASH_HEX - 1);
    let readable = readable.trim_end_matches('-');
    format!("{readable}-{}", &hash[..HASH_HEX])
}

/// The run Lease of the agent whose CodexAgent is `resource`.
pub fn lease_name(resource: &str) -> String {
    format!("{resource}-run")
}

/// Whether the CodexAgent really is this agent (and not a hash collision or
/// a resource someone else created under that name).
pub fn belongs_to(cr: &CodexAgent, agent: &AgentId) -> bool {
    let labels = cr.metadata.labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    label(LABEL_AGENT_NAME) == Some(agent.name.as_str())
        && label(LABEL_TENANT) == Some(agent.tenant.as_str())
}

pub fn format_usage(u: &Usage) -> String {
    format!(
        "{},{},{}",
        u.input_tokens, u.cached_input_tokens, u.output_tokens
    )
}

pub fn parse_usage(s: &str) -> Usage {
    let mut parts = s.split(',').map(|p| p.trim().parse::<u64>().unwrap_or(0));
    Usage {
        input_tokens: parts.next().unwrap_or(0),
        cached_input_tokens: parts.next().unwrap_or(0),
        output_tokens: parts.next().unwrap_or(0),
    }
}

fn count(v: Option<i64>) -> u64 {
    v.unwrap_or(0).max(0) as u64
}

/// The gateway's view of an agent, read from its CodexAgent.
pub fn record_from(cr: &CodexAgent, agent: &AgentId, now: DateTime<Utc>) -> AgentRecord {
    let created = cr
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(|t| {
            DateTime::<Utc>::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond() as u32)
        })
        .unwrap_or(now);
    let status = cr.status.clone().unwrap_or_default();
    let thread_usage = cr
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_THREAD_USAGE))
        .map(|s| parse_usage(s))
        .unwrap_or_default();
    AgentRecord {
        agent_id: agent.name.to_string(),
        tenant: agent.tenant.to_string(),
        thread_id: status.thread_id.clone(),
        created_at: created,
        last_activity: status.last_activity.unwrap_or(created),
        runs: count(status.runs),
        failed_runs: count(status.failed_runs),
        input_tokens: count(status.input_tokens),
        output_tokens: count(status.output_tokens),
        thread_usage,
        codex: AgentCodexSettings::default(),
        recent_runs: status.recent_runs.clone(),
    }
}

/// The agent's own Codex settings, from its `spec.codex`.
pub fn agent_settings(cr: &CodexAgent) -> Result<AgentCodexSettings, ConfigEntryError> {
    let Some(codex) = cr.spec.codex.as_ref() else {
        return Ok(AgentCodexSettings::default());
    };
    Ok(AgentCodexSettings {
        model: codex.model.clone().filter(|m| !m.trim().is_empty()),
        provider: codex.provider.as_deref().map(provider_id).transpose()?,
        write_sandbox: codex.approval_mode.map(|m| match m {
            ApprovalMode::Suggest => SandboxMode::ReadOnly,
            ApprovalMode::AutoEdit | ApprovalMode::FullAuto => SandboxMode::WorkspaceWrite,
            ApprovalMode::DangerFullAccess => SandboxMode::DangerFullAccess,
            ApprovalMode::External => SandboxMode::External,
        }),
        config_overrides: codex
            .config
            .iter()
            .map(|(k, v)| config_entry(k, v))
            .collect::<Result<_, _>>()?,
    })
}

/// Whether the operator has seen the current spec and says the pod is ready.
pub fn ready(cr: &CodexAgent) -> bool {
    let Some(status) = cr.status.as_ref() else {
        return false;
    };
    status.phase == Some(Phase::Ready)
        && status.observed_generation == cr.metadata.generation
        && !cr.spec.suspended
}

/// The operator's word on a failed agent, once it has seen the current spec.
pub fn failure(cr: &CodexAgent) -> Option<String> {
    let status = cr.status.as_ref()?;
    (status.phase == Some(Phase::Failed) && status.observed_generation == cr.metadata.generation)
        .then(|| {
            status
                .message
                .clone()
                .unwrap_or_else(|| "no reason given".into())
        })
}

/// The operator's word on credentials that cannot work until someone acts
/// (a login the token endpoint refused, a missing Secret or key), once it
/// has seen the current spec. A run would only fail later, less clearly.
pub fn credentials_failure(cr: &CodexAgent) -> Option<String> {
    let status = cr.status.as_ref()?;
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == condition::CREDENTIALS_READY)?;
    let blocking = [
        reason::REFRESH_FAILED,
        reason::SECRET_NOT_FOUND,
        reason::KEYS_MISSING,
        reason::LOGIN_UNREADABLE,
    ];
    (c.status == "False"
        && blocking.contains(&c.reason.as_str())
        && c.observed_generation
            .is_none_or(|g| Some(g) == cr.metadata.generation))
    .then(|| format!("its credentials are not usable: {}", c.message))
}

pub fn describe(cr: &CodexAgent) -> String {
    let status = cr.status.clone().unwrap_or_default();
    let phase = status.phase.map_or("Pending", Phase::as_str);
    match status.message.filter(|m| !m.is_empty()) {
        Some(m) => format!("{phase}: {m}"),
        None => phase.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{AgentName, Tenant};

    fn id(t: &str, a: &str) -> AgentId {
        AgentId {
            tenant: Tenant::parse(t).unwrap(),
            name: AgentName::parse(a).unwrap(),
        }
    }

    fn is_dns_label(s: &str) -> bool {
        let b = s.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    }

    #[test]
    fn names_are_readable_stable_and_distinct() {
        let n = resource_name(&id("default", "alice"));
        assert!(n.starts_with("default-alice-"), "{n}");
        assert_eq!(n, resource_name(&id("default", "alice")));
        assert_ne!(
            resource_name(&id("a-b", "c")),
            resource_name(&id("a", "b-c")),
            "dashes must not make two agents meet"
        );
    }

    #[test]
    fn longest_names_stay_valid_with_operator_suffixes() {
        let long = "x".repeat(crate::agent::MAX_AGENT_NAME_LEN);
        let tricky = format!("{}-{}", "a".repeat(38), "b");
        for (t, a) in [(long.as_str(), long.as_str()), ("t", tricky.as_str())] {
            let n = resource_name(&id(t, a));
            assert!(n.len() <= MAX_NAME, "{n}");
            for suffix in ["", "-workspace", "-credentials", "-run"] {
                assert!(is_dns_label(&format!("{n}{suffix}")), "{n}{suffix}");
            }
        }
    }

    #[test]
    fn usage_round_trips_and_tolerates_garbage() {
        let u = Usage {
            input_tokens: 5,
            cached_input_tokens: 2,
            output_tokens: 7,
        };
        assert_eq!(parse_usage(&format_usage(&u)), u);
        assert_eq!(parse_usage("junk"), Usage::default());
    }

    #[test]
    fn spec_codex_becomes_the_agents_settings() {
        use crate::api::crd::{CodexAgentSpec, CodexSettings};
        let mut cr = CodexAgent::new("x", CodexAgentSpec::default());
        assert!(agent_settings(&cr).unwrap().is_empty());
        cr.spec.codex = Some(CodexSettings {
            model: Some("gpt-5.5".into()),
            provider: Some("ollama".into()),
            approval_mode: Some(ApprovalMode::Suggest),
            config: [("model_reasoning_effort".to_owned(), "\"high\"".to_owned())].into(),
        });
        let s = agent_settings(&cr).unwrap();
        assert_eq!(s.model.as_deref(), Some("gpt-5.5"));
        assert_eq!(s.provider.as_deref(), Some("ollama"));
        assert_eq!(s.write_sandbox, Some(SandboxMode::ReadOnly));
        assert_eq!(
            s.config_overrides,
            vec!["model_reasoning_effort=\"high\"".to_owned()]
        );
        cr.spec.codex.as_mut().unwrap().config = [("a=b".to_owned(), "1".to_owned())].into();
        assert!(matches!(agent_settings(&cr), Err(ConfigEntryError::Key(_))));
    }
}
