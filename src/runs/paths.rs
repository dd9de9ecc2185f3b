//! Progress messages in the caller's terms: paths relative to the agent's
//! workspace, never where the server keeps agents (data dir, tenant).

use std::path::Path;

use crate::codex::{CodexEvent, EventItem};

/// Replaces the agent's server-side directories in text meant for callers.
#[derive(Debug, Clone)]
pub(crate) struct Relativizer {
    /// (absolute prefix, what callers see instead), longest first.
    roots: Vec<(String, &'static str)>,
}

impl Relativizer {
    pub(crate) fn new(workspace: &Path, codex_home: &Path) -> Self {
        let mut roots = vec![
            (workspace.display().to_string(), "."),
            (codex_home.display().to_string(), "$CODEX_HOME"),
        ];
        if let Some(agent_dir) = workspace.parent() {
            roots.push((agent_dir.display().to_string(), "<agent>"));
        }
        roots.retain(|(p, _)| p.len() > 1);
        roots.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        Self { roots }
    }

    pub(crate) fn text(&self, s: &str) -> String {
        let mut out = s.to_owned();
        for (abs, shown) in &self.roots {
            if !out.contains(abs.as_str()) {
                continue;
            }
            // "WS/src/a.rs" reads best as "src/a.rs".
            if *shown == "." {
                out = out.replace(&format!("{abs}/"), "");
            }
            out = out.replace(abs.as_str(), shown);
        }
        out
    }

    fn item(&self, item: EventItem) -> EventItem {
        match item {
            EventItem::AgentMessage { text } => EventItem::AgentMessage {
                text: self.text(&text),
            },
            EventItem::CommandExecution { command, exit_code } => EventItem::CommandExecution {
                command: self.text(&command),
                exit_code,
            },
            EventItem::FileChange { changes } => EventItem::FileChange {
                changes: changes
                    .into_iter()
                    .map(|(p, k)| (self.text(&p), k))
                    .collect(),
            },
            other => other,
        }
    }

    /// The event with its paths made relative, before any message is cut
    /// to length (a cut path could leave part of the prefix behind).
    pub(crate) fn event(&self, ev: CodexEvent) -> CodexEvent {
        match ev {
            CodexEvent::ItemStarted(i) => CodexEvent::ItemStarted(self.item(i)),
            CodexEvent::ItemCompleted(i) => CodexEvent::ItemCompleted(self.item(i)),
            CodexEvent::TurnFailed { message } => CodexEvent::TurnFailed {
                message: self.text(&message),
            },
            CodexEvent::Error { message } => CodexEvent::Error {
                message: self.text(&message),
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_paths_become_workspace_relative() {
        let r = Relativizer::new(
            Path::new("/srv/data/tenants/acme/agents/a/workspace"),
            Path::new("/srv/data/tenants/acme/agents/a/codex-home"),
        );
        let ev = CodexEvent::ItemCompleted(EventItem::FileChange {
            changes: vec![(
                "/srv/data/tenants/acme/agents/a/workspace/src/x.rs".into(),
                "add".into(),
            )],
        });
        let msg = r.event(ev).progress_message().unwrap();
        assert_eq!(msg, "file changed: src/x.rs (add)");
        assert_eq!(
            r.text("cd /srv/data/tenants/acme/agents/a/workspace && ls /srv/data/tenants/acme/agents/a/tmp"),
            "cd . && ls <agent>/tmp"
        );
    }
}
