//! A Codex turn at a real model's length, for the tests of long turns on
//! both backends: an `implement` that writes a file, runs a command, thinks
//! in silence for minutes and then streams its answer slowly.

use std::time::Duration;

use serde_json::Value;

use super::fake_model::{implement_json, Reply};

/// The silent model step of a long turn...
pub const SILENT_STEP: Duration = Duration::from_secs(100);
/// ...and how long its answer then takes to stream.
pub const STREAMING: Duration = Duration::from_secs(85);

/// The model's part of a 3-minute `implement` turn that writes `file`
/// (`print('slow')`): three requests, the third one held open.
pub fn slow_implement(file: &str) -> Reply {
    Reply::Sequence(vec![
        Reply::add_file(file, "print('slow')"),
        Reply::exec("echo compiling"),
        Reply::silent(
            SILENT_STEP,
            Reply::Json(implement_json(&[file])).over(STREAMING),
        ),
    ])
}

/// Fails the test unless the task's turn took its real length and
/// `tasks/get`'s last answer is completed with `tasked.py`'s diff inline.
pub fn assert_task_done(elapsed: Duration, task_done: &Value) {
    assert!(elapsed >= SILENT_STEP + STREAMING, "{elapsed:?}");
    assert_eq!(task_done["status"], "completed", "{task_done}");
    let result = &task_done["result"]["structuredContent"];
    assert!(
        only_diff(result, "tasked.py").contains("+print('slow')"),
        "{result}"
    );
}

/// Fails the test unless the turns took their real length and ended well:
/// the task (`tasks/get`'s last answer) with `tasked.py`'s diff inline, the
/// background run (`get_run`'s report) with `background.py`'s.
pub fn assert_both_turns_done(elapsed: Duration, task_done: &Value, run_done: &Value) {
    assert_task_done(elapsed, task_done);
    assert_eq!(run_done["status"], "ok", "{run_done}");
    assert!(
        only_diff(&run_done["result"], "background.py").contains("+print('slow')"),
        "{run_done}"
    );
}

/// An `implement` result's diff of `file`, its one change.
pub fn only_diff(result: &Value, file: &str) -> String {
    let changes = result["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{result}");
    assert_eq!(changes[0]["file"], file, "{result}");
    changes[0]["diff"].as_str().unwrap_or_default().to_owned()
}
