//! Logging setup: human-readable by default, JSON on request, to stderr.

use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The log level or filter unless told (`LOG_LEVEL`), and what an invalid
/// one falls back to.
pub const DEFAULT_LOG_LEVEL: &str = "info";
/// The log format unless told (`CODEX_MCP_LOG_FORMAT`).
pub const DEFAULT_LOG_FORMAT: LogFormat = LogFormat::Text;

/// What a process logs, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// A level (`info`) or a full filter (`codex_mcp=debug,rmcp=warn`).
    pub level: String,
    pub format: LogFormat,
}

const RMCP_SESSION_LOG: &str = "rmcp::transport::streamable_http_server::session::local=warn";

/// Installs the global subscriber; an invalid level falls back to the default.
pub fn init(settings: &LogSettings) {
    let (level, format) = (settings.level.as_str(), settings.format);
    let mut filter =
        EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_LEVEL));
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
            .finish()
            .with(ClientGoneIsNotAnError)
            .try_init(),
        LogFormat::Text => builder
            .with_target(false)
            .finish()
            .with(ClientGoneIsNotAnError)
            .try_init(),
    };
}

/// Drops rmcp's ERROR events about a response it could not deliver because
/// the client's channel is closed. That is how a client cancels (closing its
/// stream, MCP 2026-07-28) or goes away; the run's own log lines say how the
/// call ended, at INFO, and an operator should not be paged for it.
struct ClientGoneIsNotAnError;

impl<S: Subscriber> Layer<S> for ClientGoneIsNotAnError {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        let meta = event.metadata();
        if *meta.level() != Level::ERROR || !meta.target().starts_with("rmcp") {
            return true;
        }
        let mut closed = ChannelClosed(false);
        event.record(&mut closed);
        !closed.0
    }
}

struct ChannelClosed(bool);

impl Visit for ChannelClosed {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "error" && format!("{value:?}").contains("channel closed") {
            self.0 = true;
        }
    }
}
