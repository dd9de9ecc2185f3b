//! Runs on the local backend are isolated: a command one tenant's agent runs
//! (Codex really runs it, on the fake model's tool call) cannot read the
//! client tokens, the gateway's data directory or another tenant's agent,
//! and nothing of a run outlives it, even when agent-run is killed outright.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use support::fake_model::{tool_outputs, FakeModel, Reply};
use support::gateway::{processes_mentioning, Gateway, GatewayOptions};
use support::mcp_client::{McpClient, Transport};
use support::tenants::{token_file, ALPHA, BETA};

const CALL_TIMEOUT: Duration = Duration::from_secs(300);

fn client(gateway: &Gateway, token: &str, agent: &str) -> McpClient {
    McpClient::new(gateway.mcp_url(), Transport::Http)
        .bearer(token)
        .header("X-Codex-Agent", agent)
        .request_timeout(CALL_TIMEOUT)
}

fn tenant_gateway(dir: &Path, model: &FakeModel) -> (Gateway, PathBuf) {
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, token_file()).unwrap();
    let mut options = GatewayOptions::new(&dir.join("data"), model);
    options.auth_tokens = Some(tokens.clone());
    (Gateway::start(options), tokens)
}

/// The output of the command the model asked Codex to run in the request
/// after the one that mentioned `needle`.
fn output_after(model: &FakeModel, needle: &str) -> String {
    model
        .requests()
        .iter()
        .filter(|r| r.to_string().contains(needle))
        .flat_map(tool_outputs)
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn an_agent_reads_only_its_own_directories() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeModel::start().await;
    let (gateway, tokens) = tenant_gateway(dir.path(), &model);
    let data = dir.path().join("data");

    // Tenant alpha's agent exists and has a file.
    model.when_contains("alpha says hi", Reply::text("hello alpha"));
    let r = client(&gateway, ALPHA, "work")
        .call_tool("chat", json!({"message": "alpha says hi"}))
        .await;
    assert!(r.ok() && !r.is_error(), "{r}");
    let alpha_agent = data.join("tenants/alpha/agents/work");
    std::fs::write(alpha_agent.join("workspace/plan.txt"), "alpha-private").unwrap();
    // Gateway files a run must never see. (The login for runs, under
    // run-login/, is bound read-only on purpose: runs follow it.)
    std::fs::write(data.join("client-token"), "gateway-private").unwrap();

    let targets = [
        tokens.clone(),
        data.join("client-token"),
        alpha_agent.join("agent.json"),
        alpha_agent.join("workspace/plan.txt"),
        data.join("tenants/beta/agents/work/agent.json"),
    ];
    for t in &targets[..4] {
        assert!(
            t.is_file(),
            "{} should exist outside the sandbox",
            t.display()
        );
    }
    let mut script = String::new();
    for t in &targets {
        let t = t.display();
        script.push_str(&format!(
            "if cat {t} >/dev/null 2>&1; then echo READ {t}; else echo DENIED {t}; fi; "
        ));
    }
    script.push_str("ls -a / > /dev/null; echo own > mine.txt && echo OWN $(cat mine.txt)");
    model.when_contains("beta probes", Reply::exec_then(script, "probed"));
    let r = client(&gateway, BETA, "work")
        .call_tool("chat", json!({"message": "beta probes"}))
        .await;
    assert!(r.ok() && !r.is_error(), "{r}");
    let out = output_after(&model, "beta probes");
    for t in &targets {
        let t = t.display();
        assert!(
            out.contains(&format!("DENIED {t}")),
            "{t} was readable: {out}"
        );
    }
    assert!(
        out.contains("OWN own"),
        "its own workspace must work: {out}"
    );
    assert!(
        !out.contains("alpha-private") && !out.contains("gateway-private") && !out.contains(ALPHA)
    );
    assert_eq!(
        std::fs::read_to_string(data.join("tenants/beta/agents/work/workspace/mine.txt")).unwrap(),
        "own\n"
    );
}

/// Processes whose environment names `needle` (agent-run has the agent's
/// directory as HOME; its command line does not name it).
fn processes_with_env(needle: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if String::from_utf8_lossy(&environ).contains(needle) {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            out.push((pid, String::from_utf8_lossy(&cmdline).replace('\0', " ")));
        }
    }
    out
}

#[tokio::test]
async fn nothing_of_a_run_outlives_a_killed_agent_run() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeModel::start().await;
    let (gateway, _) = tenant_gateway(dir.path(), &model);
    let agent_dir = dir.path().join("data/tenants/beta/agents/sleeper");
    let marker = "sleep 31.7";
    model.when_contains("sleep a while", Reply::exec_then(marker, "slept"));
    let c = client(&gateway, BETA, "sleeper");
    let call = tokio::spawn(async move {
        c.call_tool("chat", json!({"message": "sleep a while"}))
            .await
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while processes_mentioning(marker).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !processes_mentioning(marker).is_empty(),
        "the command never started"
    );
    let ws = agent_dir.join("workspace").display().to_string();
    assert!(
        !processes_mentioning(&ws).is_empty(),
        "codex should be running"
    );
    let agent_runs: Vec<u32> = processes_with_env(&agent_dir.display().to_string())
        .into_iter()
        .filter(|(_, cmd)| {
            cmd.contains(" agent-run ") && !cmd.starts_with("bwrap") && !cmd.contains("/bwrap ")
        })
        .map(|(pid, _)| pid)
        .collect();
    assert_eq!(agent_runs.len(), 1, "one agent-run: {agent_runs:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent_runs[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        processes_mentioning(&ws).is_empty() && processes_mentioning(marker).is_empty(),
        "codex or its command outlived agent-run: {:?} {:?}",
        processes_mentioning(&ws),
        processes_mentioning(marker)
    );
    let r = call.await.unwrap();
    assert!(r.is_error(), "a killed run is an error: {r}");
}

/// `agent-run workspace` runs git outside the run's sandbox, on files a run
/// wrote. A run on a project tries to make that git run a program of its
/// choosing: by repointing the worktree's `.git` file, by config and
/// `commondir` in the worktree's own git directory, and by a nested
/// repository whose fsmonitor is a command. None may reach it.
#[tokio::test]
async fn a_run_on_a_project_cannot_make_the_gateways_git_run_its_program() {
    use support::projects::{all_changes, client, implement, implement_reply, user_repo};

    let root = tempfile::tempdir().unwrap();
    let repo = user_repo(root.path());
    let marker = root.path().join("PWNED");
    let binding = format!("web={}", repo.display());
    let env = support::gateway::LocalGateway::start_with(|o| {
        o.env("CODEX_MCP_PROJECTS", &binding)
            // Without Codex's own sandbox: only the run's binds protect.
            .env("CODEX_APPROVAL_MODE", "danger-full-access")
    })
    .await;
    let evil = format!("touch {}", marker.display());
    env.model.push(Reply::exec(format!(
        "d=$(sed 's/^gitdir: //' .git); \
         printf 'gitdir: %s\\n' \"$PWD/fake\" > .git 2>/dev/null || echo POINTER-DENIED; \
         printf '[core]\\n\\tfsmonitor = {evil}\\n' >> \"$d/config.worktree\" 2>/dev/null \
           || echo CONFIG-DENIED; \
         echo \"$PWD/fake\" > \"$d/commondir\" 2>/dev/null || echo COMMONDIR-DENIED; \
         mkdir -p fake nested && git -C nested init -q \
           && git -C nested -c user.name=c -c user.email=c@c commit -q --allow-empty -m x \
           && git -C nested config core.fsmonitor '{evil}' \
           && echo x > nested/file && echo NESTED-MADE"
    )));
    env.model.push(Reply::Json(implement_reply()));
    let c = client(&env, "web");
    implement(&c, "try to escape").await;
    let said = tool_outputs(&env.model.requests()[1]).join("\n");
    for denied in [
        "POINTER-DENIED",
        "CONFIG-DENIED",
        "COMMONDIR-DENIED",
        "NESTED-MADE",
    ] {
        assert!(said.contains(denied), "{denied} missing: {said}");
    }
    // The gateway's git works on the real repository and runs nothing.
    let (diff, _) = all_changes(&c, serde_json::json!({})).await;
    assert!(diff.contains("nested"), "{diff}");
    let listed = c.call_tool("list_checkpoints", serde_json::json!({})).await;
    assert!(listed.ok() && !listed.is_error(), "{listed}");
    assert!(
        !marker.exists(),
        "a program of the run ran outside its sandbox"
    );
}
