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
