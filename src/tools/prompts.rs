//! Prompt builders for the coding tools. Pure: no IO.

use std::fmt::Write;

use super::args::{ContextFile, FixArgs, ImplementArgs, PlanArgs, ReviewArgs};
use super::schema::ReplyError;

/// Inline file content beyond this many bytes is cut, so one huge file cannot
/// crowd out the task.
const MAX_INLINE_FILE_BYTES: usize = 200_000;

fn bullet_list(out: &mut String, title: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{title}:");
    for i in items {
        let _ = writeln!(out, "- {}", i.trim());
    }
}

fn context_files(out: &mut String, files: &[ContextFile]) {
    if files.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nContext files:");
    for f in files {
        match f {
            ContextFile::Path(p) => {
                let _ = writeln!(out, "- {p} (in your workspace; read it)");
            }
            ContextFile::Inline { path, content } => {
                let mut end = content.len().min(MAX_INLINE_FILE_BYTES);
                while !content.is_char_boundary(end) {
                    end -= 1;
                }
                let cut = if end < content.len() {
                    "\n[... cut ...]"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "- {path} (provided by the caller):\n```\n{}{cut}\n```",
                    &content[..end]
                );
            }
        }
    }
}

pub fn plan_prompt(a: &PlanArgs) -> String {
    let mut p = String::from(
        "Plan the following task. Do not modify any files: inspect the workspace as needed, \
         then answer with the plan only, as JSON matching the given schema.\n\nTask:\n",
    );
    p.push_str(a.task.trim());
    p.push('\n');
    if let Some(ctx) = a.repo_context.as_deref().filter(|s| !s.trim().is_empty()) {
        let _ = write!(p, "\nRepository context:\n{}\n", ctx.trim());
    }
    bullet_list(
        &mut p,
        "Constraints",
        a.constraints.as_deref().unwrap_or_default(),
    );
    p
}

pub fn implement_prompt(a: &ImplementArgs) -> String {
    let mut p = String::from(
        "Implement the following task by editing files in your workspace. Make the changes \
         for real; do not only describe them. When done, answer with JSON matching the given \
         schema, listing each file you changed with an explanation.\n\nTask:\n",
    );
    p.push_str(a.task.trim());
    p.push('\n');
    bullet_list(
        &mut p,
        "Target files (relative to the workspace)",
        &a.target_files,
    );
    bullet_list(
        &mut p,
        "Requirements",
        a.requirements.as_deref().unwrap_or_default(),
    );
    context_files(&mut p, a.context_files.as_deref().unwrap_or_default());
    p
}

pub fn review_prompt(a: &ReviewArgs) -> String {
    let mut p = String::from(
        "Review the following. Do not modify any files. Scores run from 1 (worst) to 10 \
         (best). Answer with JSON matching the given schema.\n\nContent to review:\n```\n",
    );
    p.push_str(a.content.trim_end());
    p.push_str("\n```\n");
    if let Some(r) = a.rubric.as_deref().filter(|s| !s.trim().is_empty()) {
        let _ = write!(p, "\nRubric:\n{}\n", r.trim());
    }
    bullet_list(
        &mut p,
        "Focus areas",
        a.focus_areas.as_deref().unwrap_or_default(),
    );
    p
}

pub fn fix_prompt(a: &FixArgs) -> String {
    let mut p = String::from(
        "Diagnose and fix the problem below by editing files in your workspace. Find the root \
         cause before changing code. When done, answer with JSON matching the given schema.\n",
    );
    bullet_list(
        &mut p,
        "Failing tests",
        a.failing_tests.as_deref().unwrap_or_default(),
    );
    if let Some(e) = a.error_output.as_deref().filter(|s| !s.trim().is_empty()) {
        let _ = write!(p, "\nError output:\n```\n{}\n```\n", e.trim_end());
    }
    if let Some(s) = a.symptoms.as_deref().filter(|s| !s.trim().is_empty()) {
        let _ = write!(p, "\nSymptoms:\n{}\n", s.trim());
    }
    context_files(&mut p, a.context_files.as_deref().unwrap_or_default());
    p
}

/// Asks the model, in the same conversation, to restate its last answer so
/// that it matches the schema.
pub fn repair_prompt(err: &ReplyError) -> String {
    format!(
        "Your previous answer could not be accepted: {err}. Do not change any files. Reply \
         again with only the JSON object, matching the given schema exactly."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_prompt_includes_everything_given() {
        let p = plan_prompt(&PlanArgs {
            task: "Add a cache".into(),
            repo_context: Some("Flask app".into()),
            constraints: Some(vec!["no redis".into()]),
            background: None,
        });
        assert!(p.contains("Add a cache") && p.contains("Flask app") && p.contains("- no redis"));
        assert!(p.contains("Do not modify"));
    }

    #[test]
    fn implement_prompt_lists_targets_and_inline_files() {
        let p = implement_prompt(&ImplementArgs {
            task: "Write hello".into(),
            target_files: vec!["src/hello.py".into()],
            context_files: Some(vec![
                ContextFile::Path("README.md".into()),
                ContextFile::Inline {
                    path: "util.py".into(),
                    content: "def f(): pass".into(),
                },
            ]),
            requirements: None,
            background: None,
        });
        assert!(p.contains("- src/hello.py"));
        assert!(p.contains("README.md (in your workspace"));
        assert!(p.contains("def f(): pass"));
        assert!(!p.contains("Requirements"));
    }

    #[test]
    fn inline_files_are_capped_on_a_char_boundary() {
        let big = "é".repeat(MAX_INLINE_FILE_BYTES);
        let p = implement_prompt(&ImplementArgs {
            task: "t".into(),
            target_files: vec![],
            context_files: Some(vec![ContextFile::Inline {
                path: "big".into(),
                content: big,
            }]),
            requirements: None,
            background: None,
        });
        assert!(p.contains("[... cut ...]"));
        assert!(p.len() < MAX_INLINE_FILE_BYTES + 2_000);
    }

    #[test]
    fn context_files_deserialize_from_both_forms() {
        let v: Vec<ContextFile> =
            serde_json::from_str(r#"["a.py", {"path": "b.py", "content": "x"}]"#).unwrap();
        assert_eq!(v[0], ContextFile::Path("a.py".into()));
        assert!(matches!(&v[1], ContextFile::Inline { path, .. } if path == "b.py"));
    }

    #[test]
    fn fix_prompt_and_emptiness() {
        let empty = FixArgs {
            failing_tests: Some(vec![]),
            error_output: Some("  ".into()),
            context_files: None,
            symptoms: None,
            background: None,
        };
        assert!(empty.is_empty());
        let a = FixArgs {
            error_output: Some("ZeroDivisionError".into()),
            ..empty
        };
        assert!(!a.is_empty());
        assert!(fix_prompt(&a).contains("ZeroDivisionError"));
    }
}
