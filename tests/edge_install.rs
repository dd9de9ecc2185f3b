//! The install a user does, end to end: the images built from the
//! `Dockerfile`, the chart installed with `helm` and exposed through its
//! Gateway API `HTTPRoute` by a real controller (Traefik, built from Go
//! modules by `tests/cluster/install-edge.sh`), MCP clients on the far
//! side of it with the host name users give, and `helm test`. Two gateway
//! replicas on the pod network, as a user runs them: the edge spreads
//! requests over both, so every session here also shows its requests
//! reaching the replica that holds it. Needs CODEX_MCP_TEST_KUBECONFIG.

mod support;

use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;
use serde_json::{json, Value};
use support::chart_flows;
use support::cluster::{self, TestNamespace};
use support::edge::{gateway_api_crds, Edge, EdgeOptions};
use support::fake_model::{FakeModel, Reply};
use support::helm::values::{cluster_release, free_port};
use support::helm::{self, Helm, Step};
use support::kube_gateway::{self, kubectl_apply, kubectl_ok};
use support::long_turn::{assert_task_done, only_diff, slow_implement};
use support::mcp_client::{McpClient, Transport};
use support::raw_mcp::{RawMcp, STATELESS_PROTOCOL};
use support::tasks_client::{task_id, TasksClient, TASKS_EXTENSION};

const RELEASE: &str = "codex-mcp";
const HOST: &str = "codex.test";
const TOKEN: &str = "edge-client-token-3f9a1c";
const CALL_TIMEOUT: Duration = Duration::from_secs(300);
const REPLICAS: usize = 2;

fn client(edge: &Edge, transport: Transport, path: &str) -> McpClient {
    McpClient::new(format!("{}{path}", edge.url), transport)
        .header("Host", HOST)
        .bearer(TOKEN)
        .header("X-Codex-Agent", "edgy")
        .request_timeout(CALL_TIMEOUT)
}

/// Waits until the route is in place: the gateway's /health through the
/// edge, with the public host name.
async fn wait_for_route(edge: &Edge) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let http = reqwest::Client::new();
    loop {
        let answer = http
            .get(format!("{}/health", edge.url))
            .header("Host", HOST)
            .send()
            .await;
        match answer {
            Ok(r) if r.status().is_success() => return,
            other => assert!(
                Instant::now() < deadline,
                "the route does not answer: {other:?}\n{}",
                edge.logs().join("\n")
            ),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A namespace with the fake model, the Gateway API CRDs, a Traefik with a
/// Gateway `edge` for it, and the chart installed with its HTTPRoute
/// (`codex.test`) attached to that Gateway, answering through it.
async fn install_behind_an_edge(prefix: &str) -> (TestNamespace, FakeModel, Edge, Value) {
    let (ns, model) = kube_gateway::namespace_with_model(prefix).await;
    let crds = gateway_api_crds();
    kubectl_ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        crds.to_str().unwrap(),
    ]);
    let edge = Edge::start(EdgeOptions::new(&cluster::kubeconfig_path(), ns.name()));
    kubectl_apply(ns.name(), &edge.gateway_yaml(ns.name(), "edge"));

    let mut values = cluster_release(&model, free_port(), free_port());
    // The pod network, where replicas have addresses of their own.
    values.as_object_mut().unwrap().remove("testCluster");
    values["gateway"]["replicas"] = json!(REPLICAS);
    values["httpRoute"] = json!({
        "enabled": true, "parentRefs": [{"name": "edge"}], "hostnames": [HOST]
    });
    values["clientTokens"] = json!({"tokens": [format!("{TOKEN} default")]});
    let name = ns.name().to_owned();
    let install = values.clone();
    tokio::task::spawn_blocking(move || {
        helm::release(Helm::V4, Step::Install, RELEASE, &name, &install, 300)
    })
    .await
    .expect("helm install");
    wait_for_route(&edge).await;
    (ns, model, edge, values)
}

/// The gateway replicas' logs, for a failure's message.
fn gateway_logs(ns: &TestNamespace) -> String {
    kubectl_ok(&[
        "logs",
        "-n",
        ns.name(),
        "-l",
        "app.kubernetes.io/component=gateway",
        "--prefix",
        "--tail",
        "200",
    ])
}

/// What the gateway replicas' metrics say of forwarded requests, summed.
#[derive(Debug, Default)]
struct Forwards {
    forwarded: u64,
    failed: u64,
}

/// The gateway replicas' pod IPs and ports.
async fn replica_addresses(ns: &TestNamespace) -> Vec<(String, i32)> {
    let pods = ns
        .api::<k8s_openapi::api::core::v1::Pod>()
        .list(&kube::api::ListParams::default().labels("app.kubernetes.io/component=gateway"))
        .await
        .unwrap();
    assert_eq!(pods.items.len(), REPLICAS, "gateway replicas");
    pods.items
        .into_iter()
        .map(|pod| {
            let ip = pod.status.and_then(|s| s.pod_ip).expect("a pod IP");
            let port = pod.spec.unwrap().containers[0].ports.as_ref().unwrap()[0].container_port;
            (ip, port)
        })
        .collect()
}

/// Some requests went to the replica without their session or run and were
/// forwarded to the one with it, and none was lost on the way.
async fn assert_requests_reached_their_replica(ns: &TestNamespace) {
    let forwards = replica_forwards(ns).await;
    assert!(forwards.forwarded > 0, "{forwards:?}\n{}", gateway_logs(ns));
    assert_eq!(forwards.failed, 0, "{forwards:?}\n{}", gateway_logs(ns));
}

async fn replica_forwards(ns: &TestNamespace) -> Forwards {
    let mut sum = Forwards::default();
    for (ip, port) in replica_addresses(ns).await {
        let text = reqwest::get(format!("http://{ip}:{port}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for line in text
            .lines()
            .filter(|l| l.starts_with("codex_mcp_replica_forwards_total{"))
        {
            let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            if line.contains("outcome=\"forwarded\"") {
                sum.forwarded += n;
            } else {
                sum.failed += n;
            }
        }
    }
    sum
}

/// `tasks/get` through the edge, on both replicas (one holds the task and
/// the other forwards to it): the answer comes as JSON of known length,
/// which a Go proxy like Traefik cannot cut short (golang/go#40747), where
/// a one-event stream's end sometimes was.
async fn assert_polls_come_whole(edge: &Edge, task: &str) {
    let raw = RawMcp::new(format!("{}/mcp", edge.url))
        .header("host", HeaderValue::from_static(HOST))
        .bearer(TOKEN)
        .header("x-codex-agent", HeaderValue::from_static("tasked"));
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": STATELESS_PROTOCOL,
        "io.modelcontextprotocol/clientCapabilities": {"extensions": {TASKS_EXTENSION: {}}},
    });
    for _ in 0..2 * REPLICAS {
        let poll = raw
            .send_stateless(
                "tasks/get",
                Some(task),
                json!({"jsonrpc": "2.0", "id": 1, "method": "tasks/get",
                       "params": {"taskId": task, "_meta": meta}}),
            )
            .await;
        assert_eq!(poll.message["result"]["status"], "completed", "{poll:?}");
        assert!(poll.is_whole("application/json"), "{poll:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_reach_the_tools_through_a_gateway_api_route_and_helm_test_passes() {
    let (ns, model, mut edge, values) = install_behind_an_edge("edge").await;

    // Streamable HTTP through the edge: the tools, `implement` and `fix`
    // with their diffs, `review` of a workspace file, paths out refused.
    let http = client(&edge, Transport::Http, "/mcp");
    let tools = http.list_tools().await;
    assert!(tools.tool("implement").is_some(), "{tools}");
    chart_flows::workspace_tools(&model, &|| client(&edge, Transport::Http, "/mcp")).await;

    // A handshake-era SSE session through the edge: its stream and its
    // messages reach the same gateway.
    model.push(Reply::text("hello over sse"));
    let sse = client(&edge, Transport::Sse, "/sse");
    let r = sse.call_tool("chat", json!({"message": "hi"})).await;
    assert!(
        r.ok() && r.text().contains("hello over sse"),
        "{r}\n{}",
        gateway_logs(&ns)
    );

    // Without a token: the gateway's challenge comes back through the edge,
    // naming the resource's metadata by the URL the client used, and the
    // metadata names the resource so too, not by a pod's address.
    let anonymous = McpClient::new(format!("{}/mcp", edge.url), Transport::Http)
        .header("Host", HOST)
        .request_timeout(CALL_TIMEOUT);
    let r = anonymous.list_tools().await;
    assert_eq!(r.http_status(), Some(401), "{r}");
    let http = reqwest::Client::new();
    let denied = http
        .post(format!("{}/agents/edgy/mcp", edge.url))
        .header("Host", HOST)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let challenge = denied.headers()["www-authenticate"].to_str().unwrap();
    let metadata_url =
        format!("http://{HOST}/.well-known/oauth-protected-resource/agents/edgy/mcp");
    assert!(
        challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{challenge}"
    );
    let meta: serde_json::Value = http
        .get(metadata_url.replacen(&format!("http://{HOST}"), &edge.url, 1))
        .header("Host", HOST)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        meta["resource"],
        format!("http://{HOST}/agents/edgy/mcp"),
        "{meta}"
    );

    // The edge spread the sessions' requests over both replicas, and each
    // reached the replica that held its session.
    assert_requests_reached_their_replica(&ns).await;

    // What a user runs after the install. The test cluster has neither
    // cluster DNS nor Service routing, so the test pod is pointed at a
    // gateway pod (`helmTest.url`) instead of the gateway's Service.
    let (ip, port) = replica_addresses(&ns).await.remove(0);
    let mut with_url = values.clone();
    with_url["helmTest"] = json!({"url": format!("http://{ip}:{port}")});
    let name = ns.name().to_owned();
    tokio::task::spawn_blocking(move || {
        helm::release(Helm::V4, Step::Upgrade, RELEASE, &name, &with_url, 300)
    })
    .await
    .expect("helm upgrade");
    let name = ns.name().to_owned();
    let tested = tokio::task::spawn_blocking(move || {
        helm::run(
            Helm::V4,
            &[
                "test",
                RELEASE,
                "-n",
                &name,
                "--timeout",
                "180s",
                "--kubeconfig",
                cluster::kubeconfig_path().to_str().unwrap(),
            ],
            None,
        )
    })
    .await
    .unwrap();
    let out = tested.unwrap_or_else(|e| panic!("helm test failed: {e}"));
    assert!(out.contains("Phase:") && out.contains("Succeeded"), "{out}");

    edge.stop();
    kubectl_ok(&["delete", "gatewayclass", &edge.id, "--ignore-not-found"]);
}

/// A Codex turn of a real model's length through the edge, twice at once:
/// as a task a 2026-07-28 client polls, and as a plain call over SSE whose
/// progress must reach the client as it happens (an edge that buffered the
/// stream would hold the heartbeats back for minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_three_minute_turn_goes_through_the_edge_as_a_task_and_over_sse() {
    let (ns, model, mut edge, _) = install_behind_an_edge("edge-long").await;
    model.when_contains("edge-tasked", slow_implement("tasked.py"));
    model.when_contains("edge-streamed", slow_implement("streamed.py"));
    let tasks = TasksClient::new(format!("{}/mcp", edge.url))
        .header("Host", HOST)
        .bearer(TOKEN)
        .header("X-Codex-Agent", "tasked");
    let sse = McpClient::new(format!("{}/sse", edge.url), Transport::Sse)
        .header("Host", HOST)
        .bearer(TOKEN)
        .header("X-Codex-Agent", "streamed")
        .request_timeout(Duration::from_secs(420));
    let started = Instant::now();
    let as_task = async {
        let task = task_id(
            &tasks
                .call_tool(
                    "implement",
                    json!({"task": "edge-tasked: write tasked.py", "target_files": ["tasked.py"]}),
                )
                .await,
        );
        let done = tasks.poll_until_done(&task, Duration::from_secs(420)).await;
        (task, done)
    };
    let over_sse = sse.call_tool(
        "implement",
        json!({"task": "edge-streamed: write streamed.py", "target_files": ["streamed.py"]}),
    );
    let ((task, (task_done, polled)), streamed) = tokio::join!(as_task, over_sse);
    assert_task_done(started.elapsed(), &task_done);
    assert_polls_come_whole(&edge, &task).await;
    assert!(
        polled.iter().any(|m| m.contains("compiling")),
        "polling through the edge showed the turn's progress: {polled:?}"
    );

    assert!(streamed.ok() && !streamed.is_error(), "{streamed}");
    let result = streamed.structured().unwrap();
    assert!(
        only_diff(result, "streamed.py").contains("+print('slow')"),
        "{result}"
    );
    let silence = streamed.longest_silence();
    assert!(
        silence < Duration::from_secs(30),
        "progress reached the SSE client as it happened, not held back: {silence:?}"
    );
    assert_requests_reached_their_replica(&ns).await;

    edge.stop();
    kubectl_ok(&["delete", "gatewayclass", &edge.id, "--ignore-not-found"]);
}
