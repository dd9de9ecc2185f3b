//! The session tools: what agents exist, how the caller is connected, and
//! the gateway's health.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::caller::Caller;
use super::ToolError;
use crate::agent::{AgentId, AgentName, Tenant};
use crate::backend::run_log::RunEntry;
use crate::backend::{AgentRecord, EnvironmentStatus, UnreadableAgent};
use crate::runs::Runner;

// Kept apart from `AgentRecord`, the stored form: this is the shape agents
// read (its doc comment is part of the tools' schemas), without the tenant or
// Codex's internal usage counters, and with a status.
/// One agent: its status, conversation, activity and usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentSummary {
    pub agent_id: String,
    /// running (a call is executing), idle, or inactive (idle past the session timeout).
    pub status: String,
    pub thread_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_activity: DateTime<Utc>,
    pub runs: u64,
    pub failed_runs: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The agent's last runs (newest last) and how each ended: a call whose
    /// caller went away is found here; `get_run` gives details.
    pub recent_runs: Vec<RunEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionList {
    pub sessions: Vec<AgentSummary>,
    pub total: usize,
    /// Agents whose stored state could not be read, with the reason; the
    /// others are listed as usual.
    pub unreadable: Vec<UnreadableAgent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionInfo {
    pub agent_id: String,
    /// The tenant your token belongs to.
    pub tenant: String,
    /// streamable-http or sse.
    pub transport: String,
    /// Null until your agent's first call creates it.
    pub agent: Option<AgentSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentStatus {
    pub agent_id: String,
    /// Null until the agent's first call creates it.
    pub agent: Option<AgentSummary>,
    /// Null on one machine; on Kubernetes the CodexAgent's phase, pod and message.
    pub environment: Option<EnvironmentStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HealthReport {
    /// healthy, or degraded with the reason in `problems`.
    pub status: String,
    pub version: String,
    pub uptime_seconds: u64,
    /// local or kubernetes.
    pub backend: String,
    /// Which Codex credential is in use (never its value).
    pub credentials: String,
    /// Your tenant's agents with a call within the session timeout.
    pub active_agents: usize,
    pub max_concurrent_sessions: usize,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CleanupResult {
    /// Agents released; their workspaces and conversations are kept.
    pub released: Vec<String>,
    /// Idle agents left alone because a call was using or waiting for them.
    pub busy: Vec<String>,
    /// Agents whose state could not be read or released, with the reason.
    pub unreadable: Vec<UnreadableAgent>,
}

fn summarize(runner: &Runner, tenant_agent: &AgentId, r: AgentRecord) -> AgentSummary {
    let idle = Utc::now() - r.last_activity;
    let timeout = chrono::Duration::from_std(runner.settings().session_timeout)
        .unwrap_or(chrono::Duration::MAX);
    let status = if runner.is_running(tenant_agent) {
        "running"
    } else if idle >= timeout {
        "inactive"
    } else {
        "idle"
    };
    AgentSummary {
        agent_id: r.agent_id,
        status: status.to_owned(),
        thread_id: r.thread_id,
        created_at: r.created_at,
        last_activity: r.last_activity,
        runs: r.runs,
        failed_runs: r.failed_runs,
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
        recent_runs: r.recent_runs,
    }
}

pub async fn list_sessions(
    runner: &Runner,
    caller: &Caller,
    only: Option<&str>,
) -> Result<SessionList, ToolError> {
    let only = only
        .map(|n| {
            AgentName::parse(n).map_err(|e| ToolError::InvalidParams(format!("agent_id: {e}")))
        })
        .transpose()?;
    let list = runner
        .backend()
        .list_agents(&caller.tenant)
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))?;
    let shown = |n: &str| {
        AgentName::parse(n)
            .is_ok_and(|n| caller.may_use(&n) && only.as_ref().is_none_or(|o| *o == n))
    };
    let unreadable = list
        .unreadable
        .into_iter()
        .filter(|u| shown(&u.agent_id))
        .collect();
    let sessions: Vec<AgentSummary> = list
        .agents
        .into_iter()
        .filter_map(|r| {
            let name = AgentName::parse(&r.agent_id).ok()?;
            if !caller.may_use(&name) || only.as_ref().is_some_and(|o| *o != name) {
                return None;
            }
            let id = AgentId {
                tenant: caller.tenant.clone(),
                name,
            };
            Some(summarize(runner, &id, r))
        })
        .collect();
    Ok(SessionList {
        total: sessions.len(),
        sessions,
        unreadable,
    })
}

pub async fn session_info(runner: &Runner, caller: &Caller) -> Result<SessionInfo, ToolError> {
    let id = caller.agent_id()?;
    let record = runner
        .backend()
        .get_agent(&id)
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))?;
    Ok(SessionInfo {
        agent_id: id.name.to_string(),
        tenant: id.tenant.to_string(),
        transport: caller.transport.to_owned(),
        agent: record.map(|r| summarize(runner, &id, r)),
    })
}

pub async fn agent_status(
    runner: &Runner,
    caller: &Caller,
    name: Option<&str>,
) -> Result<AgentStatus, ToolError> {
    let id = match name {
        None => caller.agent_id()?,
        Some(n) => {
            let name = AgentName::parse(n)
                .map_err(|e| ToolError::InvalidParams(format!("agent_id: {e}")))?;
            if !caller.may_use(&name) {
                return Err(ToolError::InvalidParams(format!(
                    "agent_id: your token does not give access to agent {name}"
                )));
            }
            AgentId {
                tenant: caller.tenant.clone(),
                name,
            }
        }
    };
    let failed = |e: crate::backend::BackendError| ToolError::Failed(e.to_string());
    let record = runner.backend().get_agent(&id).await.map_err(failed)?;
    let environment = runner.backend().environment(&id).await.map_err(failed)?;
    Ok(AgentStatus {
        agent_id: id.name.to_string(),
        agent: record.map(|r| summarize(runner, &id, r)),
        environment,
    })
}

/// The gateway's health. Given a tenant, counts cover only its agents, so a
/// caller learns nothing about other tenants' agents; the `/health` probe
/// counts all.
pub fn health(runner: &Runner, tenant: Option<&Tenant>) -> HealthReport {
    let credentials = runner.credentials().describe();
    let mut problems = Vec::new();
    if let Some(p) = runner.credentials().problem() {
        problems.push(p);
    }
    problems.extend(runner.state_problems(tenant));
    HealthReport {
        status: if problems.is_empty() {
            "healthy"
        } else {
            "degraded"
        }
        .to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_seconds: runner.uptime().as_secs(),
        backend: runner.backend().kind().to_owned(),
        credentials,
        active_agents: match tenant {
            Some(t) => runner.active_agents_of(t),
            None => runner.active_agents(),
        },
        max_concurrent_sessions: runner.settings().max_concurrent_runs,
        problems,
    }
}
