//! `agent-run`'s durable mode: a run that belongs to its agent, not to the
//! process that asked for it. `start` reads the request (credentials
//! included) on stdin and runs the turn in a session of its own, writing
//! into the run directory (see [`super::run_dir`]); `follow`, `status`,
//! `list`, `cancel`, `put` and `prune` read and steer such runs. Each is a
//! short command, so the gateway drives them the same way on every backend:
//! as child processes locally, through pods/exec on Kubernetes.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use nix::fcntl::{Flock, FlockArg};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::agent_run::{exit_code, finish, read_request, result_line, run, AgentRunOptions};
use super::run_dir::{
    complete_lines, expired, RunId, RunState, CANCEL_FILE, EVENTS_FILE, GATEWAY_FILES, LOCK_FILE,
    LOG_FILE, META_FILE, RECORDED_FILE, RESULT_FILE, STARTED_LINE_TYPE, TOOL_RESULT_FILE,
};
use crate::api::request::RunOutcome;

/// How often `follow` looks for new events and the result.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// How long `cancel` waits for the run's processes to be gone.
const CANCEL_WAIT: Duration = Duration::from_secs(5);
/// Largest file the gateway may `put` (a background call's tool result).
const MAX_PUT_BYTES: u64 = 64 << 20;
/// How many event lines `status` returns, for a progress message.
const TAIL_LINES: usize = 20;

/// One durable-mode command.
#[derive(Debug, Clone)]
pub enum Detached {
    /// Start a run in `run_dir`; with `foreground`, this process is the run
    /// (the caller keeps it alive), else it starts one in its own session.
    Start {
        run_dir: PathBuf,
        foreground: bool,
    },
    /// Print events from byte `offset` of `events.jsonl`, then the result.
    Follow {
        run_dir: PathBuf,
        offset: u64,
    },
    Cancel {
        run_dir: PathBuf,
    },
    Status {
        run_dir: PathBuf,
    },
    List {
        runs_dir: PathBuf,
    },
    /// Write stdin atomically to one of [`GATEWAY_FILES`].
    Put {
        run_dir: PathBuf,
        file: String,
    },
    /// Remove recorded runs whose result is older than `ttl`.
    Prune {
        runs_dir: PathBuf,
        ttl: Duration,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum DetachedError {
    #[error("preparing the run directory failed: {0}")]
    Prepare(std::io::Error),
    #[error("the run directory is in use by another run")]
    InUse,
    #[error("starting the run's process failed: {0}")]
    Spawn(std::io::Error),
    #[error("the run's process ended before starting the run")]
    NotStarted,
    #[error("reading the run directory failed: {0}")]
    Read(std::io::Error),
    #[error("writing {0} failed: {1}")]
    Write(String, std::io::Error),
    #[error("{0} is not a file the gateway may write")]
    NotWritable(String),
}

/// Runs one command and returns the process exit code.
pub async fn main(opts: AgentRunOptions, cmd: Detached) -> i32 {
    let result = match cmd {
        Detached::Start {
            run_dir,
            foreground: true,
        } => return start_here(opts, &run_dir).await,
        Detached::Start { run_dir, .. } => start_detached(&opts, &run_dir).await,
        Detached::Follow { run_dir, offset } => return follow(&run_dir, offset).await,
        Detached::Cancel { run_dir } => cancel(&run_dir).await,
        Detached::Status { run_dir } => read_state(&run_dir, true).map(|s| print_json(&s)),
        Detached::List { runs_dir } => list(&runs_dir).map(|states| {
            for s in states {
                print_json(&s);
            }
        }),
        Detached::Put { run_dir, file } => put(&run_dir, &file),
        Detached::Prune { runs_dir, ttl } => prune(&runs_dir, ttl),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("agent-run: {e}");
            1
        }
    }
}

fn print_json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string(v).expect("serializes"));
}

/// Opens a file of a run directory without following a symlink: the run's
/// own commands can write there, and the reader may be more privileged.
fn open_nofollow(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
}

fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), DetachedError> {
    let err = |e| DetachedError::Write(name.to_owned(), e);
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp.")
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(dir.join(name)).map_err(|e| err(e.error))?;
    Ok(())
}

/// Whether the run's process holds its lock.
pub fn is_running(run_dir: &Path) -> bool {
    let Ok(f) = open_nofollow(&run_dir.join(LOCK_FILE)) else {
        return false;
    };
    // Taking the lock means nobody holds it; it is released when dropped.
    Flock::lock(f, FlockArg::LockExclusiveNonblock).is_err()
}

/// This process becomes the run: `start --foreground`.
async fn start_here(mut opts: AgentRunOptions, run_dir: &Path) -> i32 {
    let started = Instant::now();
    // Out of the caller's session and process group: the run outlives it,
    // and no signal meant for the caller's group reaches it.
    let _ = nix::unistd::setsid();
    let mut stdin = BufReader::new(tokio::io::stdin());
    let req = match read_request(&mut stdin).await {
        Ok(r) => r,
        Err(e) => return not_started(&e.to_string()).await,
    };
    let prepared = (|| {
        create_private_dir(run_dir).map_err(DetachedError::Prepare)?;
        if run_dir.join(META_FILE).exists() {
            return Err(DetachedError::InUse);
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(run_dir.join(LOCK_FILE))
            .map_err(DetachedError::Prepare)?;
        let lock =
            Flock::lock(lock, FlockArg::LockExclusiveNonblock).map_err(|_| DetachedError::InUse)?;
        let meta = req.run_meta.clone().unwrap_or_else(|| json!({}));
        write_atomic(run_dir, META_FILE, meta.to_string().as_bytes())?;
        let events = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(run_dir.join(EVENTS_FILE))
            .map_err(DetachedError::Prepare)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(run_dir.join(LOG_FILE))
            .map_err(DetachedError::Prepare)?;
        Ok((lock, events, log))
    })();
    let (lock, events, log) = match prepared {
        Ok(p) => p,
        Err(e) => return not_started(&e.to_string()).await,
    };
    let mut out = tokio::io::stdout();
    let line = json!({"type": STARTED_LINE_TYPE, "run_dir": run_dir});
    let _ = out.write_all(format!("{line}\n").as_bytes()).await;
    let _ = out.flush().await;
    // The caller stops reading after the started line (and may be gone):
    // later output goes to the run's log, and stdin is no longer the run's.
    let _ = nix::unistd::dup2_stdout(&log);
    let _ = nix::unistd::dup2_stderr(&log);
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(&null);
    }
    opts.cancel_on_stdin_eof = false;
    let mut events = tokio::fs::File::from_std(events);
    let cancel_file = run_dir.join(CANCEL_FILE);
    let outcome = run(
        &opts,
        req,
        tokio::io::empty(),
        &mut events,
        Some(&cancel_file),
    )
    .await;
    let _ = events.flush().await;
    let _ = events.sync_all().await;
    let outcome = finish(outcome, started);
    if let Err(e) = write_atomic(run_dir, RESULT_FILE, result_line(&outcome).as_bytes()) {
        eprintln!("agent-run: {e}");
    }
    drop(lock);
    exit_code(&outcome)
}

/// A run that could not start: its reason as the result line on stdout.
async fn not_started(reason: &str) -> i32 {
    let outcome = RunOutcome {
        ok: false,
        error: Some(reason.to_owned()),
        ..Default::default()
    };
    let mut out = tokio::io::stdout();
    let _ = out.write_all(result_line(&outcome).as_bytes()).await;
    let _ = out.flush().await;
    1
}

fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// `start` without `--foreground`: starts `start --foreground` as a process
/// of its own session, hands it the request, relays its first line and
/// returns while the run goes on (through pods/exec the exec ends here).
async fn start_detached(opts: &AgentRunOptions, run_dir: &Path) -> Result<(), DetachedError> {
    // One line, not the whole of stdin: through pods/exec an API server
    // without stream half-close cannot end stdin without ending the exec.
    let mut request = Vec::new();
    std::io::BufRead::read_until(
        &mut std::io::BufReader::new(std::io::stdin().take(super::agent_run::MAX_REQUEST_BYTES)),
        b'\n',
        &mut request,
    )
    .map_err(DetachedError::Read)?;
    let exe = std::env::current_exe().map_err(DetachedError::Spawn)?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("agent-run").arg("--codex-bin").arg(&opts.codex_bin);
    if let Some(dir) = &opts.credentials_dir {
        cmd.arg("--credentials-dir").arg(dir);
    }
    let mut child = cmd
        .args(["start", "--foreground", "--run-dir"])
        .arg(run_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(DetachedError::Spawn)?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(&request)
        .await
        .map_err(DetachedError::Spawn)?;
    drop(stdin);
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let first = lines.next_line().await.ok().flatten();
    match first {
        Some(line) => {
            println!("{line}");
            Ok(())
        }
        None => Err(DetachedError::NotStarted),
    }
}

/// Prints the events from `offset` on as they come, then the result line;
/// a run whose process is gone without a result ends with a failed one.
async fn follow(run_dir: &Path, mut offset: u64) -> i32 {
    let mut out = tokio::io::stdout();
    loop {
        // The result is written after the last event: seen first, every
        // event is in the file by the time it is read below.
        let result = read_result(run_dir);
        let running = result.is_none() && is_running(run_dir);
        if let Ok(mut f) = open_nofollow(&run_dir.join(EVENTS_FILE)) {
            let mut buf = Vec::new();
            if f.seek(SeekFrom::Start(offset)).is_ok() && f.read_to_end(&mut buf).is_ok() {
                let (lines, used) = complete_lines(&buf);
                for l in lines {
                    if out.write_all(format!("{l}\n").as_bytes()).await.is_err() {
                        return 1;
                    }
                }
                offset += used as u64;
                let _ = out.flush().await;
            }
        }
        let outcome = match result {
            Some(o) => Some(o),
            None if !running => Some(read_result(run_dir).unwrap_or_else(|| RunOutcome {
                ok: false,
                error: Some("the run ended without a result: its process was killed".to_owned()),
                ..Default::default()
            })),
            None => None,
        };
        if let Some(o) = outcome {
            let _ = out.write_all(result_line(&o).as_bytes()).await;
            let _ = out.flush().await;
            return 0;
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

fn read_result(run_dir: &Path) -> Option<RunOutcome> {
    let mut s = String::new();
    open_nofollow(&run_dir.join(RESULT_FILE))
        .ok()?
        .read_to_string(&mut s)
        .ok()?;
    serde_json::from_str(&s).ok()
}

/// Asks the run to stop and waits until its processes are gone.
async fn cancel(run_dir: &Path) -> Result<(), DetachedError> {
    let was_running = is_running(run_dir);
    if was_running {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(run_dir.join(CANCEL_FILE))
            .map_err(|e| DetachedError::Write(CANCEL_FILE.into(), e))?;
    }
    let deadline = Instant::now() + CANCEL_WAIT;
    while is_running(run_dir) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopped = !is_running(run_dir);
    print_json(
        &json!({"type": "agent_run.cancel", "was_running": was_running, "stopped": stopped}),
    );
    Ok(())
}

fn modified(path: &Path) -> Option<DateTime<Utc>> {
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .map(DateTime::<Utc>::from)
}

/// One run directory's state; `full` adds the tool result and the last events.
pub fn read_state(run_dir: &Path, full: bool) -> Result<RunState, DetachedError> {
    if !std::fs::symlink_metadata(run_dir)
        .map_err(DetachedError::Read)?
        .is_dir()
    {
        return Err(DetachedError::Read(
            std::io::ErrorKind::NotADirectory.into(),
        ));
    }
    let read_json = |name: &str| -> Option<serde_json::Value> {
        let mut s = String::new();
        open_nofollow(&run_dir.join(name))
            .ok()?
            .read_to_string(&mut s)
            .ok()?;
        serde_json::from_str(&s).ok()
    };
    let result = read_result(run_dir);
    let mut state = RunState {
        run_id: run_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        running: result.is_none() && is_running(run_dir),
        meta: read_json(META_FILE),
        finished_at: result
            .as_ref()
            .and_then(|_| modified(&run_dir.join(RESULT_FILE))),
        result,
        recorded: std::fs::symlink_metadata(run_dir.join(RECORDED_FILE)).is_ok(),
        has_tool_result: std::fs::symlink_metadata(run_dir.join(TOOL_RESULT_FILE)).is_ok(),
        tool_result: None,
        tail: Vec::new(),
    };
    if full {
        state.tool_result = read_json(TOOL_RESULT_FILE);
        state.tail = tail(&run_dir.join(EVENTS_FILE));
    }
    Ok(state)
}

fn tail(events: &Path) -> Vec<String> {
    let Ok(mut f) = open_nofollow(events) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(64 << 10);
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_err() || f.read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let (mut lines, _) = complete_lines(&buf);
    if from > 0 && !lines.is_empty() {
        lines.remove(0); // Likely cut.
    }
    let skip = lines.len().saturating_sub(TAIL_LINES);
    lines.split_off(skip)
}

/// Every run directory under `runs_dir` (none when it does not exist).
pub fn list(runs_dir: &Path) -> Result<Vec<RunState>, DetachedError> {
    let entries = match std::fs::read_dir(runs_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(DetachedError::Read(e)),
    };
    let mut out: Vec<RunState> = entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| RunId::parse(n).is_ok())
        })
        .filter_map(|e| read_state(&e.path(), false).ok())
        .collect();
    out.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    Ok(out)
}

fn put(run_dir: &Path, file: &str) -> Result<(), DetachedError> {
    if !GATEWAY_FILES.contains(&file) {
        return Err(DetachedError::NotWritable(file.to_owned()));
    }
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(MAX_PUT_BYTES)
        .read_to_end(&mut bytes)
        .map_err(DetachedError::Read)?;
    write_atomic(run_dir, file, &bytes)
}

fn prune(runs_dir: &Path, ttl: Duration) -> Result<(), DetachedError> {
    let now = Utc::now();
    for state in list(runs_dir)? {
        if expired(&state, now, ttl) {
            // remove_dir_all does not follow symlinks.
            if std::fs::remove_dir_all(runs_dir.join(&state.run_id)).is_ok() {
                print_json(&json!({"type": "agent_run.removed", "run_id": state.run_id}));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_directory_reads_back() {
        let root = tempfile::tempdir().unwrap();
        let dir = root
            .path()
            .join(RunId::new(&crate::agent::AgentName::parse("a").unwrap()).as_str());
        create_private_dir(&dir).unwrap();
        std::fs::write(dir.join(META_FILE), r#"{"tool":"chat"}"#).unwrap();
        std::fs::write(dir.join(EVENTS_FILE), "{\"type\":\"turn.started\"}\n{\"ty").unwrap();
        let lock = std::fs::File::create(dir.join(LOCK_FILE)).unwrap();
        let held = Flock::lock(lock, FlockArg::LockExclusiveNonblock).unwrap();
        let s = read_state(&dir, true).unwrap();
        assert!(s.running && s.result.is_none() && !s.recorded);
        assert_eq!(s.tail, vec!["{\"type\":\"turn.started\"}".to_owned()]);
        drop(held);
        assert!(!read_state(&dir, false).unwrap().running);

        write_atomic(
            &dir,
            RESULT_FILE,
            result_line(&RunOutcome::default()).as_bytes(),
        )
        .unwrap();
        let s = read_state(&dir, false).unwrap();
        assert!(s.result.is_some() && s.finished_at.is_some());
        assert_eq!(list(root.path()).unwrap(), vec![s]);
        // Only run ids are listed.
        std::fs::create_dir(root.path().join("not-a-run")).unwrap();
        assert_eq!(list(root.path()).unwrap().len(), 1);
    }

    #[test]
    fn symlinked_files_are_not_followed() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("secret"), r#"{"ok":true}"#).unwrap();
        let dir = root.path().join("run");
        create_private_dir(&dir).unwrap();
        std::os::unix::fs::symlink(root.path().join("secret"), dir.join(RESULT_FILE)).unwrap();
        assert!(read_result(&dir).is_none());
    }
}
