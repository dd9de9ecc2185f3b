//! `codex-mcp gateway` on the real test cluster: the operator and the gateway
//! as host processes, agent pods running the real Codex CLI against a fake
//! model on the pods' bridge, and the Python `mcp` client over streamable
//! HTTP and SSE. Needs CODEX_MCP_TEST_KUBECONFIG (scripts/test.sh sets it).

mod support;

use std::time::{Duration, Instant};

use codex_mcp::api::crd::{CodexAgent, Phase};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::ResourceExt;
use serde_json::{json, Value};
use support::cluster::{self, TestNamespace};
use support::fake_model::{self, FakeModel, Reply};
use support::kube_gateway::{
    self, codex_agent, ready_pod, run_processes, service_account_token, KubeGateway, Process,
};
use support::mcp_client::{McpClient, Step, Transport};

/// Creating an agent pulls nothing, but binds a volume and starts a pod with
/// a 300 MB binary on a busy two-core machine.
const CALL_TIMEOUT: Duration = Duration::from_secs(300);

struct Env {
    ns: TestNamespace,
    model: FakeModel,
    _operator: Process,
    gateway: KubeGateway,
}

async fn start(prefix: &str) -> Env {
    let (ns, model) = kube_gateway::namespace_with_model(prefix).await;
    let operator = kube_gateway::start_operator(ns.name());
    let gateway = KubeGateway::start(ns.name(), &model, &[]);
    Env {
        ns,
        model,
        _operator: operator,
        gateway,
    }
}

fn http(gateway: &KubeGateway, agent: &str) -> McpClient {
    McpClient::new(gateway.mcp_url(), Transport::Http)
        .header("X-Codex-Agent", agent)
        .request_timeout(CALL_TIMEOUT)
}

fn sse(gateway: &KubeGateway, agent: &str) -> McpClient {
    McpClient::new(
        format!("{}/agents/{agent}/sse", gateway.url),
        Transport::Sse,
    )
    .request_timeout(CALL_TIMEOUT)
}

/// The gateway's count of API server requests, by `verb resource`.
async fn api_requests(gateway: &KubeGateway) -> std::collections::BTreeMap<String, u64> {
    let text = reqwest::get(format!("{}/metrics", gateway.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut counts = std::collections::BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("codex_mcp_kube_api_requests_total{"))
    {
        let label = |name: &str| {
            let start = line.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
            line[start..].split('"').next().unwrap().to_owned()
        };
        let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        counts.insert(format!("{} {}", label("verb"), label("resource")), n);
    }
    counts
}

async fn api_requests_since(
    gateway: &KubeGateway,
    before: &std::collections::BTreeMap<String, u64>,
) -> std::collections::BTreeMap<String, u64> {
    let mut now = api_requests(gateway).await;
    for (k, v) in now.iter_mut() {
        *v -= before.get(k).copied().unwrap_or(0);
    }
    now.retain(|_, v| *v > 0);
    now
}

fn plan_reply() -> Value {
    json!({
        "summary": "Add an LRU cache in front of the lookup",
        "steps": [{"order": 1, "title": "Add cache", "description": "Wrap lookup() with an LRU cache",
                   "files": ["src/lookup.py"], "complexity": "low"}],
        "risks": ["stale entries"], "dependencies": [],
        "testing_strategy": "unit tests for hits and misses", "estimated_effort": "1 hour"
    })
}

fn implement_reply(file: &str) -> Value {
    json!({
        "summary": "Added hello", "changes": [{"file": file, "explanation": "prints hello"}],
        "dependencies_added": [], "tests_needed": [], "integration_notes": "none",
        "next_steps": [], "warnings": []
    })
}

#[tokio::test]
async fn plan_and_implement_in_the_agents_pod_survive_pod_deletion_and_gateway_restart() {
    let Env {
        ns,
        model,
        _operator,
        mut gateway,
    } = start("gwk-e2e").await;
    let started = Instant::now();

    // Cold call: the CodexAgent is created, its pod started, Codex runs in it.
    model.push(Reply::Json(plan_reply()));
    let plan = http(&gateway, "alice")
        .call_tool("plan", json!({"task": "speed up lookups"}))
        .await;
    assert!(plan.ok() && !plan.is_error(), "{plan}");
    let structured = plan.structured().expect("structured plan");
    assert_eq!(structured["summary"], plan_reply()["summary"]);
    let thread = structured["run"]["thread_id"].clone();
    assert!(thread.is_string(), "{plan}");
    assert!(
        plan.progress()
            .iter()
            .filter_map(|p| p.message.as_deref())
            .any(|m| m.contains("starting agent alice") || m.contains("creating agent alice")),
        "progress while the agent starts: {plan}"
    );
    eprintln!("cold plan call: {:?}", started.elapsed());

    let cr = codex_agent(&ns, "alice").await;
    assert!(
        cr.name_any().starts_with("default-alice-"),
        "{}",
        cr.name_any()
    );
    let status = cr.status.clone().unwrap();
    assert_eq!(
        status.thread_id.as_ref(),
        thread.as_str().map(String::from).as_ref()
    );
    assert_eq!(status.runs, Some(1));
    assert_eq!(status.active_runs, Some(0));
    assert!(status.input_tokens.unwrap_or(0) > 0, "{status:?}");
    let pods: Api<Pod> = ns.api();
    let pod_name = ready_pod(&ns, "alice").await;
    let pod = pods.get(&pod_name).await.unwrap();
    let image = pod.spec.as_ref().unwrap().containers[0].image.clone();
    assert_eq!(
        image.as_deref(),
        Some(kube_gateway::agent_image().as_str()),
        "the pod runs the Dockerfile's agent image"
    );

    // A warm call's load on the API server, as the gateway counts it.
    let before = api_requests(&gateway).await;
    model.push(Reply::text("pong"));
    let chat = http(&gateway, "alice")
        .call_tool("chat", json!({"message": "ping"}))
        .await;
    assert!(chat.ok() && !chat.is_error(), "{chat}");
    let spent = api_requests_since(&gateway, &before).await;
    let total: u64 = spent.values().sum();
    eprintln!("a warm chat call: {total} API requests: {spent:?}");
    // One read to make sure the agent is ready, one before each of the
    // four guarded status writes; none per exec into the pod (there were
    // twelve reads in all before).
    assert!(
        spent.get("get codexagents").copied().unwrap_or(0) <= 5,
        "the CodexAgent is read once, plus once per guarded status write: {spent:?}"
    );
    assert_eq!(spent.get("get pods/exec"), Some(&5), "{spent:?}");

    // Second call, over SSE: continues the conversation and writes a file.
    model.push(Reply::add_file("hello.py", "print('hello')"));
    model.push(Reply::Json(implement_reply("hello.py")));
    let t = Instant::now();
    let implement = sse(&gateway, "alice")
        .call_tool(
            "implement",
            json!({"task": "add hello.py printing hello", "target_files": ["hello.py"]}),
        )
        .await;
    assert!(implement.ok() && !implement.is_error(), "{implement}");
    eprintln!("warm implement call: {:?}", t.elapsed());
    let s = implement.structured().unwrap();
    assert_eq!(s["run"]["thread_id"], thread, "same conversation");
    let change = &s["changes"][0];
    assert_eq!(change["file"], "hello.py", "{implement}");
    assert!(
        change["diff"]
            .as_str()
            .unwrap_or("")
            .contains("+print('hello')"),
        "{implement}"
    );
    let convo = fake_model::conversation(model.requests().last().unwrap());
    assert!(
        convo.iter().any(|m| m.text.contains("speed up lookups")),
        "the plan's prompt is in the resumed conversation: {convo:?}"
    );

    // The file lives on the volume: it survives the pod.
    pods.delete(
        &pod_name,
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        },
    )
    .await
    .unwrap();
    cluster::wait_for_deletion(&pods, &pod_name, Duration::from_secs(120)).await;

    // A gateway restart between calls loses nothing either.
    gateway = gateway.restart();
    model.push(Reply::exec_then("cat hello.py", "it prints hello"));
    let chat = http(&gateway, "alice")
        .call_tool("chat", json!({"message": "what does hello.py do?"}))
        .await;
    assert!(chat.ok() && !chat.is_error(), "{chat}");
    assert_eq!(chat.structured().unwrap()["run"]["thread_id"], thread);
    let outputs = fake_model::tool_outputs(model.requests().last().unwrap());
    assert!(
        outputs.iter().any(|o| o.contains("print('hello')")),
        "the new pod sees the file: {outputs:?}"
    );
    let convo = fake_model::conversation(model.requests().last().unwrap());
    assert!(
        convo.iter().any(|m| m.text.contains("add hello.py")),
        "{convo:?}"
    );

    let status = codex_agent(&ns, "alice").await.status.unwrap();
    // plan, the warm chat, implement, this chat.
    assert_eq!(status.runs, Some(4), "{status:?}");
    assert_eq!(status.active_runs, Some(0));
    let listed = kube_gateway::kubectl_ok(&["get", "cxa", "-n", ns.name()]);
    assert!(listed.contains("default-alice-"), "{listed}");
    let row: Vec<&str> = listed
        .lines()
        .find(|l| l.starts_with("default-alice-"))
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        row.get(4),
        Some(&"4"),
        "the Runs column shows usage: {listed}"
    );

    // The session tools read CodexAgents.
    let sessions = http(&gateway, "alice")
        .call_tool("list_sessions", json!({}))
        .await;
    assert!(sessions.ok() && !sessions.is_error(), "{sessions}");
    assert!(sessions.text().contains("alice"), "{sessions}");

    let st = http(&gateway, "alice")
        .call_tool("get_agent_status", json!({"agent_id": "alice"}))
        .await;
    assert!(st.ok() && !st.is_error(), "{st}");
    let st = st.structured().unwrap();
    assert_eq!(st["environment"]["phase"], "Ready", "{st}");
    assert_eq!(st["agent"]["runs"], 4, "{st}");
    assert!(st["environment"]["pod"].is_string(), "{st}");

    // No credential in the CR or in the gateway's logs.
    let yaml = kube_gateway::kubectl_ok(&["get", "cxa", "-n", ns.name(), "-o", "yaml"]);
    assert!(!yaml.contains(support::gateway::TEST_API_KEY));
    assert!(!gateway
        .process
        .logs()
        .iter()
        .any(|l| l.contains(support::gateway::TEST_API_KEY)));
    // Suspended (as the operator does when the agent idles): the pod goes,
    // the volume stays, and the next call resumes the agent.
    let agents: Api<CodexAgent> = ns.api();
    agents
        .patch(
            &cr.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspended": true}})),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = codex_agent(&ns, "alice").await.status.unwrap_or_default();
        let gone = pods.get_opt(&pod_name).await.unwrap().is_none();
        if status.phase == Some(Phase::Suspended) && gone {
            break;
        }
        assert!(Instant::now() < deadline, "not suspended: {status:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    model.push(Reply::exec_then("cat hello.py", "still hello"));
    let resumed = http(&gateway, "alice")
        .call_tool("chat", json!({"message": "and after a nap?"}))
        .await;
    assert!(resumed.ok() && !resumed.is_error(), "{resumed}");
    assert_eq!(resumed.structured().unwrap()["run"]["thread_id"], thread);
    assert!(
        resumed
            .progress()
            .iter()
            .filter_map(|p| p.message.as_deref())
            .any(|m| m.contains("starting agent alice")),
        "{resumed}"
    );
    let outputs = fake_model::tool_outputs(model.requests().last().unwrap());
    assert!(
        outputs.iter().any(|o| o.contains("print('hello')")),
        "the file survives suspend and resume: {outputs:?}"
    );
    let cr = codex_agent(&ns, "alice").await;
    assert!(!cr.spec.suspended);
    assert_eq!(cr.status.unwrap().runs, Some(5));
    eprintln!("whole test: {:?}", started.elapsed());
    drop(gateway);
    ns.cleanup().await;
}

#[tokio::test]
async fn cancellation_kills_the_run_inside_the_pod() {
    let Env {
        ns,
        model,
        _operator,
        gateway,
    } = start("gwk-cancel").await;
    // Warm the agent up first so the cancelled call is about the run only.
    model.push(Reply::text("ready"));
    let warm = http(&gateway, "bob")
        .call_tool("chat", json!({"message": "hi"}))
        .await;
    assert!(warm.ok() && !warm.is_error(), "{warm}");
    let pods: Api<Pod> = ns.api();
    let pod = ready_pod(&ns, "bob").await;

    model.push(Reply::Stall(Duration::from_secs(120)));
    let client = http(&gateway, "bob");
    let call = tokio::spawn(async move {
        client
            .run(vec![Step::call_tool(
                "chat",
                json!({"message": "take forever"}),
            )
            .cancel_after(Duration::from_secs(8))])
            .await
    });
    assert!(
        model.wait_for_requests(2, Duration::from_secs(60)).await,
        "codex never called the model"
    );
    let running = run_processes(&pods, &pod).await;
    assert!(
        running.iter().any(|l| l.contains("exec")),
        "codex runs in the pod: {running:?}"
    );
    let r = call.await.unwrap().remove(0);
    assert!(r.cancelled(), "{r}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut left = run_processes(&pods, &pod).await;
    while !left.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        left = run_processes(&pods, &pod).await;
    }
    assert!(left.is_empty(), "the run survived cancellation: {left:?}");
    // The gateway records the run's end once the exec stream has closed,
    // which may come a moment after the pod's processes are gone.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut status = codex_agent(&ns, "bob").await.status.unwrap();
    while status.active_runs != Some(0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        status = codex_agent(&ns, "bob").await.status.unwrap();
    }
    assert_eq!(status.active_runs, Some(0), "{status:?}");

    // The agent still works afterwards.
    model.push(Reply::text("still here"));
    let after = http(&gateway, "bob")
        .call_tool("chat", json!({"message": "there?"}))
        .await;
    assert!(after.ok() && !after.is_error(), "{after}");
    drop(gateway);
    ns.cleanup().await;
}

/// The gateway's Role: nothing on Secrets. `pods/exec` needs `get` as well
/// as `create`: the API server authorizes exec over websockets (a GET) as
/// `get` before 1.30, `create` after.
const GATEWAY_ROLE: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: codex-mcp-gateway}
rules:
- apiGroups: [codexmcp.dev]
  resources: [codexagents]
  verbs: [get, list, watch, create, patch]
- apiGroups: [codexmcp.dev]
  resources: [codexagents/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [pods/exec]
  verbs: [create, get]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, update]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: codex-mcp-gateway}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: codex-mcp-gateway}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: codex-mcp-gateway}
subjects:
- {kind: ServiceAccount, name: codex-mcp-gateway}
"#;

#[tokio::test]
async fn the_gateway_needs_only_its_role_and_nothing_on_secrets() {
    let (ns, model) = kube_gateway::namespace_with_model("gwk-rbac").await;
    let _operator = kube_gateway::start_operator(ns.name());
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("rbac.yaml");
    std::fs::write(&manifest, GATEWAY_ROLE).unwrap();
    kube_gateway::kubectl_ok(&["apply", "-n", ns.name(), "-f", &manifest.to_string_lossy()]);
    let token = service_account_token(&ns, "codex-mcp-gateway").await;

    // The admin kubeconfig with the service account's token instead.
    let admin = std::fs::read_to_string(cluster::kubeconfig_path()).unwrap();
    let limited: String = admin
        .lines()
        .map(|l| match l.find("token: ") {
            Some(i) if l.trim_start().starts_with("token: ") => {
                format!("{}token: {token}", &l[..i])
            }
            _ => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, limited).unwrap();
    let kubeconfig = kubeconfig.to_string_lossy().into_owned();

    let gateway = KubeGateway::start(ns.name(), &model, &["--kubeconfig", &kubeconfig]);
    model.push(Reply::text("PONG"));
    let chat = http(&gateway, "carol")
        .call_tool("chat", json!({"message": "ping"}))
        .await;
    assert!(chat.ok() && !chat.is_error(), "{chat}");
    assert_eq!(chat.structured().unwrap()["reply"], "PONG", "{chat}");
    let sessions = http(&gateway, "carol")
        .call_tool("list_sessions", json!({}))
        .await;
    assert!(sessions.ok() && !sessions.is_error(), "{sessions}");
    let cleanup = http(&gateway, "carol")
        .call_tool("cleanup_inactive_agents", json!({}))
        .await;
    assert!(cleanup.ok() && !cleanup.is_error(), "{cleanup}");

    let as_gateway = cluster::client_with_token(&token);
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(as_gateway, ns.name());
    match secrets.list(&ListParams::default()).await {
        Err(kube::Error::Api(s)) if s.code == 403 => {}
        other => panic!("the gateway's account can list Secrets: {other:?}"),
    }
    drop(gateway);
    ns.cleanup().await;
}

#[tokio::test]
async fn two_gateways_take_turns_and_a_pod_killed_mid_call_gives_a_clear_error() {
    let Env {
        ns,
        model,
        _operator,
        gateway,
    } = start("gwk-turns").await;
    let second = KubeGateway::start(ns.name(), &model, &[]);
    model.push(Reply::text("ready"));
    let warm = http(&gateway, "dave")
        .call_tool("chat", json!({"message": "hi"}))
        .await;
    assert!(warm.ok() && !warm.is_error(), "{warm}");
    let pods: Api<Pod> = ns.api();
    let pod = ready_pod(&ns, "dave").await;

    // One call through each gateway at once: their runs must not overlap.
    let step =
        "echo start >> /agent/workspace/turns.log; sleep 3; echo end >> /agent/workspace/turns.log";
    for _ in 0..2 {
        model.push(Reply::exec_then(step, "done"));
    }
    let a = http(&gateway, "dave");
    let b = http(&second, "dave");
    let (ra, rb) = tokio::join!(
        a.call_tool("chat", json!({"message": "first"})),
        b.call_tool("chat", json!({"message": "second"}))
    );
    assert!(ra.ok() && !ra.is_error(), "{ra}");
    assert!(rb.ok() && !rb.is_error(), "{rb}");
    let log = cluster::exec_ok(&pods, &pod, &["cat", "/agent/workspace/turns.log"]).await;
    assert_eq!(
        log.split_whitespace().collect::<Vec<_>>(),
        ["start", "end", "start", "end"],
        "runs overlapped"
    );

    // The pod dies while Codex waits for the model.
    let before = model.requests().len();
    model.push(Reply::Stall(Duration::from_secs(120)));
    let client = http(&gateway, "dave");
    let call = tokio::spawn(async move {
        client
            .call_tool("chat", json!({"message": "this pod is doomed"}))
            .await
    });
    assert!(
        model
            .wait_for_requests(before + 1, Duration::from_secs(60))
            .await,
        "codex never called the model"
    );
    pods.delete(
        &pod,
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        },
    )
    .await
    .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(120), call)
        .await
        .expect("the call ends once its pod is gone")
        .unwrap();
    assert!(r.is_error() || !r.ok(), "{r}");
    let text = format!("{r}");
    assert!(
        text.contains(&format!("pod {pod} was")),
        "the error says what happened to the pod: {r}"
    );

    // The next call gets a new pod and works.
    model.push(Reply::text("back"));
    let after = http(&second, "dave")
        .call_tool("chat", json!({"message": "again"}))
        .await;
    assert!(after.ok() && !after.is_error(), "{after}");
    let status = codex_agent(&ns, "dave").await.status.unwrap();
    assert_eq!(status.active_runs, Some(0), "{status:?}");
    // The run lost with its pod counts, as a failed one.
    assert_eq!(status.runs, Some(5), "{status:?}");
    assert_eq!(status.failed_runs, Some(1), "{status:?}");
    drop(second);
    drop(gateway);
    ns.cleanup().await;
}
