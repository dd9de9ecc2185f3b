//! What a failed call changed in the workspace, for its error message.

use super::ToolError;
use crate::runs::TurnResult;

/// Adds what the failed call changed in the workspace to its error: the
/// caller must know its files changed even though no result came back.
pub(super) fn with_changes(e: ToolError, run: &TurnResult) -> ToolError {
    match e {
        ToolError::Failed(m) if !run.outcome.changes.is_empty() => {
            ToolError::Failed(format!("{m}\n\n{}", describe_changes(&run.outcome.changes)))
        }
        other => other,
    }
}

/// Changed files with their diffs while those stay short.
fn describe_changes(changes: &[crate::codex::FileChange]) -> String {
    const DIFF_BUDGET: usize = 8 * 1024;
    let mut out = format!(
        "The workspace was changed nonetheless ({} file(s)):",
        changes.len()
    );
    for c in changes {
        let action = match c.action {
            crate::codex::FileChangeKind::Create => "created",
            crate::codex::FileChangeKind::Modify => "modified",
            crate::codex::FileChangeKind::Delete => "deleted",
        };
        out.push_str(&format!("\n- {} ({action})", c.file));
    }
    let total: usize = changes.iter().map(|c| c.diff.len()).sum();
    if total <= DIFF_BUDGET {
        out.push_str("\n\nDiffs:\n");
        for c in changes {
            out.push_str(&c.diff);
        }
    }
    out
}
