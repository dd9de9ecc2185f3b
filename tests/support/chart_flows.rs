//! What a client does with an installed chart, whatever is in front of the
//! gateway (a port on the host, a real edge): the tools that change and
//! read the workspace, and the paths they refuse.

use serde_json::json;

use super::fake_model::{FakeModel, Reply};
use super::mcp_client::McpClient;

/// `implement`, `fix` and `review` name files in the agent's workspace: the
/// installed gateway (read-only root, non-root, no /agent of its own) must
/// check those paths without touching its own filesystem, and the agent's
/// pod must resolve them in the workspace.
pub async fn workspace_tools(model: &FakeModel, client: &dyn Fn() -> McpClient) {
    model.push(Reply::add_file("hello.py", "print('helo')"));
    model.push(Reply::Json(json!({
        "summary": "Added hello", "changes": [{"file": "hello.py", "explanation": "prints hello"}],
        "dependencies_added": [], "tests_needed": [], "integration_notes": "none",
        "next_steps": [], "warnings": []
    })));
    let implement = client()
        .call_tool(
            "implement",
            json!({"task": "add hello.py printing hello", "target_files": ["hello.py"]}),
        )
        .await;
    assert!(implement.ok() && !implement.is_error(), "{implement}");
    let s = implement.structured().unwrap();
    assert_eq!(s["changes"][0]["file"], "hello.py", "{implement}");
    assert!(
        s["changes"][0]["diff"]
            .as_str()
            .unwrap_or("")
            .contains("+print('helo')"),
        "{implement}"
    );

    model.push(Reply::exec("printf \"print('hello')\\n\" > hello.py"));
    model.push(Reply::Json(json!({
        "summary": "Fixed the typo",
        "fixes": [{"problem": "typo", "solution": "spell hello", "files_to_change": ["hello.py"],
                   "root_cause": "typo", "prevention": "a test"}],
        "diagnostic_steps": ["run it"], "quick_fix_available": true,
        "tests_to_run": [], "warnings": []
    })));
    let fix = client()
        .call_tool(
            "fix",
            json!({"symptoms": "prints helo", "context_files": ["hello.py"]}),
        )
        .await;
    assert!(fix.ok() && !fix.is_error(), "{fix}");
    let s = fix.structured().unwrap();
    assert!(
        s["changes"][0]["diff"]
            .as_str()
            .unwrap_or("")
            .contains("+print('hello')"),
        "{fix}"
    );

    model.push(Reply::Json(json!({
        "overall_rating": "good", "comments": [], "security_score": 9, "performance_score": 9,
        "maintainability_score": 9, "summary": "Fine", "recommendations": []
    })));
    let review = client()
        .call_tool("review", json!({"content": "hello.py"}))
        .await;
    assert!(review.ok() && !review.is_error(), "{review}");
    assert_eq!(review.structured().unwrap()["summary"], "Fine", "{review}");

    // Paths that leave the workspace are refused, lexically by the gateway...
    let out = client()
        .call_tool(
            "implement",
            json!({"task": "t", "target_files": ["../../etc/passwd"]}),
        )
        .await;
    assert!(
        out.is_error() || out.error().is_some(),
        "a path out of the workspace is refused: {out}"
    );
    assert!(format!("{out}").contains("../../etc/passwd"), "{out}");

    // ...and through symlinks by the agent's pod, where the workspace is.
    model.push(Reply::exec("ln -s /etc out"));
    model.push(Reply::text("linked"));
    let link = client()
        .call_tool("chat", json!({"message": "link /etc as out"}))
        .await;
    assert!(link.ok() && !link.is_error(), "{link}");
    let requests = model.requests().len();
    let out = client()
        .call_tool(
            "implement",
            json!({"task": "t", "target_files": ["out/passwd"]}),
        )
        .await;
    assert!(
        out.is_error(),
        "a path through a symlink out is refused: {out}"
    );
    assert!(
        format!("{out}").contains("leaves the agent's workspace"),
        "{out}"
    );
    assert_eq!(model.requests().len(), requests, "Codex never ran");
}
