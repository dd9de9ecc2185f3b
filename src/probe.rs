//! `codex-mcp probe`: checks a running gateway as a client would, for the
//! Helm chart's `helm test` hook. The gateway's image is distroless (no
//! shell, no curl), so the check is a subcommand of the binary it already
//! carries: `GET /ready`, then a stateless (2026-07-28) `tools/list` on
//! `/mcp` with a client token, the first failure named in the exit message.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::gateway::auth::parse_tokens;

/// The protocol revision the probe speaks: stateless, so one request is a
/// whole conversation and no session is left behind on the gateway.
pub const PROTOCOL: &str = "2026-07-28";

/// Seconds each request may take unless told (`--timeout-secs`).
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// What to probe, from the flags.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    /// The gateway's base URL (`/ready` and `/mcp` are appended).
    pub url: String,
    /// A client token file; its first token is sent.
    pub token_file: PathBuf,
    /// How long each request may take.
    pub timeout: Duration,
    /// The Host header to send instead of the URL's: the name clients use,
    /// when the URL reaches the gateway by another way (a pod's address).
    pub host: Option<String>,
}

/// How much of an unexpected answer an error quotes.
const QUOTE_CHARS: usize = 300;

/// What failed, naming the step, the URL and what came back (never the token).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("reading the token file {path}: {source}")]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the token file {path}: {reason}")]
    BadTokenFile { path: PathBuf, reason: String },
    #[error("the token file {0} holds no token")]
    NoToken(PathBuf),
    #[error("--url {0}: not an http:// or https:// URL")]
    BadUrl(String),
    #[error("--host {0:?} is not a header value")]
    BadHost(String),
    #[error("{step}: {}", chain(.source))]
    Unreachable { step: Step, source: reqwest::Error },
    #[error("{step}: the gateway is not ready ({status}): {body}")]
    NotReady {
        step: Step,
        status: StatusCode,
        body: String,
    },
    #[error("{step}: the gateway refused the token from {token_file} ({status}): {body}")]
    Refused {
        step: Step,
        status: StatusCode,
        token_file: PathBuf,
        body: String,
    },
    #[error("{step}: answered {status}: {body}")]
    Status {
        step: Step,
        status: StatusCode,
        body: String,
    },
    #[error("{step}: JSON-RPC error {code}: {message}")]
    Rpc {
        step: Step,
        code: i64,
        message: String,
    },
    #[error("{step}: the answer holds no list of tools: {body}")]
    NoTools { step: Step, body: String },
}

/// One request of the probe, as error messages name it.
#[derive(Debug, Clone)]
pub struct Step {
    what: &'static str,
    url: String,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.what, self.url)
    }
}

/// What a passing probe saw.
#[derive(Debug, PartialEq, Eq)]
pub struct ProbeReport {
    pub url: String,
    pub tools: Vec<String>,
}

impl fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: ready; tools/list ({PROTOCOL}) listed {} tools: {}",
            self.url,
            self.tools.len(),
            self.tools.join(", ")
        )
    }
}

/// Runs the probe: `/ready`, then `tools/list`.
pub async fn run(settings: &ProbeSettings) -> Result<ProbeReport, ProbeError> {
    let token = read_token(&settings.token_file)?;
    let base = base_url(&settings.url)?;
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(host) = &settings.host {
        let value = reqwest::header::HeaderValue::from_str(host)
            .map_err(|_| ProbeError::BadHost(host.clone()))?;
        headers.insert(reqwest::header::HOST, value);
    }
    let http = reqwest::Client::builder()
        .timeout(settings.timeout)
        .default_headers(headers)
        .build()
        .expect("a client with a timeout builds");

    let step = Step {
        what: "GET",
        url: format!("{base}/ready"),
    };
    let resp = http.get(&step.url).send().await;
    let resp = resp.map_err(|source| ProbeError::Unreachable {
        step: step.clone(),
        source,
    })?;
    let status = resp.status();
    if !status.is_success() {
        let body = quote(&resp.text().await.unwrap_or_default());
        return Err(ProbeError::NotReady { step, status, body });
    }

    let step = Step {
        what: "POST (tools/list)",
        url: format!("{base}/mcp"),
    };
    let resp = http
        .post(&step.url)
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", PROTOCOL)
        .header("mcp-method", "tools/list")
        .body(tools_list_request().to_string())
        .send()
        .await
        .map_err(|source| ProbeError::Unreachable {
            step: step.clone(),
            source,
        })?;
    let status = resp.status();
    let text = resp
        .text()
        .await
        .map_err(|source| ProbeError::Unreachable {
            step: step.clone(),
            source,
        })?;
    let tools = tools_of(step, status, &text, &settings.token_file)?;
    Ok(ProbeReport { url: base, tools })
}

/// The first token of the file, read as the gateway reads it.
fn read_token(path: &Path) -> Result<String, ProbeError> {
    let text = std::fs::read_to_string(path).map_err(|source| ProbeError::TokenFile {
        path: path.to_owned(),
        source,
    })?;
    let entries = parse_tokens(&text).map_err(|e| ProbeError::BadTokenFile {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    entries
        .into_iter()
        .next()
        .map(|e| e.token().to_owned())
        .ok_or_else(|| ProbeError::NoToken(path.to_owned()))
}

/// The URL without a trailing slash, so paths can be appended.
fn base_url(url: &str) -> Result<String, ProbeError> {
    let base = url.trim_end_matches('/');
    let scheme_ok = ["http://", "https://"]
        .iter()
        .any(|s| base.len() > s.len() && base[..s.len()].eq_ignore_ascii_case(s));
    if !scheme_ok {
        return Err(ProbeError::BadUrl(url.to_owned()));
    }
    Ok(base.to_owned())
}

/// A stateless `tools/list`: the revision and capabilities ride in `_meta`.
fn tools_list_request() -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/list",
        "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": PROTOCOL,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "codex-mcp-probe", "version": env!("CARGO_PKG_VERSION")},
        }}
    })
}

/// The tool names of a `tools/list` answer, or what was wrong with it.
fn tools_of(
    step: Step,
    status: StatusCode,
    text: &str,
    token_file: &Path,
) -> Result<Vec<String>, ProbeError> {
    let message = answer_message(text);
    let body = || quote(text);
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        // The JSON-RPC error's message says why (missing, unknown token).
        let body = message
            .as_ref()
            .and_then(|m| m["error"]["message"].as_str())
            .map(str::to_owned)
            .unwrap_or_else(body);
        return Err(ProbeError::Refused {
            step,
            status,
            token_file: token_file.to_owned(),
            body,
        });
    }
    if !status.is_success() {
        return Err(ProbeError::Status {
            step,
            status,
            body: body(),
        });
    }
    let Some(message) = message else {
        return Err(ProbeError::NoTools { step, body: body() });
    };
    if let Some(error) = message.get("error") {
        return Err(ProbeError::Rpc {
            step,
            code: error["code"].as_i64().unwrap_or_default(),
            message: error["message"].as_str().unwrap_or_default().to_owned(),
        });
    }
    let names: Option<Vec<String>> = message["result"]["tools"].as_array().map(|tools| {
        tools
            .iter()
            .filter_map(|t| t["name"].as_str().map(str::to_owned))
            .collect()
    });
    match names {
        Some(names) if !names.is_empty() => Ok(names),
        _ => Err(ProbeError::NoTools { step, body: body() }),
    }
}

/// The JSON-RPC response in a body that is JSON or an event stream (the
/// message with an `id`; notifications before it are skipped).
fn answer_message(text: &str) -> Option<Value> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Some(v);
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v.get("id").is_some())
}

/// An error with its causes: reqwest's own message alone ("error sending
/// request") does not say that the connection was refused or timed out.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !out.contains(&text) {
            out = format!("{out}: {text}");
        }
        cause = e.source();
    }
    out
}

/// At most [`QUOTE_CHARS`] of a body, on one line.
fn quote(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(QUOTE_CHARS) {
        Some((i, _)) => format!("{}...", &one_line[..i]),
        None if one_line.is_empty() => "(empty body)".to_owned(),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step() -> Step {
        Step {
            what: "POST (tools/list)",
            url: "http://gw:8210/mcp".into(),
        }
    }

    fn tools(status: StatusCode, text: &str) -> Result<Vec<String>, ProbeError> {
        tools_of(step(), status, text, Path::new("/etc/tokens"))
    }

    #[test]
    fn reads_the_first_token_as_the_gateway_does() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(
            &file,
            "# comment\n\nabcdefghijklmnop0123 acme\nqrstuvwxyz0123456789\n",
        )
        .unwrap();
        assert_eq!(read_token(&file).unwrap(), "abcdefghijklmnop0123");
        std::fs::write(&file, "# nothing\n").unwrap();
        assert!(matches!(read_token(&file), Err(ProbeError::NoToken(_))));
        std::fs::write(&file, "short\n").unwrap();
        let err = read_token(&file).unwrap_err().to_string();
        assert!(err.contains("shorter than 16"), "{err}");
        assert!(!err.contains("short\n"), "{err}");
        let missing = read_token(&dir.path().join("absent")).unwrap_err();
        assert!(missing.to_string().contains("absent"), "{missing}");
    }

    #[test]
    fn urls_lose_a_trailing_slash_and_need_http() {
        assert_eq!(base_url("http://gw:8210/").unwrap(), "http://gw:8210");
        assert_eq!(base_url("HTTPS://gw").unwrap(), "HTTPS://gw");
        assert!(base_url("gw:8210").is_err());
        assert!(base_url("http://").is_err());
    }

    #[test]
    fn the_request_is_a_stateless_tools_list() {
        let req = tools_list_request();
        assert_eq!(req["method"], "tools/list");
        assert_eq!(
            req["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
            PROTOCOL
        );
    }

    #[test]
    fn tool_names_from_json_or_an_event_stream() {
        let json =
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"plan"},{"name":"chat"}]}}"#;
        assert_eq!(tools(StatusCode::OK, json).unwrap(), ["plan", "chat"]);
        let sse = format!(
            "event: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}}\n\ndata: {json}\n\n"
        );
        assert_eq!(tools(StatusCode::OK, &sse).unwrap(), ["plan", "chat"]);
    }

    #[test]
    fn failures_name_the_step_and_what_came_back() {
        let denied = r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"the client token is not valid"}}"#;
        let err = tools(StatusCode::UNAUTHORIZED, denied)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "POST (tools/list) http://gw:8210/mcp: the gateway refused the token from \
             /etc/tokens (401 Unauthorized): the client token is not valid"
        );
        let err = tools(
            StatusCode::FORBIDDEN,
            "{\"error\":\"Host header not allowed\"}",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("403 Forbidden") && err.contains("Host header"),
            "{err}"
        );
        let rpc = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no such method"}}"#;
        let err = tools(StatusCode::OK, rpc).unwrap_err().to_string();
        assert!(
            err.ends_with("JSON-RPC error -32601: no such method"),
            "{err}"
        );
        let err = tools(StatusCode::BAD_GATEWAY, "<html>\n bad gateway </html>")
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("answered 502 Bad Gateway: <html> bad gateway </html>"),
            "{err}"
        );
        let empty = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#;
        assert!(matches!(
            tools(StatusCode::OK, empty),
            Err(ProbeError::NoTools { .. })
        ));
        assert!(matches!(
            tools(StatusCode::OK, ""),
            Err(ProbeError::NoTools { .. })
        ));
    }

    #[test]
    fn quotes_are_short_and_on_one_line() {
        assert_eq!(quote(""), "(empty body)");
        assert_eq!(quote("a\n b"), "a b");
        let long = "x".repeat(1000);
        assert_eq!(quote(&long).len(), QUOTE_CHARS + 3);
    }
}
