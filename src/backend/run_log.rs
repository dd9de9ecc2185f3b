//! An agent's last runs and how each ended, kept with the agent so a result
//! whose caller went away does not vanish without a trace.

pub use crate::api::run_log::{RunEntry, RunStatus};

/// How many runs an agent keeps in its log.
pub const RECENT_RUNS: usize = 20;

/// Puts `entry` into `log` (replacing the entry with its id), newest
/// last, keeping [`RECENT_RUNS`]. Returns false, changing nothing, when the
/// log already holds a final entry for the run: each run counts once, even
/// when two gateways (or a restarted one) both try to record it.
pub fn upsert(log: &mut Vec<RunEntry>, entry: RunEntry) -> bool {
    if let Some(pos) = log.iter().position(|e| e.run_id == entry.run_id) {
        if log[pos].status.is_final() {
            return false;
        }
        log.remove(pos);
    }
    log.push(entry);
    let excess = log.len().saturating_sub(RECENT_RUNS);
    log.drain(..excess);
    true
}

/// Whether the log holds a final entry for the run.
pub fn finished_in(log: &[RunEntry], run_id: &str) -> bool {
    log.iter()
        .any(|e| e.run_id == run_id && e.status.is_final())
}

/// A short summary for the log: the first line of a reply or error, cut.
pub fn short(text: &str) -> String {
    let line = text.trim().lines().next().unwrap_or_default();
    crate::codex::events::truncate(line, 200)
}

/// A run's summary from its final message: the `summary` a structured
/// reply (plan, implement, review, fix) carries, else the message's first
/// line.
pub fn summary_of(final_message: &str) -> String {
    serde_json::from_str::<serde_json::Value>(final_message)
        .ok()
        .and_then(|v| v.get("summary")?.as_str().map(short))
        .unwrap_or_else(|| short(final_message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn a_structured_reply_is_summed_up_by_its_summary() {
        assert_eq!(
            summary_of(r#"{"changes": [], "summary": "Added hello"}"#),
            "Added hello"
        );
        assert_eq!(summary_of("plain answer\nmore"), "plain answer");
        assert_eq!(summary_of(r#"{"reply": "x"}"#), r#"{"reply": "x"}"#);
    }

    fn entry(id: &str, status: RunStatus) -> RunEntry {
        RunEntry {
            run_id: id.into(),
            tool: "chat".into(),
            started_at: Utc::now(),
            finished_at: None,
            status,
            summary: None,
            background: false,
        }
    }

    #[test]
    fn a_run_is_logged_once_and_the_log_is_bounded() {
        let mut log = Vec::new();
        assert!(upsert(&mut log, entry("a", RunStatus::Running)));
        assert!(!finished_in(&log, "a"));
        assert!(upsert(&mut log, entry("a", RunStatus::Ok)));
        assert_eq!(log.len(), 1);
        assert!(finished_in(&log, "a"));
        assert!(!upsert(&mut log, entry("a", RunStatus::Failed)));
        assert_eq!(log[0].status, RunStatus::Ok);
        for i in 0..30 {
            upsert(&mut log, entry(&i.to_string(), RunStatus::Failed));
        }
        assert_eq!(log.len(), RECENT_RUNS);
        assert_eq!(log.last().unwrap().run_id, "29");
        assert_eq!(log[0].run_id, "10");
    }

    #[test]
    fn summaries_are_one_short_line() {
        assert_eq!(short("  first\nsecond"), "first");
        assert!(short(&"x".repeat(1000)).chars().count() <= 203);
    }
}
