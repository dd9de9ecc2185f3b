//! One scenario, run against both backends: two tenants use the same agent
//! name, and neither can call, list or learn of the other's agent through
//! any tool.

use std::time::Duration;

use serde_json::{json, Value};

use super::fake_model::{FakeModel, Reply};
use super::mcp_client::{McpClient, StepResult, Transport};

/// A token file line per tenant: `alpha` and `beta`.
pub const ALPHA: &str = "tok-alpha-0123456789abcdef";
pub const BETA: &str = "tok-beta-0123456789abcdef";
/// The client token file for the scenario.
pub fn token_file() -> String {
    format!("{ALPHA} alpha\n{BETA} beta\n")
}

/// A local gateway of its own whose client tokens are [`token_file`]'s.
pub async fn gateway_with_tenants() -> super::gateway::LocalGateway {
    super::gateway::LocalGateway::start_with(|mut o| {
        let tokens = o.data_dir.join("client-tokens");
        std::fs::create_dir_all(&o.data_dir).unwrap();
        std::fs::write(&tokens, token_file()).unwrap();
        o.auth_tokens = Some(tokens);
        o
    })
    .await
}
/// Only in alpha's conversation.
const ALPHA_SECRET: &str = "alpha-private-marker";
const CALL_TIMEOUT: Duration = Duration::from_secs(300);

fn client(mcp_url: &str, token: &str, agent: &str) -> McpClient {
    McpClient::new(mcp_url, Transport::Http)
        .bearer(token)
        .header("X-Codex-Agent", agent)
        .request_timeout(CALL_TIMEOUT)
}

fn structured(r: &StepResult) -> Value {
    assert!(r.ok() && !r.is_error(), "{r}");
    r.structured().cloned().unwrap_or_else(|| json!({}))
}

/// alpha works with its agent "shared"; beta then goes through every tool
/// with the same agent name and must only ever meet its own agent.
pub async fn tenants_never_see_each_other(mcp_url: &str, model: &FakeModel) {
    // alpha works with its agent "shared".
    model.when_contains(ALPHA_SECRET, Reply::text("noted"));
    let alpha = client(mcp_url, ALPHA, "shared");
    structured(
        &alpha
            .clone()
            .call_tool(
                "chat",
                json!({"message": format!("remember {ALPHA_SECRET}")}),
            )
            .await,
    );
    let alpha_info = structured(
        &alpha
            .clone()
            .call_tool("get_my_session_info", json!({}))
            .await,
    );
    let alpha_thread = alpha_info.to_string();

    // beta asks about "shared" every way there is.
    let beta = client(mcp_url, BETA, "shared");
    let list = structured(&beta.clone().call_tool("list_sessions", json!({})).await);
    assert_eq!(list["total"], 0, "{list}");
    let filtered = structured(
        &beta
            .clone()
            .call_tool("list_sessions", json!({"agent_id": "shared"}))
            .await,
    );
    assert_eq!(filtered["total"], 0, "{filtered}");
    let status = structured(
        &beta
            .clone()
            .call_tool("get_agent_status", json!({"agent_id": "shared"}))
            .await,
    );
    assert!(status["agent"].is_null(), "{status}");
    assert!(status["environment"].is_null(), "{status}");
    assert!(!status.to_string().contains("alpha"), "{status}");
    let health = structured(&beta.clone().call_tool("health_check", json!({})).await);
    assert_eq!(
        health["active_agents"], 0,
        "alpha's agent is not counted: {health}"
    );
    let cleanup = structured(
        &beta
            .clone()
            .call_tool("cleanup_inactive_agents", json!({}))
            .await,
    );
    assert_eq!(cleanup["released"], json!([]), "{cleanup}");

    // beta's runs on "shared" are beta's own agent: a separate CodexAgent
    // and conversation that never contain alpha's.
    let before = model.requests().len();
    // Replies in call order: a resumed conversation repeats earlier
    // prompts, so matching on prompt text would pick the wrong one.
    let replies = [
        Reply::Json(json!({
            "summary": "s", "steps": [{"order": 1, "title": "t", "description": "d", "files": [], "complexity": "low"}],
            "risks": [], "dependencies": [], "testing_strategy": "none", "estimated_effort": "1h"
        })),
        Reply::Json(json!({
            "summary": "nothing", "changes": [], "dependencies_added": [], "tests_needed": [],
            "integration_notes": "none", "next_steps": [], "warnings": []
        })),
        Reply::Json(json!({
            "overall_rating": "good", "comments": [], "security_score": 9, "performance_score": 9,
            "maintainability_score": 9, "summary": "fine", "recommendations": []
        })),
        Reply::Json(json!({
            "summary": "nothing to fix", "fixes": [], "diagnostic_steps": [], "quick_fix_available": false,
            "tests_to_run": [], "warnings": []
        })),
        Reply::text("hello beta"),
    ];
    let calls = [
        ("plan", json!({"task": "beta plan"})),
        (
            "implement",
            json!({"task": "beta implement", "target_files": ["b.txt"]}),
        ),
        ("review", json!({"content": "beta review"})),
        ("fix", json!({"error_output": "beta fix"})),
        ("chat", json!({"message": "beta chat"})),
    ];
    for ((tool, args), reply) in calls.into_iter().zip(replies) {
        model.push(reply);
        let r = beta.clone().call_tool(tool, args).await;
        structured(&r);
        assert!(
            !r.to_string().contains(ALPHA_SECRET),
            "{tool} answered from alpha's conversation: {r}"
        );
    }
    let beta_requests: Vec<String> = model.requests()[before..]
        .iter()
        .map(Value::to_string)
        .collect();
    assert_eq!(beta_requests.len(), 5);
    assert!(
        beta_requests.iter().all(|r| !r.contains(ALPHA_SECRET)),
        "a beta run saw alpha's conversation"
    );
    let beta_info = structured(
        &beta
            .clone()
            .call_tool("get_my_session_info", json!({}))
            .await,
    );
    let beta_thread = beta_info["agent"]["thread_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!beta_thread.is_empty() && !alpha_thread.contains(&beta_thread));

    // And alpha still sees only its own.
    let list = structured(&alpha.call_tool("list_sessions", json!({})).await);
    assert_eq!(list["total"], 1, "{list}");
}
