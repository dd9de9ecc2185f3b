//! What the fake model answers: one [`Reply`] per model request.

use std::time::Duration;

use serde_json::Value;

/// One scripted model answer (one HTTP response to one POST /responses).
#[derive(Clone, Debug)]
pub enum Reply {
    /// An assistant message with this text, in one delta; the turn ends.
    Text(String),
    /// An assistant message whose text is this JSON, as a model answering under
    /// a `text.format` json_schema would.
    Json(Value),
    /// An assistant message whose text arrives in deltas spread evenly over
    /// `over`, as a real model writes a long answer (see [`Reply::over`]).
    Streamed { text: String, over: Duration },
    /// A function_call to `exec_command`; Codex runs `cmd` and asks again.
    Exec { cmd: String },
    /// A freeform `apply_patch` custom_tool_call with this patch text.
    ApplyPatch(String),
    /// An HTTP error status with this body instead of a stream.
    HttpError(u16, String),
    /// A 200 event stream that sends `response.created` and then nothing for
    /// this long, then closes without `response.completed`.
    Stall(Duration),
    /// A stream that starts an assistant message ("partial") and closes
    /// without `response.completed`, as a dropped connection would.
    Disconnect,
    /// This reply, after holding the request this long before any response
    /// (the model "thinking" before it answers): keeps a run busy. Holds are
    /// counted, see [`FakeModel::max_concurrent_holds`](super::FakeModel::max_concurrent_holds).
    Delayed(Duration, Box<Reply>),
    /// A silent model step: the stream opens (`response.created`) at once,
    /// then nothing at all is sent for this long, then this reply's events
    /// follow, as a reasoning model that thinks for minutes does. The reply
    /// must be one that streams (not `HttpError`, `Delayed` or `Sequence`).
    Silent(Duration, Box<Reply>),
    /// Several replies answering consecutive requests (queue: pushed in
    /// order; rule: consumed one per match, the last one repeating).
    Sequence(Vec<Reply>),
}

impl Reply {
    pub fn text(s: impl Into<String>) -> Self {
        Reply::Text(s.into())
    }
    pub fn delayed(pause: Duration, reply: Reply) -> Self {
        Reply::Delayed(pause, Box::new(reply))
    }
    /// `reply` after a silent model step of `pause` (see [`Reply::Silent`]).
    pub fn silent(pause: Duration, reply: Reply) -> Self {
        Reply::Silent(pause, Box::new(reply))
    }
    pub fn exec(cmd: impl Into<String>) -> Self {
        Reply::Exec { cmd: cmd.into() }
    }
    /// `Exec` followed by a final text answer: one complete tool-using turn.
    pub fn exec_then(cmd: impl Into<String>, text: impl Into<String>) -> Self {
        Reply::Sequence(vec![Reply::exec(cmd), Reply::text(text)])
    }
    /// An apply_patch that adds one file with these lines.
    pub fn add_file(path: &str, contents: &str) -> Self {
        let mut patch = format!("*** Begin Patch\n*** Add File: {path}\n");
        for line in contents.lines() {
            patch.push('+');
            patch.push_str(line);
            patch.push('\n');
        }
        patch.push_str("*** End Patch");
        Reply::ApplyPatch(patch)
    }

    /// This text (or JSON) answer streamed in deltas spread evenly over
    /// `duration`: `Reply::text(long).over(Duration::from_secs(180))`. A delta
    /// goes out about every [`DELTA_EVERY`], fewer when the text is shorter
    /// than that many characters.
    pub fn over(self, duration: Duration) -> Self {
        match self {
            Reply::Text(text) | Reply::Streamed { text, .. } => Reply::Streamed {
                text,
                over: duration,
            },
            Reply::Json(value) => Reply::Streamed {
                text: value.to_string(),
                over: duration,
            },
            other => panic!("only a text or JSON reply can be streamed over time, not {other:?}"),
        }
    }
}

/// What a model answers under `implement`'s output schema, claiming a change
/// to each of `files`.
pub fn implement_json(files: &[&str]) -> Value {
    let changes: Vec<Value> = files
        .iter()
        .map(|f| serde_json::json!({"file": f, "explanation": format!("writes {f}")}))
        .collect();
    serde_json::json!({
        "summary": "done", "changes": changes, "dependencies_added": [],
        "tests_needed": [], "integration_notes": "none", "next_steps": [], "warnings": []
    })
}

/// How often a [`Reply::Streamed`] sends a delta.
pub const DELTA_EVERY: Duration = Duration::from_millis(500);

/// `text` cut into the deltas of a stream lasting `over`, each with the pause
/// before it: evenly spaced, every character sent once.
pub fn deltas(text: &str, over: Duration) -> Vec<(Duration, String)> {
    let chars: Vec<char> = text.chars().collect();
    let wanted = over.as_millis().div_ceil(DELTA_EVERY.as_millis()).max(1) as usize;
    let count = wanted.min(chars.len()).max(1);
    let pause = over / count as u32;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let (from, to) = (i * chars.len() / count, (i + 1) * chars.len() / count);
        out.push((pause, chars[from..to].iter().collect()));
    }
    out
}

/// Replies in the order they answer requests: sequences spelled out.
pub(super) fn flatten(reply: Reply, out: &mut impl FnMut(Reply)) {
    match reply {
        Reply::Sequence(steps) => steps.into_iter().for_each(|s| flatten(s, out)),
        other => out(other),
    }
}
