//! `codex-mcp probe`, the chart's `helm test` check, against a real local
//! gateway: it passes with a token the gateway accepts, and fails, naming
//! the step and the refusal, with one it does not; and with a gateway that
//! is not there.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::codex_mcp_bin;
use support::fake_model::FakeModel;
use support::gateway::{Gateway, GatewayOptions};
use support::tenants::token_file;

fn probe(url: &str, tokens: &Path) -> Output {
    Command::new(codex_mcp_bin())
        .args(["probe", "--url", url, "--token-file"])
        .arg(tokens)
        .args(["--timeout-secs", "20"])
        .output()
        .expect("run codex-mcp probe")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn probe_passes_with_an_accepted_token_and_names_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeModel::start().await;
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, token_file()).unwrap();
    let mut options = GatewayOptions::new(&dir.path().join("data"), &model);
    options.auth_tokens = Some(tokens.clone());
    let gateway = Gateway::start(options);

    // The token file as the chart's Secret holds it: the first line's token.
    let ok = probe(&format!("{}/", gateway.url), &tokens);
    let (stdout, stderr) = (text(&ok.stdout), text(&ok.stderr));
    assert!(ok.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains("ready; tools/list (2026-07-28)"),
        "{stdout}"
    );
    for tool in ["plan", "implement", "chat", "health_check"] {
        assert!(stdout.contains(tool), "{tool} listed: {stdout}");
    }

    let wrong = dir.path().join("wrong-tokens");
    std::fs::write(&wrong, "not-a-token-of-this-gateway-0123\n").unwrap();
    let refused = probe(&gateway.url, &wrong);
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("POST (tools/list) {}/mcp", gateway.url))
            && stderr.contains("refused the token from")
            && stderr.contains("401 Unauthorized")
            && stderr.contains("not valid for this gateway"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("not-a-token-of-this-gateway"),
        "the token is never printed: {stderr}"
    );

    // Nobody listening: the first step, and why.
    let url = gateway.url.clone();
    drop(gateway);
    let gone = probe(&url, &tokens);
    let stderr = text(&gone.stderr);
    assert_eq!(gone.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("GET {url}/ready")) && stderr.contains("Connection refused"),
        "{stderr}"
    );
}
