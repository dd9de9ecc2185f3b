//! The operator against a real cluster (`CODEX_MCP_TEST_KUBECONFIG`, see
//! tests/support/cluster.rs). Each test works in its own namespace with its
//! own operator process(es), which it stops at the end.

mod support;

#[path = "operator/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use codex_mcp::api::crd::CodexAgent;
use harness::{
    agent, agent_pods, condition, condition_is, create, events, metric, patch_spec, phase_is,
    secret_text, status, wait_event, wait_phase, wait_ready, Operator, OperatorOptions,
    READY_TIMEOUT,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, PostParams};
use serde_json::json;
use support::cluster::{self, TestNamespace};
use support::kubectl::{install_crd, kubectl};

const WORKSPACE_FILE: &str = "/agent/workspace/kept.txt";

async fn write_file(pods: &Api<Pod>, pod: &str, content: &str) {
    let script = format!("printf %s '{content}' > {WORKSPACE_FILE}");
    cluster::exec_ok(pods, pod, &["sh", "-c", &script]).await;
}

async fn read_file(pods: &Api<Pod>, pod: &str) -> String {
    cluster::exec_ok(pods, pod, &["cat", WORKSPACE_FILE]).await
}

fn pod_uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

#[test]
fn committed_crd_matches_the_generated_one() {
    let out = std::process::Command::new(support::codex_mcp_bin())
        .arg("crd")
        .output()
        .expect("running codex-mcp crd");
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).expect("utf-8");
    let path = cluster::repo_root().join(support::kubectl::CRD_FILE);
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        generated == committed,
        "{} is stale: regenerate it with `cargo run -- crd > {}`",
        path.display(),
        support::kubectl::CRD_FILE
    );
}

#[tokio::test]
async fn agent_gets_secret_workspace_and_a_locked_down_ready_pod() {
    install_crd().await;
    let ns = TestNamespace::create("op-create").await;
    let mut op = Operator::start(ns.name(), OperatorOptions::named("op-create")).await;
    let secrets: Api<Secret> = ns.api();
    let mut source = Secret::default();
    source.metadata.name = Some("openai".into());
    source.string_data = Some([("OPENAI_API_KEY".to_string(), "sk-test-123".to_string())].into());
    secrets
        .create(&PostParams::default(), &source)
        .await
        .expect("creating the source Secret");

    let agents: Api<CodexAgent> = ns.api();
    let spec = json!({
        "tenant": "acme",
        "credentials": {"secretRef": {"name": "openai"}},
        "resources": {"limits": {"cpu": "150m", "memory": "96Mi"}},
        "storage": {"size": "16Mi"},
    });
    let created = create(&agents, &agent("alice", spec)).await;
    let ready = wait_ready(&agents, "alice").await;
    let st = status(&ready);
    assert_eq!(st.pod_name.as_deref(), Some("alice"));
    assert_eq!(st.observed_generation, created.metadata.generation);
    for c in ["Ready", "WorkspaceBound", "CredentialsReady"] {
        assert!(
            condition_is(&ready, c, "True"),
            "{c}: {:?}",
            condition(&ready, c)
        );
    }
    assert!(condition_is(&ready, "Suspended", "False"));

    // The children, owned by the agent.
    let uid = created.metadata.uid.clone().unwrap();
    let owned_by_agent = |meta: &kube::api::ObjectMeta| {
        meta.owner_references
            .iter()
            .flatten()
            .any(|o| o.uid == uid && o.controller == Some(true))
    };
    let secret = secrets
        .get("alice-credentials")
        .await
        .expect("the agent's Secret");
    assert!(owned_by_agent(&secret.metadata));
    assert_eq!(secret_text(&secret)["OPENAI_API_KEY"], "sk-test-123");
    let pvcs: Api<PersistentVolumeClaim> = ns.api();
    let pvc = pvcs
        .get("alice-workspace")
        .await
        .expect("the workspace claim");
    assert!(owned_by_agent(&pvc.metadata));
    assert_eq!(pvc.status.and_then(|s| s.phase).as_deref(), Some("Bound"));

    // The pod as the API server stored it.
    let pods: Api<Pod> = ns.api();
    let pod = pods.get("alice").await.expect("the agent's pod");
    assert!(owned_by_agent(&pod.metadata));
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["codexmcp.dev/agent"], "alice");
    assert_eq!(labels["codexmcp.dev/tenant"], "acme");
    let hash = pod.metadata.annotations.clone().unwrap_or_default()
        ["codexmcp.dev/pod-template-hash"]
        .clone();
    assert_eq!(st.pod_template_hash.as_deref(), Some(hash.as_str()));
    let spec = pod.spec.clone().unwrap();
    assert_eq!(spec.automount_service_account_token, Some(false));
    let psc = spec.security_context.clone().unwrap();
    assert_eq!(
        (psc.run_as_user, psc.run_as_group, psc.fs_group),
        (Some(1000), Some(1000), Some(1000))
    );
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(
        psc.seccomp_profile.map(|s| s.type_).as_deref(),
        Some("RuntimeDefault")
    );
    let c = &spec.containers[0];
    let sc = c.security_context.clone().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.and_then(|c| c.drop),
        Some(vec!["ALL".to_string()])
    );
    let limits = c.resources.clone().unwrap().limits.unwrap();
    assert_eq!(
        (limits["cpu"].0.as_str(), limits["memory"].0.as_str()),
        ("150m", "96Mi")
    );

    // Inside the pod, the security context really holds.
    assert_eq!(
        cluster::exec_ok(&pods, "alice", &["id", "-u"]).await.trim(),
        "1000"
    );
    let status_file = cluster::exec_ok(&pods, "alice", &["cat", "/proc/self/status"]).await;
    let field = |name: &str| {
        status_file
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(field("CapEff:"), "0000000000000000", "no capabilities");
    assert_eq!(field("NoNewPrivs:"), "1");
    assert_eq!(field("Seccomp:"), "2", "seccomp filter mode");
    let root_write = cluster::exec(&pods, "alice", &["touch", "/etc/codex-probe"]).await;
    assert!(
        !root_write.success(),
        "the root filesystem must be read-only"
    );
    let token = cluster::exec(
        &pods,
        "alice",
        &["ls", "/var/run/secrets/kubernetes.io/serviceaccount"],
    )
    .await;
    assert!(!token.success(), "no service-account token: {token:?}");
    let key = cluster::exec_ok(
        &pods,
        "alice",
        &["cat", "/var/run/codex-mcp/credentials/OPENAI_API_KEY"],
    )
    .await;
    assert_eq!(key, "sk-test-123");
    let secret_write = cluster::exec(
        &pods,
        "alice",
        &["touch", "/var/run/codex-mcp/credentials/x"],
    )
    .await;
    assert!(!secret_write.success(), "the credentials are read-only");
    cluster::exec_ok(
        &pods,
        "alice",
        &[
            "touch",
            "/tmp/scratch",
            "/agent/workspace/w",
            "/agent/codex-home/h",
        ],
    )
    .await;

    // kubectl shows the columns, by short name and by category.
    let table = kubectl(&["get", "cxa", "-n", ns.name()]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "PHASE", "READY", "POD", "RUNS", "ACTIVE", "LAST", "ACTIVITY", "AGE"],
        "{table}"
    );
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(&row[..4], ["alice", "Ready", "True", "alice"], "{table}");
    assert!(kubectl(&["get", "codex", "-n", ns.name()]).contains("alice"));
    wait_event(ns.name(), "alice", "Created").await;
    let described = kubectl(&["describe", "cxa", "alice", "-n", ns.name()]);
    assert!(
        described.contains("Created") && described.contains("WorkspaceBound"),
        "{described}"
    );

    // A gateway writing activity shows in the Last Activity column.
    agents
        .patch_status(
            "alice",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                json!({"status": {"lastActivity": chrono::Utc::now(), "runs": 1}}),
            ),
        )
        .await
        .expect("recording activity");
    let table = kubectl(&["get", "cxa", "alice", "-n", ns.name()]);
    assert!(
        !table.contains("<none>"),
        "Runs and Last Activity are shown: {table}"
    );
    let wide = kubectl(&["get", "cxa", "alice", "-n", ns.name(), "-o", "wide"]);
    assert!(
        wide.contains("INPUT TOKENS") && wide.contains("OUTPUT TOKENS"),
        "{wide}"
    );

    assert_eq!(op.stop().await, Some(0), "{}", op.log());
    ns.cleanup().await;
}

#[tokio::test]
async fn workspace_survives_pod_loss_spec_change_and_suspension() {
    install_crd().await;
    let ns = TestNamespace::create("op-persist").await;
    let mut op = Operator::start(ns.name(), OperatorOptions::named("op-persist")).await;
    let agents: Api<CodexAgent> = ns.api();
    let pods: Api<Pod> = ns.api();
    create(&agents, &agent("bob", json!({}))).await;
    let ready = wait_ready(&agents, "bob").await;
    assert!(
        condition_is(&ready, "CredentialsReady", "False"),
        "no credentials configured"
    );
    write_file(&pods, "bob", "v1").await;

    // Deleted: recreated, same workspace.
    let first = pods.get("bob").await.expect("pod");
    pods.delete("bob", &DeleteParams::default())
        .await
        .expect("deleting the pod");
    cluster::wait_for(&pods, "bob", READY_TIMEOUT, "a new pod", |p| {
        pod_uid(p) != pod_uid(&first)
    })
    .await;
    wait_ready(&agents, "bob").await;
    cluster::wait_for_pod_running(&pods, "bob", READY_TIMEOUT).await;
    assert_eq!(read_file(&pods, "bob").await, "v1");
    wait_event(ns.name(), "bob", "PodRecreated").await;

    // A spec change that affects the pod (other than its resources, see
    // below) replaces it, same workspace.
    let second = pods.get("bob").await.expect("pod");
    patch_spec(
        &agents,
        "bob",
        json!({"pod": {"env": [{"name": "GIT_AUTHOR_NAME", "value": "bob"}]}}),
    )
    .await;
    let third = cluster::wait_for(&pods, "bob", READY_TIMEOUT, "the replaced pod", |p| {
        pod_uid(p) != pod_uid(&second) && p.metadata.deletion_timestamp.is_none()
    })
    .await;
    let env = third.spec.unwrap().containers[0].env.clone().unwrap();
    assert!(env
        .iter()
        .any(|e| e.name == "GIT_AUTHOR_NAME" && e.value.as_deref() == Some("bob")));
    wait_ready(&agents, "bob").await;
    cluster::wait_for_pod_running(&pods, "bob", READY_TIMEOUT).await;
    assert_eq!(read_file(&pods, "bob").await, "v1");
    wait_event(ns.name(), "bob", "PodReplaced").await;
    assert!(agent_pods(&pods, "bob").await.len() <= 1, "never two pods");

    // Suspended by the flag: no pod, the claim stays.
    patch_spec(&agents, "bob", json!({"suspended": true})).await;
    let suspended = wait_phase(&agents, "bob", "Suspended").await;
    assert_eq!(
        condition(&suspended, "Suspended")
            .map(|c| c.reason)
            .as_deref(),
        Some("Requested")
    );
    assert!(status(&suspended).pod_name.is_none());
    cluster::wait_for_deletion(&pods, "bob", READY_TIMEOUT).await;
    let pvcs: Api<PersistentVolumeClaim> = ns.api();
    assert!(pvcs
        .get_opt("bob-workspace")
        .await
        .expect("claim")
        .is_some());
    wait_event(ns.name(), "bob", "Suspended").await;

    // Resumed by clearing it: the same workspace comes back.
    patch_spec(&agents, "bob", json!({"suspended": false})).await;
    let resumed = wait_ready(&agents, "bob").await;
    assert_eq!(
        condition(&resumed, "Suspended")
            .map(|c| c.reason)
            .as_deref(),
        Some("Resumed")
    );
    cluster::wait_for_pod_running(&pods, "bob", READY_TIMEOUT).await;
    assert_eq!(read_file(&pods, "bob").await, "v1");
    wait_event(ns.name(), "bob", "Resumed").await;

    let text = op.metrics().await;
    for series in [
        r#"codex_mcp_operator_suspends_total{reason="Requested"}"#,
        "codex_mcp_operator_resumes_total",
        r#"codex_mcp_operator_time_to_ready_seconds_count{trigger="created"}"#,
        r#"codex_mcp_operator_time_to_ready_seconds_count{trigger="resumed"}"#,
    ] {
        assert_eq!(metric(&text, series), Some(1.0), "{series} in\n{text}");
    }
    assert_eq!(
        metric(&text, r#"codex_mcp_operator_agents{phase="Ready"}"#),
        Some(1.0),
        "{text}"
    );
    assert!(
        metric(
            &text,
            r#"codex_mcp_operator_reconciles_total{outcome="ok"}"#
        )
        .unwrap_or(0.0)
            > 0.0
    );

    assert_eq!(op.stop().await, Some(0), "{}", op.log());
    ns.cleanup().await;
}

#[tokio::test]
async fn idle_agent_is_suspended_and_resumes_with_its_workspace() {
    install_crd().await;
    let ns = TestNamespace::create("op-idle").await;
    let mut op = Operator::start(ns.name(), OperatorOptions::named("op-idle")).await;
    let agents: Api<CodexAgent> = ns.api();
    let pods: Api<Pod> = ns.api();
    create(&agents, &agent("carol", json!({"idleTimeoutSeconds": 15}))).await;
    wait_ready(&agents, "carol").await;
    write_file(&pods, "carol", "idle-v1").await;

    // Nobody runs anything: after the timeout the operator suspends it and
    // records that in the spec, so clearing the flag is how to resume.
    let suspended = wait_phase(&agents, "carol", "Suspended").await;
    assert!(
        suspended.spec.suspended,
        "idle suspension sets spec.suspended"
    );
    assert_eq!(
        condition(&suspended, "Suspended")
            .map(|c| c.reason)
            .as_deref(),
        Some("IdleTimeout")
    );
    cluster::wait_for_deletion(&pods, "carol", READY_TIMEOUT).await;
    let note = wait_event(ns.name(), "carol", "Suspended").await;
    assert!(note.contains("idle"), "{note}");

    patch_spec(
        &agents,
        "carol",
        json!({"suspended": false, "idleTimeoutSeconds": 0}),
    )
    .await;
    wait_ready(&agents, "carol").await;
    cluster::wait_for_pod_running(&pods, "carol", READY_TIMEOUT).await;
    assert_eq!(read_file(&pods, "carol").await, "idle-v1");
    let text = op.metrics().await;
    assert_eq!(
        metric(
            &text,
            r#"codex_mcp_operator_suspends_total{reason="IdleTimeout"}"#
        ),
        Some(1.0),
        "{text}"
    );

    assert_eq!(op.stop().await, Some(0), "{}", op.log());
    ns.cleanup().await;
}

#[tokio::test]
async fn deleting_an_agent_deletes_or_retains_its_workspace_and_failures_are_reported() {
    install_crd().await;
    let ns = TestNamespace::create("op-delete").await;
    let mut op = Operator::start(ns.name(), OperatorOptions::named("op-delete")).await;
    let agents: Api<CodexAgent> = ns.api();
    let pods: Api<Pod> = ns.api();
    let pvcs: Api<PersistentVolumeClaim> = ns.api();
    let secrets: Api<Secret> = ns.api();
    create(
        &agents,
        &agent("dave", json!({"storage": {"whenDeleted": "Delete"}})),
    )
    .await;
    create(
        &agents,
        &agent("erin", json!({"storage": {"whenDeleted": "Retain"}})),
    )
    .await;
    create(
        &agents,
        &agent("frank", json!({"image": "codex-mcp-test/missing:1"})),
    )
    .await;
    wait_ready(&agents, "dave").await;
    wait_ready(&agents, "erin").await;
    write_file(&pods, "erin", "retained").await;

    // An image that cannot be had: Failed, with the reason, and an event.
    let failed = wait_phase(&agents, "frank", "Failed").await;
    let message = status(&failed).message.unwrap_or_default();
    assert!(message.contains("ErrImageNeverPull"), "{message}");
    let note = wait_event(ns.name(), "frank", "Failed").await;
    assert!(note.contains("ErrImageNeverPull"), "{note}");

    for name in ["dave", "erin"] {
        agents
            .delete(name, &DeleteParams::default())
            .await
            .expect("deleting the agent");
    }
    let gone = Duration::from_secs(120);
    cluster::wait_for_deletion(&pvcs, "dave-workspace", gone).await;
    cluster::wait_for_deletion(&secrets, "dave-credentials", gone).await;
    cluster::wait_for_deletion(&pods, "dave", gone).await;
    cluster::wait_for_deletion(&pods, "erin", gone).await;
    cluster::wait_for_deletion(&secrets, "erin-credentials", gone).await;
    let kept = pvcs
        .get_opt("erin-workspace")
        .await
        .expect("claim")
        .expect("the retained claim");
    assert!(kept
        .metadata
        .owner_references
        .unwrap_or_default()
        .is_empty());

    // A new agent of that name adopts the retained workspace.
    cluster::wait_for_deletion(&agents, "erin", gone).await;
    create(
        &agents,
        &agent("erin", json!({"storage": {"whenDeleted": "Retain"}})),
    )
    .await;
    wait_ready(&agents, "erin").await;
    cluster::wait_for_pod_running(&pods, "erin", READY_TIMEOUT).await;
    assert_eq!(read_file(&pods, "erin").await, "retained");

    assert_eq!(op.stop().await, Some(0), "{}", op.log());
    ns.cleanup().await;
}

#[tokio::test]
async fn invalid_specs_are_refused_by_the_api_server() {
    install_crd().await;
    let ns = TestNamespace::create("op-invalid").await;
    let agents: Api<CodexAgent> = ns.api();
    let cases = [
        (
            json!({"storage": {"size": "-1Gi"}}),
            "spec.storage.size",
            "should match",
        ),
        (
            json!({"resources": {"limits": {"memory": "2048m"}}}),
            "spec.resources.limits.memory",
            "should match",
        ),
        (
            json!({"resources": {"requests": {"cpu": "lots"}}}),
            "spec.resources.requests.cpu",
            "should match",
        ),
        (
            json!({"codex": {"approvalMode": "yolo"}}),
            "spec.codex.approvalMode",
            "Unsupported value",
        ),
        (
            json!({"storage": {"whenDeleted": "Sometimes"}}),
            "spec.storage.whenDeleted",
            "Unsupported value",
        ),
        (
            json!({"idleTimeoutSeconds": -5}),
            "spec.idleTimeoutSeconds",
            "greater than or equal to 0",
        ),
        (
            json!({"tenant": "Not_A_Label"}),
            "spec.tenant",
            "should match",
        ),
        (
            json!({"pod": {"securityContext": {"runAsUser": 0}}}),
            "spec.pod.securityContext.runAsUser",
            "greater than or equal to 1",
        ),
    ];
    // Untyped, since these specs do not even deserialize into the type.
    let resource = ApiResource::erase::<CodexAgent>(&());
    let untyped: Api<DynamicObject> = Api::namespaced_with(ns.client(), ns.name(), &resource);
    for (i, (spec, field, hint)) in cases.into_iter().enumerate() {
        let bad: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "codexmcp.dev/v1alpha1",
            "kind": "CodexAgent",
            "metadata": {"name": format!("bad-{i}")},
            "spec": spec,
        }))
        .expect("an object");
        match untyped.create(&PostParams::default(), &bad).await {
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 422, "{spec}: {e:?}");
                assert!(
                    e.message.contains(field) && e.message.contains(hint),
                    "{spec}: {}",
                    e.message
                );
            }
            other => panic!("{spec} should be refused, got {other:?}"),
        }
    }
    let good = agent(
        "good",
        json!({"storage": {"size": "1Gi", "whenDeleted": "Retain"}, "codex": {"approvalMode": "full-auto"},
               "resources": {"limits": {"cpu": "0.5", "memory": "1Gi"}}, "idleTimeoutSeconds": 0}),
    );
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    agents
        .create(&params, &good)
        .await
        .expect("a valid spec is accepted");
    ns.cleanup().await;
}

async fn lease_holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("codex-mcp-operator")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec?.holder_identity)
}

async fn wait_holder(leases: &Api<Lease>, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let holder = lease_holder(leases).await;
        if let Some(h) = holder.as_deref().filter(|h| ok(h)) {
            return h.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "waiting for {what}; the lease holder is {holder:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn one_operator_leads_and_the_other_takes_over_when_it_stops() {
    install_crd().await;
    let ns = TestNamespace::create("op-leader").await;
    let (a, b) = tokio::join!(
        Operator::start(ns.name(), OperatorOptions::named("op-a")),
        Operator::start(ns.name(), OperatorOptions::named("op-b")),
    );
    let leases: Api<Lease> = ns.api();
    let first = wait_holder(&leases, "a leader", |h| h == "op-a" || h == "op-b").await;
    let (mut leader, standby) = if first == "op-a" { (a, b) } else { (b, a) };

    let agents: Api<CodexAgent> = ns.api();
    create(&agents, &agent("gina", json!({}))).await;
    wait_ready(&agents, "gina").await;

    let (lead_text, standby_text) = (leader.metrics().await, standby.metrics().await);
    assert_eq!(metric(&lead_text, "codex_mcp_operator_leader"), Some(1.0));
    assert_eq!(
        metric(&standby_text, "codex_mcp_operator_leader"),
        Some(0.0)
    );
    assert!(
        metric(
            &lead_text,
            r#"codex_mcp_operator_reconciles_total{outcome="ok"}"#
        )
        .unwrap_or(0.0)
            > 0.0
    );
    assert!(
        !standby_text.contains("codex_mcp_operator_reconciles_total{"),
        "the standby reconciled:\n{standby_text}"
    );
    assert!(lead_text.contains("codex_mcp_operator_reconcile_duration_seconds_bucket"));
    assert!(
        lead_text.contains(r#"codex_mcp_operator_time_to_ready_seconds_bucket{trigger="created""#)
    );
    assert_eq!(
        metric(&lead_text, r#"codex_mcp_operator_agents{phase="Ready"}"#),
        Some(1.0)
    );
    for op in [&leader, &standby] {
        assert_eq!(op.get("/ready").await.0, 200);
        let (code, health) = op.get("/health").await;
        assert_eq!(code, 200);
        let health: serde_json::Value = serde_json::from_str(&health).expect("health JSON");
        assert_eq!(health["leader"], op.identity == leader.identity, "{health}");
    }

    // The leader stops (releasing the lease): the standby takes over and
    // reconciles what happens next.
    assert_eq!(leader.stop().await, Some(0), "{}", leader.log());
    let next = wait_holder(&leases, "the standby to lead", |h| h == standby.identity).await;
    assert_eq!(next, standby.identity);
    patch_spec(&agents, "gina", json!({"suspended": true})).await;
    wait_phase(&agents, "gina", "Suspended").await;
    let text = standby.metrics().await;
    assert_eq!(metric(&text, "codex_mcp_operator_leader"), Some(1.0));
    assert_eq!(
        metric(
            &text,
            r#"codex_mcp_operator_suspends_total{reason="Requested"}"#
        ),
        Some(1.0),
        "{text}"
    );

    let mut standby = standby;
    assert_eq!(standby.stop().await, Some(0), "{}", standby.log());
    ns.cleanup().await;
}

#[tokio::test]
async fn operator_killed_mid_reconcile_is_replaced_without_duplicate_pods() {
    install_crd().await;
    let ns = TestNamespace::create("op-restart").await;
    let mut first = Operator::start(ns.name(), OperatorOptions::named("op-first")).await;
    let leases: Api<Lease> = ns.api();
    wait_holder(&leases, "the first operator to lead", |h| h == "op-first").await;
    let agents: Api<CodexAgent> = ns.api();
    let pods: Api<Pod> = ns.api();
    create(&agents, &agent("hank", json!({}))).await;
    // Killed as soon as it has started the pod, before the agent is ready.
    cluster::wait_for(
        &pods,
        "hank",
        READY_TIMEOUT,
        "the pod to be created",
        |_| true,
    )
    .await;
    first.kill();
    let was_ready = agents
        .get("hank")
        .await
        .map(|a| phase_is(&a, "Ready"))
        .unwrap_or(false);

    let mut second = Operator::start(ns.name(), OperatorOptions::named("op-second")).await;
    wait_holder(
        &leases,
        "the second operator to take the expired lease",
        |h| h == "op-second",
    )
    .await;
    // A change only the new leader can have made: it converges the agent.
    patch_spec(
        &agents,
        "hank",
        json!({"resources": {"limits": {"memory": "100Mi"}}}),
    )
    .await;
    let ready = cluster::wait_for(
        &agents,
        "hank",
        READY_TIMEOUT,
        "convergence under the new leader",
        |a| phase_is(a, "Ready") && status(a).observed_generation == a.metadata.generation,
    )
    .await;
    assert_eq!(status(&ready).pod_name.as_deref(), Some("hank"));
    let all = agent_pods(&pods, "hank").await;
    assert_eq!(
        all.len(),
        1,
        "exactly one pod (first was ready: {was_ready}): {all:?}"
    );
    let limits = all[0].spec.clone().unwrap().containers[0]
        .resources
        .clone()
        .unwrap()
        .limits
        .unwrap();
    assert_eq!(limits["memory"].0, "100Mi");
    let created = events(ns.name(), "hank")
        .await
        .into_iter()
        .filter(|(r, _)| r == "Created")
        .count();
    assert!(created <= 1, "at most one Created event, got {created}");

    assert_eq!(second.stop().await, Some(0), "{}", second.log());
    ns.cleanup().await;
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Opt-in figures for the README (heavy: 500 agents):
/// `cargo test --test operator -- --ignored --nocapture benchmark`.
#[tokio::test]
#[ignore]
async fn benchmark_time_to_ready_and_a_suspended_fleet() {
    install_crd().await;
    let ns = TestNamespace::create("op-bench").await;
    let agents: Api<CodexAgent> = ns.api();

    // Creation to Ready, 20 agents created one after another.
    let mut op = Operator::start(ns.name(), OperatorOptions::named("op-bench")).await;
    let mut seconds = Vec::new();
    for i in 0..20 {
        let name = format!("ready-{i}");
        let started = Instant::now();
        create(&agents, &agent(&name, json!({}))).await;
        let deadline = started + READY_TIMEOUT;
        loop {
            let a = agents.get(&name).await.expect("agent");
            if phase_is(&a, "Ready") {
                break;
            }
            assert!(Instant::now() < deadline, "{name} not ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        seconds.push(started.elapsed().as_secs_f64());
        patch_spec(&agents, &name, json!({"suspended": true})).await;
    }
    seconds.sort_by(f64::total_cmp);
    println!(
        "creation to Ready over 20 agents: p50 {:.1} s, p95 {:.1} s, max {:.1} s",
        percentile(&seconds, 0.5),
        percentile(&seconds, 0.95),
        seconds[seconds.len() - 1]
    );
    op.stop().await;

    // 500 suspended agents created while no operator runs, then one starts.
    const FLEET: usize = 500;
    for chunk in (0..FLEET).collect::<Vec<_>>().chunks(25) {
        let creates = chunk.iter().map(|i| {
            let agents = agents.clone();
            async move {
                let a = agent(&format!("idle-{i}"), json!({"suspended": true}));
                create(&agents, &a).await;
            }
        });
        futures::future::join_all(creates).await;
    }
    let started = Instant::now();
    let op = Operator::start(ns.name(), OperatorOptions::named("op-fleet")).await;
    let deadline = started + Duration::from_secs(900);
    loop {
        let list = agents
            .list(&Default::default())
            .await
            .expect("listing agents");
        let done = list
            .items
            .iter()
            .filter(|a| phase_is(a, "Suspended"))
            .count();
        if done == list.items.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{done}/{} converged",
            list.items.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let converged = started.elapsed().as_secs_f64();
    // Settle, then the steady-state memory.
    tokio::time::sleep(Duration::from_secs(5)).await;
    println!(
        "{} suspended agents: operator converged in {converged:.1} s, resident memory {} MiB",
        FLEET + 20,
        op.rss_kib().unwrap_or(0) / 1024
    );
    drop(op);
    // Children go with their agents; give the garbage collector time.
    agents
        .delete_collection(&DeleteParams::default(), &Default::default())
        .await
        .expect("deleting the agents");
    let pvcs: Api<PersistentVolumeClaim> = ns.api();
    let deadline = Instant::now() + Duration::from_secs(900);
    while !pvcs
        .list(&Default::default())
        .await
        .expect("claims")
        .items
        .is_empty()
    {
        assert!(Instant::now() < deadline, "claims not collected");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    ns.cleanup().await;
}
