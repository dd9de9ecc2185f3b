//! The chart installed for real with the `helm` command into the test
//! cluster: images built from this build (`runtime` for the gateway and the
//! operator, as the Dockerfile's default target; the agent image with the
//! real Codex CLI), the operator watching only the test's namespace, an MCP
//! client calling `chat` through the gateway into an agent pod that talks to
//! the fake model, an upgrade that rolls the gateway out, and an uninstall
//! that removes the release but keeps what users keep, with Helm 4; an
//! install and uninstall with Helm 3 (pod starts are slow here: not twice).
//!
//! The test cluster has no kube-proxy: the chart's `testCluster` values put
//! both components on the host network, so the gateway is reached at
//! 127.0.0.1 on a free port. Needs CODEX_MCP_TEST_KUBECONFIG.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, ListParams};
use kube::ResourceExt;
use serde_json::{json, Value};
use support::chart_flows;
use support::cluster::TestNamespace;
use support::fake_model::Reply;
use support::gateway::TEST_API_KEY;
use support::helm::values::{cluster_release as values, free_port};
use support::helm::{self, container_env, Helm, Step};
use support::kube_gateway::{self, codex_agent};
use support::mcp_client::{McpClient, Transport};

const RELEASE: &str = "codex-mcp";
const GATEWAY: &str = "codex-mcp-gateway";
const OPERATOR: &str = "codex-mcp-operator";
/// Starting pods (and an agent's, with a 300 MB Codex) on a busy two-core machine.
const TIMEOUT_SECS: u64 = 300;
const CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// `helm STEP`; on failure, shows what the pods were doing first.
async fn helm_release(helm: Helm, step: Step, ns: &TestNamespace, values: &Value) {
    let (name, values) = (ns.name().to_owned(), values.clone());
    let started = Instant::now();
    let result = tokio::task::spawn_blocking(move || {
        helm::release(helm, step, RELEASE, &name, &values, TIMEOUT_SECS)
    })
    .await;
    if let Err(e) = result {
        for args in [
            vec!["get", "pods,deploy,rs", "-o", "wide", "-n", ns.name()],
            vec!["describe", "pods", "-n", ns.name()],
            vec![
                "logs",
                "-n",
                ns.name(),
                "-l",
                "app.kubernetes.io/instance=codex-mcp",
                "--tail=30",
            ],
        ] {
            let out = std::process::Command::new("kubectl")
                .args(&args)
                .env("KUBECONFIG", support::cluster::kubeconfig_path())
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            eprintln!("--- kubectl {}\n{out}", args.join(" "));
        }
        std::panic::resume_unwind(e.into_panic());
    }
    eprintln!("{helm} {step}: {:?}", started.elapsed());
}

fn gateway_client(port: u16, token: &str) -> McpClient {
    McpClient::new(format!("http://127.0.0.1:{port}/mcp"), Transport::Http)
        .bearer(token)
        .header("X-Codex-Agent", "helmsman")
        .request_timeout(CALL_TIMEOUT)
}

async fn exists<K>(ns: &TestNamespace, name: &str) -> bool
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    ns.api::<K>().get_opt(name).await.unwrap().is_some()
}

/// The gateway's ReplicaSets; with `serving`, only those with a ready pod.
async fn gateway_replica_sets(ns: &TestNamespace, serving: bool) -> Vec<ReplicaSet> {
    let lp = ListParams::default().labels("app.kubernetes.io/component=gateway");
    let sets = ns.api::<ReplicaSet>().list(&lp).await.unwrap().items;
    sets.into_iter()
        .filter(|rs| {
            !serving
                || rs
                    .status
                    .as_ref()
                    .and_then(|s| s.ready_replicas)
                    .unwrap_or(0)
                    > 0
        })
        .collect()
}

#[tokio::test]
async fn install_call_upgrade_and_uninstall_the_chart() {
    let _ =
        tokio::task::spawn_blocking(|| (kube_gateway::agent_image(), helm::runtime_image())).await;
    support::kubectl::install_crd().await;
    let ns = TestNamespace::create("helm-install").await;
    let model = kube_gateway::pod_reachable_model().await;
    let (gateway_port, operator_port) = (free_port(), free_port());
    let mut values = values(&model, gateway_port, operator_port);

    helm_release(Helm::V4, Step::Install, &ns, &values).await;
    let deployments: Api<Deployment> = ns.api();
    for name in [GATEWAY, OPERATOR] {
        let d = deployments.get(name).await.unwrap();
        assert_eq!(
            d.status.and_then(|s| s.ready_replicas),
            Some(1),
            "{name} ready"
        );
    }
    // The operator leads, watching only this namespace.
    let metrics = reqwest::get(format!("http://127.0.0.1:{operator_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("codex_mcp_operator_leader 1"), "{metrics}");
    let env =
        container_env(&serde_json::to_value(deployments.get(OPERATOR).await.unwrap()).unwrap());
    assert_eq!(env["CODEX_MCP_NAMESPACE"], ns.name());

    // Clients need the generated token.
    let token = kube_gateway::client_token(&ns).await;
    let anonymous = McpClient::new(
        format!("http://127.0.0.1:{gateway_port}/mcp"),
        Transport::Http,
    )
    .list_tools()
    .await;
    assert_eq!(anonymous.http_status(), Some(401), "{anonymous}");

    // A tool call runs in an agent pod the operator started from the chart's settings.
    model.push(Reply::text("PONG"));
    let chat = gateway_client(gateway_port, &token)
        .call_tool("chat", json!({"message": "ping"}))
        .await;
    assert!(chat.ok() && !chat.is_error(), "{chat}");
    let structured = chat.structured().expect("a structured reply").clone();
    assert_eq!(structured["reply"], "PONG", "{chat}");
    let agent = codex_agent(&ns, "helmsman").await;
    let reference = agent
        .spec
        .credentials
        .as_ref()
        .map(|c| c.secret_ref.name.clone());
    assert_eq!(
        reference.as_deref(),
        Some("codex-mcp-credentials"),
        "the agent uses the chart's credentials"
    );
    let pod = agent
        .status
        .and_then(|s| s.pod_name)
        .expect("the agent's pod");
    let pod = ns
        .api::<k8s_openapi::api::core::v1::Pod>()
        .get(&pod)
        .await
        .unwrap();
    let image = pod.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap_or_default();
    assert!(image.ends_with(&kube_gateway::agent_image()), "{image}");
    chart_flows::workspace_tools(&model, &|| gateway_client(gateway_port, &token)).await;
    let sse = McpClient::new(
        format!("http://127.0.0.1:{gateway_port}/sse"),
        Transport::Sse,
    )
    .bearer(&token)
    .list_tools()
    .await;
    assert!(sse.tool("chat").is_some(), "the SSE transport: {sse}");

    // An upgrade that changes nothing rolls nothing: the generated token,
    // found again, gives the same checksum.
    let names = |sets: &[ReplicaSet]| sets.iter().map(|rs| rs.name_any()).collect::<Vec<_>>();
    let first = names(&gateway_replica_sets(&ns, true).await);
    helm_release(Helm::V4, Step::Upgrade, &ns, &values).await;
    assert_eq!(
        names(&gateway_replica_sets(&ns, true).await),
        first,
        "the gateway was not rolled"
    );

    // An upgrade with another log level rolls the gateway out; the token and
    // the agent's conversation stay.
    let before = names(&gateway_replica_sets(&ns, false).await);
    values["config"]["LOG_LEVEL"] = json!("debug");
    helm_release(Helm::V4, Step::Upgrade, &ns, &values).await;
    let gateway = serde_json::to_value(deployments.get(GATEWAY).await.unwrap()).unwrap();
    assert_eq!(container_env(&gateway)["LOG_LEVEL"], "debug");
    let current = gateway_replica_sets(&ns, true).await;
    assert_eq!(current.len(), 1, "one gateway ReplicaSet serves");
    assert!(
        !before.contains(&current[0].name_any()),
        "a new ReplicaSet after {before:?}"
    );
    let rs_env = container_env(&serde_json::to_value(&current[0]).unwrap());
    assert_eq!(rs_env["LOG_LEVEL"], "debug");
    assert_eq!(
        kube_gateway::client_token(&ns).await,
        token,
        "the generated token survives upgrades"
    );
    model.push(Reply::text("PONG again"));
    let again = gateway_client(gateway_port, &token)
        .call_tool("chat", json!({"message": "ping again"}))
        .await;
    assert!(again.ok() && !again.is_error(), "{again}");
    assert_eq!(
        again.structured().unwrap()["run"]["thread_id"],
        structured["run"]["thread_id"]
    );

    // Uninstall: the release goes; the CRD, the kept credentials and the
    // agents' own objects (their data) stay.
    helm_release(Helm::V4, Step::Uninstall, &ns, &values).await;
    for name in [GATEWAY, OPERATOR] {
        let left = [
            exists::<Deployment>(&ns, name).await,
            exists::<Service>(&ns, name).await,
            exists::<ServiceAccount>(&ns, name).await,
            exists::<Role>(&ns, name).await,
            exists::<RoleBinding>(&ns, name).await,
            exists::<NetworkPolicy>(&ns, name).await,
        ];
        assert_eq!(left, [false; 6], "{name}: Deployment, Service, ServiceAccount, Role, RoleBinding, NetworkPolicy after uninstall");
    }
    assert!(
        !exists::<Role>(&ns, "codex-mcp-operator-leader").await,
        "the leader Role is gone"
    );
    assert!(
        !exists::<Secret>(&ns, "codex-mcp-client-tokens").await,
        "the generated tokens are gone"
    );
    let kept = ns
        .api::<Secret>()
        .get("codex-mcp-credentials")
        .await
        .expect("the credentials Secret is kept");
    let key = kept.data.unwrap().remove("OPENAI_API_KEY").unwrap().0;
    assert!(key == TEST_API_KEY.as_bytes(), "with its key");
    assert!(codex_agent(&ns, "helmsman")
        .await
        .metadata
        .deletion_timestamp
        .is_none());
    let pvcs = ns
        .api::<PersistentVolumeClaim>()
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(pvcs.items.len(), 1, "the agent's workspace stays");
    kube_gateway::kubectl_ok(&["get", "crd", "codexagents.codexmcp.dev"]);
    ns.cleanup().await;
}

/// A ChatGPT login from values is written once: the operator rotates it in
/// the Secret, and neither an upgrade nor a reinstall may put the original
/// (spent) refresh token back, with either major. Only the Secret is installed.
#[tokio::test]
async fn a_login_from_values_is_never_rewritten_by_helm() {
    for helm in Helm::BOTH {
        login_kept_through_upgrades_and_reinstalls(helm).await;
    }
}

async fn login_kept_through_upgrades_and_reinstalls(helm: Helm) {
    let ns = TestNamespace::create("helm-login").await;
    let original = r#"{"auth_mode":"chatgpt","tokens":{"refresh_token":"rt-original"}}"#;
    let rotated = r#"{"auth_mode":"chatgpt","tokens":{"refresh_token":"rt-rotated"}}"#;
    let values = json!({
        "gateway": {"enabled": false}, "operator": {"enabled": false},
        "credentials": {"authJson": original},
    });
    let secrets: Api<Secret> = ns.api();
    let login = |s: Secret| String::from_utf8(s.data.unwrap()["auth.json"].0.clone()).unwrap();

    helm_release(helm, Step::Install, &ns, &values).await;
    assert_eq!(
        login(secrets.get("codex-mcp-credentials").await.unwrap()),
        original,
        "{helm}"
    );
    // What the operator does after a refresh.
    let patch = json!({"stringData": {"auth.json": rotated}});
    secrets
        .patch(
            "codex-mcp-credentials",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();

    for step in [Step::Upgrade, Step::Uninstall, Step::Install] {
        helm_release(helm, step, &ns, &values).await;
        let now = login(secrets.get("codex-mcp-credentials").await.unwrap());
        assert_eq!(now, rotated, "the rotated login after {helm} {step}");
    }
    helm_release(helm, Step::Uninstall, &ns, &values).await;
    ns.cleanup().await;
}

/// Helm 3 installs the chart: the gateway serves its tools to a client with
/// the generated token, the operator leads, and the uninstall removes both.
/// (Agent pods and upgrades: `install_call_upgrade_and_uninstall_the_chart`.)
#[tokio::test]
async fn helm3_installs_and_uninstalls_the_chart() {
    let _ =
        tokio::task::spawn_blocking(|| (kube_gateway::agent_image(), helm::runtime_image())).await;
    support::kubectl::install_crd().await;
    let ns = TestNamespace::create("helm3-install").await;
    let model = kube_gateway::pod_reachable_model().await;
    let (gateway_port, operator_port) = (free_port(), free_port());
    let values = values(&model, gateway_port, operator_port);

    helm_release(Helm::V3, Step::Install, &ns, &values).await;
    let token = kube_gateway::client_token(&ns).await;
    let tools = gateway_client(gateway_port, &token).list_tools().await;
    assert!(tools.tool("chat").is_some(), "{tools}");
    let metrics = reqwest::get(format!("http://127.0.0.1:{operator_port}/metrics")).await;
    let metrics = metrics.unwrap().text().await.unwrap();
    assert!(metrics.contains("codex_mcp_operator_leader 1"), "{metrics}");

    helm_release(Helm::V3, Step::Uninstall, &ns, &values).await;
    let left = [
        exists::<Deployment>(&ns, GATEWAY).await,
        exists::<Deployment>(&ns, OPERATOR).await,
        exists::<Secret>(&ns, "codex-mcp-client-tokens").await,
    ];
    assert_eq!(
        left, [false; 3],
        "gateway, operator, tokens after uninstall"
    );
    ns.cleanup().await;
}
