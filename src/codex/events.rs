//! Codex's `--json` event stream: parsing, progress messages, and the summary
//! of a run. Pure: no IO.

use serde_json::Value;

use crate::api::request::{RunOutcome, Usage, RESULT_LINE_TYPE};

/// The item inside `item.started` / `item.completed`.
#[derive(Debug, Clone, PartialEq)]
pub enum EventItem {
    AgentMessage {
        text: String,
    },
    Reasoning {
        text: String,
    },
    CommandExecution {
        command: String,
        exit_code: Option<i64>,
    },
    FileChange {
        changes: Vec<(String, String)>,
    },
    Other {
        kind: String,
    },
}

/// One line of `codex exec --json`.
#[derive(Debug, Clone, PartialEq)]
pub enum CodexEvent {
    ThreadStarted { thread_id: String },
    TurnStarted,
    ItemStarted(EventItem),
    ItemCompleted(EventItem),
    TurnCompleted { usage: Usage },
    TurnFailed { message: String },
    Error { message: String },
    Other { kind: String },
}

fn str_field(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn error_message(v: &Value) -> String {
    match v.get("error") {
        Some(Value::String(s)) => s.clone(),
        Some(e) => e
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| e.to_string()),
        None => str_field(v, "message"),
    }
}

fn parse_item(v: &Value) -> EventItem {
    let item = v.get("item").unwrap_or(&Value::Null);
    match item.get("type").and_then(Value::as_str).unwrap_or_default() {
        "agent_message" => EventItem::AgentMessage {
            text: str_field(item, "text"),
        },
        "reasoning" => EventItem::Reasoning {
            text: str_field(item, "text"),
        },
        "command_execution" => EventItem::CommandExecution {
            command: str_field(item, "command"),
            exit_code: item.get("exit_code").and_then(Value::as_i64),
        },
        "file_change" => EventItem::FileChange {
            changes: item
                .get("changes")
                .and_then(Value::as_array)
                .map(|cs| {
                    cs.iter()
                        .map(|c| (str_field(c, "path"), str_field(c, "kind")))
                        .collect()
                })
                .unwrap_or_default(),
        },
        other => EventItem::Other {
            kind: other.to_owned(),
        },
    }
}

impl CodexEvent {
    /// Parses one JSON line; `None` for lines that are not JSON objects with a
    /// `type` (Codex prints only those on stdout, but a run must survive noise).
    pub fn parse(line: &str) -> Option<(Self, Value)> {
        let v: Value = serde_json::from_str(line.trim()).ok()?;
        let kind = v.get("type")?.as_str()?.to_owned();
        let ev = match kind.as_str() {
            "thread.started" => Self::ThreadStarted {
                thread_id: str_field(&v, "thread_id"),
            },
            "turn.started" => Self::TurnStarted,
            "item.started" => Self::ItemStarted(parse_item(&v)),
            "item.completed" => Self::ItemCompleted(parse_item(&v)),
            "turn.completed" => Self::TurnCompleted {
                usage: v
                    .get("usage")
                    .and_then(|u| serde_json::from_value(u.clone()).ok())
                    .unwrap_or_default(),
            },
            "turn.failed" => Self::TurnFailed {
                message: error_message(&v),
            },
            "error" => Self::Error {
                message: error_message(&v),
            },
            _ => Self::Other { kind },
        };
        Some((ev, v))
    }

    /// A one-line, human-readable progress message, for events worth one.
    pub fn progress_message(&self) -> Option<String> {
        Some(match self {
            Self::ThreadStarted { .. } => "codex started".to_owned(),
            Self::ItemStarted(EventItem::CommandExecution { command, .. }) => {
                format!("running: {}", truncate(command, 160))
            }
            Self::ItemCompleted(EventItem::CommandExecution { command, exit_code }) => {
                match exit_code {
                    Some(code) => format!("command exited {code}: {}", truncate(command, 160)),
                    None => format!("command finished: {}", truncate(command, 160)),
                }
            }
            Self::ItemCompleted(EventItem::FileChange { changes }) => {
                let files: Vec<String> =
                    changes.iter().map(|(p, k)| format!("{p} ({k})")).collect();
                format!("file changed: {}", truncate(&files.join(", "), 200))
            }
            Self::ItemCompleted(EventItem::AgentMessage { text }) => {
                format!("agent: {}", truncate(text, 200))
            }
            Self::TurnFailed { message } | Self::Error { message } => {
                format!("codex error: {}", truncate(message, 200))
            }
            _ => return None,
        })
    }
}

/// Cuts `s` to at most `max` characters, marking the cut.
pub fn truncate(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

/// What a run amounted to, folded from its events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    pub thread_id: Option<String>,
    pub final_message: Option<String>,
    pub usage: Usage,
    pub error: Option<String>,
    pub commands: Vec<String>,
    pub files_touched: Vec<String>,
    pub turn_completed: bool,
}

impl RunSummary {
    pub fn apply(&mut self, ev: &CodexEvent) {
        match ev {
            CodexEvent::ThreadStarted { thread_id } if !thread_id.is_empty() => {
                self.thread_id = Some(thread_id.clone());
            }
            CodexEvent::ItemCompleted(EventItem::AgentMessage { text }) => {
                self.final_message = Some(text.clone());
            }
            CodexEvent::ItemCompleted(EventItem::CommandExecution { command, .. }) => {
                self.commands.push(command.clone());
            }
            CodexEvent::ItemCompleted(EventItem::FileChange { changes }) => {
                self.files_touched
                    .extend(changes.iter().map(|(p, _)| p.clone()));
            }
            CodexEvent::TurnCompleted { usage } => {
                self.usage.add(*usage);
                self.turn_completed = true;
            }
            CodexEvent::TurnFailed { message } | CodexEvent::Error { message } => {
                self.error = Some(message.clone());
            }
            _ => {}
        }
    }
}

/// One line of `agent-run`'s output, as a backend reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentRunLine {
    Event(CodexEvent),
    Result(RunOutcome),
}

impl AgentRunLine {
    /// `None` for lines that are neither (noise is skipped, not fatal).
    pub fn parse(line: &str) -> Option<Self> {
        if line.contains(RESULT_LINE_TYPE) {
            if let Ok(outcome) = serde_json::from_str::<RunOutcome>(line) {
                return Some(Self::Result(outcome));
            }
        }
        CodexEvent::parse(line).map(|(ev, _)| Self::Event(ev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> CodexEvent {
        CodexEvent::parse(line).expect("parses").0
    }

    #[test]
    fn parses_the_event_kinds() {
        assert_eq!(
            parse(r#"{"type":"thread.started","thread_id":"t-1"}"#),
            CodexEvent::ThreadStarted {
                thread_id: "t-1".into()
            }
        );
        assert_eq!(
            parse(
                r#"{"type":"item.completed","item":{"id":"i","type":"command_execution","command":"bash -lc ls","aggregated_output":"x","exit_code":0,"status":"completed"}}"#
            ),
            CodexEvent::ItemCompleted(EventItem::CommandExecution {
                command: "bash -lc ls".into(),
                exit_code: Some(0)
            })
        );
        assert_eq!(
            parse(
                r#"{"type":"item.completed","item":{"type":"file_change","changes":[{"path":"a.txt","kind":"add"}]}}"#
            ),
            CodexEvent::ItemCompleted(EventItem::FileChange {
                changes: vec![("a.txt".into(), "add".into())]
            })
        );
        assert_eq!(
            parse(
                r#"{"type":"turn.completed","usage":{"input_tokens":10,"cached_input_tokens":2,"output_tokens":5}}"#
            ),
            CodexEvent::TurnCompleted {
                usage: Usage {
                    input_tokens: 10,
                    cached_input_tokens: 2,
                    output_tokens: 5
                }
            }
        );
        assert_eq!(
            parse(r#"{"type":"turn.failed","error":{"message":"stream disconnected"}}"#),
            CodexEvent::TurnFailed {
                message: "stream disconnected".into()
            }
        );
        assert_eq!(
            parse(r#"{"type":"error","message":"boom"}"#),
            CodexEvent::Error {
                message: "boom".into()
            }
        );
        assert_eq!(
            parse(r#"{"type":"x.new"}"#),
            CodexEvent::Other {
                kind: "x.new".into()
            }
        );
        assert!(CodexEvent::parse("not json").is_none());
        assert!(CodexEvent::parse(r#"{"no":"type"}"#).is_none());
    }

    #[test]
    fn summary_folds_a_run() {
        let lines = [
            r#"{"type":"thread.started","thread_id":"t-9"}"#,
            r#"{"type":"turn.started"}"#,
            r#"{"type":"item.completed","item":{"type":"agent_message","text":"first"}}"#,
            r#"{"type":"item.completed","item":{"type":"command_execution","command":"echo hi","exit_code":0}}"#,
            r#"{"type":"item.completed","item":{"type":"agent_message","text":"{\"ok\":true}"}}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":7,"output_tokens":3}}"#,
        ];
        let mut s = RunSummary::default();
        for l in lines {
            s.apply(&parse(l));
        }
        assert_eq!(s.thread_id.as_deref(), Some("t-9"));
        assert_eq!(s.final_message.as_deref(), Some(r#"{"ok":true}"#));
        assert_eq!(s.usage.input_tokens, 7);
        assert_eq!(s.usage.output_tokens, 3);
        assert_eq!(s.commands, vec!["echo hi".to_string()]);
        assert!(s.turn_completed);
        assert!(s.error.is_none());
    }

    #[test]
    fn progress_messages_are_short_and_selective() {
        let long = "x".repeat(1000);
        let ev = CodexEvent::ItemStarted(EventItem::CommandExecution {
            command: long,
            exit_code: None,
        });
        let msg = ev.progress_message().unwrap();
        assert!(
            msg.starts_with("running: ") && msg.chars().count() < 200,
            "{msg}"
        );
        assert!(CodexEvent::TurnStarted.progress_message().is_none());
        assert!(
            CodexEvent::ItemCompleted(EventItem::Reasoning { text: "hm".into() })
                .progress_message()
                .is_none()
        );
    }

    #[test]
    fn agent_run_lines_are_events_or_the_result() {
        let ev = AgentRunLine::parse(r#"{"type":"turn.started"}"#);
        assert!(matches!(ev, Some(AgentRunLine::Event(_))));
        let res = AgentRunLine::parse(r#"{"type":"agent_run.result","ok":true,"thread_id":"t"}"#);
        match res {
            Some(AgentRunLine::Result(o)) => assert!(o.ok && o.thread_id.as_deref() == Some("t")),
            other => panic!("{other:?}"),
        }
        assert_eq!(AgentRunLine::parse("warning: not json"), None);
    }
}
