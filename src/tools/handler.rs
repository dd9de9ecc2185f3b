//! The MCP server's request handling around the tools: server info and
//! instructions, argument checks before a tool runs (with errors naming the
//! problem), Tasks for the Codex-backed tools, and JSON-RPC errors for
//! requests that do not parse.

use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::model::CallToolResponse;
use rmcp::service::RequestContext;
use rmcp::{tool_handler, ErrorData, RoleServer, ServerHandler};

use super::{schema, tasks, tool_names, CodexTools, ToolError, INSTRUCTIONS};

#[tool_handler(router = self.tool_router)]
impl ServerHandler for CodexTools {
    fn get_info(&self) -> rmcp::model::ServerConfig {
        rmcp::model::ServerConfig::new(
            rmcp::model::ServerCapabilities::builder()
                .enable_tools()
                .enable_tasks()
                .build(),
        )
        .with_server_info(rmcp::model::Implementation::new(
            "codex-mcp",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(INSTRUCTIONS)
    }

    async fn call_tool(
        &self,
        request: rmcp::model::CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // Name the unknown tool and the real ones, so a calling agent can correct itself.
        if !self.tool_router.has_route(&request.name) {
            return Err(ErrorData::invalid_params(
                format!(
                    "unknown tool `{}`; available tools: {}",
                    request.name,
                    tool_names(self).join(", ")
                ),
                None,
            ));
        }
        if let Some(tool) = self.tool_router.get(&request.name) {
            let arguments = request.arguments.clone().unwrap_or_default();
            if let Err(problems) = schema::check_arguments(&tool.input_schema, &arguments) {
                return ToolError::InvalidParams(problems).into_call_tool_result();
            }
        }
        // A client that declared Tasks gets a task for a Codex-backed call;
        // any other call, and any other client, an ordinary result.
        let task = tasks::client_declared_tasks(&context)
            && tasks::TASK_TOOLS.contains(&request.name.as_ref());
        let mut context = context;
        if task {
            context.extensions.insert(tasks::TaskRequested);
        }
        let tcc = rmcp::handler::server::tool::ToolCallContext::new(self, request, context);
        let response = self.tool_router.call(tcc).await?;
        Ok(if task {
            self.answer_with_task(response)
        } else {
            response
        })
    }

    async fn get_task(
        &self,
        request: rmcp::model::GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::GetTaskResult, ErrorData> {
        self.task_get(request.task_id, context).await
    }

    async fn cancel_task(
        &self,
        request: rmcp::model::CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.task_cancel(request.task_id, context).await
    }

    async fn update_task(
        &self,
        request: rmcp::model::UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.task_update(request.task_id, context).await
    }

    async fn on_custom_request(
        &self,
        request: rmcp::model::CustomRequest,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CustomResult, ErrorData> {
        // A known method whose params do not parse lands here; it is there,
        // its params are not.
        if request.method == "tools/call" {
            return Err(ErrorData::invalid_params(
                "tools/call params must be an object with `name` (a string) and \
                 `arguments` (an object, e.g. {\"task\": \"...\"})",
                None,
            ));
        }
        Err(ErrorData::new(
            rmcp::model::ErrorCode::METHOD_NOT_FOUND,
            request.method,
            None,
        ))
    }
}
