//! The structured results of the coding tools, and the replies the model is
//! asked for. Where the two differ (implement, fix), the model describes its
//! work and the gateway adds what it measured itself: the real file changes.
//! Also [`RunReport`], what a call started in the background answers with.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::codex::FileChange;
pub use crate::runs::RunInfo;

/// How hard a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Complexity {
    Low,
    Medium,
    High,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlanStep {
    /// 1-based position in the plan.
    pub order: u32,
    pub title: String,
    /// What to do, concretely enough to implement.
    pub description: String,
    /// Files this step creates or changes, relative to the workspace.
    pub files: Vec<String>,
    pub complexity: Complexity,
}

/// A plan for a task, as the model gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlanModelReply {
    /// The approach in two or three sentences.
    pub summary: String,
    pub steps: Vec<PlanStep>,
    /// What could go wrong, and how to guard against it.
    pub risks: Vec<String>,
    /// Libraries, services or other work this plan depends on.
    pub dependencies: Vec<String>,
    /// How to verify the result.
    pub testing_strategy: String,
    /// A rough effort estimate, e.g. "2 hours".
    pub estimated_effort: String,
}

/// The result of `plan`. The workspace is not modified while planning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlanResponse {
    #[serde(flatten)]
    pub plan: PlanModelReply,
    pub run: RunInfo,
}

/// The model's account of one changed file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChangeExplanation {
    pub file: String,
    pub explanation: String,
}

/// What the model reports after implementing; the gateway adds the diffs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ImplementModelReply {
    pub summary: String,
    pub changes: Vec<ChangeExplanation>,
    pub dependencies_added: Vec<String>,
    pub tests_needed: Vec<String>,
    pub integration_notes: String,
    pub next_steps: Vec<String>,
    pub warnings: Vec<String>,
}

/// One file changed by a run: what happened to it, its real diff, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Change {
    /// Path relative to the agent's workspace.
    pub file: String,
    /// create, modify or delete.
    pub action: crate::codex::FileChangeKind,
    /// Unified diff computed from the workspace before and after the run.
    pub diff: String,
    /// The model's explanation of this change (empty if it gave none).
    pub explanation: String,
    /// The diff was cut short to bound the result's size (see warnings).
    pub truncated: bool,
}

/// The result of `implement`: the workspace's real changes plus the model's notes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ImplementResponse {
    pub summary: String,
    pub changes: Vec<Change>,
    pub dependencies_added: Vec<String>,
    pub tests_needed: Vec<String>,
    pub integration_notes: String,
    pub next_steps: Vec<String>,
    /// Includes any mismatch between what the model claimed and what changed.
    pub warnings: Vec<String>,
    /// The checkpoint recorded after this call's turn (`AGENT@N`): give it
    /// to `rollback` to return the workspace to this state, or to
    /// `get_changes` as `against`. Absent when none could be recorded (the
    /// warnings say why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    pub run: RunInfo,
}

/// Overall verdict of a review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OverallRating {
    Excellent,
    Good,
    NeedsImprovement,
    Poor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    Major,
    Minor,
    Info,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Security,
    Performance,
    Maintainability,
    Correctness,
    Style,
    Testing,
}

/// One review finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReviewComment {
    /// File the finding is about, or "" for the content as a whole.
    pub file: String,
    /// Lines, e.g. "12-18", or "" when not tied to lines.
    pub line_range: String,
    pub severity: Severity,
    pub category: Category,
    pub message: String,
    /// A concrete fix.
    pub suggestion: String,
}

/// A score from 1 (worst) to 10 (best).
pub type Score = u8;

/// What the model returns for a review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReviewModelReply {
    pub overall_rating: OverallRating,
    pub comments: Vec<ReviewComment>,
    #[schemars(range(min = 1, max = 10))]
    pub security_score: Score,
    #[schemars(range(min = 1, max = 10))]
    pub performance_score: Score,
    #[schemars(range(min = 1, max = 10))]
    pub maintainability_score: Score,
    pub summary: String,
    pub recommendations: Vec<String>,
}

/// The result of `review`. Reviewing never modifies the workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReviewResponse {
    #[serde(flatten)]
    pub review: ReviewModelReply,
    pub run: RunInfo,
}

/// One diagnosed problem and its fix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Fix {
    pub problem: String,
    pub solution: String,
    pub files_to_change: Vec<String>,
    pub root_cause: String,
    /// How to keep it from coming back.
    pub prevention: String,
}

/// What the model returns after fixing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FixModelReply {
    pub summary: String,
    pub fixes: Vec<Fix>,
    /// How to confirm the diagnosis, in order.
    pub diagnostic_steps: Vec<String>,
    pub quick_fix_available: bool,
    /// Tests to run to confirm the fix.
    pub tests_to_run: Vec<String>,
    pub warnings: Vec<String>,
}

/// The result of `fix`: the diagnosis, plus the workspace's real changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FixResponse {
    #[serde(flatten)]
    pub fix: FixModelReply,
    pub changes: Vec<Change>,
    /// The checkpoint recorded after this call's turn (`AGENT@N`): give it
    /// to `rollback` to return the workspace to this state, or to
    /// `get_changes` as `against`. Absent when none could be recorded (the
    /// warnings say why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    pub run: RunInfo,
}

/// The result of `chat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChatResponse {
    pub reply: String,
    pub run: RunInfo,
}

/// Joins the workspace's real changes with the model's explanations; model
/// claims that did not happen become warnings.
pub fn merge_changes(
    real: Vec<FileChange>,
    claimed: &[ChangeExplanation],
    warnings: &mut Vec<String>,
) -> Vec<Change> {
    let norm = |p: &str| p.trim_start_matches("./").to_owned();
    for c in claimed {
        if !real.iter().any(|r| r.file == norm(&c.file)) {
            warnings.push(format!(
                "the model reported a change to {} that is not in the workspace",
                c.file
            ));
        }
    }
    let cut: Vec<&str> = real
        .iter()
        .filter(|r| r.truncated)
        .map(|r| r.file.as_str())
        .collect();
    if !cut.is_empty() {
        warnings.push(format!(
            "diffs of {} file(s) were truncated to bound the result's size: {}; read the files \
             in the workspace for their full content",
            cut.len(),
            cut.join(", ")
        ));
    }
    real.into_iter()
        .map(|r| {
            let explanation = claimed
                .iter()
                .find(|c| norm(&c.file) == r.file)
                .map(|c| c.explanation.clone())
                .unwrap_or_default();
            Change {
                file: r.file,
                action: r.action,
                diff: r.diff,
                explanation,
                truncated: r.truncated,
            }
        })
        .collect()
}

/// A run's status and, once it is done, its result.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RunReport {
    pub run_id: String,
    pub agent_id: String,
    /// The tool that started the run.
    pub tool: String,
    /// running, ok, failed, cancelled or timed_out.
    pub status: String,
    /// While running: what the agent is doing (its last progress message).
    /// Once done: a short summary.
    pub message: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Once done: the tool's full result, exactly as the call would have
    /// returned it.
    #[schemars(with = "Option<serde_json::Map<String, Value>>")]
    pub result: Option<Value>,
    /// Why the call failed, when it did.
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codex::FileChangeKind;

    #[test]
    fn merge_uses_real_changes_and_flags_false_claims() {
        let real = vec![FileChange {
            file: "src/a.rs".into(),
            action: FileChangeKind::Create,
            diff: "+fn a() {}\n".into(),
            truncated: false,
        }];
        let claimed = vec![
            ChangeExplanation {
                file: "./src/a.rs".into(),
                explanation: "adds a".into(),
            },
            ChangeExplanation {
                file: "src/b.rs".into(),
                explanation: "adds b".into(),
            },
        ];
        let mut warnings = vec![];
        let merged = merge_changes(real, &claimed, &mut warnings);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].explanation, "adds a");
        assert_eq!(merged[0].diff, "+fn a() {}\n");
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("src/b.rs"));
    }
}
