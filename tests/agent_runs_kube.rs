//! What one run gets in an agent's pod on the real test cluster: the
//! CodexAgent's own `spec.codex` settings (set by kubectl, as a cluster admin
//! would, and read by the gateway at the start of each run), and no
//! credential in the commands Codex runs or on the agent's volume.
//! Needs CODEX_MCP_TEST_KUBECONFIG (scripts/test.sh sets it).

mod support;

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::ResourceExt;
use serde_json::json;
use support::cluster;
use support::fake_model::{self, Reply, MODEL};
use support::gateway::TEST_API_KEY;
use support::kube_gateway::{self, codex_agent, ready_pod, KubeGateway};
use support::mcp_client::{McpClient, Transport};

const CALL_TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::test]
async fn spec_codex_reaches_the_agents_runs() {
    let (ns, model) = kube_gateway::namespace_with_model("gwk-settings").await;
    let _operator = kube_gateway::start_operator(ns.name());
    let gateway = KubeGateway::start(ns.name(), &model, &[]);
    let client = || {
        McpClient::new(gateway.mcp_url(), Transport::Http)
            .header("X-Codex-Agent", "tuned")
            .request_timeout(CALL_TIMEOUT)
    };

    model.push(Reply::text("first"));
    let first = client().call_tool("chat", json!({"message": "one"})).await;
    assert!(first.ok() && !first.is_error(), "{first}");
    assert_eq!(model.requests().last().unwrap()["model"], MODEL);

    let name = codex_agent(&ns, "tuned").await.name_any();
    let agents = ns.api::<codex_mcp::api::crd::CodexAgent>();
    let set = |codex: serde_json::Value| {
        let agents = agents.clone();
        let name = name.clone();
        async move {
            agents
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"spec": {"codex": codex}})),
                )
                .await
                .expect("patching spec.codex")
        }
    };
    set(json!({"model": "model-from-spec"})).await;
    model.push(Reply::text("second"));
    let second = client().call_tool("chat", json!({"message": "two"})).await;
    assert!(second.ok() && !second.is_error(), "{second}");
    assert_eq!(
        model.requests().last().unwrap()["model"],
        "model-from-spec",
        "the agent's own model"
    );
    assert_eq!(
        second.structured().unwrap()["run"]["thread_id"],
        first.structured().unwrap()["run"]["thread_id"],
        "no pod restart, same conversation"
    );

    // A config key that could smuggle a second assignment is refused with
    // a message naming it, before Codex runs.
    set(json!({"config": {"a=b": "1"}})).await;
    let before = model.requests().len();
    let refused = client()
        .call_tool("chat", json!({"message": "three"}))
        .await;
    assert!(refused.is_error(), "{refused}");
    let text = format!("{refused}");
    assert!(
        text.contains("spec.codex") && text.contains("a=b"),
        "{text}"
    );
    assert_eq!(model.requests().len(), before, "Codex did not run");
    drop(gateway);
    ns.cleanup().await;
}

#[tokio::test]
async fn the_key_reaches_codex_but_not_its_commands_nor_the_volume() {
    let (ns, model) = kube_gateway::namespace_with_model("gwk-nokey").await;
    let _operator = kube_gateway::start_operator(ns.name());
    let gateway = KubeGateway::start(ns.name(), &model, &[]);
    let client = McpClient::new(gateway.mcp_url(), Transport::Http)
        .header("X-Codex-Agent", "snoop")
        .request_timeout(CALL_TIMEOUT);

    model.push(Reply::exec("env"));
    model.push(Reply::text("looked"));
    let looked = client
        .call_tool("chat", json!({"message": "show env"}))
        .await;
    assert!(looked.ok() && !looked.is_error(), "{looked}");
    let outputs = fake_model::tool_outputs(model.requests().last().unwrap()).join("\n");
    assert!(outputs.contains("HOME="), "the command ran: {outputs}");
    assert!(
        !outputs.contains(TEST_API_KEY),
        "the key reached a command's environment: {outputs}"
    );
    assert!(
        model.bearer_tokens().iter().all(|t| t == TEST_API_KEY),
        "Codex itself authenticated with the key"
    );

    // Nothing on the agent's volume holds the key after the run.
    let pod = ready_pod(&ns, "snoop").await;
    let pods = ns.api::<k8s_openapi::api::core::v1::Pod>();
    let found = cluster::exec_with(
        &pods,
        &pod,
        Some("agent"),
        &["grep", "-rl", TEST_API_KEY, "/agent"],
        None,
        Duration::from_secs(30),
    )
    .await;
    assert!(
        found.stdout.trim().is_empty(),
        "files on the volume hold the key: {}",
        found.stdout
    );
    drop(gateway);
    ns.cleanup().await;
}
