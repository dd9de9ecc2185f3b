//! A real `codex-mcp serve` process for the integration tests, wired to the
//! real Codex CLI and a [`FakeModel`](super::fake_model::FakeModel).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::fake_model::{FakeModel, API_KEY_ENV, MODEL, NO_RETRIES};
use super::{codex_bin, codex_mcp_bin};

/// The API key the gateway hands Codex for the fake provider; tests scan logs for it.
pub const TEST_API_KEY: &str = "sk-test-4f7c2a9e51b3d8f6";

/// How to start a gateway.
#[derive(Clone, Debug)]
pub struct GatewayOptions {
    pub data_dir: PathBuf,
    pub model_base_url: String,
    /// `None` runs open (`--no-auth`); `Some(file)` uses that token file.
    pub auth_tokens: Option<PathBuf>,
    /// Don't pass `--no-auth` or a token file: the default (generated token).
    pub default_auth: bool,
    pub codex_bin: PathBuf,
    pub env: Vec<(String, String)>,
    /// A command the gateway is started through (e.g. `prlimit --nofile=...`),
    /// which must exec it so the pid stays the gateway's.
    pub wrapper: Vec<String>,
    /// The gateway's working directory (the test's when `None`).
    pub cwd: Option<PathBuf>,
}

impl GatewayOptions {
    pub fn new(data_dir: &Path, model: &FakeModel) -> Self {
        Self {
            data_dir: data_dir.to_path_buf(),
            model_base_url: model.base_url(),
            auth_tokens: None,
            default_auth: false,
            codex_bin: codex_bin(),
            env: Vec::new(),
            wrapper: Vec::new(),
            cwd: None,
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// A running gateway; stopped (SIGTERM, then waited for) on drop.
pub struct Gateway {
    child: Child,
    pub url: String,
    pub options: GatewayOptions,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Gateway {
    pub fn start(options: GatewayOptions) -> Self {
        let mut cmd = match options.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(codex_mcp_bin());
                c
            }
            None => Command::new(codex_mcp_bin()),
        };
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&options.data_dir)
            .arg("--log-format")
            .arg("json")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &options.data_dir)
            .env("CODEX_BIN", &options.codex_bin)
            .env("CODEX_MODEL", MODEL)
            .env("CODEX_PROVIDER", "fake")
            .env("CODEX_PROVIDER_BASE_URL", &options.model_base_url)
            .env("CODEX_PROVIDER_ENV_KEY", API_KEY_ENV)
            .env("OPENAI_API_KEY", TEST_API_KEY)
            .env("CODEX_MCP_CODEX_CONFIG", NO_RETRIES.join(";"))
            .env("LOG_LEVEL", "debug,hyper=info,h2=info,tower=info")
            .envs(options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(cwd) = &options.cwd {
            cmd.current_dir(cwd);
        }
        if let Some(tokens) = &options.auth_tokens {
            cmd.arg("--auth-tokens").arg(tokens);
        } else if !options.default_auth {
            cmd.arg("--no-auth");
        }
        let mut child = cmd.spawn().expect("start codex-mcp serve");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(i) = line.find("listening on http://") {
                        let rest = &line[i + "listening on ".len()..];
                        let url: String = rest
                            .chars()
                            .take_while(|c| !c.is_whitespace() && *c != '"')
                            .collect();
                        let _ = tx.send(url);
                    }
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "gateway did not start; logs:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        };
        Self {
            child,
            url,
            options,
            logs,
        }
    }

    /// Stops this gateway and starts another on the same data directory.
    pub fn restart(mut self) -> Self {
        self.stop();
        Self::start(self.options.clone())
    }

    /// SIGKILL (no clean shutdown, as a crash or an OOM kill), then a new
    /// gateway on the same data directory.
    pub fn kill_and_restart(mut self) -> Self {
        let _ = self.child.kill();
        let _ = self.child.wait();
        Self::start(self.options.clone())
    }

    pub fn stop(&mut self) {
        super::terminate(&mut self.child);
    }

    /// Fails the test unless `/health` answers 200.
    pub async fn assert_healthy(&self) {
        let r = reqwest::get(format!("{}/health", self.url)).await.unwrap();
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.url)
    }

    pub fn sse_url(&self) -> String {
        format!("{}/sse", self.url)
    }

    pub fn agent_url(&self, agent: &str, endpoint: &str) -> String {
        format!("{}/agents/{agent}/{endpoint}", self.url)
    }

    /// An agent's workspace under the default tenant.
    pub fn workspace(&self, agent: &str) -> PathBuf {
        self.options
            .data_dir
            .join("agents")
            .join(agent)
            .join("workspace")
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Processes whose command line mentions `needle` (e.g. a workspace path).
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains(needle) {
            out.push(pid);
        }
    }
    out
}

/// Waits up to `within` until no process mentions `needle`; answers
/// whether none does.
pub async fn wait_until_gone(needle: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while !processes_mentioning(needle).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    processes_mentioning(needle).is_empty()
}

/// What most local tests start from: a gateway of their own on a fresh data
/// directory (`dir`), with its own fake model.
pub struct LocalGateway {
    pub dir: TestDir,
    pub model: FakeModel,
    pub gateway: Gateway,
}

/// A test's data directory. Runs outlive the gateway that started them
/// (that is what makes them durable), so a test that stopped or killed its
/// gateway mid-run would leave the run going after the test, in a deleted
/// directory, until its time limit: dropping this ends everything that
/// mentions the directory, then removes it.
pub struct TestDir(tempfile::TempDir);

impl TestDir {
    pub fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let dir = self.0.path().to_string_lossy().into_owned();
        for pid in processes_mentioning(&dir) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

impl LocalGateway {
    pub async fn start() -> Self {
        Self::start_with(|o| o).await
    }

    pub async fn start_with(f: impl FnOnce(GatewayOptions) -> GatewayOptions) -> Self {
        let dir = TestDir::new();
        let model = FakeModel::start().await;
        let gateway = Gateway::start(f(GatewayOptions::new(dir.path(), &model)));
        Self {
            dir,
            model,
            gateway,
        }
    }
}
