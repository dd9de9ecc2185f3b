//! Tenants on the real test cluster: a tenant can neither call, nor list,
//! nor learn the existence of another tenant's agents, through any tool, even
//! when both use the same agent name.

mod support;

use codex_mcp::api::crd::CodexAgent;
use kube::api::{Api, ListParams};
use kube::ResourceExt;
use support::kube_gateway::{self, KubeGateway};
use support::tenants;

#[tokio::test]
async fn tenants_never_see_each_others_agents() {
    let (ns, model) = kube_gateway::namespace_with_model("tenants").await;
    let _operator = kube_gateway::start_operator(ns.name());
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, tenants::token_file()).unwrap();
    let gateway = KubeGateway::start(
        ns.name(),
        &model,
        &["--auth-tokens", tokens.to_str().unwrap()],
    );
    tenants::tenants_never_see_each_other(&gateway.mcp_url(), &model).await;

    // Two CodexAgents, one per tenant, each labelled with its tenant.
    let agents: Api<CodexAgent> = ns.api();
    let crs = agents.list(&ListParams::default()).await.unwrap();
    let mut labelled: Vec<String> = crs
        .iter()
        .map(|a| a.labels()["codexmcp.dev/tenant"].clone())
        .collect();
    labelled.sort();
    assert_eq!(labelled, ["alpha", "beta"]);
    assert!(crs
        .iter()
        .all(|a| a.labels()["codexmcp.dev/agent-name"] == "shared"));

    ns.cleanup().await;
}
