//! The MCP server: the coding tools (plan, implement, review, fix, chat) and
//! the session tools, on top of the shared [`Runner`].

pub mod args;
pub mod background;
pub mod caller;
mod changes;
mod finish;
mod handler;
pub mod project_tools;
pub mod prompts;
pub mod responses;
pub mod schema;
pub mod session;
pub mod tasks;

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, ErrorData, Json, RoleServer};
use serde::de::DeserializeOwned;

use crate::agent::AgentId;
use crate::codex::run_dir::RunId;
use crate::metrics::ToolKind;
use crate::progress::Progress;
use crate::runs::{RunError, Runner, Turn, TurnResult};
use crate::workspace::check_relative;
use args::{
    AgentStatusArgs, ChatArgs, ContextFile, FixArgs, ImplementArgs, ListSessionsArgs, PlanArgs,
    ReviewArgs,
};
use background::Answer;
use caller::Caller;
use changes::with_changes;
use finish::{finish_fix, finish_implement};
use responses::{
    ChatResponse, FixModelReply, FixResponse, ImplementModelReply, ImplementResponse,
    PlanModelReply, PlanResponse, ReviewModelReply, ReviewResponse,
};
use schema::{model_schema, parse_reply};
pub use session::{AgentStatus, CleanupResult, HealthReport, SessionInfo, SessionList};

/// A tool call that did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The call's arguments are wrong: a tool result with `isError`, so the
    /// calling model reads the reason and can correct its call.
    #[error("{0}")]
    InvalidParams(String),
    /// The connection does not allow the call (agent name, token): a JSON-RPC
    /// error, as no change of arguments helps.
    #[error("{0}")]
    Refused(String),
    /// The call ran and failed: a tool result with `isError`, so the calling
    /// agent reads the reason.
    #[error("{0}")]
    Failed(String),
}

impl From<RunError> for ToolError {
    fn from(e: RunError) -> Self {
        Self::Failed(e.to_string())
    }
}

impl IntoCallToolResult for ToolError {
    fn into_call_tool_result(self) -> Result<CallToolResponse, ErrorData> {
        match self {
            Self::Refused(m) => Err(ErrorData::invalid_params(m, None)),
            Self::InvalidParams(m) | Self::Failed(m) => {
                Ok(CallToolResult::error(vec![ContentBlock::text(m)]).into())
            }
        }
    }
}

#[derive(Clone)]
pub struct CodexTools {
    runner: Arc<Runner>,
    tool_router: ToolRouter<Self>,
    /// Appended to the run ids (and task ids) clients get: this gateway
    /// replica's tag, so that a poll reaching another replica is routed
    /// here while this one lives. Empty for a single gateway.
    run_id_suffix: Arc<str>,
}

const INSTRUCTIONS: &str = "Coding tools backed by OpenAI's Codex CLI. You have your own \
persistent agent: a workspace (files) and a conversation that continue across calls and \
reconnects. Use plan before large changes, implement and fix to change files in your \
workspace (results carry the real diffs), review for feedback without changes, chat for \
anything else. Name your agent with the X-Codex-Agent header or an /agents/NAME/ URL.";

struct Call {
    agent: AgentId,
    /// Workspace paths the caller named, for `agent-run` to resolve.
    workspace_paths: Vec<String>,
    progress: Progress,
    cancel: tokio_util::sync::CancellationToken,
    /// A background call's id, for its first run.
    run_id: Option<RunId>,
    /// The client asked for a task (MCP Tasks extension): the call runs in
    /// the background and is answered with its task.
    task: bool,
}

impl CodexTools {
    async fn call(&self, ctx: &RequestContext<RoleServer>) -> Result<Call, ToolError> {
        let caller = Caller::from_context(ctx)?;
        let agent = caller.agent_id()?;
        let asked = caller.repository.clone().map_err(ToolError::Refused)?;
        self.runner
            .declare_source(&agent, asked.as_deref())
            .await
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        let progress = Progress::new(
            ctx.peer.clone(),
            ctx.meta.get_progress_token(),
            self.runner.settings().progress_heartbeat,
        );
        Ok(Call {
            agent,
            workspace_paths: Vec::new(),
            progress,
            cancel: ctx.ct.clone(),
            run_id: None,
            task: ctx.extensions.get::<tasks::TaskRequested>().is_some(),
        })
    }

    /// Runs a turn that must answer with JSON matching `R`'s schema; one
    /// repair turn is allowed, then the mismatch is reported, never patched over.
    async fn structured_turn<R: schemars::JsonSchema + DeserializeOwned>(
        &self,
        call: &Call,
        tool: ToolKind,
        prompt: String,
        writes: bool,
    ) -> Result<(R, TurnResult), ToolError> {
        let schema = model_schema::<R>();
        let turn = Turn {
            tool,
            prompt,
            output_schema: Some(schema.clone()),
            writes,
            track_changes: writes,
            new_conversation: false,
            workspace_paths: call.workspace_paths.clone(),
            run_id: call.run_id.clone(),
            background: call.run_id.is_some(),
        };
        let first = self
            .runner
            .run_turn(&call.agent, &turn, &call.progress, &call.cancel)
            .await?;
        ensure_ok(&first).map_err(|e| with_changes(e, &first))?;
        let text = first.outcome.final_message.clone().unwrap_or_default();
        let err = match parse_reply::<R>(&schema, &text) {
            Ok(r) => return Ok((r, first)),
            Err(e) => e,
        };
        call.progress.send(format!(
            "reply did not match the schema ({err}); asking again"
        ));
        let repair = Turn {
            prompt: prompts::repair_prompt(&err),
            writes: false,
            track_changes: false,
            run_id: None,
            ..turn
        };
        let second = self
            .runner
            .run_turn(&call.agent, &repair, &call.progress, &call.cancel)
            .await
            .map_err(|e| with_changes(e.into(), &first))?;
        ensure_ok(&second).map_err(|e| with_changes(e, &first))?;
        let text = second.outcome.final_message.clone().unwrap_or_default();
        let reply = parse_reply::<R>(&schema, &text).map_err(|e| {
            self.runner
                .metrics()
                .run_finished(tool, crate::metrics::Outcome::InvalidReply);
            with_changes(
                ToolError::Failed(format!("{e} (after one retry); no result was produced")),
                &first,
            )
        })?;
        // The first run's changes are the real ones; the repair turn is read-only.
        let mut merged = first;
        merged.info.add_repair_turn(&second.info, &err.to_string());
        merged.outcome.final_message = second.outcome.final_message;
        Ok((reply, merged))
    }
}

fn ensure_ok(r: &TurnResult) -> Result<(), ToolError> {
    if r.outcome.ok {
        return Ok(());
    }
    Err(ToolError::Failed(
        r.outcome
            .error
            .clone()
            .unwrap_or_else(|| "codex run failed".to_owned()),
    ))
}

/// Refuses workspace paths that are unsafe by their text alone. The gateway
/// never looks at an agent's files here: they live in the agent's
/// environment (a pod's volume on Kubernetes), not on the gateway's disk.
fn check_paths<'a>(paths: impl IntoIterator<Item = &'a str>) -> Result<Vec<String>, ToolError> {
    paths
        .into_iter()
        .map(|p| {
            check_relative(p)
                .map(|_| p.to_owned())
                .map_err(|e| ToolError::InvalidParams(e.to_string()))
        })
        .collect()
}

fn context_paths(files: &Option<Vec<ContextFile>>) -> impl Iterator<Item = &str> {
    files.iter().flatten().filter_map(|f| match f {
        ContextFile::Path(p) => Some(p.as_str()),
        ContextFile::Inline { .. } => None,
    })
}

fn require_text(name: &str, value: &str) -> Result<(), ToolError> {
    if value.trim().is_empty() {
        return Err(ToolError::InvalidParams(format!(
            "argument `{name}` must not be empty"
        )));
    }
    Ok(())
}

#[tool_router]
impl CodexTools {
    /// Run ids handed out end with `suffix` (see [`CodexTools::run_id_suffix`]).
    pub fn with_run_id_suffix(mut self, suffix: Arc<str>) -> Self {
        self.run_id_suffix = suffix;
        self
    }

    pub fn new(runner: Arc<Runner>) -> Self {
        // Stateless MCP requests build a server per request; generating the
        // schemas once keeps that cheap.
        static ROUTER: std::sync::OnceLock<ToolRouter<CodexTools>> = std::sync::OnceLock::new();
        let tool_router = ROUTER
            .get_or_init(|| {
                schema::publish(Self::tool_router() + Self::run_tools() + Self::project_tools())
            })
            .clone();
        Self {
            runner,
            tool_router,
            run_id_suffix: Arc::from(""),
        }
    }

    /// Plan a task without changing anything: steps, affected files, risks,
    /// dependencies, testing strategy and effort. Read-only.
    #[tool(
        description = "Plan a coding task before implementing it. Returns ordered steps with the files each touches, risks, dependencies, a testing strategy and an effort estimate. Never modifies the workspace.",
        annotations(read_only_hint = true, open_world_hint = true),
        output_schema = schema::or_background::<PlanResponse>()
    )]
    async fn plan(
        &self,
        Parameters(args): Parameters<PlanArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Answer<PlanResponse>, ToolError> {
        require_text("task", &args.task)?;
        let call = self.call(&ctx).await?;
        if args.background == Some(true) || call.task {
            return self
                .start_background(call, ToolKind::Plan, |this, call| async move {
                    this.do_plan(&call, &args).await
                })
                .await;
        }
        self.do_plan(&call, &args).await.map(Answer::Done)
    }

    async fn do_plan(&self, call: &Call, args: &PlanArgs) -> Result<PlanResponse, ToolError> {
        let (plan, turn) = self
            .structured_turn::<PlanModelReply>(
                call,
                ToolKind::Plan,
                prompts::plan_prompt(args),
                false,
            )
            .await?;
        Ok(PlanResponse {
            plan,
            run: turn.info,
        })
    }

    /// Implement a task by editing files in the agent's workspace.
    #[tool(
        description = "Implement a task by writing code in your agent's workspace. The agent edits the target files for real; the result lists every changed file with its actual unified diff (computed from the workspace before and after), plus dependencies added, tests needed, integration notes, next steps and warnings.",
        annotations(destructive_hint = false, open_world_hint = true),
        output_schema = schema::or_background::<ImplementResponse>()
    )]
    async fn implement(
        &self,
        Parameters(args): Parameters<ImplementArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Answer<ImplementResponse>, ToolError> {
        require_text("task", &args.task)?;
        let mut call = self.call(&ctx).await?;
        call.workspace_paths = check_paths(
            args.target_files
                .iter()
                .map(String::as_str)
                .chain(context_paths(&args.context_files)),
        )?;
        if args.background == Some(true) || call.task {
            return self
                .start_background(call, ToolKind::Implement, |this, call| async move {
                    this.do_implement(&call, &args).await
                })
                .await;
        }
        self.do_implement(&call, &args).await.map(Answer::Done)
    }

    async fn do_implement(
        &self,
        call: &Call,
        args: &ImplementArgs,
    ) -> Result<ImplementResponse, ToolError> {
        self.prepare_history(call).await;
        let (reply, turn) = self
            .structured_turn::<ImplementModelReply>(
                call,
                ToolKind::Implement,
                prompts::implement_prompt(args),
                true,
            )
            .await?;
        let mut r = finish_implement(reply, turn);
        match self
            .checkpoint_after(call, ToolKind::Implement, &r.run)
            .await
        {
            Ok(id) => r.checkpoint = Some(id),
            Err(why) => r.warnings.push(why),
        }
        Ok(r)
    }

    /// Review code, a diff, or workspace files. Read-only.
    #[tool(
        description = "Review code, a diff, or files in your workspace. Returns an overall rating, line-level comments (severity, category, suggestion), security/performance/maintainability scores from 1 to 10, a summary and recommendations. Never modifies the workspace.",
        annotations(read_only_hint = true, open_world_hint = true),
        output_schema = schema::or_background::<ReviewResponse>()
    )]
    async fn review(
        &self,
        Parameters(args): Parameters<ReviewArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Answer<ReviewResponse>, ToolError> {
        require_text("content", &args.content)?;
        let call = self.call(&ctx).await?;
        if args.background == Some(true) || call.task {
            return self
                .start_background(call, ToolKind::Review, |this, call| async move {
                    this.do_review(&call, &args).await
                })
                .await;
        }
        self.do_review(&call, &args).await.map(Answer::Done)
    }

    async fn do_review(&self, call: &Call, args: &ReviewArgs) -> Result<ReviewResponse, ToolError> {
        let (review, turn) = self
            .structured_turn::<ReviewModelReply>(
                call,
                ToolKind::Review,
                prompts::review_prompt(args),
                false,
            )
            .await?;
        Ok(ReviewResponse {
            review,
            run: turn.info,
        })
    }

    /// Diagnose and fix a problem in the workspace.
    #[tool(
        description = "Diagnose and fix a bug in your agent's workspace from failing tests, error output, symptoms and/or context files (give at least one). Returns each problem with its root cause, solution and prevention, diagnostic steps, and the real diffs of the files changed.",
        annotations(destructive_hint = false, open_world_hint = true),
        output_schema = schema::or_background::<FixResponse>()
    )]
    async fn fix(
        &self,
        Parameters(args): Parameters<FixArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Answer<FixResponse>, ToolError> {
        if args.is_empty() {
            return Err(ToolError::InvalidParams(
                "give at least one of failing_tests, error_output, context_files or symptoms"
                    .into(),
            ));
        }
        let mut call = self.call(&ctx).await?;
        call.workspace_paths = check_paths(context_paths(&args.context_files))?;
        if args.background == Some(true) || call.task {
            return self
                .start_background(call, ToolKind::Fix, |this, call| async move {
                    this.do_fix(&call, &args).await
                })
                .await;
        }
        self.do_fix(&call, &args).await.map(Answer::Done)
    }

    async fn do_fix(&self, call: &Call, args: &FixArgs) -> Result<FixResponse, ToolError> {
        self.prepare_history(call).await;
        let (reply, turn) = self
            .structured_turn::<FixModelReply>(call, ToolKind::Fix, prompts::fix_prompt(args), true)
            .await?;
        let mut r = finish_fix(reply, turn);
        match self.checkpoint_after(call, ToolKind::Fix, &r.run).await {
            Ok(id) => r.checkpoint = Some(id),
            Err(why) => r.fix.warnings.push(why),
        }
        Ok(r)
    }

    /// Free-form conversation with the agent.
    #[tool(
        description = "Talk to your agent freely: ask questions, give follow-up instructions, or have it run commands in its workspace. The conversation continues across calls; set new_conversation to start over (the workspace is kept).",
        annotations(destructive_hint = false, open_world_hint = true),
        output_schema = schema::or_background::<ChatResponse>()
    )]
    async fn chat(
        &self,
        Parameters(args): Parameters<ChatArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Answer<ChatResponse>, ToolError> {
        require_text("message", &args.message)?;
        let call = self.call(&ctx).await?;
        if args.background == Some(true) || call.task {
            return self
                .start_background(call, ToolKind::Chat, |this, call| async move {
                    this.do_chat(&call, args).await
                })
                .await;
        }
        self.do_chat(&call, args).await.map(Answer::Done)
    }

    async fn do_chat(&self, call: &Call, args: ChatArgs) -> Result<ChatResponse, ToolError> {
        let turn = Turn {
            tool: ToolKind::Chat,
            prompt: args.message,
            output_schema: None,
            writes: true,
            track_changes: false,
            new_conversation: args.new_conversation.unwrap_or(false),
            workspace_paths: Vec::new(),
            run_id: call.run_id.clone(),
            background: call.run_id.is_some(),
        };
        let result = self
            .runner
            .run_turn(&call.agent, &turn, &call.progress, &call.cancel)
            .await?;
        ensure_ok(&result)?;
        Ok(ChatResponse {
            reply: result.outcome.final_message.unwrap_or_default(),
            run: result.info,
        })
    }

    /// List agents visible to the caller.
    #[tool(
        description = "List the agents you can use (yours and, with the same token, your tenant's) with their status, conversation id, last activity, run and token counts. Filter with agent_id.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_sessions(
        &self,
        Parameters(args): Parameters<ListSessionsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<SessionList>, ToolError> {
        let caller = Caller::from_context(&ctx)?;
        session::list_sessions(&self.runner, &caller, args.agent_id.as_deref())
            .await
            .map(Json)
    }

    /// Details of the caller's own agent.
    #[tool(
        description = "Show your own agent: its name, status, conversation id, activity and usage, and how you are connected.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_my_session_info(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<SessionInfo>, ToolError> {
        let caller = Caller::from_context(&ctx)?;
        session::session_info(&self.runner, &caller).await.map(Json)
    }

    /// One agent's status, environment included.
    #[tool(
        description = "Show one agent's status (yours by default): activity, conversation id and usage, and where its environment stands (on Kubernetes the CodexAgent's phase, pod and message).",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_agent_status(
        &self,
        Parameters(args): Parameters<AgentStatusArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<AgentStatus>, ToolError> {
        let caller = Caller::from_context(&ctx)?;
        session::agent_status(&self.runner, &caller, args.agent_id.as_deref())
            .await
            .map(Json)
    }

    /// Gateway health.
    #[tool(
        description = "Check the gateway's health: version, uptime, backend, Codex credentials in use (never their values), active agents and runs in progress.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn health_check(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<HealthReport>, ToolError> {
        let caller = Caller::from_context(&ctx)?;
        Ok(Json(session::health(&self.runner, Some(&caller.tenant))))
    }

    /// Release idle agents.
    #[tool(
        description = "Release your tenant's agents that have been idle longer than the session timeout. Their workspaces and conversations are kept and come back on the next call.",
        annotations(
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn cleanup_inactive_agents(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<CleanupResult>, ToolError> {
        let caller = Caller::from_context(&ctx)?;
        let report = self
            .runner
            .cleanup_inactive(&caller.tenant, caller.allowed_agents.as_deref())
            .await
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        Ok(Json(CleanupResult {
            released: report.released,
            busy: report.busy,
            unreadable: report.unreadable,
        }))
    }
}

/// The tool list, for documentation and tests.
pub fn tool_names(tools: &CodexTools) -> Vec<String> {
    tools
        .tool_router
        .list_all()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect()
}
