//! `codex-mcp serve` end to end: a real MCP client (Python `mcp`) over
//! streamable HTTP and SSE, the real Codex CLI, and a fake model on loopback.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::fake_model::{self, Reply};
use support::gateway::{processes_mentioning, LocalGateway as Env};
use support::mcp_client::{McpClient, Protocol, Step, Transport};

fn http(env: &Env, agent: &str) -> McpClient {
    McpClient::new(env.gateway.mcp_url(), Transport::Http).header("X-Codex-Agent", agent)
}

pub fn plan_reply() -> Value {
    json!({
        "summary": "Add an LRU cache in front of the lookup",
        "steps": [{"order": 1, "title": "Add cache", "description": "Wrap lookup() with an LRU cache",
                   "files": ["src/lookup.py"], "complexity": "low"}],
        "risks": ["stale entries"], "dependencies": [],
        "testing_strategy": "unit tests for hits and misses", "estimated_effort": "1 hour"
    })
}

pub fn implement_reply(claimed: &[&str]) -> Value {
    let changes: Vec<Value> = claimed
        .iter()
        .map(|f| json!({"file": f, "explanation": format!("explains {f}")}))
        .collect();
    json!({
        "summary": "Added hello", "changes": changes, "dependencies_added": [],
        "tests_needed": ["test hello output"], "integration_notes": "none",
        "next_steps": [], "warnings": []
    })
}

pub fn review_reply() -> Value {
    json!({
        "overall_rating": "needs_improvement",
        "comments": [{"file": "calc.py", "line_range": "2", "severity": "major", "category": "correctness",
                      "message": "division by zero", "suggestion": "guard b == 0"}],
        "security_score": 8, "performance_score": 9, "maintainability_score": 6,
        "summary": "One bug", "recommendations": ["add tests"]
    })
}

#[tokio::test]
async fn lists_every_tool_with_schemas_written_for_agents() {
    let env = Env::start().await;
    let tools = http(&env, "default").list_tools().await;
    assert!(tools.ok(), "{tools}");
    for name in [
        "plan",
        "implement",
        "review",
        "fix",
        "chat",
        "list_sessions",
        "get_my_session_info",
        "health_check",
        "cleanup_inactive_agents",
        "sync_files",
        "get_changes",
        "list_checkpoints",
        "rollback",
        "push",
    ] {
        let t = tools
            .tool(name)
            .unwrap_or_else(|| panic!("tool {name} missing: {tools}"));
        assert!(
            t["description"].as_str().unwrap().len() > 40,
            "{name} needs a real description"
        );
    }
    let implement = tools.tool("implement").unwrap();
    let required = implement["inputSchema"]["required"].as_array().unwrap();
    assert!(required.contains(&json!("task")) && required.contains(&json!("target_files")));
    let props = &implement["inputSchema"]["properties"];
    assert!(props["target_files"]["description"]
        .as_str()
        .unwrap()
        .contains("relative"));
    let out = &implement["outputSchema"]["properties"];
    for field in [
        "changes",
        "dependencies_added",
        "tests_needed",
        "integration_notes",
        "next_steps",
        "warnings",
    ] {
        assert!(
            out.get(field).is_some(),
            "implement outputSchema lacks {field}"
        );
    }
    assert_eq!(
        tools.protocol_version(),
        Some("2026-07-28"),
        "stateless by default: {tools}"
    );
    let legacy = http(&env, "default")
        .protocol(Protocol::Legacy)
        .list_tools()
        .await;
    assert_eq!(legacy.protocol_version(), Some("2025-11-25"), "{legacy}");
    assert!(
        legacy.session_id().is_some(),
        "handshake clients get a session: {legacy}"
    );
    assert_eq!(legacy.tools().len(), tools.tools().len());
    let review_out = &tools.tool("review").unwrap()["outputSchema"]["properties"];
    for field in [
        "overall_rating",
        "comments",
        "security_score",
        "performance_score",
        "maintainability_score",
    ] {
        assert!(
            review_out.get(field).is_some(),
            "review outputSchema lacks {field}"
        );
    }
}

#[tokio::test]
async fn plan_is_validated_and_sent_with_an_output_schema() {
    let env = Env::start().await;
    env.model.push(Reply::Json(plan_reply()));
    let r = http(&env, "planner")
        .call_tool(
            "plan",
            json!({"task": "Speed up lookups", "constraints": ["no new services"]}),
        )
        .await;
    assert!(r.ok() && !r.is_error(), "{r}");
    let s = r.structured().expect("structured content");
    assert_eq!(s["steps"][0]["files"][0], "src/lookup.py");
    assert_eq!(s["run"]["agent_id"], "planner");
    assert_eq!(s["run"]["input_tokens"], fake_model::INPUT_TOKENS);
    let req = &env.model.requests()[0];
    let schema = fake_model::output_schema(req).expect("codex sent text.format");
    assert_eq!(schema["additionalProperties"], json!(false));
    assert!(req.to_string().contains("no new services"));
    assert!(std::fs::read_dir(env.gateway.workspace("planner"))
        .unwrap()
        .next()
        .is_none());
}

#[tokio::test]
async fn implement_writes_the_file_and_returns_its_real_diff() {
    let env = Env::start().await;
    env.model
        .push(Reply::add_file("hello.py", "print('hello')"));
    env.model
        .push(Reply::Json(implement_reply(&["hello.py", "ghost.py"])));
    let r = http(&env, "builder")
        .call_tool(
            "implement",
            json!({"task": "Write hello.py", "target_files": ["hello.py"]}),
        )
        .await;
    assert!(r.ok() && !r.is_error(), "{r}");
    let written =
        std::fs::read_to_string(env.gateway.workspace("builder").join("hello.py")).unwrap();
    assert_eq!(written.trim(), "print('hello')");
    let s = r.structured().unwrap();
    let changes = s["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "only the real change: {s}");
    assert_eq!(changes[0]["file"], "hello.py");
    assert_eq!(changes[0]["action"], "create");
    assert!(
        changes[0]["diff"]
            .as_str()
            .unwrap()
            .contains("+print('hello')"),
        "{s}"
    );
    assert_eq!(changes[0]["explanation"], "explains hello.py");
    let warnings = s["warnings"].to_string();
    assert!(
        warnings.contains("ghost.py"),
        "a claimed but absent change is flagged: {warnings}"
    );
    let progress = r.progress();
    assert!(
        progress
            .iter()
            .any(|p| p.message.as_deref().unwrap_or("").contains("file changed")),
        "progress: {progress:?}"
    );
}

#[tokio::test]
async fn review_cannot_modify_the_workspace() {
    let env = Env::start().await;
    env.model.push(Reply::exec("echo owned > pwned.txt"));
    env.model.push(Reply::Json(review_reply()));
    let r = http(&env, "reviewer")
        .call_tool("review", json!({"content": "def div(a, b):\n    return a / b\n", "focus_areas": ["correctness"]}))
        .await;
    assert!(r.ok() && !r.is_error(), "{r}");
    assert_eq!(r.structured().unwrap()["comments"][0]["severity"], "major");
    assert!(
        !env.gateway.workspace("reviewer").join("pwned.txt").exists(),
        "review wrote a file"
    );
    let outputs = fake_model::tool_outputs(&env.model.requests()[1]).join("\n");
    assert!(
        !outputs.is_empty(),
        "codex reported the refused command back to the model"
    );
}

#[tokio::test]
async fn fix_changes_files_and_reports_the_diff() {
    let env = Env::start().await;
    let ws_file = "calc.py";
    env.model.push(Reply::exec(format!(
        "printf 'def div(a, b):\\n    return a / b if b else 0\\n' > {ws_file}"
    )));
    env.model.push(Reply::Json(json!({
        "summary": "Guarded the division",
        "fixes": [{"problem": "ZeroDivisionError", "solution": "return 0 when b is 0",
                   "files_to_change": [ws_file], "root_cause": "no guard", "prevention": "add a test"}],
        "diagnostic_steps": ["run div(1, 0)"], "quick_fix_available": true,
        "tests_to_run": ["test_div"], "warnings": []
    })));
    let r = http(&env, "fixer")
        .call_tool("fix", json!({"error_output": "ZeroDivisionError: division by zero", "failing_tests": ["test_div"]}))
        .await;
    assert!(r.ok() && !r.is_error(), "{r}");
    let s = r.structured().unwrap();
    assert_eq!(s["fixes"][0]["root_cause"], "no guard");
    assert_eq!(s["changes"][0]["file"], ws_file);
    assert!(
        s["changes"][0]["diff"]
            .as_str()
            .unwrap()
            .contains("+    return a / b if b else 0"),
        "{s}"
    );
    let empty = http(&env, "fixer").call_tool("fix", json!({})).await;
    assert!(
        empty.is_error(),
        "fix with nothing to go on is refused: {empty}"
    );
    assert!(empty.text().contains("at least one"), "{empty}");
}

#[tokio::test]
async fn conversation_continues_across_calls_reconnects_and_restarts() {
    let mut env = Env::start().await;
    env.model.push(Reply::text("Noted: PINEAPPLE"));
    env.model.push(Reply::text("You said PINEAPPLE"));
    env.model.push(Reply::text("Still PINEAPPLE"));
    let first = http(&env, "memo")
        .call_tool("chat", json!({"message": "Remember the word PINEAPPLE"}))
        .await;
    assert_eq!(
        first.structured().unwrap()["reply"],
        "Noted: PINEAPPLE",
        "{first}"
    );
    let thread = first.structured().unwrap()["run"]["thread_id"].clone();
    assert!(thread.is_string());

    // A reconnect (new MCP session) over SSE, addressing the agent by path.
    let sse = McpClient::new(env.gateway.agent_url("memo", "sse"), Transport::Sse);
    let second = sse
        .call_tool("chat", json!({"message": "Which word?"}))
        .await;
    assert!(second.ok() && !second.is_error(), "{second}");
    assert_eq!(second.structured().unwrap()["run"]["thread_id"], thread);
    let convo = fake_model::conversation(&env.model.requests()[1]);
    assert!(
        convo
            .iter()
            .any(|m| m.text.contains("Remember the word PINEAPPLE")),
        "{convo:?}"
    );
    assert!(convo
        .iter()
        .any(|m| m.role == "assistant" && m.text.contains("Noted: PINEAPPLE")));

    env.gateway = env.gateway.restart();
    let third = http(&env, "memo")
        .call_tool("chat", json!({"message": "And now?"}))
        .await;
    assert!(third.ok() && !third.is_error(), "{third}");
    assert_eq!(third.structured().unwrap()["run"]["thread_id"], thread);
    let convo = fake_model::conversation(&env.model.requests()[2]);
    assert!(
        convo.iter().any(|m| m.text.contains("Which word?")),
        "after restart: {convo:?}"
    );

    env.model.push(Reply::text("fresh"));
    let fresh = http(&env, "memo")
        .call_tool(
            "chat",
            json!({"message": "Start over", "new_conversation": true}),
        )
        .await;
    assert_ne!(fresh.structured().unwrap()["run"]["thread_id"], thread);
    let convo = fake_model::conversation(&env.model.requests()[3]);
    assert!(
        !convo.iter().any(|m| m.text.contains("PINEAPPLE")),
        "{convo:?}"
    );
}

#[tokio::test]
async fn agents_cannot_reach_each_others_files() {
    let env = Env::start().await;
    env.model
        .push(Reply::add_file("secret.txt", "alice's secret"));
    env.model
        .push(Reply::Json(implement_reply(&["secret.txt"])));
    let r = http(&env, "alice")
        .call_tool(
            "implement",
            json!({"task": "store a secret", "target_files": ["secret.txt"]}),
        )
        .await;
    assert!(r.ok() && !r.is_error(), "{r}");
    assert!(env.gateway.workspace("alice").join("secret.txt").exists());
    assert!(!env.gateway.workspace("bob").join("secret.txt").exists());

    let bob = http(&env, "bob");
    for path in [
        "../../alice/workspace/secret.txt",
        "/etc/passwd",
        "~/x",
        "a/../../x",
    ] {
        let r = bob
            .call_tool("implement", json!({"task": "read", "target_files": [path]}))
            .await;
        assert!(r.is_error(), "{path} must be refused: {r}");
        assert!(
            r.text().contains("workspace") || r.text().contains("absolute"),
            "{r}"
        );
    }
    // The gateway judges paths by their text: checking them created
    // nothing on its own disk (on Kubernetes it has no agent files at all).
    // Symlinks inside a workspace are resolved where the workspace is.
    assert!(
        !env.gateway.workspace("bob").exists(),
        "checking bob's paths created his workspace on the gateway's disk"
    );
    assert_eq!(
        env.model.requests().len(),
        2,
        "refused calls never reach the model"
    );
}

#[tokio::test]
async fn session_tools_report_agents_and_health() {
    let env = Env::start().await;
    env.model.push(Reply::text("hi"));
    let client = http(&env, "lister");
    let results = client
        .run(vec![
            Step::call_tool("chat", json!({"message": "hello"})),
            Step::call_tool("get_my_session_info", json!({})),
            Step::call_tool("list_sessions", json!({})),
            Step::call_tool("health_check", json!({})),
            Step::call_tool("cleanup_inactive_agents", json!({})),
        ])
        .await;
    let info = results[1].structured().unwrap();
    assert_eq!(info["agent_id"], "lister");
    assert_eq!(info["transport"], "streamable-http");
    assert_eq!(info["agent"]["runs"], 1);
    assert_eq!(info["agent"]["input_tokens"], fake_model::INPUT_TOKENS);
    let list = results[2].structured().unwrap();
    assert_eq!(list["total"], 1);
    assert_eq!(list["sessions"][0]["status"], "idle");
    let health = results[3].structured().unwrap();
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["backend"], "local");
    assert!(!health.to_string().contains(support::gateway::TEST_API_KEY));
    assert_eq!(results[4].structured().unwrap()["released"], json!([]));

    let body = reqwest::get(format!("{}/metrics", env.gateway.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.contains(r#"codex_mcp_runs_total{outcome="ok",tool="chat"} 1"#),
        "{body}"
    );
    assert!(body.contains(&format!(
        r#"codex_mcp_tokens_total{{direction="input"}} {}"#,
        fake_model::INPUT_TOKENS
    )));
    assert!(
        body.contains(r#"codex_mcp_http_requests_total{route="/mcp",status="200"}"#),
        "{body}"
    );
    let health: Value = reqwest::get(format!("{}/health", env.gateway.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "healthy");
    assert!(health["uptime_seconds"].is_u64() && health["version"].is_string());
}

#[tokio::test]
async fn cancellation_kills_the_codex_process() {
    let env = Env::start().await;
    env.model.push(Reply::Stall(Duration::from_secs(60)));
    let ws = env.gateway.workspace("canceller").display().to_string();
    let client = http(&env, "canceller");
    let call = tokio::spawn(async move {
        client
            .run(vec![Step::call_tool(
                "chat",
                json!({"message": "take forever"}),
            )
            // Long enough for Codex to start and reach the model on a
            // loaded machine: the cancel must find the run in flight.
            .cancel_after(Duration::from_secs(10))])
            .await
    });
    assert!(
        env.model
            .wait_for_requests(1, Duration::from_secs(30))
            .await,
        "codex never called the model"
    );
    assert!(
        !processes_mentioning(&ws).is_empty(),
        "codex should be running in {ws}"
    );
    let r = call.await.unwrap().remove(0);
    assert!(r.cancelled(), "{r}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_mentioning(&ws).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        processes_mentioning(&ws).is_empty(),
        "codex survived cancellation"
    );
    // The run is recorded just after its processes are gone.
    let want = r#"codex_mcp_runs_total{outcome="cancelled",tool="chat"} 1"#;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut m = String::new();
    while Instant::now() < deadline {
        m = reqwest::get(format!("{}/metrics", env.gateway.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if m.contains(want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(m.contains(want), "{m}");
    assert!(m.contains("codex_mcp_runs_in_progress 0"), "{m}");
}
