//! Agents on a git repository on the real test cluster: a private
//! repository on a git server with token authentication (git's smart HTTP,
//! `tests/support/git_http_server.py`) that the pods reach, cloned into the
//! agent's pod by its `source` init container, Codex working on it through
//! the gateway, `push` to the server, and the bad sources with the reasons
//! `SourceReady` gives. Needs CODEX_MCP_TEST_KUBECONFIG.

mod support;

use std::time::{Duration, Instant};

use base64::Engine;
use codex_mcp::api::crd::CodexAgent;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use serde_json::json;
use support::cluster::TestNamespace;
use support::fake_model::{tool_outputs, FakeModel, Reply};
use support::git_server::GitServer;
use support::kube_gateway::{
    self, codex_agent, kubectl_apply, kubectl_ok, ready_pod, KubeGateway, Process,
    HOST_ON_POD_NETWORK,
};
use support::mcp_client::{McpClient, Transport};
use support::projects::{all_changes, failed, git, implement, implement_reply, ok};

const WRITE_TOKEN: &str = "tok-write-5b1e9c7d2f";
const READ_TOKEN: &str = "tok-read-8a4c6e1b3d";
const WRONG_TOKEN: &str = "tok-wrong-2d7f9a0c6e";

struct Env {
    ns: TestNamespace,
    model: FakeModel,
    server: GitServer,
    operator: Process,
    gateway: KubeGateway,
    _rules: tempfile::NamedTempFile,
}

/// A namespace with Secrets `git-write`, `git-read` and `git-wrong`, a git
/// server holding `app.git`, and an operator and a gateway whose default
/// tenant may create agents on the server's repositories with `secret`.
async fn start(prefix: &str, secret: &str) -> Env {
    start_with(prefix, secret, &[]).await
}

async fn start_with(prefix: &str, secret: &str, operator_flags: &[&str]) -> Env {
    let (ns, model) = kube_gateway::namespace_with_model(prefix).await;
    let server = GitServer::start(HOST_ON_POD_NETWORK, WRITE_TOKEN, READ_TOKEN);
    server.create_repo("app.git");
    for (name, token) in [
        ("git-write", WRITE_TOKEN),
        ("git-read", READ_TOKEN),
        ("git-wrong", WRONG_TOKEN),
    ] {
        kubectl_apply(
            ns.name(),
            &format!(
                "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\nstringData: {{token: {token}}}\n"
            ),
        );
    }
    let rules = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        rules.path(),
        format!(
            "# tenant secret patterns\ndefault {secret} {}\n",
            server.url("*")
        ),
    )
    .unwrap();
    let operator = kube_gateway::start_operator_with(ns.name(), operator_flags);
    let gateway = KubeGateway::start(
        ns.name(),
        &model,
        &["--repositories", rules.path().to_str().unwrap()],
    );
    Env {
        ns,
        model,
        server,
        operator,
        gateway,
        _rules: rules,
    }
}

fn client(env: &Env, agent: &str, repository: Option<&str>) -> McpClient {
    let c = McpClient::new(env.gateway.mcp_url(), Transport::Http)
        .header("X-Codex-Agent", agent)
        .request_timeout(Duration::from_secs(300));
    match repository {
        Some(r) => c.header("X-Codex-Repository", r),
        None => c,
    }
}

fn condition(cr: &CodexAgent, type_: &str) -> Option<(String, String, String)> {
    cr.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Everything a token could leak into besides the Secret itself.
fn assert_no_token_anywhere(env: &Env, token: &str) {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
    let places = [
        ("the operator's log", env.operator.logs().join("\n")),
        ("the gateway's log", env.gateway.process.logs().join("\n")),
        (
            "CodexAgents",
            kubectl_ok(&["get", "codexagents", "-n", env.ns.name(), "-o", "yaml"]),
        ),
        (
            "pods",
            kubectl_ok(&["get", "pods", "-n", env.ns.name(), "-o", "yaml"]),
        ),
        (
            "events",
            kubectl_ok(&["get", "events", "-n", env.ns.name(), "-o", "yaml"]),
        ),
    ];
    for (place, text) in places {
        for secret in [token, basic.as_str()] {
            if let Some(at) = text.find(secret) {
                let line = text[..at].rsplit('\n').next().unwrap_or_default();
                panic!("the token is in {place}, after: {line:?}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_on_a_private_repository_works_pushes_and_keeps_its_checkpoints() {
    let env = start("repo-ok", "git-write").await;
    let url = env.server.url("app.git");
    let alice = client(&env, "alice", Some(&format!("{url}#main")));

    // Codex looks around the clone, then adds a file.
    env.model.push(Reply::exec(
        "cat src/app.txt; git branch --show-current; git log --oneline | wc -l",
    ));
    env.model
        .push(Reply::add_file("src/feature.txt", "new feature\n"));
    env.model.push(Reply::Json(implement_reply()));
    let r = implement(&alice, "add the feature").await;
    assert_eq!(r["checkpoint"], "alice@1", "{r}");
    let seen = tool_outputs(&env.model.requests()[1]).join("\n");
    assert!(
        seen.contains("version two") && seen.contains("codex/alice"),
        "Codex works in the clone, on the agent's branch: {seen}"
    );

    let cr = codex_agent(&env.ns, "alice").await;
    let git_source = &cr.spec.source.as_ref().unwrap().git;
    assert_eq!(git_source.url, url);
    assert_eq!(git_source.ref_.as_deref(), Some("main"));
    assert_eq!(git_source.secret_ref.as_ref().unwrap().name, "git-write");
    let (status, reason, message) = condition(&cr, "SourceReady").unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "Cloned"),
        "{message}"
    );
    let main = env.server.git("app.git", &["rev-parse", "main"]);
    assert!(message.contains(&main[..12]), "{message}");
    assert!(
        env.server
            .requests()
            .iter()
            .any(|l| l.contains("git-upload-pack 200 user=x-access-token access=write")),
        "the clone authenticated: {:?}",
        env.server.requests()
    );

    // The changes apply in the user's own clone.
    let (diff, _) = all_changes(&alice, json!({})).await;
    assert!(
        diff.contains("src/feature.txt") && diff.contains("+new feature"),
        "{diff}"
    );
    let user = tempfile::tempdir().unwrap();
    git(
        user.path(),
        &[
            "clone",
            "--quiet",
            env.server.path("app.git").to_str().unwrap(),
            ".",
        ],
    );
    std::fs::write(user.path().join("changes.diff"), &diff).unwrap();
    git(user.path(), &["apply", "--check", "changes.diff"]);

    // push: the branch on the server, on top of main, with the change.
    let r = alice
        .call_tool("push", json!({"message": "Add the feature"}))
        .await;
    let pushed = ok(&r).clone();
    assert_eq!(pushed["branch"], "codex/alice", "{pushed}");
    assert_eq!(pushed["pushed_to"], url.as_str(), "{pushed}");
    assert_eq!(pushed["committed"], true);
    assert_eq!(
        env.server
            .git("app.git", &["show", "codex/alice:src/feature.txt"]),
        "new feature"
    );
    assert_eq!(
        env.server.git("app.git", &["rev-parse", "codex/alice^"]),
        main
    );
    assert_eq!(
        env.server
            .git("app.git", &["log", "-1", "--format=%s", "codex/alice"]),
        "Add the feature"
    );

    // The workspace and its checkpoints outlive the pod: the new pod's
    // init container finds the clone and leaves it as it is.
    let pods: Api<Pod> = env.ns.api();
    let pod = ready_pod(&env.ns, "alice").await;
    pods.delete(&pod, &DeleteParams::default()).await.unwrap();
    env.model.push(Reply::exec(
        "cat src/feature.txt; printf 'v3\\n' > src/app.txt",
    ));
    env.model.push(Reply::Json(implement_reply()));
    let r = implement(&alice, "change the app again").await;
    assert_eq!(r["checkpoint"], "alice@2", "{r}");
    let seen = tool_outputs(&env.model.requests()[4]).join("\n");
    assert!(
        seen.contains("new feature"),
        "the pushed work is there: {seen}"
    );
    let (_, _, message) = condition(&codex_agent(&env.ns, "alice").await, "SourceReady").unwrap();
    assert!(message.starts_with("the workspace holds"), "{message}");
    let r = alice.call_tool("list_checkpoints", json!({})).await;
    let ids: Vec<_> = ok(&r)["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["alice@1", "alice@2"]);
    let r = alice
        .call_tool("rollback", json!({"checkpoint": "alice@1"}))
        .await;
    assert_eq!(ok(&r)["restored_files"], json!(["src/app.txt"]), "{r}");
    let (diff, _) = all_changes(&alice, json!({})).await;
    assert!(!diff.contains("v3"), "rolled back: {diff}");

    assert_no_token_anywhere(&env, WRITE_TOKEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_sources_are_refused_with_the_reason_and_change_nothing() {
    let env = start("repo-bad", "git-read").await;
    let url = env.server.url("app.git");
    let agents: Api<CodexAgent> = env.ns.api();
    let count = || async { agents.list(&Default::default()).await.unwrap().items.len() };

    // Refused by the gateway before any agent exists.
    let creds = url.replace("http://", &format!("http://me:{WRONG_TOKEN}@"));
    let r = client(&env, "a1", Some(&creds))
        .call_tool("chat", json!({"message": "hi"}))
        .await;
    let text = failed(&r);
    assert!(
        text.contains("must not carry credentials") && !text.contains(WRONG_TOKEN),
        "{text}"
    );
    let r = client(&env, "a2", Some("http://elsewhere.example/app.git"))
        .call_tool("chat", json!({"message": "hi"}))
        .await;
    assert!(
        failed(&r).contains("not among the repositories tenant default may use"),
        "{r}"
    );
    assert_eq!(count().await, 0, "no agent was created");

    // The API server refuses a token in the URL too.
    let refused = support::kubectl::kubectl_outcome(
        &[
            "apply",
            "--server-side",
            "--dry-run=server",
            "-n",
            env.ns.name(),
            "-f",
            "-",
        ],
        Some(&format!(
            "apiVersion: codexmcp.dev/v1alpha1\nkind: CodexAgent\nmetadata: {{name: x}}\n\
             spec: {{source: {{git: {{url: \"{creds}\"}}}}}}\n"
        )),
    )
    .unwrap_err();
    assert!(refused.contains("must not carry credentials"), "{refused}");

    // An unknown ref: the agent is not ready, and says why.
    let r = client(&env, "bob", Some(&format!("{url}#nope")))
        .call_tool("chat", json!({"message": "hi"}))
        .await;
    let text = failed(&r);
    assert!(
        text.contains("UnknownRef") && text.contains("\"nope\""),
        "{text}"
    );
    let (status, reason, _) = condition(&codex_agent(&env.ns, "bob").await, "SourceReady").unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("False", "UnknownRef"));

    // A CodexAgent made with kubectl, with a token the server refuses.
    // Named as `codex-mcp resource-name carol` says.
    let out = std::process::Command::new(support::codex_mcp_bin())
        .args(["resource-name", "carol"])
        .output()
        .unwrap();
    let name = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(name.starts_with("default-carol-"), "{name}");
    kubectl_apply(
        env.ns.name(),
        &format!(
            "apiVersion: codexmcp.dev/v1alpha1\nkind: CodexAgent\nmetadata:\n  name: {name}\n  labels: \
             {{codexmcp.dev/agent-name: carol, codexmcp.dev/tenant: default}}\nspec:\n  tenant: default\n  \
             credentials: {{secretRef: {{name: {}}}}}\n  source: {{git: {{url: \"{url}\", secretRef: {{name: git-wrong}}}}}}\n",
            kube_gateway::CREDENTIALS_SECRET
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(180);
    let message = loop {
        let cr = agents.get(&name).await.unwrap();
        if let Some((s, r, m)) = condition(&cr, "SourceReady") {
            if s == "False" && r == "AuthRefused" {
                break m;
            }
        }
        assert!(Instant::now() < deadline, "no AuthRefused: {:?}", cr.status);
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert!(
        message.contains("the server refused the credentials"),
        "{message}"
    );
    let r = client(&env, "carol", None)
        .call_tool("chat", json!({"message": "hi"}))
        .await;
    assert!(
        failed(&r).contains("AuthRefused"),
        "the gateway uses it as it is: {r}"
    );
    let events = kubectl_ok(&[
        "get",
        "events",
        "-n",
        env.ns.name(),
        "--field-selector",
        &format!("involvedObject.name={name}"),
    ]);
    assert!(
        events.contains("Warning") && events.contains("failed (AuthRefused)"),
        "a Warning event says why: {events}"
    );

    // A read-only token clones, but push says it may not write.
    let erin = client(&env, "erin", Some(&url));
    env.model.push(Reply::add_file("notes.txt", "x\n"));
    env.model.push(Reply::Json(implement_reply()));
    implement(&erin, "write notes").await;
    // A patch that does not apply and a checkpoint that is not the agent's
    // are refused by name, and change nothing.
    let bad_patch = "--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-# not this line\n+# x\n";
    let r = erin
        .call_tool("sync_files", json!({"patch": bad_patch}))
        .await;
    assert!(failed(&r).contains("the patch does not apply"), "{r}");
    let r = erin
        .call_tool("rollback", json!({"checkpoint": "bob@1"}))
        .await;
    assert!(failed(&r).contains("belongs to agent bob"), "{r}");
    let (diff, _) = all_changes(&erin, json!({})).await;
    assert!(
        diff.contains("notes.txt") && !diff.contains("README.md"),
        "{diff}"
    );
    let r = erin.call_tool("push", json!({})).await;
    let text = failed(&r);
    assert!(
        text.contains("no write access") && text.contains("codex/erin"),
        "{text}"
    );
    assert!(
        !env.server
            .git("app.git", &["branch", "--list"])
            .contains("codex/erin"),
        "nothing was pushed"
    );

    // An existing agent stays on its repository; an agent without one has
    // nothing to push to.
    let r = client(&env, "erin", Some(&env.server.url("other.git")))
        .call_tool("chat", json!({"message": "hi"}))
        .await;
    assert!(failed(&r).contains(&format!("it works on {url}")), "{r}");
    env.model.push(Reply::text("hello"));
    let frank = client(&env, "frank", None);
    let r = frank.call_tool("chat", json!({"message": "hi"})).await;
    assert!(r.ok() && !r.is_error(), "{r}");
    let r = frank.call_tool("push", json!({})).await;
    assert!(
        failed(&r).contains("has no source repository to push to"),
        "{r}"
    );

    for token in [WRONG_TOKEN, READ_TOKEN] {
        assert_no_token_anywhere(&env, token);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repository_over_the_size_limit_is_refused_and_left_nowhere() {
    let env = start_with("repo-big", "git-write", &["--source-max-size", "1Ki"]).await;
    let url = env.server.url("app.git");
    let r = client(&env, "big", Some(&url))
        .call_tool("chat", json!({"message": "hi"}))
        .await;
    let text = failed(&r);
    assert!(
        text.contains("TooLarge") && text.contains("--source-max-size"),
        "{text}"
    );
    let cr = codex_agent(&env.ns, "big").await;
    let (status, reason, _) = condition(&cr, "SourceReady").unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("False", "TooLarge"));
    assert_no_token_anywhere(&env, WRITE_TOKEN);
}
