//! Tenants on one machine: a tenant can neither call, nor list, nor learn
//! the existence of another tenant's agents, through any tool, even when
//! both use the same agent name. The same scenario runs on the cluster in
//! `tests/tenants_kube.rs`.

mod support;

use support::fake_model::FakeModel;
use support::gateway::{Gateway, GatewayOptions};
use support::tenants;

#[tokio::test]
async fn tenants_never_see_each_others_agents() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeModel::start().await;
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, tenants::token_file()).unwrap();
    let mut options = GatewayOptions::new(&dir.path().join("data"), &model);
    options.auth_tokens = Some(tokens);
    let gateway = Gateway::start(options);

    tenants::tenants_never_see_each_other(&gateway.mcp_url(), &model).await;

    // Two agents named "shared", each in its own tenant's directory.
    for tenant in ["alpha", "beta"] {
        let workspace = dir
            .path()
            .join("data/tenants")
            .join(tenant)
            .join("agents/shared/workspace");
        assert!(workspace.is_dir(), "{}", workspace.display());
    }
}

/// A token restricted to some agents cleans up only those and learns no
/// other names; an agent whose state is damaged is reported, not fatal.
#[tokio::test]
async fn restricted_tokens_clean_up_only_their_agents() {
    use serde_json::json;
    use support::mcp_client::{McpClient, Transport};

    const FULL: &str = "tok-full-0123456789abcdef";
    const MINE: &str = "tok-mine-0123456789abcdef";
    let dir = tempfile::tempdir().unwrap();
    let model = FakeModel::start().await;
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{FULL} alpha\n{MINE} alpha mine\n")).unwrap();
    let mut options =
        GatewayOptions::new(&dir.path().join("data"), &model).env("SESSION_TIMEOUT", "0");
    options.auth_tokens = Some(tokens);
    let gateway = Gateway::start(options);
    let client = |token: &str, agent: &str| {
        McpClient::new(gateway.mcp_url(), Transport::Http)
            .bearer(token)
            .header("X-Codex-Agent", agent)
    };
    for agent in ["mine", "theirs", "broken"] {
        let r = client(FULL, agent)
            .call_tool("chat", json!({"message": "hi"}))
            .await;
        assert!(r.ok() && !r.is_error(), "{r}");
    }
    let agents = dir.path().join("data/tenants/alpha/agents");
    std::fs::write(agents.join("theirs/tmp/scratch"), "keep").unwrap();
    std::fs::write(agents.join("broken/agent.json"), "{ damaged").unwrap();

    let list = client(FULL, "mine")
        .call_tool("list_sessions", json!({}))
        .await;
    let list = list.structured().cloned().unwrap_or_default();
    assert_eq!(list["total"], 2, "the others are still listed: {list}");
    assert_eq!(list["unreadable"][0]["agent_id"], "broken", "{list}");
    assert!(
        list["unreadable"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("agent.json"),
        "{list}"
    );

    let r = client(MINE, "mine")
        .call_tool("cleanup_inactive_agents", json!({}))
        .await;
    assert!(r.ok() && !r.is_error(), "{r}");
    let cleanup = r.structured().cloned().unwrap_or_default();
    assert_eq!(cleanup["released"], json!(["mine"]), "{cleanup}");
    let shown = cleanup.to_string();
    assert!(
        !shown.contains("theirs") && !shown.contains("broken"),
        "a restricted token learnt other agents' names: {shown}"
    );
    assert!(agents.join("theirs/tmp/scratch").exists());
    let list = client(MINE, "mine")
        .call_tool("list_sessions", json!({}))
        .await
        .to_string();
    assert!(
        !list.contains("theirs") && !list.contains("broken"),
        "{list}"
    );

    let r = client(FULL, "mine")
        .call_tool("cleanup_inactive_agents", json!({}))
        .await;
    let cleanup = r.structured().cloned().unwrap_or_default();
    assert_eq!(cleanup["released"], json!(["mine", "theirs"]), "{cleanup}");
    assert_eq!(cleanup["unreadable"][0]["agent_id"], "broken", "{cleanup}");
}
