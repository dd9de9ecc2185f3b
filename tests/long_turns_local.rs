//! Codex turns at real timing through `codex-mcp serve`: a turn of more than
//! three minutes, most of it with Codex silent (a long model step, then a
//! slowly streamed answer), over streamable HTTP and over SSE. The client
//! must get the result and hear progress at least every 15 s all along, from
//! the gateway's default heartbeat: clients abort calls that report no
//! progress for a while (Claude Code after 300 s), and a transport's
//! keep-alives do not count.
//!
//! The same 3-minute length for the runs that outlive their gateway: an
//! `implement` as an MCP task and another as a background run (a client
//! without Tasks), the gateway killed with SIGKILL mid-turn and restarted;
//! both results are served, each turn ran once.
//!
//! One test runs the three at once: cargo runs no more tests at a time than
//! the machine has cores, and these mostly wait.

mod support;

use std::time::Duration;

use serde_json::json;
use support::fake_model::Reply;
use support::gateway::LocalGateway;
use support::long_turn::{assert_both_turns_done, slow_implement, SILENT_STEP, STREAMING};
use support::mcp_client::{McpClient, Step, StepResult, Transport};
use support::tasks_client::{task_id, TasksClient};

/// The longest a client may hear nothing: well under every client's limit.
const MAX_SILENCE: Duration = Duration::from_secs(15);
const ANSWER_END: &str = "and that is the whole slow answer.";

async fn long_turn(transport: Transport) -> StepResult {
    // The user's path: the default heartbeat, no shortened timeouts.
    let env = LocalGateway::start().await;
    let answer = format!(
        "{}{ANSWER_END}",
        "Thinking it through, step by step. ".repeat(12)
    );
    env.model.push(Reply::exec("sleep 1; echo warming up"));
    env.model.push(Reply::silent(
        SILENT_STEP,
        Reply::text(answer).over(STREAMING),
    ));
    let url = match transport {
        Transport::Http => env.gateway.mcp_url(),
        Transport::Sse => env.gateway.sse_url(),
    };
    let result = McpClient::new(url, transport)
        .header("X-Codex-Agent", "slow")
        .run(vec![Step::call_tool(
            "chat",
            json!({"message": "Take your time and explain it properly."}),
        )])
        .await
        .remove(0);
    assert_eq!(
        env.model.requests().len(),
        2,
        "one command, one long model step: nothing retried"
    );
    result
}

fn assert_kept_informed(r: &StepResult) {
    assert!(r.ok() && !r.is_error(), "{r}");
    assert!(r.text().contains(ANSWER_END), "the whole answer: {r}");
    assert!(
        r.elapsed() >= SILENT_STEP + STREAMING,
        "the turn took real time: {:?}",
        r.elapsed()
    );
    let progress = r.progress();
    let timeline: Vec<String> = progress
        .iter()
        .map(|p| {
            format!(
                "{:>7.1}s {}",
                p.at.as_secs_f64(),
                p.message.as_deref().unwrap_or("")
            )
        })
        .collect();
    let timeline = timeline.join("\n");
    assert!(
        r.longest_silence() <= MAX_SILENCE,
        "the client heard nothing for {:?} (result after {:?}):\n{timeline}",
        r.longest_silence(),
        r.elapsed()
    );
    assert!(
        progress.windows(2).all(|w| w[0].progress < w[1].progress),
        "progress increases:\n{timeline}"
    );
    // While Codex is silent, heartbeats say what it did last.
    let heartbeats: Vec<&str> = progress
        .iter()
        .filter_map(|p| p.message.as_deref())
        .filter(|m| m.starts_with("still running ("))
        .collect();
    assert!(
        heartbeats.len() as u64 >= (SILENT_STEP + STREAMING).as_secs() / MAX_SILENCE.as_secs(),
        "heartbeats all along:\n{timeline}"
    );
    assert!(
        heartbeats.iter().any(|m| m.contains("warming up")),
        "a heartbeat names the last thing Codex did:\n{timeline}"
    );
    assert!(
        heartbeats
            .iter()
            .any(|m| m.contains("m ") && m.contains("s)")),
        "heartbeats say how long the call has been running:\n{timeline}"
    );
}

async fn a_three_minute_turn_over_streamable_http_keeps_the_client_informed() {
    let r = long_turn(Transport::Http).await;
    eprintln!(
        "http: {:?}, longest silence {:?}",
        r.elapsed(),
        r.longest_silence()
    );
    assert_kept_informed(&r);
}

async fn a_three_minute_turn_over_sse_keeps_the_client_informed() {
    let r = long_turn(Transport::Sse).await;
    eprintln!(
        "sse: {:?}, longest silence {:?}",
        r.elapsed(),
        r.longest_silence()
    );
    assert_kept_informed(&r);
}

/// The workspace's files, relative, without Codex's or git's own.
fn workspace_files(env: &LocalGateway, agent: &str) -> Vec<String> {
    let ws = env.gateway.workspace(agent);
    let mut out: Vec<String> = std::fs::read_dir(&ws)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    out.sort();
    out
}

async fn three_minute_runs_survive_a_gateway_killed_mid_turn() {
    let mut env = LocalGateway::start().await;
    // The next turn's requests carry this turn too: its rule goes first.
    env.model
        .when_contains("after-the-restart", Reply::text("next turn"));
    env.model
        .when_contains("tasked-slow", slow_implement("tasked.py"));
    env.model
        .when_contains("background-slow", slow_implement("background.py"));

    let tasks = |env: &LocalGateway| {
        TasksClient::new(env.gateway.mcp_url()).header("X-Codex-Agent", "tasked")
    };
    let plain = |env: &LocalGateway| {
        McpClient::new(env.gateway.mcp_url(), Transport::Http)
            .header("X-Codex-Agent", "backgrounded")
            .request_timeout(Duration::from_secs(120))
    };
    let t0 = std::time::Instant::now();
    let task = task_id(
        &tasks(&env)
            .call_tool(
                "implement",
                json!({"task": "tasked-slow: write tasked.py", "target_files": ["tasked.py"]}),
            )
            .await,
    );
    let started = plain(&env)
        .call_tool(
            "implement",
            json!({"task": "background-slow: write background.py",
                   "target_files": ["background.py"], "background": true}),
        )
        .await;
    let run_id = started.structured().expect("a run id")["run_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Both turns reach their silent model step (three requests each).
    assert!(
        env.model
            .wait_for_requests(6, Duration::from_secs(90))
            .await,
        "the turns never reached their long step"
    );
    let before = tasks(&env).get_task(&task).await;
    let message = before["result"]["statusMessage"].as_str().unwrap_or("");
    assert!(message.contains("compiling"), "{before}");
    let killed_at = t0.elapsed();

    env.gateway = env.gateway.kill_and_restart();

    let poll_task = async {
        tasks(&env)
            .poll_until_done(&task, Duration::from_secs(300))
            .await
    };
    let poll_run = async {
        loop {
            let r = plain(&env)
                .call_tool("get_run", json!({"run_id": run_id, "wait_seconds": 30}))
                .await;
            let got = r.structured().cloned().unwrap_or_else(|| panic!("{r}"));
            if got["status"] != "running" {
                return got;
            }
        }
    };
    let ((task_done, messages), run_done) = tokio::join!(poll_task, poll_run);
    eprintln!("killed after {killed_at:?}; status messages after the restart: {messages:?}");

    assert_both_turns_done(t0.elapsed(), &task_done, &run_done);
    assert!(
        !messages.is_empty(),
        "polling showed no status after the restart"
    );

    // Each turn ran once: three model steps each, one file each.
    for marker in ["tasked-slow", "background-slow"] {
        let steps = env
            .model
            .requests()
            .iter()
            .filter(|r| r.to_string().contains(marker))
            .count();
        assert_eq!(steps, 3, "{marker}: model steps");
    }
    assert_eq!(workspace_files(&env, "tasked"), ["tasked.py"]);
    assert_eq!(workspace_files(&env, "backgrounded"), ["background.py"]);
    let content = std::fs::read_to_string(env.gateway.workspace("tasked").join("tasked.py"));
    assert_eq!(content.unwrap(), "print('slow')\n");

    // The conversation holds the turn once, and goes on.
    let next = tasks(&env)
        .without_tasks()
        .call_tool("chat", json!({"message": "after-the-restart"}))
        .await;
    assert_eq!(
        next["result"]["structuredContent"]["reply"], "next turn",
        "{next}"
    );
    let last = env.model.requests().last().unwrap().to_string();
    assert_eq!(
        last.matches("tasked-slow: write tasked.py").count(),
        1,
        "{last}"
    );
}

// Several threads: starting a gateway blocks its thread for a moment, and
// the fake models stream from this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_minute_turns() {
    tokio::join!(
        a_three_minute_turn_over_streamable_http_keeps_the_client_informed(),
        a_three_minute_turn_over_sse_keeps_the_client_informed(),
        three_minute_runs_survive_a_gateway_killed_mid_turn(),
    );
}
