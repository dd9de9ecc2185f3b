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

/// A session id is not a credential: tenant beta holding alpha's session
/// ids (streamable HTTP and SSE) can neither call through them nor end
/// them, a second agent of alpha's own cannot ride alpha's session, and
/// the ids never reach INFO logs.
#[tokio::test]
async fn sessions_belong_to_the_identity_that_opened_them() {
    use reqwest::header::HeaderValue;
    use serde_json::json;
    use support::raw_mcp::{open_sse, RawMcp};

    let dir = tempfile::tempdir().unwrap();
    let model = FakeModel::start().await;
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, tenants::token_file()).unwrap();
    let mut options = GatewayOptions::new(&dir.path().join("data"), &model);
    options.auth_tokens = Some(tokens);
    let gateway = Gateway::start(options);
    let agent = |name: &str| HeaderValue::from_str(name).unwrap();
    let alpha = RawMcp::new(gateway.mcp_url())
        .bearer(tenants::ALPHA)
        .header("x-codex-agent", agent("shared"));
    let beta = RawMcp::new(gateway.mcp_url())
        .bearer(tenants::BETA)
        .header("x-codex-agent", agent("shared"));

    // Streamable HTTP.
    let session = alpha.open().await;
    let stolen = beta
        .call(&session, 1, "get_my_session_info", json!({}))
        .await;
    assert_eq!(stolen.status, 403, "{stolen:?}");
    assert!(
        stolen.message["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("opened by another client"),
        "{stolen:?}"
    );
    assert_eq!(
        beta.delete(&session).await,
        403,
        "beta ended alpha's session"
    );
    let other_agent = RawMcp::new(gateway.mcp_url())
        .bearer(tenants::ALPHA)
        .header("x-codex-agent", agent("other"));
    let r = other_agent
        .call(&session, 2, "get_my_session_info", json!({}))
        .await;
    assert_eq!(r.status, 403, "another agent rode alpha's session: {r:?}");
    let own = alpha
        .call(&session, 3, "get_my_session_info", json!({}))
        .await;
    assert_eq!(own.status, 200, "{own:?}");
    assert_eq!(
        own.message["result"]["structuredContent"]["tenant"], "alpha",
        "{own:?}"
    );
    assert!(alpha.delete(&session).await.is_success());

    // Legacy SSE.
    let (message_url, _stream) = open_sse(&gateway.url, "/sse", tenants::ALPHA).await;
    let sse_id = message_url.split("sessionId=").nth(1).unwrap().to_owned();
    let ping = json!({"jsonrpc": "2.0", "id": 9, "method": "ping"});
    let post = |token: &'static str| {
        reqwest::Client::new()
            .post(&message_url)
            .bearer_auth(token)
            .json(&ping)
            .send()
    };
    let r = post(tenants::BETA).await.unwrap();
    assert_eq!(r.status(), 403, "beta posted into alpha's SSE session");
    assert!(r.text().await.unwrap().contains("opened by another client"));
    assert_eq!(post(tenants::ALPHA).await.unwrap().status(), 202);
    assert!(model.requests().is_empty(), "no run happened");

    for id in [&session, &sse_id] {
        let leaked: Vec<String> = gateway
            .logs()
            .into_iter()
            .filter(|l| l.contains("\"level\":\"INFO\"") && l.contains(id.as_str()))
            .collect();
        assert!(leaked.is_empty(), "session id in INFO logs: {leaked:?}");
    }
}
