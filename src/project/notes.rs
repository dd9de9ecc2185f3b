//! What the next turn must be told: a rollback changes files behind the
//! conversation's back, so it leaves a note in the agent's Codex home and
//! the next run's prompt begins with it. Kept in the agent's environment
//! (not the gateway), so it survives a gateway restart and works the same
//! on every backend.

use std::path::Path;

const NOTE_FILE: &str = "codex-mcp-next-turn.md";

/// What a rollback to `checkpoint` tells the conversation.
pub fn rollback_note(checkpoint: &str, undone: &[String], files: &[String]) -> String {
    let mut note = format!(
        "Note from codex-mcp: the workspace's files were rolled back to checkpoint {checkpoint}"
    );
    if undone.is_empty() {
        note.push_str(", undoing the changes made since it was taken");
    } else {
        note.push_str(&format!(
            ", undoing the changes of the later turns (checkpoints {})",
            undone.join(", ")
        ));
    }
    if files.is_empty() {
        note.push_str("; no file differed.");
    } else {
        const SHOWN: usize = 20;
        let mut list = files
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if files.len() > SHOWN {
            list.push_str(&format!(" and {} more", files.len() - SHOWN));
        }
        note.push_str(&format!("; files restored: {list}."));
    }
    note.push_str(
        " Edits you made after that checkpoint are gone: read the files again before relying on them.",
    );
    note
}

/// Adds `note` to what the next turn is told.
pub fn leave(codex_home: &Path, note: &str) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(codex_home)?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(codex_home.join(NOTE_FILE))?;
    writeln!(f, "{note}")
}

/// `prompt` preceded by the notes left for it, which are then gone.
pub fn take(codex_home: &Path, prompt: &str) -> String {
    let path = codex_home.join(NOTE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(notes) if !notes.trim().is_empty() => {
            let _ = std::fs::remove_file(&path);
            format!("{}\n\n{prompt}", notes.trim_end())
        }
        _ => prompt.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_names_the_checkpoint_and_what_was_undone() {
        let n = rollback_note("a@1", &["a@2".into(), "a@3".into()], &["x.txt".into()]);
        assert!(n.contains("checkpoint a@1"), "{n}");
        assert!(n.contains("checkpoints a@2, a@3"), "{n}");
        assert!(n.contains("files restored: x.txt."), "{n}");
        let many: Vec<String> = (0..25).map(|i| format!("f{i}")).collect();
        assert!(rollback_note("a@1", &[], &many).contains("and 5 more"));
    }

    #[test]
    fn notes_are_told_once() {
        let home = tempfile::tempdir().unwrap();
        assert_eq!(take(home.path(), "do it"), "do it");
        leave(home.path(), "first").unwrap();
        leave(home.path(), "second").unwrap();
        assert_eq!(take(home.path(), "do it"), "first\nsecond\n\ndo it");
        assert_eq!(take(home.path(), "again"), "again");
    }
}
