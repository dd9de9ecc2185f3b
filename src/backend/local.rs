//! The local backend: each agent is a directory on this machine, and each run
//! a `codex-mcp agent-run` child process in its own process group.
//!
//! Layout: `DATA_DIR/agents/NAME/{workspace,codex-home,tmp,agent.json}` for
//! the default tenant, `DATA_DIR/tenants/TENANT/agents/NAME/...` for others.
//! Each run is isolated by [`sandbox`].

pub mod exec;
pub mod sandbox;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::run_client::RunClient;
use super::run_log::{upsert, RunEntry};
use super::{
    AgentList, AgentPaths, AgentRecord, Backend, BackendError, EventSender, RunRecord,
    UnreadableAgent,
};
use crate::agent::{AgentId, AgentName, Tenant};
use crate::codex::{AgentRunLine, RunOutcome, RunRequest};
use crate::project::setup::BoundProject;
use crate::project::WorkspaceRepo;
use exec::{LocalExec, LocalRunConfig};
use sandbox::Isolation;

const RECORD_FILE: &str = "agent.json";
/// How long a cancelled run gets to stop by itself before its group is killed.
const CANCEL_GRACE: Duration = Duration::from_millis(500);

pub struct LocalBackend {
    data_dir: PathBuf,
    cfg: LocalRunConfig,
    runs: RunClient,
    /// Serialises record writes: runs of one agent are already one at a time,
    /// but listing and recording may race.
    records: Mutex<()>,
}

impl LocalBackend {
    /// `codex_bin` is resolved here (PATH, symlinks): a sandboxed run sees the
    /// binary only at its real path.
    pub fn new(
        data_dir: PathBuf,
        codex_bin: PathBuf,
        agent_run_bin: PathBuf,
        isolation: Isolation,
    ) -> Self {
        let cfg = LocalRunConfig {
            data_dir: data_dir.clone(),
            projects: Default::default(),
            codex_bin: resolve_bin(&codex_bin).unwrap_or(codex_bin),
            agent_run_bin,
            isolation,
        };
        Self {
            data_dir,
            runs: RunClient::new(Box::new(LocalExec(cfg.clone()))),
            cfg,
            records: Mutex::new(()),
        }
    }

    /// Binds agents to their projects (see `project::setup`).
    pub fn with_projects(mut self, projects: Vec<BoundProject>) -> Self {
        self.cfg.projects =
            std::sync::Arc::new(projects.into_iter().map(|p| (p.agent.clone(), p)).collect());
        self.runs = RunClient::new(Box::new(LocalExec(self.cfg.clone())));
        self
    }

    fn tenant_dir(&self, tenant: &Tenant) -> PathBuf {
        tenant_dir(&self.data_dir, tenant)
    }

    pub fn agent_dir(&self, agent: &AgentId) -> PathBuf {
        agent_dir(&self.data_dir, agent)
    }

    fn read_record(path: &Path) -> std::io::Result<Option<AgentRecord>> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces the record atomically: a unique temporary file, flushed to
    /// disk, renamed over the old one. A failed write leaves the old record
    /// and no temporary file behind.
    fn write_record(path: &Path, record: &AgentRecord) -> std::io::Result<()> {
        Self::write_record_via(path, record, |f, bytes| {
            std::io::Write::write_all(f, bytes)?;
            f.sync_all()
        })
    }

    /// [`Self::write_record`] with the step that fills the temporary file
    /// given, so a full disk can be simulated.
    fn write_record_via(
        path: &Path,
        record: &AgentRecord,
        fill: impl FnOnce(&mut std::fs::File, &[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        // Dropping the temporary file on any error below removes it.
        let mut tmp = tempfile::Builder::new()
            .prefix(".agent.json.")
            .suffix(".tmp")
            .tempfile_in(dir)?;
        let bytes = serde_json::to_vec_pretty(record).expect("record serializes");
        fill(tmp.as_file_mut(), &bytes)?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }

    /// Every agent directory of a tenant with its record (or why it is unreadable).
    fn list_records(dir: &Path) -> std::io::Result<AgentList> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(AgentList::default()),
            Err(e) => return Err(e),
        };
        let mut out = AgentList::default();
        for entry in entries.flatten() {
            let Some(name) = entry
                .file_name()
                .to_str()
                .and_then(|n| AgentName::parse(n).ok())
            else {
                continue;
            };
            match Self::read_record(&entry.path().join(RECORD_FILE)) {
                Ok(Some(r)) => out.agents.push(r),
                Ok(None) => {}
                Err(e) => out.unreadable.push(UnreadableAgent {
                    agent_id: name.to_string(),
                    reason: format!("{RECORD_FILE}: {e}"),
                }),
            }
        }
        out.agents.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
        out.unreadable.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
        Ok(out)
    }
}

fn tenant_dir(data_dir: &Path, tenant: &Tenant) -> PathBuf {
    if tenant.as_str() == Tenant::DEFAULT {
        data_dir.to_path_buf()
    } else {
        data_dir.join("tenants").join(tenant.as_str())
    }
}

/// `DATA_DIR/[tenants/TENANT/]agents/NAME`.
pub fn agent_dir(data_dir: &Path, agent: &AgentId) -> PathBuf {
    tenant_dir(data_dir, &agent.tenant)
        .join("agents")
        .join(agent.name.as_str())
}

/// Every agent (of any tenant) with a runs directory.
fn agents_with_runs(data_dir: &Path) -> Vec<AgentId> {
    let mut tenants = vec![(Tenant::default_tenant(), data_dir.to_path_buf())];
    if let Ok(entries) = std::fs::read_dir(data_dir.join("tenants")) {
        tenants.extend(entries.flatten().filter_map(|e| {
            let t = Tenant::parse(e.file_name().to_str()?).ok()?;
            Some((t, e.path()))
        }));
    }
    let mut out = Vec::new();
    for (tenant, dir) in tenants {
        let Ok(entries) = std::fs::read_dir(dir.join("agents")) else {
            continue;
        };
        for e in entries.flatten() {
            let Some(name) = e
                .file_name()
                .to_str()
                .and_then(|n| AgentName::parse(n).ok())
            else {
                continue;
            };
            if e.path().join(exec::RUNS_DIR).is_dir() {
                out.push(AgentId {
                    tenant: tenant.clone(),
                    name,
                });
            }
        }
    }
    out
}

/// Runs filesystem work on the blocking pool: a directory of 100k files
/// must not stall the async workers that serve every other request.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(std::io::Error::other(format!(
            "filesystem task failed: {e}"
        )))
    })
}

/// An IO error without the file path some layers add to it: callers see
/// what went wrong, not where the server keeps its files. Errors that are
/// not the OS's (a panicked task, bad JSON) are our own words and kept whole.
fn io_reason(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code).to_string(),
        None => e.to_string(),
    }
}

/// Empties a directory, keeping the directory itself.
fn empty_dir(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            let _ = match e.file_type() {
                Ok(t) if t.is_dir() => std::fs::remove_dir_all(&p),
                _ => std::fs::remove_file(&p),
            };
        }
    }
}

/// The real path of the binary `bin` names (a path, or a name on `PATH`).
fn resolve_bin(bin: &Path) -> Option<PathBuf> {
    let found = if bin.components().count() > 1 {
        bin.to_path_buf()
    } else {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|dir| dir.join(bin))
            .find(|p| p.is_file())?
    };
    std::fs::canonicalize(found).ok()
}

fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

#[async_trait]
impl Backend for LocalBackend {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn ensure_agent(
        &self,
        agent: &AgentId,
        _progress: &(dyn Fn(String) + Send + Sync),
    ) -> Result<AgentRecord, BackendError> {
        let dir = self.agent_dir(agent);
        let _guard = self.records.lock().await;
        let prepared = blocking(move || {
            for sub in ["workspace", "codex-home", "tmp"] {
                create_private_dir(&dir.join(sub))?;
            }
            Ok(dir.join(RECORD_FILE))
        })
        .await;
        let path = prepared.map_err(|e| BackendError::prepare(agent, e))?;
        let read = path.clone();
        match blocking(move || Self::read_record(&read))
            .await
            .map_err(|e| BackendError::state(agent, e))?
        {
            Some(r) => Ok(r),
            None => {
                let r = AgentRecord::new(agent, Utc::now());
                let new = r.clone();
                blocking(move || Self::write_record(&path, &new))
                    .await
                    .map_err(|e| BackendError::write_state(agent, io_reason(&e)))?;
                Ok(r)
            }
        }
    }

    fn paths(&self, agent: &AgentId) -> AgentPaths {
        AgentPaths {
            workspace: self.cfg.workspace(agent),
            codex_home: self.agent_dir(agent).join("codex-home"),
        }
    }

    fn workspace_repo(&self, agent: &AgentId) -> WorkspaceRepo {
        let codex_home = self.agent_dir(agent).join("codex-home");
        match self.cfg.projects.get(agent) {
            Some(p) => p.workspace_repo(&codex_home),
            None => WorkspaceRepo::plain(agent, &self.cfg.workspace(agent), &codex_home),
        }
    }

    async fn run(
        &self,
        agent: &AgentId,
        request: &RunRequest,
        events: EventSender,
        cancel: CancellationToken,
    ) -> Result<RunOutcome, BackendError> {
        let mut cmd = self.cfg.agent_run_command(agent, request, None);
        cmd.stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| BackendError::Spawn(e.to_string()))?;
        let pid = child.id().map(|p| Pid::from_raw(p as i32));
        let mut stdin = child.stdin.take();
        let mut line = serde_json::to_vec(request).expect("request serializes");
        line.push(b'\n');
        if let Some(s) = stdin.as_mut() {
            // Stdin stays open for the run: agent-run takes its end as cancellation.
            s.write_all(&line)
                .await
                .map_err(|e| BackendError::Spawn(e.to_string()))?;
            s.flush()
                .await
                .map_err(|e| BackendError::Spawn(e.to_string()))?;
        }

        let stderr = child.stderr.take().expect("piped stderr");
        let stderr_tail = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut last = String::new();
            while let Ok(Some(l)) = lines.next_line().await {
                if !l.trim().is_empty() {
                    last = l;
                }
            }
            last
        });
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let mut outcome: Option<RunOutcome> = None;
        let mut cancelled = false;
        loop {
            tokio::select! {
                next = lines.next_line() => match next {
                    Ok(Some(l)) => match AgentRunLine::parse(&l) {
                        Some(AgentRunLine::Result(o)) => outcome = Some(o),
                        Some(AgentRunLine::Event(ev)) => {
                            let _ = events.send(ev);
                        }
                        None => {}
                    },
                    _ => break,
                },
                _ = cancel.cancelled(), if !cancelled => {
                    cancelled = true;
                    // Closing stdin asks agent-run to stop Codex; SIGTERM too,
                    // then the whole group is killed if anything lingers.
                    drop(stdin.take());
                    if let Some(pid) = pid {
                        // bwrap does not pass signals on: SIGTERM would kill
                        // the sandbox before agent-run reports the thread.
                        if matches!(self.cfg.isolation, Isolation::Unsafe) {
                            let _ = kill(pid, Signal::SIGTERM);
                        }
                        tokio::spawn(async move {
                            tokio::time::sleep(CANCEL_GRACE).await;
                            let _ = killpg(pid, Signal::SIGKILL);
                        });
                    }
                }
            }
        }
        drop(stdin);
        let status = child
            .wait()
            .await
            .map_err(|e| BackendError::NoResult(e.to_string()))?;
        if let Some(pid) = pid {
            // Anything left in the group (a command Codex started) goes too.
            let _ = killpg(pid, Signal::SIGKILL);
        }
        let last_stderr = stderr_tail.await.unwrap_or_default();
        match outcome {
            Some(o) => Ok(o),
            None if cancelled => Ok(RunOutcome {
                ok: false,
                error: Some("run cancelled".into()),
                ..Default::default()
            }),
            None => Err(BackendError::NoResult(format!(
                "agent-run exited with {status} without a result{}",
                if last_stderr.is_empty() {
                    String::new()
                } else {
                    format!(": {last_stderr}")
                }
            ))),
        }
    }

    async fn record_run(
        &self,
        agent: &AgentId,
        run: RunRecord,
    ) -> Result<AgentRecord, BackendError> {
        let path = self.agent_dir(agent).join(RECORD_FILE);
        let _guard = self.records.lock().await;
        let read = path.clone();
        let mut record = blocking(move || Self::read_record(&read))
            .await
            .map_err(|e| BackendError::state(agent, e))?
            .unwrap_or_else(|| AgentRecord::new(agent, Utc::now()));
        record.apply(&run, Utc::now());
        let new = record.clone();
        blocking(move || Self::write_record(&path, &new))
            .await
            .map_err(|e| BackendError::write_state(agent, io_reason(&e)))?;
        Ok(record)
    }

    async fn note_run(&self, agent: &AgentId, entry: RunEntry) -> Result<(), BackendError> {
        let path = self.agent_dir(agent).join(RECORD_FILE);
        let _guard = self.records.lock().await;
        let read = path.clone();
        let Some(mut record) = blocking(move || Self::read_record(&read))
            .await
            .map_err(|e| BackendError::state(agent, e))?
        else {
            return Ok(());
        };
        if upsert(&mut record.recent_runs, entry) {
            blocking(move || Self::write_record(&path, &record))
                .await
                .map_err(|e| BackendError::write_state(agent, io_reason(&e)))?;
        }
        Ok(())
    }

    fn run_client(&self) -> Option<&RunClient> {
        Some(&self.runs)
    }

    async fn agents_with_runs(&self) -> Vec<AgentId> {
        let data_dir = self.data_dir.clone();
        blocking(move || Ok(agents_with_runs(&data_dir)))
            .await
            .unwrap_or_default()
    }

    async fn get_agent(&self, agent: &AgentId) -> Result<Option<AgentRecord>, BackendError> {
        let path = self.agent_dir(agent).join(RECORD_FILE);
        blocking(move || Self::read_record(&path))
            .await
            .map_err(|e| BackendError::state(agent, e))
    }

    async fn list_agents(&self, tenant: &Tenant) -> Result<AgentList, BackendError> {
        let dir = self.tenant_dir(tenant).join("agents");
        blocking(move || Self::list_records(&dir))
            .await
            .map_err(|e| BackendError::State {
                agent: format!("{tenant}/*"),
                reason: e.to_string(),
            })
    }

    async fn release_agent(&self, agent: &AgentId) -> Result<(), BackendError> {
        // Nothing runs between calls locally; only scratch space is freed.
        let tmp = self.agent_dir(agent).join("tmp");
        blocking(move || {
            empty_dir(&tmp);
            Ok(())
        })
        .await
        .map_err(|e| BackendError::write_state(agent, e))
    }
}

#[cfg(test)]
#[path = "local_tests.rs"]
mod tests;
