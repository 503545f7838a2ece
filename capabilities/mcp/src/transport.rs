//! Serving MCP: stdio for `hakiri mcp`, streamable HTTP on `[mcp] listen` for `hakiri serve`.

use crate::guard::{admit, Guard};
use crate::server::McpServer;
use crate::{McpConfig, HTTP_PATH};
use anyhow::{anyhow, Context as _};
use hakiri_kernel::{Caller, Context, RunningService, Shutdown};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{IntoTransport, StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{RoleServer, ServiceExt};
use std::process::ExitCode;
use std::sync::Arc;

/// `hakiri mcp`: serves one client over stdin/stdout until it disconnects.
/// Nothing else may write to stdout meanwhile; diagnostics go to stderr.
pub(crate) async fn serve_stdio(ctx: Context, trust_local: bool) -> anyhow::Result<ExitCode> {
    // An agent is not trusted by default, even one the local user started:
    // it acts with a token's rights, or with the user's own only when the
    // user says so.
    let credential = ctx.caller().credential().cloned();
    if credential.is_none() && !trust_local {
        anyhow::bail!(
            "MCP over stdio needs a token for its agent (--token-file FILE or $HAKIRI_TOKEN; mint one with \
             `hakiri auth token`), or --trust-local to give the agent your own rights on every tool and dataset"
        );
    }
    let ctx = ctx.with_caller(Caller::Agent {
        transport: "mcp-stdio",
        session: None,
        credential,
    });
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
pub(crate) async fn serve_http(ctx: Context, shutdown: Shutdown) -> anyhow::Result<RunningService> {
    let config = ctx.section::<McpConfig>();
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
    config
        .auth
        .check_listen(addr, "mcp")
        .map_err(|e| anyhow!(e))?;

    // Cancelling the token ends every MCP session, including open SSE streams,
    // so the graceful shutdown below does not wait on them.
    let mut http = StreamableHttpServerConfig::default()
        .with_allowed_hosts(config.allowed_hosts.iter().cloned());
    http.max_request_body_bytes = config.max_body_bytes;
    let stop = http.cancellation_token.clone();
    let guard = Guard::new(ctx.clone(), &config);
    let server = McpServer::new(ctx);
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        http,
    );
    let router = axum::Router::new()
        .route_service(HTTP_PATH, service)
        .layer(axum::middleware::from_fn(session_closed_is_no_content))
        .layer(axum::middleware::from_fn_with_state(guard, admit));

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

/// A DELETE that ended a session answers 204 No Content, not rmcp's 202
/// Accepted: the session is closed before the answer, and RFC 9110 keeps 202
/// for a deletion not yet enacted. The official Python SDK accepts only 200
/// or 204 and logged "Session termination failed: 202" at every close.
async fn session_closed_is_no_content(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let delete = request.method() == axum::http::Method::DELETE;
    let mut response = next.run(request).await;
    if delete && response.status() == axum::http::StatusCode::ACCEPTED {
        *response.status_mut() = axum::http::StatusCode::NO_CONTENT;
        *response.body_mut() = axum::body::Body::empty();
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::context;
    use hakiri_kernel::Config;
    use serde_json::{json, Value};
    use std::time::Duration;

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

    fn listen_on(addr: &str) -> Context {
        context(
            Config::parse(
                &format!("[mcp]\nlisten = \"{addr}\"\nauth = \"none\"\n"),
                None,
            )
            .unwrap(),
        )
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

        // Ending a session (a second one): 204, and the session is gone.
        let (_, headers, _) = post(
            &http,
            &url,
            None,
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "hakiri-test", "version": "0"}}}),
        )
        .await;
        let second = headers["mcp-session-id"].to_str().unwrap().to_string();
        let closed = http
            .delete(&url)
            .header("mcp-session-id", &second)
            .header("mcp-protocol-version", "2025-06-18")
            .send()
            .await
            .unwrap();
        assert_eq!(closed.status(), 204);
        let gone = http
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &second)
            .header("mcp-protocol-version", "2025-06-18")
            .json(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}))
            .send()
            .await
            .unwrap();
        assert_eq!(gone.status(), 404, "a closed session is unknown");

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
    async fn tokens_are_required_by_default_and_none_needs_loopback() {
        let ctx = context(Config::parse("[mcp]\nlisten = \"127.0.0.1:0\"\n", None).unwrap());
        let (_trigger, running) = start(&ctx).await;
        let running = running.unwrap();
        let url = running.address.clone().unwrap();
        tokio::spawn(running.run);
        let response = reqwest::Client::new()
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body = response.text().await.unwrap();
        assert!(body.contains("hakiri auth token"), "{body}");

        let open = context(
            Config::parse("[mcp]\nlisten = \"0.0.0.0:0\"\nauth = \"none\"\n", None).unwrap(),
        );
        let (_t, refused) = start(&open).await;
        let message = format!("{:#}", refused.err().expect("auth none beyond loopback"));
        assert!(message.contains("loopback"), "{message}");
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
