//! The test cluster's edge controller: Traefik Proxy, built from Go modules
//! by `tests/cluster/install-edge.sh`, run as a host process against a
//! kubeconfig with its Kubernetes Gateway API provider on, as the chart's
//! HTTPRoute (and, optionally, Ingress) is reached by users' clients.
//!
//! Traefik serves one entrypoint on a free port of `127.0.0.1` (or another
//! address of the host, e.g. the pod bridge's 10.87.0.1): the Gateway's
//! listener must name that very port, which [`Edge::gateway_yaml`] does.
//! It reads Gateways and routes of the given namespaces only, and only
//! GatewayClasses labelled with its own id, so edges of tests running side
//! by side on the one cluster leave each other alone.
//!
//! Its settings are Traefik's defaults otherwise, as users get them: its
//! entrypoint timeouts bound reading a request (60 s) and an idle
//! connection, not a long answer, and it flushes event streams at once, so
//! SSE streams and long runs need nothing of their own.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::cache_dir;

/// The `controllerName` Traefik's Gateway API provider answers to.
pub const GATEWAY_CONTROLLER: &str = "traefik.io/gateway-controller";
/// The label on the GatewayClass that selects one edge (its value: the id).
pub const CLASS_LABEL: &str = "codexmcp.dev/edge";

/// Traefik, as install-edge.sh caches it.
pub fn traefik_bin() -> PathBuf {
    cache_dir().join("bin/traefik")
}

/// The standard channel Gateway API CRDs, as install-edge.sh lays them out
/// from the sigs.k8s.io/gateway-api module, for `kubectl apply
/// --server-side -f`.
pub fn gateway_api_crds() -> PathBuf {
    cache_dir().join("gateway-api/standard-install.yaml")
}

/// How to start an edge.
#[derive(Clone, Debug)]
pub struct EdgeOptions {
    pub kubeconfig: PathBuf,
    /// The namespaces whose Gateways, routes and Services it reads.
    pub namespaces: Vec<String>,
    /// The host address its entrypoint listens on.
    pub address: IpAddr,
    /// Also serve Ingresses of those namespaces (its Kubernetes Ingress provider).
    pub ingress: bool,
}

impl EdgeOptions {
    pub fn new(kubeconfig: &Path, namespace: &str) -> Self {
        Self {
            kubeconfig: kubeconfig.to_owned(),
            namespaces: vec![namespace.to_owned()],
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ingress: false,
        }
    }
}

/// A running Traefik; SIGTERM (then SIGKILL) on drop.
pub struct Edge {
    child: Option<Child>,
    logs: Arc<Mutex<Vec<String>>>,
    /// The entrypoint's URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// Its port: the Gateway's listener port.
    pub port: u16,
    /// The GatewayClass label value that selects this edge.
    pub id: String,
}

impl Edge {
    /// Starts Traefik and waits until it answers its `/ping`.
    pub fn start(options: EdgeOptions) -> Edge {
        let bin = traefik_bin();
        assert!(
            bin.exists(),
            "{} is missing: run tests/cluster/install-edge.sh",
            bin.display()
        );
        let port = free_port(options.address);
        let ping_port = free_port(options.address);
        let id = format!("edge-{}-{port}", std::process::id());
        let addr = |p: u16| std::net::SocketAddr::new(options.address, p).to_string();
        let namespaces = options.namespaces.join(",");
        let mut cmd = Command::new(&bin);
        cmd.args([
            // No calls home: the machine has no route out.
            "--global.checkNewVersion=false",
            "--global.sendAnonymousUsage=false",
            "--log.level=INFO",
            "--accessLog=true",
        ])
        .arg(format!("--entryPoints.web.address={}", addr(port)))
        .arg(format!("--entryPoints.traefik.address={}", addr(ping_port)))
        .arg("--ping=true")
        .arg("--providers.kubernetesgateway=true")
        .arg(format!(
            "--providers.kubernetesgateway.namespaces={namespaces}"
        ))
        .arg(format!(
            "--providers.kubernetesgateway.labelSelector={CLASS_LABEL}={id}"
        ))
        .arg(format!(
            "--providers.kubernetesgateway.statusAddress.ip={}",
            options.address
        ));
        if options.ingress {
            cmd.arg("--providers.kubernetesingress=true").arg(format!(
                "--providers.kubernetesingress.namespaces={namespaces}"
            ));
        }
        // The providers take their cluster from KUBECONFIG; in-cluster
        // variables would win over it.
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KUBECONFIG", &options.kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let logs = Arc::new(Mutex::new(Vec::new()));
        // Traefik logs to stdout; stderr carries what fails before logging.
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let mut edge = Edge {
            child: Some(child),
            logs,
            url: format!("http://{}", addr(port)),
            port,
            id,
        };
        let ping = std::net::SocketAddr::new(options.address, ping_port);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if pings(ping) {
                return edge;
            }
            if let Some(Ok(Some(status))) = edge.child.as_mut().map(Child::try_wait) {
                panic!("traefik exited ({status}):\n{}", edge.logs().join("\n"));
            }
            if Instant::now() > deadline {
                edge.stop();
                panic!(
                    "traefik did not answer http://{ping}/ping:\n{}",
                    edge.logs().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A GatewayClass of this edge and a Gateway `name` in `namespace`
    /// with one HTTP listener on the edge's port, admitting routes of its
    /// own namespace: what the chart's `httpRoute.parentRefs` then names
    /// (`[{name: NAME}]`). For `kubectl apply -f -`.
    pub fn gateway_yaml(&self, namespace: &str, name: &str) -> String {
        let class = self.id.clone();
        format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: {class}
  labels:
    {CLASS_LABEL}: {class}
spec:
  controllerName: {GATEWAY_CONTROLLER}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: {name}
  namespace: {namespace}
spec:
  gatewayClassName: {class}
  listeners:
    - name: web
      protocol: HTTP
      port: {port}
      allowedRoutes:
        namespaces:
          from: Same
",
            port = self.port
        )
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            super::terminate(&mut child);
        }
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- traefik logs ---\n{}", self.logs().join("\n"));
        }
        self.stop();
    }
}

/// Whether Traefik answers `GET /ping` with 200 (plain HTTP/1.0 over std,
/// so that callers need no runtime).
fn pings(addr: std::net::SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut conn) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let mut answer = String::new();
    let sent = conn.write_all(b"GET /ping HTTP/1.0\r\nHost: localhost\r\n\r\n");
    sent.is_ok()
        && conn.read_to_string(&mut answer).is_ok()
        && answer.split_whitespace().nth(1) == Some("200")
}

/// A port free on `address` now (the kernel's pick; released at once).
fn free_port(address: IpAddr) -> u16 {
    TcpListener::bind((address, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on {address}: {e}"))
}
