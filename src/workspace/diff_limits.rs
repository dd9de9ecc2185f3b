//! Bounds on the diff text a run reports.

use crate::api::request::{DiffLimits, FileChange};

/// Cuts diffs to `limits`, saying so in each cut diff and marking it
/// `truncated`. Files stay listed even when their diff is left out.
pub fn bound_diffs(changes: &mut [FileChange], limits: DiffLimits) {
    let mut left = limits.max_total_bytes;
    for c in changes.iter_mut() {
        // Cut once (in agent-run); the gateway's pass then only counts it,
        // so applying the limits again changes nothing.
        if c.truncated {
            left = left.saturating_sub(c.diff.len());
            continue;
        }
        let full = c.diff.len();
        let budget = limits.max_file_bytes.min(left);
        if full <= budget {
            left -= full;
            continue;
        }
        let mut cut = budget;
        while !c.diff.is_char_boundary(cut) {
            cut -= 1;
        }
        // End on a whole line, so the shown part stays a readable diff.
        if let Some(nl) = c.diff[..cut].rfind('\n') {
            cut = nl + 1;
        } else {
            cut = 0;
        }
        c.diff.truncate(cut);
        c.diff.shrink_to_fit();
        let why = if budget < limits.max_file_bytes {
            "the run's diffs exceed the total limit"
        } else {
            "the file's diff exceeds the per-file limit"
        };
        c.diff.push_str(&format!(
            "[diff truncated: {cut} of {full} bytes shown; {why}]\n"
        ));
        c.truncated = true;
        left = left.saturating_sub(c.diff.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::request::FileChangeKind;

    #[test]
    fn diffs_are_bounded_per_file_and_in_total() {
        let big = |file: &str, lines: usize| FileChange {
            file: file.into(),
            action: FileChangeKind::Create,
            diff: "+0123456789\n".repeat(lines),
            truncated: false,
        };
        let mut changes = vec![
            big("small", 2),
            big("huge", 1000),
            big("a", 50),
            big("b", 50),
        ];
        let limits = DiffLimits {
            max_file_bytes: 500,
            max_total_bytes: 1000,
        };
        bound_diffs(&mut changes, limits);
        assert!(!changes[0].truncated);
        assert!(changes[1].truncated && changes[1].diff.contains("per-file limit"));
        assert!(changes[1].diff.starts_with("+0123456789\n"));
        assert!(changes[3].truncated && changes[3].diff.contains("total limit"));
        let shown: usize = changes
            .iter()
            .map(|c| c.diff.lines().filter(|l| l.starts_with('+')).count() * 12)
            .sum();
        assert!(shown <= 1000, "{shown}");

        // agent-run cuts, the gateway applies the same limits again: the
        // second pass must change nothing.
        let once = changes.clone();
        bound_diffs(&mut changes, limits);
        assert_eq!(changes, once);
    }
}
