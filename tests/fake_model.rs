//! Checks the fake model server against the real Codex CLI: every reply kind
//! is run through `codex exec --json` and the resulting events, exit codes,
//! workspace effects and follow-up requests are asserted. These facts are
//! what the gateway's integration tests rely on.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::fake_model::{self, FakeModel, Message, Reply};

/// One `codex exec` invocation's observable outcome.
struct Run {
    code: Option<i32>,
    events: Vec<Value>,
    stderr: String,
    elapsed: Duration,
}

impl Run {
    fn of_type(&self, kind: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["type"] == kind).collect()
    }

    /// Completed items of one item type (agent_message, command_execution, ...).
    fn completed(&self, item_type: &str) -> Vec<&Value> {
        self.of_type("item.completed")
            .into_iter()
            .map(|e| &e["item"])
            .filter(|i| i["type"] == item_type)
            .collect()
    }

    fn thread_id(&self) -> String {
        self.of_type("thread.started")[0]["thread_id"]
            .as_str()
            .expect("thread.started carries thread_id")
            .to_string()
    }

    fn last_message(&self) -> String {
        let messages = self.completed("agent_message");
        let last = messages
            .last()
            .unwrap_or_else(|| panic!("no agent_message in {self}"));
        last["text"].as_str().unwrap().to_string()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "exit {:?} after {:?}", self.code, self.elapsed)?;
        for e in &self.events {
            writeln!(f, "  {e}")?;
        }
        write!(f, "stderr: {}", self.stderr.trim())
    }
}

/// A Codex home and a workspace, both fresh, talking to one fake model.
struct Agent {
    home: tempfile::TempDir,
    workspace: tempfile::TempDir,
}

impl Agent {
    fn new() -> Self {
        // Not under /tmp: with a system bubblewrap, Codex's sandbox refuses
        // to put its helper binaries in a temporary directory.
        let base = support::cache_dir().join("test-agents");
        std::fs::create_dir_all(&base).unwrap();
        Agent {
            home: tempfile::tempdir_in(&base).unwrap(),
            workspace: tempfile::tempdir_in(&base).unwrap(),
        }
    }

    fn ws(&self) -> &Path {
        self.workspace.path()
    }

    /// Runs `codex exec --json` with the fake provider; `args` follow the global flags.
    async fn exec(&self, model: &FakeModel, extra_config: &[&str], args: &[&str]) -> Run {
        let mut cmd = tokio::process::Command::new(support::codex_bin());
        cmd.arg("exec")
            .args(["--json", "--skip-git-repo-check", "-s", "workspace-write"])
            .args(["-m", fake_model::MODEL])
            .arg("-C")
            .arg(self.ws())
            .args(model.codex_config_args());
        for kv in extra_config {
            cmd.args(["-c", kv]);
        }
        cmd.args(args)
            .env("CODEX_HOME", self.home.path())
            .env(fake_model::API_KEY_ENV, "sk-fake")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let started = Instant::now();
        let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .expect("codex finished within 60 s")
            .expect("codex binary runs (scripts/install-test-deps.sh installs it)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let run = Run {
            code: out.status.code(),
            events: stdout
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: started.elapsed(),
        };
        eprintln!("{run}");
        run
    }
}

fn types(run: &Run) -> Vec<&str> {
    run.events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("?"))
        .collect()
}

#[tokio::test]
async fn text_reply_completes_a_turn_with_fixed_usage() {
    let model = FakeModel::start().await;
    model.push(Reply::text("Hello from the fake model"));
    let agent = Agent::new();
    let run = agent.exec(&model, &[], &["say hello"]).await;

    assert_eq!(run.code, Some(0), "{run}");
    assert_eq!(
        types(&run),
        [
            "thread.started",
            "turn.started",
            "item.completed",
            "turn.completed"
        ]
    );
    assert_eq!(run.last_message(), "Hello from the fake model");
    let usage = &run.of_type("turn.completed")[0]["usage"];
    assert_eq!(usage["input_tokens"], fake_model::INPUT_TOKENS);
    assert_eq!(
        usage["cached_input_tokens"],
        fake_model::CACHED_INPUT_TOKENS
    );
    assert_eq!(usage["output_tokens"], fake_model::OUTPUT_TOKENS);
    assert_eq!(
        usage["reasoning_output_tokens"],
        fake_model::REASONING_OUTPUT_TOKENS
    );

    let requests = model.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["stream"], true);
    assert_eq!(requests[0]["model"], fake_model::MODEL);
    assert!(fake_model::output_schema(&requests[0]).is_none());
    assert_eq!(
        fake_model::conversation(&requests[0]),
        [Message {
            role: "user".into(),
            text: "say hello".into()
        }]
    );
    let log = model.request_log();
    assert_eq!(log[0].headers["authorization"], "Bearer sk-fake");
    assert_eq!(log[0].headers["thread-id"], run.thread_id());
}

#[tokio::test]
async fn output_schema_is_sent_as_text_format_and_json_reply_is_the_message() {
    let model = FakeModel::start().await;
    let answer = json!({"summary": "all good", "files": ["a.rs"]});
    model.push(Reply::Json(answer.clone()));
    let agent = Agent::new();
    let schema = json!({
        "type": "object",
        "properties": {
            "summary": {"type": "string"},
            "files": {"type": "array", "items": {"type": "string"}}
        },
        "required": ["summary", "files"],
        "additionalProperties": false
    });
    let schema_file = agent.home.path().join("schema.json");
    std::fs::write(&schema_file, schema.to_string()).unwrap();
    let schema_arg = schema_file.to_str().unwrap();
    let run = agent
        .exec(&model, &[], &["--output-schema", schema_arg, "plan it"])
        .await;

    assert_eq!(run.code, Some(0), "{run}");
    let message: Value = serde_json::from_str(&run.last_message()).unwrap();
    assert_eq!(message, answer);
    let request = &model.requests()[0];
    assert_eq!(fake_model::output_schema(request), Some(schema));
    let format = &request["text"]["format"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["strict"], true);
    assert!(format["name"].as_str().is_some_and(|n| !n.is_empty()));
}

#[tokio::test]
async fn exec_runs_the_command_and_the_follow_up_gets_the_next_reply() {
    let model = FakeModel::start().await;
    model.push(Reply::exec_then("echo hi > f.txt && echo wrote", "done"));
    let agent = Agent::new();
    let run = agent.exec(&model, &[], &["write f.txt"]).await;

    assert_eq!(run.code, Some(0), "{run}");
    assert_eq!(
        std::fs::read_to_string(agent.ws().join("f.txt")).unwrap(),
        "hi\n"
    );
    let commands = run.completed("command_execution");
    assert_eq!(commands.len(), 1, "{run}");
    assert!(commands[0]["command"]
        .as_str()
        .unwrap()
        .contains("echo hi > f.txt"));
    assert_eq!(commands[0]["exit_code"], 0);
    assert!(commands[0]["aggregated_output"]
        .as_str()
        .unwrap()
        .contains("wrote"));
    assert_eq!(run.of_type("item.started").len(), 1, "{run}");
    assert_eq!(run.last_message(), "done");

    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    let outputs = fake_model::tool_outputs(&requests[1]);
    assert_eq!(outputs.len(), 1);
    assert!(outputs[0].contains("wrote"), "{outputs:?}");
    // Usage is summed over the turn's model requests.
    let usage = &run.of_type("turn.completed")[0]["usage"];
    assert_eq!(usage["input_tokens"], 2 * fake_model::INPUT_TOKENS);
    assert_eq!(usage["output_tokens"], 2 * fake_model::OUTPUT_TOKENS);
}

#[tokio::test]
async fn apply_patch_writes_the_file() {
    let model = FakeModel::start().await;
    model.push(Reply::Sequence(vec![
        Reply::add_file("src/hello.txt", "line one\nline two"),
        Reply::text("patched"),
    ]));
    let agent = Agent::new();
    let run = agent.exec(&model, &[], &["add a file"]).await;

    assert_eq!(run.code, Some(0), "{run}");
    assert_eq!(
        std::fs::read_to_string(agent.ws().join("src/hello.txt")).unwrap(),
        "line one\nline two\n"
    );
    let changes = run.completed("file_change");
    assert_eq!(changes.len(), 1, "{run}");
    assert_eq!(changes[0]["changes"][0]["kind"], "add");
    assert!(changes[0]["changes"][0]["path"]
        .as_str()
        .unwrap()
        .ends_with("src/hello.txt"));
    assert_eq!(run.last_message(), "patched");
    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(fake_model::tool_outputs(&requests[1]).len(), 1);
}

#[tokio::test]
async fn resume_sends_the_earlier_turns_again() {
    let model = FakeModel::start().await;
    model.push(Reply::text("first answer"));
    model.push(Reply::text("second answer"));
    let agent = Agent::new();
    let first = agent.exec(&model, &[], &["first question"]).await;
    assert_eq!(first.code, Some(0), "{first}");
    let thread = first.thread_id();
    let second = agent
        .exec(&model, &[], &["resume", &thread, "second question"])
        .await;

    assert_eq!(second.code, Some(0), "{second}");
    assert_eq!(second.thread_id(), thread);
    assert_eq!(second.last_message(), "second answer");
    // A resumed exec reports the thread's cumulative usage, not the turn's.
    let usage = &second.of_type("turn.completed")[0]["usage"];
    assert_eq!(usage["input_tokens"], 2 * fake_model::INPUT_TOKENS);
    let texts: Vec<(String, String)> = fake_model::conversation(&model.requests()[1])
        .into_iter()
        .map(|m| (m.role, m.text))
        .collect();
    let expected = [
        ("user", "first question"),
        ("assistant", "first answer"),
        ("user", "second question"),
    ]
    .map(|(r, t)| (r.to_string(), t.to_string()));
    assert_eq!(texts, expected);
}

#[tokio::test]
async fn rules_answer_by_content_before_the_queue() {
    let model = FakeModel::start().await;
    model.push(Reply::text("from the queue"));
    model.when_contains(
        "alpha",
        Reply::exec_then("echo alpha > a.txt", "alpha done"),
    );
    let agent = Agent::new();
    let alpha = agent.exec(&model, &[], &["task alpha"]).await;
    let beta = agent.exec(&model, &[], &["task beta"]).await;
    let gamma = agent.exec(&model, &[], &["task gamma"]).await;

    assert_eq!(alpha.last_message(), "alpha done");
    assert!(agent.ws().join("a.txt").exists());
    assert_eq!(beta.last_message(), "from the queue");
    assert_eq!(gamma.last_message(), "ok", "the default reply");
    assert_eq!(model.pending(), 0);
}

#[tokio::test]
async fn http_error_fails_the_turn_without_retrying() {
    let model = FakeModel::start().await;
    model.push(Reply::HttpError(
        500,
        r#"{"error":{"message":"boom"}}"#.into(),
    ));
    model.push(Reply::HttpError(
        400,
        r#"{"error":{"message":"bad request detail"}}"#.into(),
    ));
    let agent = Agent::new();
    let server_error = agent.exec(&model, &[], &["fail please"]).await;
    let client_error = agent.exec(&model, &[], &["fail again"]).await;

    for run in [&server_error, &client_error] {
        assert_eq!(run.code, Some(1), "{run}");
        assert_eq!(run.of_type("turn.failed").len(), 1, "{run}");
        assert!(run.of_type("turn.completed").is_empty());
        assert!(run.elapsed < Duration::from_secs(10), "{run}");
    }
    assert_eq!(
        model.requests().len(),
        2,
        "request_max_retries=0 is honoured"
    );
    // Codex words a 5xx in its own terms but passes a 4xx body through.
    let failed = |run: &Run| run.of_type("turn.failed")[0]["error"]["message"].to_string();
    assert!(!failed(&server_error).contains("boom"));
    assert!(failed(&client_error).contains("bad request detail"));
}

#[tokio::test]
async fn stall_fails_after_the_stream_idle_timeout() {
    let model = FakeModel::start().await;
    model.push(Reply::Stall(Duration::from_secs(30)));
    let agent = Agent::new();
    let idle = "model_providers.fake.stream_idle_timeout_ms=1500";
    let run = agent.exec(&model, &[idle], &["hang"]).await;

    assert_eq!(run.code, Some(1), "{run}");
    assert_eq!(run.of_type("turn.failed").len(), 1, "{run}");
    assert!(run.elapsed >= Duration::from_millis(1500), "{run}");
    assert!(run.elapsed < Duration::from_secs(15), "{run}");
    assert_eq!(model.requests().len(), 1);
}

#[tokio::test]
async fn disconnect_mid_stream_fails_the_turn_unless_codex_retries() {
    let model = FakeModel::start().await;
    model.push(Reply::Disconnect);
    let agent = Agent::new();
    let run = agent.exec(&model, &[], &["drop"]).await;

    assert_eq!(run.code, Some(1), "{run}");
    assert_eq!(run.of_type("turn.failed").len(), 1, "{run}");
    assert_eq!(model.requests().len(), 1);

    // With stream retries, Codex reports the drop as an `error` event and
    // then completes the turn on the next request: `error` is not fatal.
    model.push(Reply::Disconnect);
    model.push(Reply::text("recovered"));
    let retry = "model_providers.fake.stream_max_retries=1";
    let run = agent.exec(&model, &[retry], &["drop once"]).await;
    assert_eq!(run.code, Some(0), "{run}");
    assert_eq!(run.of_type("error").len(), 1, "{run}");
    assert_eq!(run.last_message(), "recovered");
    assert_eq!(model.requests().len(), 3);
}

#[tokio::test]
async fn sigint_during_a_stall_ends_codex_promptly() {
    let model = FakeModel::start().await;
    model.push(Reply::Stall(Duration::from_secs(60)));
    let agent = Agent::new();
    let child = tokio::process::Command::new(support::codex_bin())
        .args([
            "exec",
            "--json",
            "--skip-git-repo-check",
            "-m",
            fake_model::MODEL,
        ])
        .arg("-C")
        .arg(agent.ws())
        .args(model.codex_config_args())
        .arg("hang")
        .env("CODEX_HOME", agent.home.path())
        .env(fake_model::API_KEY_ENV, "sk-fake")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    assert!(model.wait_for_requests(1, Duration::from_secs(30)).await);
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    let started = Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("codex exits promptly on SIGINT")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "SIGINT: {:?} after {:?}\n{stdout}\n{}",
        out.status,
        started.elapsed(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success());
    assert!(stdout.contains("thread.started"));
    assert!(!stdout.contains("turn.completed"));
}

#[test]
fn deltas_spread_the_whole_text_evenly() {
    let text = "x".repeat(100);
    let d = fake_model::deltas(&text, Duration::from_secs(3));
    assert_eq!(d.len(), 6, "one every {:?}", fake_model::DELTA_EVERY);
    assert_eq!(d.iter().map(|(_, s)| s.as_str()).collect::<String>(), text);
    assert!(d.iter().all(|(p, _)| *p == Duration::from_millis(500)));
    // A short text: fewer, longer pauses, still over the whole duration.
    let d = fake_model::deltas("héllo", Duration::from_secs(10));
    assert_eq!(d.len(), 5);
    assert_eq!(
        d.iter().map(|(p, _)| *p).sum::<Duration>(),
        Duration::from_secs(10)
    );
    assert_eq!(
        fake_model::deltas("now", Duration::ZERO),
        [(Duration::ZERO, "now".into())]
    );
}

#[tokio::test]
async fn streamed_text_takes_its_duration_and_keeps_the_stream_alive() {
    let model = FakeModel::start().await;
    let text = "a long answer, written slowly. ".repeat(8);
    model.push(Reply::text(text.clone()).over(Duration::from_secs(4)));
    let agent = Agent::new();
    // Deltas every half second: an idle timeout shorter than the whole
    // stream never fires.
    let idle = "model_providers.fake.stream_idle_timeout_ms=1500";
    let run = agent.exec(&model, &[idle], &["write slowly"]).await;

    assert_eq!(run.code, Some(0), "{run}");
    assert_eq!(run.last_message(), text);
    assert!(run.elapsed >= Duration::from_secs(4), "{run}");
    assert!(run.elapsed < Duration::from_secs(20), "{run}");
}

#[tokio::test]
async fn a_silent_step_sends_nothing_then_answers() {
    let model = FakeModel::start().await;
    let step = || Reply::silent(Duration::from_secs(3), Reply::text("after thinking"));
    model.push(step());
    model.push(step());
    let agent = Agent::new();
    let run = agent.exec(&model, &[], &["think"]).await;
    assert_eq!(run.code, Some(0), "{run}");
    assert_eq!(run.last_message(), "after thinking");
    assert!(run.elapsed >= Duration::from_secs(3), "{run}");

    // Truly silent: Codex's stream idle timeout fires inside it.
    let idle = "model_providers.fake.stream_idle_timeout_ms=1500";
    let run = agent.exec(&model, &[idle], &["think again"]).await;
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.elapsed < Duration::from_secs(3), "{run}");
}
