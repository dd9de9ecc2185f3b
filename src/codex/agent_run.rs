//! `codex-mcp agent-run`: runs one Codex turn inside an agent's environment.
//!
//! Reads one [`RunRequest`] JSON line on stdin, prepares the Codex home, runs
//! `codex exec --json`, copies Codex's events to stdout as they come, and ends
//! with one [`RunOutcome`] line. The local backend spawns it as a child
//! process and the Kubernetes backend runs it through pods/exec, so both
//! exercise this same code.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::signal::unix::{signal, SignalKind};

use super::argv::exec_argv;
use super::events::{truncate, CodexEvent, RunSummary};
use super::login_follow::{LoginFollower, FOLLOW_PERIOD};
use crate::api::layout::{API_KEY_FILE, AUTH_JSON_FILE};
use crate::api::request::{RunOutcome, RunRequest, RESULT_LINE_TYPE};
use crate::credentials::run_credential::{run_credential, EnvironmentCredentials, FollowLogin};
use crate::credentials::{write_private, API_KEY_VAR};
use crate::workspace::{bound_diffs, resolve_in_workspace, PathError, Snapshot, SnapshotLimits};

/// Largest request line accepted on stdin.
pub const MAX_REQUEST_BYTES: u64 = 16 << 20;
const STDERR_TAIL_LINES: usize = 20;
/// How often a detached run looks for its cancel file: a cancelled run's
/// processes are gone well within a second.
const CANCEL_POLL: Duration = Duration::from_millis(100);

/// How `agent-run` was invoked.
#[derive(Debug, Clone)]
pub struct AgentRunOptions {
    pub codex_bin: PathBuf,
    /// Treat the end of stdin after the request as cancellation: the caller
    /// holds stdin open for the run and closes it (or dies) to stop it.
    pub cancel_on_stdin_eof: bool,
    /// This environment's own credentials, for requests that bring none.
    pub credentials_dir: Option<PathBuf>,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentRunError {
    #[error("reading the run request from stdin failed: {0}")]
    ReadRequest(std::io::Error),
    #[error("the run request is not valid JSON: {0}")]
    ParseRequest(serde_json::Error),
    #[error("preparing {0} failed: {1}")]
    Prepare(String, std::io::Error),
    #[error(
        "Codex CLI not found at {0:?}: install it (npm install -g @openai/codex) or set CODEX_BIN"
    )]
    CodexMissing(PathBuf),
    #[error("starting Codex failed: {0}")]
    Spawn(std::io::Error),
    #[error(transparent)]
    WorkspacePath(#[from] PathError),
}

/// Runs `agent-run` to completion and returns the process exit code.
pub async fn main(opts: AgentRunOptions) -> i32 {
    let started = Instant::now();
    let mut stdin = BufReader::new(tokio::io::stdin());
    let outcome = match read_request(&mut stdin).await {
        Ok(req) => run(&opts, req, stdin, &mut tokio::io::stdout(), None).await,
        Err(e) => Err(e),
    };
    let outcome = finish(outcome, started);
    let mut out = tokio::io::stdout();
    let _ = out.write_all(result_line(&outcome).as_bytes()).await;
    let _ = out.flush().await;
    exit_code(&outcome)
}

/// The outcome of a run, or of its failure to start, with its duration.
pub(super) fn finish(outcome: Result<RunOutcome, AgentRunError>, started: Instant) -> RunOutcome {
    let mut outcome = outcome.unwrap_or_else(|e| RunOutcome {
        ok: false,
        error: Some(e.to_string()),
        ..Default::default()
    });
    outcome.duration_ms = started.elapsed().as_millis() as u64;
    outcome
}

/// The result line (newline included) for `outcome`.
pub(super) fn result_line(outcome: &RunOutcome) -> String {
    let mut line = serde_json::to_value(outcome).unwrap_or_else(|_| json!({}));
    line["type"] = json!(RESULT_LINE_TYPE);
    format!("{line}\n")
}

pub(super) fn exit_code(outcome: &RunOutcome) -> i32 {
    if outcome.ok {
        0
    } else {
        1
    }
}

pub(super) async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(
    stdin: &mut R,
) -> Result<RunRequest, AgentRunError> {
    let mut line = String::new();
    let mut limited = stdin.take(MAX_REQUEST_BYTES);
    limited
        .read_line(&mut line)
        .await
        .map_err(AgentRunError::ReadRequest)?;
    serde_json::from_str(&line).map_err(AgentRunError::ParseRequest)
}

fn prepare_dir(path: &Path, private: bool) -> Result<(), AgentRunError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path)
        .map_err(|e| AgentRunError::Prepare(path.display().to_string(), e))?;
    if private {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| AgentRunError::Prepare(path.display().to_string(), e))?;
    }
    Ok(())
}

/// Settles the run's credential (see [`run_credential`]): the request's
/// own, else this environment's; returns the login file the run follows, if
/// any (see [`LoginFollower`]).
fn settle_credentials(
    req: &mut RunRequest,
    credentials_dir: Option<&Path>,
) -> Result<Option<PathBuf>, AgentRunError> {
    let decided = run_credential(std::mem::take(&mut req.credentials), || {
        credentials_dir.map(environment_credentials).transpose()
    })?;
    req.credentials = decided.credentials;
    if let Some(p) = req.provider.as_mut() {
        p.requires_openai_auth = decided.requires_openai_auth;
    }
    Ok(match decided.follow {
        FollowLogin::No => None,
        FollowLogin::Handed => req.follow_login.clone(),
        FollowLogin::Environment => credentials_dir.map(|dir| dir.join(AUTH_JSON_FILE)),
    })
}

/// Reads this environment's credential files. They are re-read for every
/// run: the operator rewrites them (through the mounted Secret) as it
/// refreshes a ChatGPT login.
fn environment_credentials(dir: &Path) -> Result<EnvironmentCredentials, AgentRunError> {
    let read = |name: &str| -> Result<Option<String>, AgentRunError> {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(s) if s.trim().is_empty() => Ok(None),
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AgentRunError::Prepare(
                dir.join(name).display().to_string(),
                e,
            )),
        }
    };
    let auth_json = match read(AUTH_JSON_FILE)? {
        Some(s) => Some(serde_json::from_str::<serde_json::Value>(&s).map_err(|e| {
            AgentRunError::Prepare(
                dir.join(AUTH_JSON_FILE).display().to_string(),
                std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
            )
        })?),
        None => None,
    };
    let api_key = read(API_KEY_FILE)?.map(|k| k.trim().to_owned());
    Ok(EnvironmentCredentials { auth_json, api_key })
}

/// Puts the run's credentials where Codex looks for them; returns the
/// environment to add and whether an auth.json was written (it is removed
/// after the run: credentials do not persist in the agent's Codex home).
fn install_credentials(req: &RunRequest) -> Result<(Vec<(String, String)>, bool), AgentRunError> {
    let auth_path = req.codex_home.join("auth.json");
    let prep = |e| AgentRunError::Prepare("auth.json".into(), e);
    let mut env = Vec::new();
    let mut per_run_auth = false;
    if let Some(auth) = &req.credentials.auth_json {
        write_private(&auth_path, auth.to_string().as_bytes()).map_err(prep)?;
        per_run_auth = true;
    } else if let Some(key) = &req.credentials.api_key {
        let custom = req.provider.as_ref().filter(|p| p.base_url.is_some());
        match custom {
            Some(p) => env.push((p.env_key.clone().unwrap_or(API_KEY_VAR.into()), key.clone())),
            None => {
                let auth = json!({"auth_mode": "apikey", "OPENAI_API_KEY": key});
                write_private(&auth_path, auth.to_string().as_bytes()).map_err(prep)?;
                per_run_auth = true;
            }
        }
    }
    Ok((env, per_run_auth))
}

/// Runs the turn, writing Codex's events to `out`. `cancel_file`: the run
/// stops when that file appears (how a detached run is cancelled; its
/// caller picks the path).
pub(super) async fn run<R: tokio::io::AsyncRead + Unpin>(
    opts: &AgentRunOptions,
    mut req: RunRequest,
    mut stdin: R,
    out: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
    cancel_file: Option<&Path>,
) -> Result<RunOutcome, AgentRunError> {
    let follow_from = settle_credentials(&mut req, opts.credentials_dir.as_deref())?;
    prepare_dir(&req.workspace, false)?;
    for path in &req.workspace_paths {
        resolve_in_workspace(&req.workspace, path)?;
    }
    prepare_dir(&req.codex_home, true)?;
    // A run killed before it could clean up may have left some.
    remove_shell_snapshots(&req.codex_home);
    let (cred_env, per_run_auth) = install_credentials(&req)?;
    let mut follower = follow_from.map(|source| {
        LoginFollower::new(
            source,
            req.codex_home.join("auth.json"),
            req.credentials.auth_json.clone(),
        )
    });
    let mut follow_tick = tokio::time::interval(FOLLOW_PERIOD);
    follow_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let limits = SnapshotLimits::default();
    let before = if req.track_changes {
        let ws = req.workspace.clone();
        Some(
            tokio::task::spawn_blocking(move || Snapshot::take(&ws, limits))
                .await
                .expect("snapshot task")
                .map_err(|e| AgentRunError::Prepare("workspace snapshot".into(), e))?,
        )
    } else {
        None
    };
    let schema_file = match &req.output_schema {
        Some(schema) => {
            let f = tempfile::Builder::new()
                .prefix("codex-mcp-schema-")
                .suffix(".json")
                .tempfile()
                .map_err(|e| AgentRunError::Prepare("output schema file".into(), e))?;
            std::fs::write(f.path(), schema.to_string())
                .map_err(|e| AgentRunError::Prepare("output schema file".into(), e))?;
            Some(f)
        }
        None => None,
    };

    let argv = exec_argv(&req, schema_file.as_ref().map(|f| f.path()));
    let codex_bin = find_bin(&opts.codex_bin)
        .ok_or_else(|| AgentRunError::CodexMissing(opts.codex_bin.clone()))?;
    let mut child = codex_command(&codex_bin)
        .args(&argv)
        .env("CODEX_HOME", &req.codex_home)
        .envs(cred_env)
        .current_dir(&req.workspace)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so cancellation reaches every command Codex started.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => AgentRunError::CodexMissing(opts.codex_bin.clone()),
            _ => AgentRunError::Spawn(e),
        })?;
    let pgid = child.id().map(|id| Pid::from_raw(id as i32));
    if let Some(mut codex_stdin) = child.stdin.take() {
        let prompt = crate::project::notes::take(&req.codex_home, &req.prompt);
        tokio::spawn(async move {
            let _ = codex_stdin.write_all(prompt.as_bytes()).await;
            let _ = codex_stdin.shutdown().await;
        });
    }
    let stderr = child.stderr.take().expect("piped stderr");
    let stderr_tail = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut tail: Vec<String> = Vec::new();
        while let Ok(Some(l)) = lines.next_line().await {
            if tail.len() == STDERR_TAIL_LINES {
                tail.remove(0);
            }
            tail.push(l);
        }
        tail
    });
    let mut stdout_lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let mut cancel_poll = tokio::time::interval(CANCEL_POLL);
    let mut summary = RunSummary::default();
    let mut term = signal(SignalKind::terminate()).map_err(AgentRunError::Spawn)?;
    let mut int = signal(SignalKind::interrupt()).map_err(AgentRunError::Spawn)?;
    let mut hup = signal(SignalKind::hangup()).map_err(AgentRunError::Spawn)?;
    let deadline = tokio::time::sleep(
        req.timeout_secs
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(u64::MAX / 4)),
    );
    tokio::pin!(deadline);
    let stdin_closed = async {
        let mut buf = [0u8; 256];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    };
    tokio::pin!(stdin_closed);
    let watch_stdin = opts.cancel_on_stdin_eof;

    let mut stopped: Option<String> = None;
    let mut timed_out = false;
    loop {
        tokio::select! {
            line = stdout_lines.next_line() => match line {
                Ok(Some(line)) => {
                    if let Some((ev, _)) = CodexEvent::parse(&line) {
                        summary.apply(&ev);
                        let _ = out.write_all(line.trim_end().as_bytes()).await;
                        let _ = out.write_all(b"\n").await;
                        let _ = out.flush().await;
                    }
                }
                _ => break,
            },
            _ = term.recv() => { stopped = Some("run cancelled (SIGTERM)".into()); break; }
            _ = int.recv() => { stopped = Some("run cancelled (SIGINT)".into()); break; }
            _ = hup.recv() => { stopped = Some("run cancelled (SIGHUP)".into()); break; }
            _ = follow_tick.tick(), if follower.is_some() => {
                // A login that cannot be copied now is tried again next
                // tick; Codex reports its own error if the token runs out.
                if let Some(f) = follower.as_mut() {
                    let _ = f.sync();
                }
            }
            _ = cancel_poll.tick(), if cancel_file.is_some() => {
                if cancel_file.is_some_and(Path::exists) {
                    stopped = Some("run cancelled".into());
                    break;
                }
            }
            _ = &mut stdin_closed, if watch_stdin => {
                stopped = Some("run cancelled: the caller went away".into());
                break;
            }
            _ = &mut deadline => {
                timed_out = true;
                stopped = Some(format!(
                    "run timed out after {} s", req.timeout_secs.unwrap_or_default()
                ));
                break;
            }
        }
    }
    if stopped.is_some() {
        if let Some(pgid) = pgid {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
    let status = child.wait().await.map_err(AgentRunError::Spawn)?;
    let tail = stderr_tail.await.unwrap_or_default();
    if per_run_auth {
        let _ = std::fs::remove_file(req.codex_home.join("auth.json"));
    }
    remove_shell_snapshots(&req.codex_home);
    drop(schema_file);

    let changes = match before {
        Some(before) => {
            let ws = req.workspace.clone();
            let diff_limits = req.diff_limits;
            tokio::task::spawn_blocking(move || {
                let after = Snapshot::take(&ws, limits)?;
                let mut changes = before.changes_to(&after);
                bound_diffs(&mut changes, diff_limits);
                Ok(changes)
            })
            .await
            .expect("snapshot task")
            .map_err(|e| AgentRunError::Prepare("workspace snapshot".into(), e))?
        }
        None => Vec::new(),
    };
    let ok = stopped.is_none() && status.success() && summary.turn_completed;
    let error = if ok {
        None
    } else {
        Some(stopped.unwrap_or_else(|| failure_reason(&summary, status.code(), &tail)))
    };
    Ok(RunOutcome {
        ok,
        thread_id: summary.thread_id,
        final_message: summary.final_message,
        usage: summary.usage,
        error,
        exit_code: status.code(),
        timed_out,
        changes,
        commands: summary.commands,
        duration_ms: 0,
    })
}

/// Where util-linux's `setpriv` may be; Debian has it in every image.
const SETPRIV: &[&str] = &["/usr/bin/setpriv", "/bin/setpriv"];

/// The command that starts Codex: under `setpriv --pdeathsig KILL` where
/// there is one, so Codex (in a process group of its own, out of reach of a
/// signal to agent-run's group) dies with agent-run even when agent-run is
/// killed outright; otherwise Codex would run on, reparented, and its thread
/// would be lost. Setting the signal ourselves would need `pre_exec`, which is
/// unsafe code.
fn codex_command(codex_bin: &Path) -> Command {
    match SETPRIV.iter().map(Path::new).find(|p| sets_pdeathsig(p)) {
        Some(setpriv) => {
            let mut cmd = Command::new(setpriv);
            cmd.args(["--pdeathsig", "KILL", "--"]).arg(codex_bin);
            cmd
        }
        None => Command::new(codex_bin),
    }
}

/// Whether `setpriv` is util-linux's and takes `--pdeathsig`: busybox has a
/// `setpriv` too, without it, and would refuse to start Codex at all. One
/// look at its help, before each run's Codex starts.
fn sets_pdeathsig(setpriv: &Path) -> bool {
    setpriv.is_file()
        && std::process::Command::new(setpriv)
            .arg("--help")
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| {
                String::from_utf8_lossy(&o.stdout).contains("--pdeathsig")
                    || String::from_utf8_lossy(&o.stderr).contains("--pdeathsig")
            })
}

/// The binary `bin` names: itself when it is a path, else the first match
/// on `PATH`.
fn find_bin(bin: &Path) -> Option<PathBuf> {
    if bin.components().count() > 1 {
        return bin.is_file().then(|| bin.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(bin))
        .find(|p| p.is_file())
}

/// Codex's shell snapshots hold the environment of the shell it captured
/// (`declare -x` lines); none may stay in the agent's Codex home, whether
/// the run ended or was killed (they are off by config; a Codex that still
/// wrote one must not leave it).
fn remove_shell_snapshots(codex_home: &Path) {
    let _ = std::fs::remove_dir_all(codex_home.join("shell_snapshots"));
}

/// The most useful explanation of a failed Codex process.
fn failure_reason(summary: &RunSummary, code: Option<i32>, stderr_tail: &[String]) -> String {
    if let Some(e) = &summary.error {
        return format!("codex failed: {}", truncate(e, 600));
    }
    let last = stderr_tail
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| truncate(l, 600));
    match (code, last) {
        (Some(c), Some(l)) => format!("codex exited with status {c}: {l}"),
        (Some(c), None) => format!("codex exited with status {c} without finishing the turn"),
        (None, _) => "codex was killed by a signal".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::request::Credentials;

    #[test]
    fn failure_reason_prefers_codex_errors_then_stderr() {
        let mut s = RunSummary::default();
        assert_eq!(
            failure_reason(
                &s,
                Some(1),
                &["".into(), "fatal: bad config".into(), " ".into()]
            ),
            "codex exited with status 1: fatal: bad config"
        );
        s.error = Some("unexpected status 500".into());
        assert_eq!(
            failure_reason(&s, Some(1), &[]),
            "codex failed: unexpected status 500"
        );
        assert_eq!(
            failure_reason(&RunSummary::default(), None, &[]),
            "codex was killed by a signal"
        );
    }

    fn request(credentials: Credentials) -> RunRequest {
        serde_json::from_value(json!({
            "prompt": "p", "model": "m", "sandbox": "external",
            "provider": {"id": "fake", "base_url": "http://127.0.0.1:1/v1"},
            "workspace": "/w", "codex_home": "/h", "credentials": credentials,
        }))
        .unwrap()
    }

    #[test]
    fn environment_credentials_fill_requests_that_bring_none() {
        let dir = tempfile::tempdir().unwrap();
        let login =
            json!({"auth_mode": "chatgpt", "tokens": {"access_token": "a", "refresh_token": ""}});
        std::fs::write(dir.path().join(AUTH_JSON_FILE), login.to_string()).unwrap();
        std::fs::write(dir.path().join(API_KEY_FILE), "sk-env\n").unwrap();

        let mut req = request(Credentials::default());
        let follow = settle_credentials(&mut req, Some(dir.path())).unwrap();
        assert_eq!(follow, Some(dir.path().join(AUTH_JSON_FILE)));
        assert_eq!(
            req.credentials.auth_json,
            Some(login.clone()),
            "the login wins"
        );
        assert!(req.provider.as_ref().unwrap().requires_openai_auth);

        std::fs::remove_file(dir.path().join(AUTH_JSON_FILE)).unwrap();
        let mut req = request(Credentials::default());
        assert_eq!(
            settle_credentials(&mut req, Some(dir.path())).unwrap(),
            None
        );
        assert_eq!(req.credentials.api_key.as_deref(), Some("sk-env"));
        assert!(!req.provider.as_ref().unwrap().requires_openai_auth);

        // A request's own credentials are never replaced; its login is
        // followed where the gateway publishes it.
        let own = Credentials {
            api_key: None,
            auth_json: Some(login),
        };
        let mut req = request(own.clone());
        req.follow_login = Some("/run-login/run-login.json".into());
        let follow = settle_credentials(&mut req, Some(dir.path())).unwrap();
        assert_eq!(req.credentials, own);
        assert_eq!(follow, req.follow_login);
        assert!(req.provider.as_ref().unwrap().requires_openai_auth);

        // An empty directory (a Secret with no credentials) leaves none.
        let empty = tempfile::tempdir().unwrap();
        let mut req = request(Credentials::default());
        assert_eq!(
            settle_credentials(&mut req, Some(empty.path())).unwrap(),
            None
        );
        assert_eq!(req.credentials, Credentials::default());
    }

    #[test]
    fn an_unreadable_login_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(AUTH_JSON_FILE), "{not json").unwrap();
        let err =
            settle_credentials(&mut request(Credentials::default()), Some(dir.path())).unwrap_err();
        assert!(err.to_string().contains("auth.json"), "{err}");
    }

    #[tokio::test]
    async fn request_must_be_json() {
        let mut input = BufReader::new(&b"not json\n"[..]);
        let err = read_request(&mut input).await.unwrap_err();
        assert!(err.to_string().contains("not valid JSON"), "{err}");
    }

    #[tokio::test]
    async fn paths_that_symlink_out_of_the_workspace_stop_the_run() {
        let root = tempfile::tempdir().unwrap();
        let (ws, home) = (root.path().join("ws"), root.path().join("home"));
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::write(ws.join("ok.py"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", ws.join("out")).unwrap();
        let opts = AgentRunOptions {
            codex_bin: root.path().join("no-codex"),
            cancel_on_stdin_eof: false,
            credentials_dir: None,
        };
        let mut req = request(Credentials::default());
        req.workspace = ws;
        req.codex_home = home;
        req.workspace_paths = vec!["ok.py".into(), "new/file.py".into(), "out/passwd".into()];
        let err = run(&opts, req.clone(), &b""[..], &mut tokio::io::sink(), None)
            .await
            .unwrap_err();
        assert!(matches!(err, AgentRunError::WorkspacePath(_)), "{err}");
        assert!(err.to_string().contains("out/passwd"), "{err}");

        // Without the escaping path the checks pass and the run goes on
        // (to the missing Codex binary).
        req.workspace_paths.pop();
        let err = run(&opts, req, &b""[..], &mut tokio::io::sink(), None)
            .await
            .unwrap_err();
        assert!(matches!(err, AgentRunError::CodexMissing(_)), "{err}");
    }

    #[test]
    fn only_a_setpriv_that_takes_pdeathsig_is_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // What busybox's setpriv does with an option it lacks.
        let busybox_like = dir.path().join("setpriv");
        std::fs::write(
            &busybox_like,
            "#!/bin/sh\necho 'usage: setpriv [--ambient-caps CAP,CAP]' >&2\nexit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&busybox_like, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(!sets_pdeathsig(&busybox_like));
        assert!(!sets_pdeathsig(&dir.path().join("missing")));
        let real = Path::new("/usr/bin/setpriv");
        if real.is_file() {
            assert!(
                sets_pdeathsig(real),
                "util-linux's setpriv takes --pdeathsig"
            );
        }
    }
}
