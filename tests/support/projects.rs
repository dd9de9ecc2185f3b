//! A user's repository and workspace helpers for the project tests: real
//! git, files compared byte for byte, and the workspace tools' calls.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use super::gateway::LocalGateway;
use super::mcp_client::{McpClient, StepResult, Transport};

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "User")
        .env("GIT_AUTHOR_EMAIL", "user@example.com")
        .env("GIT_COMMITTER_NAME", "User")
        .env("GIT_COMMITTER_EMAIL", "user@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn write(dir: &Path, rel: &str, bytes: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// A repository with two commits, then a modified file, an untracked one
/// and an ignored one, as a user's checkout mid-work looks.
pub fn user_repo(root: &Path) -> PathBuf {
    let repo = root.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    write(&repo, "a.txt", b"one\n");
    write(&repo, ".gitignore", b"*.log\n");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "first"]);
    write(&repo, "src/lib.txt", b"fn lib() {}\n");
    write(&repo, "old.txt", b"to be renamed\nline two\nline three\n");
    write(&repo, "gone.txt", b"to be deleted\n");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "second"]);
    write(&repo, "a.txt", b"one\ntwo (uncommitted)\n");
    write(&repo, "new.txt", b"untracked work\n");
    write(&repo, "debug.log", b"ignored\n");
    repo
}

/// Every file under `dir` (`.git` left out) with its bytes.
pub fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_name() == ".git" {
                continue;
            }
            let ty = e.file_type().unwrap();
            if ty.is_symlink() {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                let target = std::fs::read_link(&p).unwrap();
                out.insert(rel, format!("-> {}", target.display()).into_bytes());
            } else if ty.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

pub fn implement_reply() -> Value {
    json!({
        "summary": "done", "changes": [], "dependencies_added": [],
        "tests_needed": [], "integration_notes": "none", "next_steps": [], "warnings": []
    })
}

pub fn client(env: &LocalGateway, agent: &str) -> McpClient {
    McpClient::new(env.gateway.mcp_url(), Transport::Http)
        .header("X-Codex-Agent", agent)
        .request_timeout(Duration::from_secs(300))
}

pub fn ok(r: &StepResult) -> &Value {
    assert!(r.ok() && !r.is_error(), "{r}");
    r.structured().unwrap()
}

pub fn failed(r: &StepResult) -> String {
    assert!(r.ok() && r.is_error(), "expected a failed tool result: {r}");
    r.text().to_owned()
}

pub async fn implement(c: &McpClient, task: &str) -> Value {
    let r = c
        .call_tool("implement", json!({"task": task, "target_files": []}))
        .await;
    ok(&r).clone()
}

/// The whole diff, all pages fetched.
pub async fn all_changes(c: &McpClient, args: Value) -> (String, Vec<Value>) {
    let mut diff = String::new();
    let mut pages = Vec::new();
    let mut args = args;
    loop {
        let r = c.call_tool("get_changes", args.clone()).await;
        let page = ok(&r).clone();
        diff.push_str(page["diff"].as_str().unwrap());
        pages.push(page.clone());
        match page["next_cursor"].as_str() {
            Some(cursor) => args["cursor"] = json!(cursor),
            None => return (diff, pages),
        }
    }
}
