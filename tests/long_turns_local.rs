//! Codex turns at real timing through `codex-mcp serve`: a turn of more than
//! three minutes, most of it with Codex silent (a long model step, then a
//! slowly streamed answer), over streamable HTTP and over SSE. The client
//! must get the result and hear progress at least every 15 s all along, from
//! the gateway's default heartbeat: clients abort calls that report no
//! progress for a while (Claude Code after 300 s), and a transport's
//! keep-alives do not count.
//!
//! The two transports run as separate tests, which cargo runs in parallel.

mod support;

use std::time::Duration;

use serde_json::json;
use support::fake_model::Reply;
use support::gateway::LocalGateway;
use support::mcp_client::{McpClient, Step, StepResult, Transport};

/// The longest a client may hear nothing: well under every client's limit.
const MAX_SILENCE: Duration = Duration::from_secs(15);
/// The model thinks silently this long...
const SILENT_STEP: Duration = Duration::from_secs(100);
/// ...then writes its answer over this long.
const STREAMING: Duration = Duration::from_secs(85);
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

#[tokio::test]
async fn a_three_minute_turn_over_streamable_http_keeps_the_client_informed() {
    let r = long_turn(Transport::Http).await;
    eprintln!(
        "http: {:?}, longest silence {:?}",
        r.elapsed(),
        r.longest_silence()
    );
    assert_kept_informed(&r);
}

#[tokio::test]
async fn a_three_minute_turn_over_sse_keeps_the_client_informed() {
    let r = long_turn(Transport::Sse).await;
    eprintln!(
        "sse: {:?}, longest silence {:?}",
        r.elapsed(),
        r.longest_silence()
    );
    assert_kept_informed(&r);
}
