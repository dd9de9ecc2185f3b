//! Logging setup: human-readable by default, JSON on request, to stderr.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

const RMCP_SESSION_LOG: &str = "rmcp::transport::streamable_http_server::session::local=warn";

/// Installs the global subscriber. `level` is a level (`info`) or a full
/// filter (`codex_mcp=debug,rmcp=warn`); an invalid one falls back to info.
pub fn init(level: &str, format: LogFormat) {
    let mut filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    // rmcp logs each new streamable-HTTP session's id at INFO; the id lets
    // whoever reads the logs address the session, so it stays out of them
    // unless the filter asks for rmcp explicitly.
    if !level.contains("rmcp") {
        if let Ok(quiet) = RMCP_SESSION_LOG.parse() {
            filter = filter.add_directive(quiet);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.with_target(false).try_init(),
    };
}
