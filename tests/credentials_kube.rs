//! Credentials and tenants on the real test cluster: the operator is the one
//! writer of a ChatGPT login's refresh token (agents get only short-lived
//! tokens through their own Secrets), a refused login turns into
//! CredentialsReady=False and clear tool errors until `codex-mcp auth import`
//! brings a new one, and a turn longer than an access token's life goes on
//! with the refreshed one. No token ever reaches a log line, a CodexAgent's
//! status or an event.

mod support;

use std::time::{Duration, Instant};

use codex_mcp::api::crd::CodexAgent;
use k8s_openapi::api::core::v1::{Event, Secret};
use kube::api::{Api, ListParams};
use kube::ResourceExt;
use serde_json::{json, Value};
use support::cluster::TestNamespace;
use support::fake_auth::FakeAuth;
use support::fake_model::{FakeModel, Reply};
use support::kube_gateway::{self, KubeGateway, Process, CREDENTIALS_SECRET};
use support::mcp_client::{McpClient, Transport};

const AGENTS: [&str; 5] = ["a1", "a2", "a3", "a4", "a5"];
const CALL_TIMEOUT: Duration = Duration::from_secs(300);
/// Access tokens live this long; the operator refreshes them when
/// `MARGIN` is left (every 15 s), which must outlast the kubelet's Secret
/// sync (10 s on the test cluster) so pods always hold a valid token. The
/// fake model refuses expired tokens, as the real API does.
const TTL: Duration = Duration::from_secs(60);
const MARGIN: &str = "45";

struct Env {
    ns: TestNamespace,
    model: FakeModel,
    auth: FakeAuth,
    operator: Process,
    gateway: KubeGateway,
}

/// Operator and gateway for a namespace whose credentials Secret holds a
/// ChatGPT login of `auth` (expired, so the operator refreshes it first).
async fn start(prefix: &str) -> Env {
    let (ns, model) = kube_gateway::namespace_with_model(prefix).await;
    model.reject_expired_tokens();
    let auth = FakeAuth::start(TTL).await;
    kube_gateway::put_credentials(
        ns.name(),
        &[("auth.json", &auth.expired_login().to_string())],
    );
    let operator = kube_gateway::start_operator_with(
        ns.name(),
        &["--token-url", &auth.token_url(), "--refresh-margin", MARGIN],
    );
    let gateway = KubeGateway::start(
        ns.name(),
        &model,
        &[
            // The gateway's default keeps Codex's app connectors (on with
            // a ChatGPT login) off: nothing reaches beyond the fake model.
            "--credentials-secret",
            CREDENTIALS_SECRET,
        ],
    );
    Env {
        ns,
        model,
        auth,
        operator,
        gateway,
    }
}

fn client(gateway: &KubeGateway, agent: &str) -> McpClient {
    McpClient::new(gateway.mcp_url(), Transport::Http)
        .header("X-Codex-Agent", agent)
        .request_timeout(CALL_TIMEOUT)
}

async fn chat(env: &Env, agent: &str, message: &str) -> support::mcp_client::StepResult {
    env.model
        .when_contains(message, Reply::text(format!("ok {message}")));
    client(&env.gateway, agent)
        .call_tool("chat", json!({ "message": message }))
        .await
}

async fn round(env: &Env, n: usize) {
    let calls = AGENTS.map(|agent| {
        let message = format!("round {n} from {agent}");
        async move { (agent, chat(env, agent, &message).await) }
    });
    for (agent, r) in futures::future::join_all(calls).await {
        assert!(r.ok() && !r.is_error(), "round {n}, {agent}: {r}");
    }
}

/// Everything a person (or a log shipper) could read: the processes' logs,
/// the CodexAgents (status included) and the namespace's events.
async fn readable_text(env: &Env) -> String {
    let mut text = env.operator.logs().join("\n");
    text.push_str(&env.gateway.process.logs().join("\n"));
    let agents: Api<CodexAgent> = env.ns.api();
    for a in agents.list(&ListParams::default()).await.unwrap() {
        text.push_str(&serde_json::to_string(&a).unwrap());
    }
    let events: Api<Event> = env.ns.api();
    for e in events.list(&ListParams::default()).await.unwrap() {
        text.push_str(&serde_json::to_string(&e).unwrap());
    }
    text
}

fn secret_json(secret: &Secret, key: &str) -> Value {
    let bytes = &secret.data.as_ref().unwrap()[key].0;
    serde_json::from_slice(bytes).unwrap()
}

#[tokio::test]
async fn five_agents_share_one_login_while_the_operator_refreshes_it() {
    let env = start("cred-share").await;
    let started = Instant::now();
    round(&env, 1).await;
    eprintln!(
        "first round (five pods started) after {:?}",
        started.elapsed()
    );

    // Keep all five busy until the login has been refreshed three more
    // times under them.
    let base = env.auth.refreshes();
    let mut n = 1;
    while env.auth.refreshes() < base + 3 {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "only {} refreshes in 10 minutes",
            env.auth.refreshes() - base
        );
        tokio::time::sleep(Duration::from_secs(8)).await;
        n += 1;
        round(&env, n).await;
    }
    eprintln!(
        "{n} rounds, {} refreshes, {:?}",
        env.auth.refreshes(),
        started.elapsed()
    );
    assert!(
        env.auth.rejected().is_empty(),
        "a refresh token was presented twice: {:?}",
        env.auth.rejected()
    );

    // The model only ever saw access tokens the endpoint issued (never the
    // imported, expired one), one request per run.
    let issued = env.auth.issued();
    let seen = env.model.bearer_tokens();
    assert_eq!(seen.len(), 5 * n, "one model request per run");
    assert!(
        seen.iter().all(|t| issued.contains(t)),
        "a run used a token the endpoint never issued"
    );

    // The source Secret holds the current refresh token; no agent's Secret
    // holds any refresh token.
    let secrets: Api<Secret> = env.ns.api();
    let source = secrets.get(CREDENTIALS_SECRET).await.unwrap();
    assert_eq!(
        secret_json(&source, "auth.json")["tokens"]["refresh_token"],
        env.auth.current_refresh_token()
    );
    let agents: Api<CodexAgent> = env.ns.api();
    let refresh_tokens: Vec<&String> = issued.iter().filter(|t| t.starts_with("rt-")).collect();
    for agent in agents.list(&ListParams::default()).await.unwrap() {
        let own = secrets
            .get(&format!("{}-credentials", agent.name_any()))
            .await
            .unwrap();
        let data = own.data.unwrap();
        assert_eq!(data.keys().collect::<Vec<_>>(), ["auth.json"]);
        let text = String::from_utf8_lossy(&data["auth.json"].0).into_owned();
        assert!(
            refresh_tokens.iter().all(|t| !text.contains(t.as_str())),
            "agent {} holds a refresh token",
            agent.name_any()
        );
        let condition = agent
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "CredentialsReady"))
            .cloned()
            .expect("CredentialsReady");
        assert_eq!(condition.status, "True", "{condition:?}");
    }

    let text = readable_text(&env).await;
    for token in issued.iter().chain([&env.auth.current_refresh_token()]) {
        assert!(
            !text.contains(token.as_str()),
            "a token reached a log line, a status or an event"
        );
    }
    assert!(text.contains("refreshed the ChatGPT login"));
    env.ns.cleanup().await;
}

#[tokio::test]
async fn a_turn_outlives_its_access_token() {
    let env = start("cred-long").await;
    // One turn of commands that together outlast a token: Codex asks the
    // model again after each, with whatever token it holds by then.
    let steps = (0..12)
        .map(|_| Reply::exec("sleep 6"))
        .chain([Reply::text("done")])
        .collect();
    env.model
        .when_contains("the long turn", Reply::Sequence(steps));
    let before = env.model.bearer_tokens().len();
    let started = Instant::now();
    let r = client(&env.gateway, "long")
        .call_tool("chat", json!({ "message": "the long turn" }))
        .await;
    assert!(r.ok() && !r.is_error(), "{r}");
    // The first call also starts the pod; the commands alone take 72 s.
    assert!(started.elapsed() > TTL, "the turn outlived a token");
    let mut used = env.model.bearer_tokens().split_off(before);
    assert_eq!(used.len(), 13, "one request per step");
    used.dedup();
    assert!(
        used.len() >= 2,
        "the turn went on with the refreshed token ({} tokens)",
        used.len()
    );
    env.ns.cleanup().await;
}

async fn wait_credentials(env: &Env, agent: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let cr = kube_gateway::codex_agent(&env.ns, agent).await;
        let c = cr
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "CredentialsReady"))
            .cloned();
        if let Some(c) = c.filter(|c| c.status == status) {
            return serde_json::to_value(c).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "CredentialsReady never became {status}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn a_refused_login_is_reported_until_a_new_one_is_imported() {
    let env = start("cred-revoke").await;
    let r = chat(&env, "solo", "before the revocation").await;
    assert!(r.ok() && !r.is_error(), "{r}");

    // The login is revoked: the next refresh is refused.
    env.auth.revoke();
    let c = wait_credentials(&env, "solo", "False").await;
    assert_eq!(c["reason"], "RefreshFailed", "{c}");
    let message = c["message"].as_str().unwrap();
    assert!(
        message.contains("codex-mcp auth import") && message.contains("codex login"),
        "{message}"
    );
    let r = chat(&env, "solo", "after the revocation").await;
    assert!(r.is_error() || !r.ok(), "{r}");
    let said = r.to_string();
    assert!(
        said.contains("credentials are not usable") && said.contains("auth import"),
        "the tool error says what to do: {said}"
    );
    let rejected = env.auth.rejected();
    assert_eq!(
        rejected.len(),
        1,
        "a refused login is not retried: {rejected:?}"
    );

    // Someone logs in again and imports the new login.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth.json");
    std::fs::write(&file, env.auth.log_in_again().to_string()).unwrap();
    let out = std::process::Command::new(support::codex_mcp_bin())
        .args(["auth", "import", "--auth-json"])
        .arg(&file)
        .args(["--namespace", env.ns.name(), "--kubeconfig"])
        .arg(support::cluster::kubeconfig_path())
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("{}/{CREDENTIALS_SECRET}", env.ns.name())),
        "{stdout}"
    );
    assert!(!stdout.contains(&env.auth.current_refresh_token()));

    let c = wait_credentials(&env, "solo", "True").await;
    assert_eq!(c["reason"], "LoginCopied", "{c}");
    // The kubelet brings the new token into the pod within its sync period.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = chat(&env, "solo", "after the import").await;
        if r.ok() && !r.is_error() {
            break;
        }
        assert!(Instant::now() < deadline, "still failing: {r}");
        tokio::time::sleep(Duration::from_secs(5)).await;
    }

    let text = readable_text(&env).await;
    assert!(
        text.contains("CredentialsFailed"),
        "a Warning event was published"
    );
    for token in env.auth.issued() {
        assert!(!text.contains(token.as_str()), "a token leaked");
    }
    env.ns.cleanup().await;
}
