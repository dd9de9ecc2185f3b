//! A git server with token authentication (`git_http_server.py`: git's own
//! `git http-backend` behind a small HTTP server), holding bare repositories
//! made by the test. Killed on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::projects::git;

pub struct GitServer {
    child: Child,
    root: tempfile::TempDir,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl GitServer {
    /// Serves on `ip` (an address the clients reach); `write` may push,
    /// `read` only fetch.
    pub fn start(ip: [u8; 4], write: &str, read: &str) -> GitServer {
        let root = tempfile::tempdir().expect("tempdir");
        let script = super::cluster::repo_root().join("tests/support/git_http_server.py");
        let listen = SocketAddr::from((ip, 0));
        let mut child = Command::new("python3")
            .arg(&script)
            .args(["--root"])
            .arg(root.path())
            .args(["--listen", &listen.to_string()])
            .env("GIT_SERVER_TOKEN", write)
            .env("GIT_SERVER_READ_TOKEN", read)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the git server");
        let stdout = child.stdout.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        let _ = tx.send(url.to_owned());
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let base = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the git server did not start");
        GitServer {
            child,
            root,
            base,
            log,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// `http://HOST:PORT/NAME`.
    pub fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    /// A bare repository NAME with two commits on `main` (a tag `v1` on
    /// the first) and a branch `stable` at the first.
    pub fn create_repo(&self, name: &str) -> PathBuf {
        let work = tempfile::tempdir().unwrap();
        let w = work.path();
        git(w, &["init", "--quiet", "--initial-branch=main"]);
        std::fs::create_dir_all(w.join("src")).unwrap();
        std::fs::write(w.join("README.md"), "# app\n").unwrap();
        std::fs::write(w.join("src/app.txt"), "version one\n").unwrap();
        git(w, &["add", "-A"]);
        git(w, &["commit", "--quiet", "-m", "first"]);
        git(w, &["tag", "v1"]);
        git(w, &["branch", "stable"]);
        std::fs::write(w.join("src/app.txt"), "version two\n").unwrap();
        git(w, &["commit", "--quiet", "-am", "second"]);
        let bare = self.path(name);
        let out = Command::new("git")
            .args(["clone", "--quiet", "--bare"])
            .arg(w)
            .arg(&bare)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        bare
    }

    /// `git ARGS` in repository NAME on the server.
    pub fn git(&self, name: &str, args: &[&str]) -> String {
        git(&self.path(name), args).trim().to_owned()
    }

    /// One line per request: `METHOD PATH STATUS user=... access=...`.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
