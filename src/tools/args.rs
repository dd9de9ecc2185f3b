//! Tool arguments. Their doc comments become the input schemas agents read
//! to decide what to call and how, so they are written for an agent.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A file to take into account: a path in the agent's workspace, or a file
/// from your side given with its content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ContextFile {
    /// A path relative to the agent's workspace; the agent reads it itself.
    Path(String),
    /// A file you provide. Its content is shown to the agent as context; it is
    /// not written to the workspace.
    Inline {
        /// Where the file lives in your project, relative to its root.
        path: String,
        /// The file's content.
        content: String,
    },
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct PlanArgs {
    /// What should be achieved, in plain words. Be specific about the goal and
    /// any acceptance criteria.
    pub task: String,
    /// Background the planner cannot see for itself: architecture, conventions,
    /// relevant parts of your codebase.
    #[serde(default)]
    pub repo_context: Option<String>,
    /// Hard constraints the plan must respect, e.g. "no new dependencies".
    #[serde(default)]
    pub constraints: Option<Vec<String>>,
    /// Run in the background: the call returns at once with a `run_id`
    /// instead of the result, and the agent works on without you. Call
    /// `get_run` with that id (and `wait_seconds` to wait for the end) for
    /// the progress and, once done, this tool's full result; `cancel_run`
    /// stops it. Results are kept for an hour. Use it for long tasks when
    /// your client gives up on calls that take minutes.
    #[serde(default)]
    pub background: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct ImplementArgs {
    /// What to implement. The agent writes code in its workspace.
    pub task: String,
    /// Files to create or change, relative to the agent's workspace
    /// (e.g. "src/lib.rs"). Absolute paths and ".." are refused.
    pub target_files: Vec<String>,
    /// Files to read for context: workspace paths, or {path, content} objects
    /// for files from your side.
    #[serde(default)]
    pub context_files: Option<Vec<ContextFile>>,
    /// Requirements the implementation must meet, e.g. "handle empty input".
    #[serde(default)]
    pub requirements: Option<Vec<String>>,
    /// Run in the background: the call returns at once with a `run_id`
    /// instead of the result, and the agent works on without you. Call
    /// `get_run` with that id (and `wait_seconds` to wait for the end) for
    /// the progress and, once done, this tool's full result; `cancel_run`
    /// stops it. Results are kept for an hour. Use it for long tasks when
    /// your client gives up on calls that take minutes.
    #[serde(default)]
    pub background: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct ReviewArgs {
    /// What to review: code, a diff, or workspace file paths (one per line).
    /// The workspace is never modified by a review.
    pub content: String,
    /// How to judge, e.g. your team's review checklist.
    #[serde(default)]
    pub rubric: Option<String>,
    /// Aspects to concentrate on, e.g. ["security", "performance"].
    #[serde(default)]
    pub focus_areas: Option<Vec<String>>,
    /// Run in the background: the call returns at once with a `run_id`
    /// instead of the result, and the agent works on without you. Call
    /// `get_run` with that id (and `wait_seconds` to wait for the end) for
    /// the progress and, once done, this tool's full result; `cancel_run`
    /// stops it. Results are kept for an hour. Use it for long tasks when
    /// your client gives up on calls that take minutes.
    #[serde(default)]
    pub background: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct FixArgs {
    /// Names of the failing tests, e.g. ["tests/test_api.py::test_login"].
    #[serde(default)]
    pub failing_tests: Option<Vec<String>>,
    /// The error output or stack trace, verbatim.
    #[serde(default)]
    pub error_output: Option<String>,
    /// Files involved: workspace paths, or {path, content} objects for files
    /// from your side.
    #[serde(default)]
    pub context_files: Option<Vec<ContextFile>>,
    /// What goes wrong, as observed, e.g. "login hangs after 30 s".
    #[serde(default)]
    pub symptoms: Option<String>,
    /// Run in the background: the call returns at once with a `run_id`
    /// instead of the result, and the agent works on without you. Call
    /// `get_run` with that id (and `wait_seconds` to wait for the end) for
    /// the progress and, once done, this tool's full result; `cancel_run`
    /// stops it. Results are kept for an hour. Use it for long tasks when
    /// your client gives up on calls that take minutes.
    #[serde(default)]
    pub background: Option<bool>,
}

impl FixArgs {
    pub fn is_empty(&self) -> bool {
        self.failing_tests.as_ref().is_none_or(Vec::is_empty)
            && self
                .error_output
                .as_deref()
                .is_none_or(|s| s.trim().is_empty())
            && self.context_files.as_ref().is_none_or(Vec::is_empty)
            && self.symptoms.as_deref().is_none_or(|s| s.trim().is_empty())
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct ChatArgs {
    /// Your message. The agent remembers the conversation across calls.
    pub message: String,
    /// Start a fresh conversation instead of continuing the current one. The
    /// workspace is kept.
    #[serde(default)]
    pub new_conversation: Option<bool>,
    /// Run in the background: the call returns at once with a `run_id`
    /// instead of the result, and the agent works on without you. Call
    /// `get_run` with that id (and `wait_seconds` to wait for the end) for
    /// the progress and, once done, this tool's full result; `cancel_run`
    /// stops it. Results are kept for an hour. Use it for long tasks when
    /// your client gives up on calls that take minutes.
    #[serde(default)]
    pub background: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct ListSessionsArgs {
    /// Show only this agent. Omit to list all agents you can see.
    #[serde(default)]
    pub agent_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct AgentStatusArgs {
    /// The agent to show. Omit for your own.
    #[serde(default)]
    pub agent_id: Option<String>,
}
