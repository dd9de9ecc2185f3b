//! `cleanup_inactive_agents` on one machine: it never releases an agent a
//! call is using, never lets two calls run in one agent, and never stalls
//! the gateway while it deletes many files.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::fake_model::Reply;
use support::gateway::LocalGateway as Env;
use support::mcp_client::{McpClient, Step, StepResult, Transport};

async fn start() -> Env {
    Env::start_with(|o| o.env("SESSION_TIMEOUT", "0")).await
}

fn client(env: &Env, agent: &str) -> McpClient {
    McpClient::new(env.gateway.mcp_url(), Transport::Http)
        .header("X-Codex-Agent", agent)
        .request_timeout(Duration::from_secs(300))
}

fn tmp_dir(env: &Env, agent: &str) -> PathBuf {
    env.dir.path().join("agents").join(agent).join("tmp")
}

fn structured(r: &StepResult) -> Value {
    assert!(r.ok() && !r.is_error(), "{r}");
    r.structured().cloned().unwrap()
}

async fn fill(dir: PathBuf, files: usize) {
    tokio::task::spawn_blocking(move || {
        for i in 0..files {
            std::fs::write(dir.join(format!("f{i}")), "x").unwrap();
        }
    })
    .await
    .unwrap();
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test]
async fn cleanup_skips_a_busy_agent_and_never_splits_one() {
    let env = start().await;
    structured(
        &client(&env, "busy")
            .call_tool("chat", json!({"message": "first"}))
            .await,
    );
    let tmp = tmp_dir(&env, "busy");
    std::fs::write(tmp.join("scratch"), "in use").unwrap();

    // A cleanup while a call runs leaves the agent and its files alone.
    env.model
        .push(Reply::delayed(Duration::from_secs(6), Reply::text("long")));
    let long = tokio::spawn({
        let c = client(&env, "busy");
        async move { c.call_tool("chat", json!({"message": "long"})).await }
    });
    assert!(
        env.model
            .wait_for_requests(2, Duration::from_secs(60))
            .await
    );
    let cleanup = structured(
        &client(&env, "other")
            .call_tool("cleanup_inactive_agents", json!({}))
            .await,
    );
    assert_eq!(cleanup["released"], json!([]), "{cleanup}");
    assert_eq!(cleanup["busy"], json!(["busy"]), "{cleanup}");
    assert!(
        tmp.join("scratch").exists(),
        "cleanup emptied a running agent's tmp"
    );
    structured(&long.await.unwrap());

    // Calls that arrive while a long cleanup releases the agent wait for it,
    // and then for each other: never two runs in the agent at once.
    fill(tmp.clone(), 200_000).await;
    for _ in 0..2 {
        env.model
            .push(Reply::delayed(Duration::from_secs(5), Reply::text("held")));
    }
    let cleanup = tokio::spawn({
        let c = client(&env, "other");
        async move { c.call_tool("cleanup_inactive_agents", json!({})).await }
    });
    while count(&tmp) > 195_000 && !cleanup.is_finished() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let during = tokio::spawn({
        let c = client(&env, "busy");
        async move { c.call_tool("chat", json!({"message": "during"})).await }
    });
    let cleanup = structured(&cleanup.await.unwrap());
    assert!(
        cleanup["released"].to_string().contains("busy"),
        "{cleanup}"
    );
    let after = client(&env, "busy")
        .call_tool("chat", json!({"message": "after"}))
        .await;
    structured(&during.await.unwrap());
    structured(&after);
    assert_eq!(
        env.model.max_concurrent_holds(),
        1,
        "two calls ran in one agent at once"
    );
}

#[tokio::test]
async fn cleanups_of_many_files_keep_the_gateway_responsive() {
    let env = start().await;
    for agent in ["heavy-a", "heavy-b"] {
        structured(
            &client(&env, agent)
                .call_tool("chat", json!({"message": "hi"}))
                .await,
        );
    }
    fill(tmp_dir(&env, "heavy-a"), 50_000).await;
    fill(tmp_dir(&env, "heavy-b"), 50_000).await;

    let cleanups = tokio::spawn({
        let c = client(&env, "observer");
        async move {
            c.run(vec![Step::Parallel(vec![
                Step::call_tool("cleanup_inactive_agents", json!({})),
                Step::call_tool("cleanup_inactive_agents", json!({})),
            ])])
            .await
        }
    });
    let http = reqwest::Client::new();
    let health = format!("{}/health", env.gateway.url);
    let mut worst = Duration::ZERO;
    let mut polls = 0;
    while !cleanups.is_finished() {
        let t = Instant::now();
        let r = http.get(&health).send().await.unwrap();
        assert!(r.status().is_success());
        worst = worst.max(t.elapsed());
        polls += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let results = cleanups.await.unwrap();
    let both = results[0].results();
    let released: Vec<String> = both
        .iter()
        .flat_map(|r| {
            structured(r)["released"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        released.contains(&"heavy-a".to_owned()) && released.contains(&"heavy-b".to_owned()),
        "{released:?}"
    );
    assert_eq!(count(&tmp_dir(&env, "heavy-a")), 0);
    assert_eq!(count(&tmp_dir(&env, "heavy-b")), 0);
    assert!(
        worst < Duration::from_secs(1),
        "/health took {worst:?} during the cleanups ({polls} polls)"
    );
}
