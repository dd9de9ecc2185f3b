//! TCP reachability between pods, as NetworkPolicies decide it: busybox's
//! `nc` run in a pod through exec, listeners that answer anyone who gets
//! through, and polling until the enforcer has caught up.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::cluster::{self, TestNamespace};
use super::kube_gateway::HOST_ON_POD_NETWORK;

/// A port the tests' listeners use, and nothing else in their pods does.
pub const LISTEN_PORT: u16 = 9000;

#[derive(Debug, PartialEq, Clone, Copy)]
pub enum Reach {
    /// Connected: the peer answered.
    Answered,
    /// The peer's machine said no one listens on that port.
    Refused,
    /// Nothing came back: the connection was dropped.
    Dropped,
}

/// The probe where there is no nc (the Dockerfile's agent image has Node.js
/// for Codex, not busybox): the same request, the same words on stderr for
/// a connection that times out or is refused, and a quiet end when a
/// connection stays idle, as `nc -w 3` does.
const NODE_PROBE: &str = r#"const [ip, port] = process.argv.slice(1);
const s = require("net").connect({ host: ip, port: Number(port) });
let connected = false;
s.setTimeout(3000, () => { if (!connected) console.error("timed out"); process.exit(connected ? 0 : 1); });
s.on("connect", () => { connected = true; s.write("GET / HTTP/1.0\r\n\r\n"); });
s.on("data", (d) => process.stdout.write(d));
s.on("error", (e) => { console.error(e.code === "ECONNREFUSED" ? "refused" : e.message); process.exit(1); });
s.on("close", () => process.exit(0));"#;

/// Opens a TCP connection from `pod` to `ip:port` with busybox's nc (or
/// Node.js where there is no nc), sends an HTTP/1.0 request (HTTP servers
/// answer it, TLS and echo servers close). The input stays open a while:
/// nc half-closes the connection when its input ends, and hyper drops a
/// connection that does so before answering.
pub async fn reach(ns: &TestNamespace, pod: &str, ip: &str, port: u16) -> Reach {
    let script = format!(
        "if command -v nc >/dev/null 2>&1; then \
         (printf 'GET / HTTP/1.0\\r\\n\\r\\n'; sleep 2) | nc -w 3 {ip} {port}; \
         else node -e '{NODE_PROBE}' {ip} {port}; fi"
    );
    let out = cluster::exec_with(
        &ns.api::<Pod>(),
        pod,
        None,
        &["sh", "-c", &script],
        None,
        Duration::from_secs(30),
    )
    .await;
    if out.stderr.contains("timed out") {
        Reach::Dropped
    } else if out.stderr.contains("refused") {
        Reach::Refused
    } else {
        assert!(
            !out.stdout.is_empty(),
            "nc from {pod} to {ip}:{port}: {out:?}"
        );
        Reach::Answered
    }
}

/// Where probes start from: a namespace, a pod in it, and what the pod
/// should see: (what, ip, port, expected).
pub type Probes<'a> = (
    &'a TestNamespace,
    &'a str,
    &'a [(&'a str, String, u16, Reach)],
);

/// Probes until every result is the expected one. Enforcement follows the
/// API a moment late (pod addresses and policies reach the enforcer through
/// watches), as with every network plugin: allow it 30 seconds.
pub async fn probe_until(what: &str, first: Probes<'_>, second: Probes<'_>) {
    let wanted: Vec<Reach> = first.2.iter().chain(second.2).map(|p| p.3).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = probe_all(first, second).await;
        if seen == wanted {
            return;
        }
        let report: Vec<String> = first
            .2
            .iter()
            .map(|p| (first.1, p))
            .chain(second.2.iter().map(|p| (second.1, p)))
            .zip(&seen)
            .filter(|((_, p), got)| p.3 != **got)
            .map(|((from, p), got)| {
                format!(
                    "{from} -> {} ({}:{}): {got:?}, wanted {:?}",
                    p.0, p.1, p.2, p.3
                )
            })
            .collect();
        eprintln!("{what}: {report:?}");
        assert!(Instant::now() < deadline, "{what}: {report:#?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Runs both lists of probes at once; their results in order.
pub async fn probe_all(first: Probes<'_>, second: Probes<'_>) -> Vec<Reach> {
    let (mut a, b) = tokio::join!(probe_from(first), probe_from(second));
    a.extend(b);
    a
}

pub async fn probe_from((ns, pod, probes): Probes<'_>) -> Vec<Reach> {
    join_all(
        probes
            .iter()
            .map(|(_, ip, port, _)| reach(ns, pod, ip, *port)),
    )
    .await
}

pub async fn assert_answers(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut buf = [0u8; 2];
        let got = async {
            let mut s = tokio::net::TcpStream::connect(addr).await?;
            s.read_exact(&mut buf).await?;
            std::io::Result::Ok(buf)
        };
        match tokio::time::timeout(Duration::from_secs(3), got).await {
            Ok(Ok(b)) if &b == b"hi" => return,
            other => assert!(
                Instant::now() < deadline,
                "{addr} does not answer: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A shell command that leaves a listener on LISTEN_PORT answering "hi"
/// running in the pod it is exec'd in: busybox's nc, or Node.js where there
/// is no nc (the Dockerfile's agent image). A connection the prober drops
/// must not end Node.js: its socket errors are ignored.
pub fn listen_in_background() -> String {
    format!(
        "if command -v nc >/dev/null 2>&1; then \
         setsid nc -ll -p {LISTEN_PORT} -e echo hi </dev/null >/dev/null 2>&1 & \
         else setsid node -e 'require(\"net\").createServer((s) => {{ s.on(\"error\", () => {{}}); s.end(\"hi\\n\"); }}).listen({LISTEN_PORT})' \
         </dev/null >/dev/null 2>&1 & fi"
    )
}

/// A listener on the machine's address on the pod bridge that answers "hi".
pub async fn host_listener() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((HOST_ON_POD_NETWORK, 0)))
        .await
        .expect("binding on the pod bridge");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(b"hi\n").await;
        }
    });
    addr
}

/// A plain pod in another namespace, listening on LISTEN_PORT.
pub async fn outsider_pod(ns: &TestNamespace) -> String {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "stranger"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": false,
            "containers": [{
                "name": "listen", "image": cluster::busybox_image(), "imagePullPolicy": "Never",
                "command": ["nc", "-ll", "-p", LISTEN_PORT.to_string(), "-e", "echo", "hi"],
            }],
        },
    }))
    .unwrap();
    let pods = ns.api::<Pod>();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    cluster::wait_for_pod_running(&pods, "stranger", cluster::POD_START_TIMEOUT).await;
    "stranger".to_owned()
}
