//! What the coding tools' results say about a run: diffs bounded in size,
//! both turns of a repaired reply counted, what a failed call changed, and
//! no server paths in progress messages.

mod support;

use std::time::Duration;

use serde_json::json;
use support::fake_model::{implement_json, FakeModel, Reply};
use support::gateway::{Gateway, GatewayOptions};
use support::mcp_client::{McpClient, Transport};

fn client(gateway: &Gateway, agent: &str) -> McpClient {
    McpClient::new(gateway.mcp_url(), Transport::Http)
        .header("X-Codex-Agent", agent)
        .request_timeout(Duration::from_secs(300))
}

#[tokio::test]
async fn large_diffs_are_truncated_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeModel::start().await;
    let options = GatewayOptions::new(dir.path(), &model)
        .env("CODEX_MCP_MAX_DIFF_BYTES", "65536")
        .env("CODEX_MCP_MAX_DIFF_TOTAL_BYTES", "200000");
    let gateway = Gateway::start(options);
    // Six files of about 300 KB each.
    model.push(Reply::exec(
        "for i in 1 2 3 4 5 6; do yes 0123456789abcdefghijklmnopqrstuvwxyz | head -n 8000 > big$i.txt; done",
    ));
    model.push(Reply::Json(implement_json(&["big1.txt"])));
    let r = client(&gateway, "bulk")
        .call_tool(
            "implement",
            json!({"task": "generate data files", "target_files": ["big1.txt"]}),
        )
        .await;
    assert!(r.ok() && !r.is_error(), "{r}");
    let s = r.structured().unwrap();
    assert_eq!(s["run"]["turns"], 1, "{}", s["run"]);
    let changes = s["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 6, "every changed file is listed");
    let mut total = 0;
    for c in changes {
        let diff = c["diff"].as_str().unwrap();
        assert!(diff.len() <= 65536 + 200, "{} bytes", diff.len());
        assert_eq!(c["truncated"], true, "{}", c["file"]);
        assert!(
            diff.contains("diff truncated"),
            "{}",
            &diff[diff.len().saturating_sub(200)..]
        );
        total += diff.len();
    }
    assert!(total <= 200_000 + 6 * 200, "{total} bytes of diffs");
    assert!(
        s["warnings"].to_string().contains("truncated"),
        "{}",
        s["warnings"]
    );
    assert!(
        r.to_string().len() < 1_000_000,
        "the result stays small: {} bytes",
        r.to_string().len()
    );
}

#[tokio::test]
async fn repair_turns_are_counted_and_failed_calls_list_their_changes() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeModel::start().await;
    let gateway = Gateway::start(GatewayOptions::new(dir.path(), &model));
    let server_dir = dir.path().display().to_string();

    // A reply that does not match the schema, then one that does.
    model.push(Reply::text("not json"));
    model.push(Reply::Json(implement_json(&[])));
    let r = client(&gateway, "repaired")
        .call_tool(
            "implement",
            json!({"task": "nothing much", "target_files": ["a.txt"]}),
        )
        .await;
    assert!(r.ok() && !r.is_error(), "{r}");
    let run = &r.structured().unwrap()["run"];
    assert_eq!(run["turns"], 2, "{run}");
    assert!(run["notes"].to_string().contains("repair turn"), "{run}");
    assert_eq!(
        run["input_tokens"],
        2 * support::fake_model::INPUT_TOKENS,
        "both turns' tokens: {run}"
    );

    // Files written, then two replies that never match: the error says
    // what changed.
    model.push(Reply::add_file("note.txt", "hello"));
    model.push(Reply::text("still not json"));
    model.push(Reply::text("nor this"));
    let r = client(&gateway, "broken")
        .call_tool(
            "implement",
            json!({"task": "write a note", "target_files": ["note.txt"]}),
        )
        .await;
    let shown = r.to_string();
    assert!(r.ok() && r.is_error(), "{r}");
    assert!(r.text().contains("no result was produced"), "{r}");
    assert!(
        r.text().contains("note.txt (created)") && r.text().contains("+hello"),
        "{r}"
    );
    let progress: Vec<String> = r
        .progress()
        .iter()
        .filter_map(|p| p.message.clone())
        .collect();
    assert!(
        progress
            .iter()
            .any(|m| m.contains("file changed: note.txt")),
        "{progress:?}"
    );
    assert!(
        !shown.contains(&server_dir),
        "server paths reached the caller: {shown}"
    );
}
