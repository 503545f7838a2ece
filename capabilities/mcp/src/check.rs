//! The self-check: an initialize handshake with rmcp's own client, then `tools/list`.

use crate::server::McpServer;
use anyhow::Context as _;
use hakiri_kernel::{CheckOutcome, Context};
use rmcp::ServiceExt;
use std::time::Duration;

/// Upper bound for the in-process handshake of the self-check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// An MCP initialize handshake with rmcp's own client over an in-process pipe,
/// then `tools/list`, which must list every registered tool.
pub(crate) async fn self_check(ctx: Context) -> CheckOutcome {
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
    use crate::tests::context;
    use hakiri_kernel::Config;

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
}
