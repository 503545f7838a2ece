//! `mcp`: a Model Context Protocol server over every tool linked into the
//! binary. `hakiri mcp` serves it over stdio; `hakiri serve` runs the `mcp`
//! service, a streamable HTTP endpoint at `http://<[mcp] listen>/mcp`.
//!
//! The tool list is the kernel registry's: names, descriptions and input
//! schemas pass through unchanged (a schema without a top-level `type` is
//! marked `object`, as MCP requires), and calls go through [`Context::call`],
//! the same path as `hakiri call` and Lambda.

mod check;
mod guard;
mod server;
mod transport;

pub use server::McpServer;

use check::self_check;
#[cfg(doc)]
use hakiri_kernel::Context;
use hakiri_kernel::{FrontDoor, KernelError, Registrar, Section};
use serde::Deserialize;
use transport::{serve_http, serve_stdio};

hakiri_kernel::capability!(register);

/// Where `hakiri serve` listens for MCP when `[mcp] listen` is not set.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";
/// The HTTP path of the streamable HTTP endpoint.
pub const HTTP_PATH: &str = "/mcp";

/// `[mcp]` in hakiri.toml.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    /// `host:port` for the streamable HTTP endpoint of `hakiri serve`; port 0
    /// picks a free port.
    pub listen: String,
    /// `token` (default): every HTTP request needs `Authorization: Bearer
    /// <token>` (`hakiri auth token`). `none`: no token needed, only allowed
    /// when `listen` is a loopback address (local development).
    pub auth: FrontDoor,
    /// `Host` values requests may name (DNS-rebinding protection); add the
    /// daemon's public name when it listens beyond loopback.
    pub allowed_hosts: Vec<String>,
    /// The largest request body accepted (413 beyond it).
    pub max_body_bytes: usize,
    /// Requests served at once; more get 503 until one finishes.
    pub max_concurrent_requests: usize,
}

impl Section for McpConfig {
    const NAME: &'static str = "mcp";
}

impl Default for McpConfig {
    fn default() -> Self {
        McpConfig {
            listen: DEFAULT_LISTEN.to_string(),
            auth: FrontDoor::Token,
            allowed_hosts: ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec(),
            max_body_bytes: 4 << 20,
            max_concurrent_requests: 64,
        }
    }
}

fn register(r: &mut Registrar) -> Result<(), KernelError> {
    r.config::<McpConfig>()?;
    r.command(
        clap::Command::new("mcp").about("Serve MCP over stdio").arg(
            clap::Arg::new("trust-local")
                .long("trust-local")
                .action(clap::ArgAction::SetTrue)
                .help("Give an agent without a token your own rights (every tool, every dataset); otherwise it needs --token-file or $HAKIRI_TOKEN"),
        ),
        hakiri_kernel::Acts::Delegates,
        |m, ctx| serve_stdio(ctx, m.get_flag("trust-local")),
    )?;
    r.service("mcp", serve_http)?;
    r.check(self_check);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hakiri_kernel::{Config, Context, Profile, Tool, ToolError};
    use schemars::JsonSchema;
    use serde::Serialize;
    use serde_json::Value;

    pub(crate) static PROFILE: Profile = hakiri_kernel::embedded_profile!("test");

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

    pub(crate) fn context(config: Config) -> Context {
        Context::from_inventory(config, &PROFILE).expect("context")
    }

    #[test]
    fn config_defaults_and_rejects_unknown_keys() {
        let ctx = context(Config::default());
        assert_eq!(ctx.section::<McpConfig>().listen, DEFAULT_LISTEN);
        let bad = Config::parse("[mcp]\nlisten = \"127.0.0.1:1\"\nport = 2\n", None).unwrap();
        let report = bad.check(&ctx.registry, &PROFILE);
        assert!(
            report.errors.iter().any(|e| e.contains("port")),
            "{:?}",
            report.errors
        );
    }
}
