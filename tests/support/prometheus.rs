//! Debian's `promtool` and a real `prometheus` server, as
//! `scripts/install-test-deps.sh` unpacks them into the cache
//! (`$CODEX_MCP_CACHE/prometheus/bin`); `CODEX_MCP_TEST_PROMETHEUS_BIN` names
//! another directory holding both.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("CODEX_MCP_TEST_PROMETHEUS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| super::cache_dir().join("prometheus/bin"));
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-test-deps.sh",
        path.display()
    );
    path
}

/// `promtool check metrics` on an exposition: its exit code and everything
/// it printed (lint problems go to stderr, one per line).
pub fn check_metrics(exposition: &str) -> (Option<i32>, String) {
    let mut child = Command::new(bin("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .expect("feeding promtool");
    let out = child.wait_with_output().expect("promtool");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), printed)
}

/// One scrape job: its name and the `host:port` of its one target.
pub struct Job<'a> {
    pub name: &'a str,
    pub target: &'a str,
}

/// A `prometheus` server on a loopback port, scraping every second, with
/// its storage in a temporary directory; killed on drop.
pub struct Prometheus {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub url: String,
}

impl Prometheus {
    pub async fn start(jobs: &[Job<'_>]) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        let scrape_configs: Vec<Value> = jobs
            .iter()
            .map(|j| json!({"job_name": j.name, "static_configs": [{"targets": [j.target]}]}))
            .collect();
        // JSON is YAML, so the config needs no YAML writer.
        let config = json!({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": scrape_configs,
        });
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config.to_string()).expect("writing the config");
        let addr = free_loopback_addr();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(bin("prometheus"))
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("starting prometheus");
        let mut prom = Prometheus {
            child: Some(child),
            dir,
            url: format!("http://{addr}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/-/ready", prom.url)).await {
                if r.status().is_success() {
                    return prom;
                }
            }
            if let Some(status) = prom
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("prometheus exited with {status}:\n{}", prom.log());
            }
            assert!(
                Instant::now() < deadline,
                "prometheus did not become ready:\n{}",
                prom.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query: the whole API answer (`status`, `data`, `error`).
    pub async fn query(&self, promql: &str) -> Value {
        reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", promql)])
            .send()
            .await
            .unwrap_or_else(|e| panic!("querying {promql}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("the answer to {promql}: {e}"))
    }

    /// The result vector of a query that must succeed.
    pub async fn series(&self, promql: &str) -> Vec<Value> {
        let answer = self.query(promql).await;
        assert_eq!(answer["status"], "success", "{promql}: {answer}");
        answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The value of a query's one sample, if it has exactly one.
    pub async fn value(&self, promql: &str) -> Option<f64> {
        match self.series(promql).await.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }

    /// Polls `promql` until `ok` accepts its result vector; fails with the
    /// last answer otherwise.
    pub async fn wait_for(
        &self,
        promql: &str,
        timeout: Duration,
        ok: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let result = self.series(promql).await;
            if ok(&result) {
                return result;
            }
            assert!(
                Instant::now() < deadline,
                "{promql} after {timeout:?}: {result:?}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A loopback port nothing listens on now (for a program that cannot
/// report the port it bound).
fn free_loopback_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address")
}
