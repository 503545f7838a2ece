//! The rmcp `ServerHandler`: the kernel's tools listed and called as MCP tools.

use hakiri_kernel::{Caller, Context, Credential};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::Value;
use std::sync::Arc;

/// The MCP server handler: the kernel's tools as MCP tools.
#[derive(Clone)]
pub struct McpServer {
    ctx: Context,
    /// The registry's tools in MCP form, built once (the registry is fixed).
    tools: Arc<Vec<rmcp::model::Tool>>,
}

impl McpServer {
    pub fn new(ctx: Context) -> McpServer {
        let tools = ctx
            .registry
            .tools
            .values()
            .map(|t| mcp_tool(&t.item))
            .collect();
        McpServer {
            ctx,
            tools: Arc::new(tools),
        }
    }
}

/// A kernel tool as an MCP tool. MCP wants an object schema at the top; a
/// schema without a `type` (schemars' `oneOf` for enums) is marked as one.
fn mcp_tool(tool: &hakiri_kernel::Tool) -> rmcp::model::Tool {
    let mut schema = match &tool.input_schema {
        Value::Object(map) => map.clone(),
        _ => JsonObject::new(),
    };
    schema
        .entry("type")
        .or_insert_with(|| Value::String("object".into()));
    rmcp::model::Tool::new(
        tool.name.clone(),
        tool.description.clone(),
        Arc::new(schema),
    )
}

fn instructions(ctx: &Context) -> String {
    let p = ctx.profile;
    format!(
        "Hakiri {} {}: data-retrieval tools for AI agents. Each of this profile's {} tools takes a JSON object \
         matching its input schema and returns JSON, as text and as structured content; a tool that fails \
         returns isError with the reason.",
        p.name,
        p.version,
        ctx.registry.tools.len()
    )
}

/// The protocol error for a tool this binary does not have, naming the
/// profiles that do when another profile has it.
fn unknown_tool(ctx: &Context, name: &str) -> ErrorData {
    let message = match ctx.profile.lacks("tool", name) {
        Some(e) => e.to_string(),
        None => format!("unknown tool `{name}`; tools/list lists the tools of this server"),
    };
    ErrorData::invalid_params(message, None)
}

/// The caller behind a streamable HTTP request: its MCP session and the
/// bearer token it presented, if any (an authorizer decides what it grants).
fn http_caller(http: &axum::http::request::Parts) -> Caller {
    let header = |name: &str| http.headers.get(name).and_then(|v| v.to_str().ok());
    Caller::Agent {
        transport: "mcp-http",
        session: header("mcp-session-id").map(str::to_string),
        credential: header("authorization").and_then(Credential::from_bearer),
    }
}

impl McpServer {
    /// The kernel acting for this request's caller: the HTTP request's
    /// session and token, or the stdio session's caller.
    fn caller_context(&self, context: &RequestContext<RoleServer>) -> Context {
        match context.extensions.get::<axum::http::request::Parts>() {
            Some(http) => self.ctx.with_caller(http_caller(http)),
            None => self.ctx.clone(),
        }
    }
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        let p = self.ctx.profile;
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("hakiri", p.version).with_title(format!("Hakiri ({})", p.name)),
            )
            .with_instructions(instructions(&self.ctx))
    }

    /// Only the tools this caller may call: a token's grants shape the list.
    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let ctx = self.caller_context(&context);
        let callable = ctx.callable_tools().await;
        let granted = self
            .tools
            .iter()
            .filter(|t| callable.contains(&t.name.as_ref()))
            .cloned()
            .collect();
        Ok(ListToolsResult::with_all_items(granted))
    }

    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        self.tools.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name;
        if !self.ctx.registry.tools.contains_key(name.as_ref()) {
            return Err(unknown_tool(&self.ctx, &name));
        }
        let input = Value::Object(request.arguments.unwrap_or_default());
        let ctx = self.caller_context(&context);
        let outcome = tokio::select! {
            outcome = ctx.call(&name, input) => outcome,
            () = context.ct.cancelled() => {
                return Err(ErrorData::internal_error(format!("call to `{name}` was cancelled by the client"), None));
            }
        };
        let result = match outcome {
            Ok(value) => CallToolResult::structured(value),
            Err(e) => CallToolResult::error(vec![ContentBlock::text(e.to_string())]),
        };
        Ok(result.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{context, PROFILE};
    use hakiri_kernel::Config;
    use rmcp::model::ErrorCode;
    use rmcp::service::RunningService as McpSession;
    use rmcp::{RoleClient, ServiceError, ServiceExt};
    use serde_json::json;

    async fn connect(
        ctx: Context,
    ) -> (
        McpSession<RoleServer, McpServer>,
        McpSession<RoleClient, ()>,
    ) {
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        let (server, client) =
            tokio::join!(McpServer::new(ctx).serve(server_io), ().serve(client_io));
        (
            server.expect("server handshake"),
            client.expect("client handshake"),
        )
    }

    fn args(v: Value) -> JsonObject {
        v.as_object().cloned().expect("object")
    }

    #[tokio::test]
    async fn initialize_and_list_tools() {
        let ctx = context(Config::default());
        let (server, client) = connect(ctx.clone()).await;

        let info = client.peer_info().expect("server info");
        assert!(
            info.protocol_version.has_initialize(),
            "{}",
            info.protocol_version
        );
        let implementation = info.server_info.as_ref().expect("implementation");
        assert_eq!(implementation.name, "hakiri");
        assert_eq!(implementation.version, PROFILE.version);
        assert!(info
            .instructions
            .as_deref()
            .unwrap_or_default()
            .contains("Hakiri test"));
        assert!(info.capabilities.tools.is_some());

        let tools = client.list_all_tools().await.unwrap();
        assert_eq!(tools.len(), ctx.registry.tools.len());
        let echo = tools
            .iter()
            .find(|t| t.name == "test.echo")
            .expect("test.echo listed");
        assert_eq!(echo.description.as_deref(), Some("Echo the input"));
        let expected = ctx.registry.tools["test.echo"].item.input_schema.clone();
        assert_eq!(Value::Object(echo.input_schema.as_ref().clone()), expected);
        assert_eq!(echo.input_schema["type"], "object");
        assert!(echo.input_schema["properties"]["message"].is_object());

        client.cancel().await.unwrap();
        server.cancel().await.unwrap();
    }

    #[tokio::test]
    async fn call_tool_returns_json() {
        let (server, client) = connect(context(Config::default())).await;
        let input = json!({"message": "hello", "count": 3});
        let result = client
            .call_tool(CallToolRequestParams::new("test.echo").with_arguments(args(input.clone())))
            .await
            .unwrap();
        assert_eq!(result.is_error, Some(false));
        assert_eq!(result.structured_content, Some(input.clone()));
        let text = &result.content[0].as_text().expect("text content").text;
        assert_eq!(serde_json::from_str::<Value>(text).unwrap(), input);
        client.cancel().await.unwrap();
        server.cancel().await.unwrap();
    }

    #[tokio::test]
    async fn tool_errors_are_tool_results() {
        let (server, client) = connect(context(Config::default())).await;

        let failed = client
            .call_tool(
                CallToolRequestParams::new("test.fail")
                    .with_arguments(args(json!({"message": "x"}))),
            )
            .await
            .unwrap();
        assert_eq!(failed.is_error, Some(true));
        let text = &failed.content[0].as_text().expect("text content").text;
        assert!(text.contains("boom"), "{text}");

        // Arguments that do not match the schema: the tool's own error, not a protocol error.
        let invalid = client
            .call_tool(
                CallToolRequestParams::new("test.echo").with_arguments(args(json!({"nope": 1}))),
            )
            .await
            .unwrap();
        assert_eq!(invalid.is_error, Some(true));
        let text = &invalid.content[0].as_text().expect("text content").text;
        assert!(
            text.contains("invalid input for tool `test.echo`"),
            "{text}"
        );

        client.cancel().await.unwrap();
        server.cancel().await.unwrap();
    }

    #[tokio::test]
    async fn unknown_tool_is_a_protocol_error() {
        let (server, client) = connect(context(Config::default())).await;
        let err = client
            .call_tool(CallToolRequestParams::new("no.such.tool"))
            .await
            .unwrap_err();
        match err {
            ServiceError::McpError(e) => {
                assert_eq!(e.code, ErrorCode::INVALID_PARAMS);
                assert!(e.message.contains("no.such.tool"), "{}", e.message);
            }
            other => panic!("expected an MCP error, got {other:?}"),
        }
        client.cancel().await.unwrap();
        server.cancel().await.unwrap();
    }
}
