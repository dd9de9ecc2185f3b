//! Handle on the Kubernetes cluster that the cluster tests run against.
//!
//! The cluster is named by `CODEX_MCP_TEST_KUBECONFIG`: the kubeconfig of the
//! project's single-node test cluster (`tests/cluster/up.sh` writes it to
//! `$CODEX_MCP_CACHE/cluster/kubeconfig`; `make test` does all of that), or of
//! any cluster you already have (kind, k3d, ...). Each test works in its own
//! [`TestNamespace`] and deletes it at the end:
//!
//! ```ignore
//! #[tokio::test]
//! async fn something() {
//!     let ns = TestNamespace::create("something").await;
//!     let pods: Api<Pod> = ns.api();
//!     // ... create a pod, cluster::wait_for_pod_running(&pods, "p", ...) ...
//!     let out = cluster::exec_ok(&pods, "p", &["cat", "/etc/hostname"]).await;
//!     ns.cleanup().await;
//! }
//! ```
//!
//! One `kube::Client` is shared by all tests of a test binary. It lives on a
//! runtime of its own, so it keeps working whichever test's runtime (each
//! `#[tokio::test]` has one) created it or has ended since.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, AttachParams, DeleteParams, PostParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, Resource};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The variable naming the kubeconfig of the cluster to test against.
pub const KUBECONFIG_VAR: &str = "CODEX_MCP_TEST_KUBECONFIG";
/// The image `tests/cluster/up.sh` builds: busybox, running as uid 1000.
pub const DEFAULT_BUSYBOX_IMAGE: &str = "codex-mcp-test/busybox:1";
/// Label put on every test namespace, to find leftovers.
pub const TEST_LABEL: &str = "codex-mcp.dev/test";

/// How long a test waits for a pod to start by default.
pub const POD_START_TIMEOUT: Duration = Duration::from_secs(120);

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("test-cluster-client")
            .enable_all()
            .build()
            .expect("building the cluster client runtime")
    })
}

/// The kubeconfig file of the cluster under test; fails the test with
/// instructions when none is set.
pub fn kubeconfig_path() -> PathBuf {
    match std::env::var_os(KUBECONFIG_VAR) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => panic!(
            "{KUBECONFIG_VAR} is not set, and this test needs a Kubernetes cluster. \
             Run `make test` (it starts the project's test cluster and sets it), or start the \
             cluster with `tests/cluster/up.sh` and \
             `export {KUBECONFIG_VAR}=$CODEX_MCP_CACHE/cluster/kubeconfig` \
             (CODEX_MCP_CACHE defaults to ~/.cache/codex-mcp), or point it at the kubeconfig \
             of an existing cluster (kind, k3d, ...)."
        ),
    }
}

/// The client configuration for the cluster under test (admin credentials).
pub fn config() -> Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let path = kubeconfig_path();
            let kubeconfig = Kubeconfig::read_from(&path)
                .unwrap_or_else(|e| panic!("reading {KUBECONFIG_VAR}={}: {e}", path.display()));
            // Loading is async (exec credential plugins); run it on the shared
            // runtime from a plain thread, as the caller may be inside another
            // runtime, where blocking on one is not allowed.
            std::thread::spawn(move || {
                runtime().block_on(Config::from_custom_kubeconfig(
                    kubeconfig,
                    &KubeConfigOptions::default(),
                ))
            })
            .join()
            .expect("loading the kubeconfig panicked")
            .unwrap_or_else(|e| panic!("loading {KUBECONFIG_VAR}={}: {e}", path.display()))
        })
        .clone()
}

/// Builds a client whose background tasks run on the shared runtime.
pub fn client_for(config: Config) -> Client {
    let _guard = runtime().enter();
    Client::try_from(config).expect("building a kube client")
}

/// The shared admin client of this test binary.
pub fn client() -> Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| client_for(config())).clone()
}

/// A client that authenticates with a bearer token (e.g. a service
/// account's) instead of the admin credentials.
pub fn client_with_token(token: &str) -> Client {
    let mut config = config();
    config.auth_info = AuthInfo {
        token: Some(token.to_string().into()),
        ..AuthInfo::default()
    };
    client_for(config)
}

/// The image cluster tests use for plain pods: busybox (sh, sleep, cat, ...)
/// running as uid 1000. `CODEX_MCP_TEST_BUSYBOX_IMAGE` overrides it for a
/// cluster that lacks the harness's image (e.g. `busybox:1.36` on kind).
pub fn busybox_image() -> String {
    std::env::var("CODEX_MCP_TEST_BUSYBOX_IMAGE")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_BUSYBOX_IMAGE.to_string())
}

/// The repository root (where `tests/cluster/*.sh` are).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Builds an image with `tests/cluster/build-image.sh IMAGE ARGS...` and loads
/// it into the test cluster's containerd (only for the project's own test
/// cluster). See that script for the arguments (`--bin`, `--file`, ...).
pub fn build_image(image: &str, args: &[&str]) {
    let script = repo_root().join("tests/cluster/build-image.sh");
    let out = std::process::Command::new(&script)
        .arg(image)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} {image} {args:?} failed ({}):\n{}{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The apiserver's minor version (e.g. 37 for 1.37).
pub async fn server_minor_version() -> u32 {
    static MINOR: tokio::sync::OnceCell<u32> = tokio::sync::OnceCell::const_new();
    *MINOR
        .get_or_init(|| async {
            let info = client()
                .apiserver_version()
                .await
                .expect("asking the apiserver for its version");
            // Some distributions say "20+".
            info.minor
                .trim_end_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .unwrap_or_else(|_| panic!("unexpected apiserver minor version {:?}", info.minor))
        })
        .await
}

/// A uniquely named namespace for one test. Call [`TestNamespace::cleanup`]
/// at the end of the test; if the test panics first, dropping it still asks
/// the apiserver to delete the namespace (without waiting).
pub struct TestNamespace {
    name: String,
    client: Client,
    cleaned_up: bool,
}

impl TestNamespace {
    /// Creates `cmt-<prefix>-<random>` and waits until pods can be created in
    /// it (its `default` service account exists, with a token where the
    /// cluster still issues token secrets).
    pub async fn create(prefix: &str) -> TestNamespace {
        let client = client();
        let prefix: String = prefix
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(40)
            .collect();
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("cmt-{}-{}", prefix.trim_matches('-'), &suffix[..8]);
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let mut ns = Namespace::default();
        ns.metadata.name = Some(name.clone());
        ns.metadata.labels = Some(BTreeMap::from([(
            TEST_LABEL.to_string(),
            "true".to_string(),
        )]));
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        let this = TestNamespace {
            name,
            client,
            cleaned_up: false,
        };

        // Before 1.24 the ServiceAccount admission plugin refuses pods until
        // the token controller has given the account a token secret.
        let needs_token_secret = server_minor_version().await < 24;
        let accounts: Api<ServiceAccount> = this.api();
        wait_for(
            &accounts,
            "default",
            Duration::from_secs(60),
            "the namespace's default service account",
            |sa| !needs_token_secret || sa.secrets.as_ref().is_some_and(|s| !s.is_empty()),
        )
        .await;
        this
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// An `Api` for namespaced objects of kind `K` in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Deletes the namespace and waits (up to two minutes) until it is gone,
    /// so that the next test starts on a quiet cluster.
    pub async fn cleanup(mut self) {
        self.cleaned_up = true;
        // Pods first, without grace: otherwise the namespace waits for each
        // kubelet-confirmed termination (seconds per pod).
        let pods: Api<Pod> = self.api();
        let now = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        if let Err(e) = pods.delete_collection(&now, &Default::default()).await {
            eprintln!("warning: deleting the pods of {}: {e}", self.name);
        }
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        match namespaces
            .delete(&self.name, &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return,
            Err(e) => panic!("deleting namespace {}: {e}", self.name),
        }
        wait_for_deletion(&namespaces, &self.name, Duration::from_secs(120)).await;
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if self.cleaned_up {
            return;
        }
        // A client of its own: the shared one's pooled connections may be
        // driven by the test's runtime, which is blocked in this drop, and a
        // request over them would hang until the timeout below.
        let (client, name) = (client_for(config()), self.name.clone());
        // Best effort: the test may be unwinding inside its runtime, so do the
        // request on the shared runtime from a plain thread.
        let _ = std::thread::spawn(move || {
            runtime().block_on(async move {
                let namespaces: Api<Namespace> = Api::all(client);
                let params = DeleteParams::default();
                let delete = namespaces.delete(&name, &params);
                if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(10), delete).await {
                    eprintln!("warning: could not delete test namespace {name}: {e}");
                }
            })
        })
        .join();
    }
}

/// Polls `name` until `condition` holds and returns it; fails the test with
/// `what` and the object's last state after `timeout`.
pub async fn wait_for<K, F>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    what: &str,
    condition: F,
) -> K
where
    K: Clone + DeserializeOwned + Debug,
    F: Fn(&K) -> bool,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match api.get_opt(name).await {
            Ok(Some(obj)) if condition(&obj) => return obj,
            Ok(obj) => format!("{obj:#?}"),
            Err(e) => format!("error: {e}"),
        };
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what} ({name}); last seen: {last}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until `name` no longer exists.
pub async fn wait_for_deletion<K>(api: &Api<K>, name: &str, timeout: Duration)
where
    K: Clone + DeserializeOwned + Debug,
{
    let deadline = Instant::now() + timeout;
    loop {
        match api.get_opt(name).await {
            Ok(None) => return,
            Ok(Some(_)) => {}
            Err(e) => eprintln!("warning: checking whether {name} is gone: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {name} to be deleted"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Reasons a container waits for that will not go away by waiting longer.
/// (Others, like CreateContainerConfigError for a Secret created a moment
/// after the pod, or CreateContainerError on a busy node, clear by themselves.)
const HOPELESS_WAITING_REASONS: &[&str] = &[
    "ErrImageNeverPull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CrashLoopBackOff",
];

/// Waits until the pod runs with all containers ready. Fails early, with the
/// pod's status and events, when it cannot start (image missing, pod failed).
pub async fn wait_for_pod_running(api: &Api<Pod>, name: &str, timeout: Duration) -> Pod {
    let deadline = Instant::now() + timeout;
    loop {
        let pod = api
            .get_opt(name)
            .await
            .unwrap_or_else(|e| panic!("getting pod {name}: {e}"));
        let problem = match &pod {
            Some(pod) => {
                let status = pod.status.clone().unwrap_or_default();
                let phase = status.phase.clone().unwrap_or_default();
                let all_ready = status
                    .container_statuses
                    .as_ref()
                    .is_some_and(|cs| !cs.is_empty() && cs.iter().all(|c| c.ready));
                if phase == "Running" && all_ready {
                    return pod.clone();
                }
                let hopeless = status
                    .container_statuses
                    .iter()
                    .chain(status.init_container_statuses.iter())
                    .flatten()
                    .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
                    .find(|r| HOPELESS_WAITING_REASONS.contains(&r.as_str()));
                if phase == "Failed" || phase == "Succeeded" {
                    Some(format!("pod {name} ended (phase {phase})"))
                } else {
                    hopeless.map(|r| format!("pod {name} cannot start: {r}"))
                }
            }
            None => None,
        };
        let timed_out = Instant::now() >= deadline;
        if problem.is_some() || timed_out {
            let problem = problem.unwrap_or_else(|| {
                format!("timed out after {timeout:?} waiting for pod {name} to run")
            });
            panic!(
                "{problem}\nstatus: {:#?}\nevents:\n{}",
                pod.and_then(|p| p.status),
                pod_events(api, name).await
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The events about a pod, one per line, for failure messages.
pub async fn pod_events(pods: &Api<Pod>, name: &str) -> String {
    use k8s_openapi::api::core::v1::Event;
    let Some(ns) = pods.namespace() else {
        return String::new();
    };
    let events: Api<Event> = Api::namespaced(client(), ns);
    let params = kube::api::ListParams::default().fields(&format!("involvedObject.name={name}"));
    match events.list(&params).await {
        Ok(list) => list
            .items
            .iter()
            .map(|e| {
                format!(
                    "  {} {}: {}",
                    e.type_.clone().unwrap_or_default(),
                    e.reason.clone().unwrap_or_default(),
                    e.message.clone().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => format!("  (could not list events: {e})"),
    }
}

/// What a command run in a pod printed, and how it ended.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    /// The exit code (0 for success), when the cluster reported one.
    pub exit_code: Option<i32>,
    /// The raw status the cluster sent at the end.
    pub status: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// Runs `command` in the pod's first container (or `container`), optionally
/// writing `stdin` to it, and collects its output. The stream is closed after
/// `stdin` is written, but note that clusters older than 1.29 (protocol v4)
/// cannot signal end-of-input: give commands input
/// they stop reading by themselves (one line, a length) rather than "until
/// EOF". Fails the test after `timeout`.
pub async fn exec_with(
    pods: &Api<Pod>,
    pod: &str,
    container: Option<&str>,
    command: &[&str],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> ExecOutput {
    let mut params = AttachParams::default()
        .stdout(true)
        .stderr(true)
        .stdin(stdin.is_some());
    if let Some(container) = container {
        params = params.container(container);
    }
    let run = async {
        let mut attached = pods
            .exec(pod, command.to_vec(), &params)
            .await
            .unwrap_or_else(|e| panic!("exec {command:?} in pod {pod}: {e}"));
        if let Some(input) = stdin {
            let mut writer = attached.stdin().expect("stdin was requested");
            writer
                .write_all(input)
                .await
                .expect("writing to the command's stdin");
            writer.shutdown().await.ok();
        }
        let mut out = attached.stdout().expect("stdout was requested");
        let mut err = attached.stderr().expect("stderr was requested");
        let status = attached.take_status().expect("status is taken once");
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let (r1, r2) = tokio::join!(out.read_to_end(&mut stdout), err.read_to_end(&mut stderr));
        r1.expect("reading the command's stdout");
        r2.expect("reading the command's stderr");
        let status = status.await;
        attached.join().await.ok();
        (stdout, stderr, status)
    };
    let (stdout, stderr, status) = tokio::time::timeout(timeout, run)
        .await
        .unwrap_or_else(|_| {
            panic!("exec {command:?} in pod {pod} did not finish within {timeout:?}")
        });
    let exit_code = status.as_ref().and_then(|s| match s.status.as_deref() {
        Some("Success") => Some(0),
        _ => s
            .details
            .as_ref()?
            .causes
            .as_ref()?
            .iter()
            .find(|c| c.reason.as_deref() == Some("ExitCode"))?
            .message
            .as_ref()?
            .parse()
            .ok(),
    });
    ExecOutput {
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        exit_code,
        status,
    }
}

/// Runs `command` in the pod (first container, no input, one minute).
pub async fn exec(pods: &Api<Pod>, pod: &str, command: &[&str]) -> ExecOutput {
    exec_with(pods, pod, None, command, None, Duration::from_secs(60)).await
}

/// Runs `command` in the pod, fails the test unless it exits 0, and returns
/// its stdout.
pub async fn exec_ok(pods: &Api<Pod>, pod: &str, command: &[&str]) -> String {
    let out = exec(pods, pod, command).await;
    assert!(
        out.success(),
        "{command:?} in pod {pod} failed: exit {:?}\nstdout: {}\nstderr: {}\nstatus: {:?}",
        out.exit_code,
        out.stdout,
        out.stderr,
        out.status
    );
    out.stdout
}
