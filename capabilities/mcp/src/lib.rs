//! `mcp`: a Model Context Protocol server over every tool linked into the
//! binary. `hakiri mcp` serves it over stdio; `hakiri serve` runs the `mcp`
//! service, a streamable HTTP endpoint at `http://<[mcp] listen>/mcp`.
//!
//! The tool list is the kernel registry's: names, descriptions and input
//! schemas pass through unchanged (a schema without a top-level `type` is
//! marked `object`, as MCP requires), and calls go through [`Context::call`],
//! the same path as `hakiri call` and Lambda.

use anyhow::{anyhow, Context as _};
use hakiri_kernel::{CheckOutcome, Context, KernelError, Registrar, RunningService, Shutdown};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{IntoTransport, StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde::Deserialize;
use serde_json::Value;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

hakiri_kernel::capability!(register);

/// Where `hakiri serve` listens for MCP when `[mcp] listen` is not set.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";
/// The HTTP path of the streamable HTTP endpoint.
pub const HTTP_PATH: &str = "/mcp";
/// Upper bound for the in-process handshake of the self-check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// `[mcp]` in hakiri.toml.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    /// `host:port` for the streamable HTTP endpoint of `hakiri serve`; port 0
    /// picks a free port. Whatever the address, requests must name a loopback
    /// `Host` (localhost, 127.0.0.1, ::1): rmcp's DNS-rebinding protection.
    pub listen: String,
}

impl Default for McpConfig {
    fn default() -> Self {
        McpConfig {
            listen: DEFAULT_LISTEN.to_string(),
        }
    }
}

fn register(r: &mut Registrar) -> Result<(), KernelError> {
    r.config::<McpConfig>()?;
    r.command(
        clap::Command::new("mcp").about("Serve MCP over stdio"),
        |_matches, ctx| serve_stdio(ctx),
    )?;
    r.service("mcp", serve_http)?;
    r.check(self_check);
    Ok(())
}

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

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        let p = self.ctx.profile;
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("hakiri", p.version).with_title(format!("Hakiri ({})", p.name)),
            )
            .with_instructions(instructions(&self.ctx))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.as_ref().clone()))
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
        let outcome = tokio::select! {
            outcome = self.ctx.call(&name, input) => outcome,
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

/// `hakiri mcp`: serves one client over stdin/stdout until it disconnects.
/// Nothing else may write to stdout meanwhile; diagnostics go to stderr.
async fn serve_stdio(ctx: Context) -> anyhow::Result<ExitCode> {
    serve_until_closed(ctx, rmcp::transport::stdio_pipes())
        .await
        .context("MCP over stdio")?;
    Ok(ExitCode::SUCCESS)
}

/// Serves one MCP session on `transport` until the client disconnects.
async fn serve_until_closed<T, E, A>(ctx: Context, transport: T) -> anyhow::Result<()>
where
    T: IntoTransport<RoleServer, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let running = McpServer::new(ctx)
        .serve(transport)
        .await
        .context("the client did not complete the initialize handshake")?;
    running.waiting().await?;
    Ok(())
}

/// The `mcp` service of `hakiri serve`: streamable HTTP on `[mcp] listen`.
async fn serve_http(ctx: Context, shutdown: Shutdown) -> anyhow::Result<RunningService> {
    let config: McpConfig = ctx.config.section("mcp")?;
    let listener = tokio::net::TcpListener::bind(config.listen.as_str()).await.map_err(|e| {
        anyhow!(
            "cannot listen for MCP on {}: {e}; set another host:port with `listen` in [mcp] (config key mcp.listen, \
             or HAKIRI_MCP__LISTEN)",
            config.listen
        )
    })?;
    let addr = listener
        .local_addr()
        .context("MCP listener has no local address")?;

    // Cancelling the token ends every MCP session, including open SSE streams,
    // so the graceful shutdown below does not wait on them.
    let http = StreamableHttpServerConfig::default();
    let stop = http.cancellation_token.clone();
    let server = McpServer::new(ctx);
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        http,
    );
    let router = axum::Router::new().route_service(HTTP_PATH, service);

    let run = async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                shutdown.wait().await;
                stop.cancel();
            })
            .await
            .with_context(|| format!("MCP HTTP server on {addr}"))
    };
    Ok(RunningService {
        address: Some(format!("http://{addr}{HTTP_PATH}")),
        run: Box::pin(run),
    })
}

/// An MCP initialize handshake with rmcp's own client over an in-process pipe,
/// then `tools/list`, which must list every registered tool.
async fn self_check(ctx: Context) -> CheckOutcome {
    let expected = ctx.registry.tools.len();
    match tokio::time::timeout(CHECK_TIMEOUT, handshake(ctx)).await {
        Err(_) => CheckOutcome::Failed(format!(
            "in-process MCP handshake did not finish within {}s",
            CHECK_TIMEOUT.as_secs()
        )),
        Ok(Err(e)) => CheckOutcome::Failed(format!("{e:#}")),
        Ok(Ok((version, listed))) if listed == expected => CheckOutcome::Ok(format!(
            "initialize handshake with protocol version {version}; {listed} tools listed"
        )),
        Ok(Ok((_, listed))) => CheckOutcome::Failed(format!(
            "tools/list returned {listed} tools, but this binary has {expected}"
        )),
    }
}

/// Returns the negotiated protocol version and how many tools were listed.
async fn handshake(ctx: Context) -> anyhow::Result<(String, usize)> {
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let (server, client) = tokio::join!(McpServer::new(ctx).serve(server_io), ().serve(client_io));
    let server = server.context("MCP server side of the handshake")?;
    let client = client.context("MCP client side of the handshake")?;
    let version = client
        .peer_info()
        .map(|info| info.protocol_version.to_string())
        .context("the client has no server info after initialize")?;
    let listed = client.list_all_tools().await.context("tools/list")?.len();
    client.cancel().await.context("closing the MCP client")?;
    server.cancel().await.context("closing the MCP server")?;
    Ok((version, listed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hakiri_kernel::{Config, Profile, Registry, Tool, ToolError};
    use rmcp::model::ErrorCode;
    use rmcp::service::RunningService as McpSession;
    use rmcp::{RoleClient, ServiceError};
    use schemars::JsonSchema;
    use serde::Serialize;
    use serde_json::json;

    static PROFILE: Profile = Profile::embedded("test");

    #[derive(Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct EchoInput {
        /// Echoed back.
        message: String,
        #[serde(default)]
        count: u32,
    }

    fn register_test_tools(r: &mut Registrar) -> Result<(), KernelError> {
        r.tool(Tool::typed(
            "test.echo",
            "Echo the input",
            |input: EchoInput, _ctx| async move { Ok::<_, ToolError>(input) },
        ))?;
        r.tool(Tool::typed(
            "test.fail",
            "Always fail",
            |_input: EchoInput, _ctx| async move {
                Err::<Value, _>(ToolError::failed("boom: the test tool failed"))
            },
        ))?;
        Ok(())
    }

    hakiri_kernel::inventory::submit! {
        hakiri_kernel::Capability {
            name: "mcp-test",
            crate_name: "hakiri-cap-mcp (tests)",
            version: "0.0.0",
            summary: "test tools for the MCP capability",
            libraries: &[],
            register: register_test_tools,
        }
    }

    fn context(config: Config) -> Context {
        let registry = Registry::from_inventory().expect("registry");
        Context::new(Arc::new(registry), Arc::new(config), &PROFILE)
    }

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

    #[tokio::test]
    async fn session_ends_when_the_client_disconnects() {
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        let session = tokio::spawn(serve_until_closed(context(Config::default()), server_io));
        let client = ().serve(client_io).await.unwrap();
        assert!(!client.list_all_tools().await.unwrap().is_empty());
        client.cancel().await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), session)
            .await
            .expect("server returns after the client left")
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn session_without_handshake_is_an_error() {
        let (server_io, client_io) = tokio::io::duplex(1024);
        drop(client_io);
        let err = serve_until_closed(context(Config::default()), server_io)
            .await
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("initialize handshake"),
            "{err:#}"
        );
    }

    #[tokio::test]
    async fn self_check_lists_every_tool() {
        let ctx = context(Config::default());
        let n = ctx.registry.tools.len();
        match ctx.check("mcp").await {
            CheckOutcome::Ok(detail) => {
                assert!(
                    detail.starts_with("initialize handshake with protocol version 20"),
                    "{detail}"
                );
                assert!(detail.ends_with(&format!("; {n} tools listed")), "{detail}");
            }
            other => panic!("self-check: {other:?}"),
        }
    }

    #[test]
    fn config_defaults_and_rejects_unknown_keys() {
        let ctx = context(Config::default());
        assert_eq!(
            ctx.config.section::<McpConfig>("mcp").unwrap().listen,
            DEFAULT_LISTEN
        );
        let bad = Config::parse("[mcp]\nlisten = \"127.0.0.1:1\"\nport = 2\n", None).unwrap();
        let report = bad.check(&ctx.registry, &PROFILE);
        assert!(
            report.errors.iter().any(|e| e.contains("port")),
            "{:?}",
            report.errors
        );
    }

    fn listen_on(addr: &str) -> Context {
        context(Config::parse(&format!("[mcp]\nlisten = \"{addr}\"\n"), None).unwrap())
    }

    async fn start(
        ctx: &Context,
    ) -> (
        tokio::sync::watch::Sender<bool>,
        anyhow::Result<RunningService>,
    ) {
        let (trigger, shutdown) = Shutdown::new();
        let start = &ctx.registry.services["mcp"].item;
        (trigger, start(ctx.clone(), shutdown).await)
    }

    /// Posts one JSON-RPC message; returns the response headers and, for a
    /// request, its response (a JSON body or an SSE `data:` event).
    async fn post(
        http: &reqwest::Client,
        url: &str,
        session: Option<&str>,
        message: Value,
    ) -> (
        reqwest::StatusCode,
        reqwest::header::HeaderMap,
        Option<Value>,
    ) {
        let mut request = http
            .post(url)
            .header("accept", "application/json, text/event-stream")
            .json(&message);
        if let Some(session) = session {
            request = request
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", "2025-06-18");
        }
        let mut response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let Some(id) = message.get("id").cloned() else {
            return (status, headers, None);
        };
        let mut body = String::new();
        loop {
            if let Some(reply) = find_reply(&body, &id) {
                return (status, headers, Some(reply));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(5), response.chunk())
                .await
                .expect("response in time")
                .unwrap();
            match chunk {
                Some(bytes) => body.push_str(&String::from_utf8_lossy(&bytes)),
                None => panic!("no reply to request {id} in {status} response: {body}"),
            }
        }
    }

    fn find_reply(body: &str, id: &Value) -> Option<Value> {
        let is_reply = |v: &Value| v.get("id") == Some(id);
        if let Ok(v) = serde_json::from_str::<Value>(body) {
            return is_reply(&v).then_some(v);
        }
        body.lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
            .find(is_reply)
    }

    #[tokio::test]
    async fn http_service_serves_mcp_and_stops() {
        let ctx = listen_on("127.0.0.1:0");
        let (trigger, running) = start(&ctx).await;
        let running = running.unwrap();
        let url = running.address.clone().expect("address");
        let port: u16 = url
            .strip_prefix("http://127.0.0.1:")
            .and_then(|rest| rest.strip_suffix("/mcp"))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected address {url}"));
        assert_ne!(port, 0);
        let run = tokio::spawn(running.run);

        let http = reqwest::Client::new();
        let (status, headers, reply) = post(
            &http,
            &url,
            None,
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "hakiri-test", "version": "0"}
            }}),
        )
        .await;
        assert_eq!(status, 200);
        let reply = reply.unwrap();
        assert_eq!(reply["result"]["serverInfo"]["name"], "hakiri", "{reply}");
        assert_eq!(reply["result"]["protocolVersion"], "2025-06-18", "{reply}");
        let session = headers["mcp-session-id"].to_str().unwrap().to_string();

        let (status, _, _) = post(
            &http,
            &url,
            Some(&session),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        )
        .await;
        assert_eq!(status, 202);

        let (_, _, reply) = post(
            &http,
            &url,
            Some(&session),
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        )
        .await;
        let tools = reply.unwrap()["result"]["tools"]
            .as_array()
            .cloned()
            .unwrap();
        assert_eq!(tools.len(), ctx.registry.tools.len());
        assert!(tools.iter().any(|t| t["name"] == "test.echo"));

        let (_, _, reply) = post(
            &http,
            &url,
            Some(&session),
            json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                   "params": {"name": "test.echo", "arguments": {"message": "over http"}}}),
        )
        .await;
        let result = &reply.unwrap()["result"];
        assert_eq!(result["isError"], false, "{result}");
        assert_eq!(
            result["structuredContent"]["message"], "over http",
            "{result}"
        );

        // DNS-rebinding protection stays on: a non-loopback Host is refused.
        let refused = http
            .post(&url)
            .header("host", "attacker.example")
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403);

        // An open standalone SSE stream must not hold up the shutdown.
        let mut events = http
            .get(&url)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-06-18")
            .send()
            .await
            .unwrap();
        assert_eq!(events.status(), 200);

        trigger.send(true).unwrap();
        let drained = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(Some(_)) = events.chunk().await {}
        });
        drained.await.expect("SSE stream ends on shutdown");
        tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .expect("service stops on shutdown")
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn bind_error_names_address_and_key() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let (_trigger, running) = start(&listen_on(&addr)).await;
        let message = format!("{:#}", running.err().expect("bind must fail"));
        assert!(message.contains(&addr), "{message}");
        assert!(message.contains("mcp.listen"), "{message}");
    }
}
