//! `wasm-host`: WebAssembly connectors, and ad-hoc functions in WAT.
//!
//! A connector is a component of the `hakiri:connector` world
//! (`wit/connector.wit`, built with the SDK in `sdk/connector`), installed
//! with `hakiri connector add` under the home and read like any built-in
//! source: `hakiri ingest myscheme://… --as t` on the CLI, over MCP and in
//! `serve`. Guests are untrusted: WASI with nothing behind it, HTTP only to
//! the hosts the operator allowed, and every call bounded by fuel, a
//! deadline and a memory cap ([`WasmConfig`]); a misbehaving guest ends its
//! call with an error naming it, and the host keeps serving.

mod call;
mod cli;
mod config;
mod connector;
mod guest;
pub mod installed;
mod records;
mod runtime;

pub use config::WasmConfig;
pub use runtime::{describe_file, Limits, WIT_PACKAGE};

use hakiri_kernel::{CheckOutcome, KernelError, Registrar, Tool, ToolError};
use installed::Installed;
use schemars::JsonSchema;
use serde::Deserialize;
use std::sync::Arc;

hakiri_kernel::capability!(register);

fn register(r: &mut Registrar) -> Result<(), KernelError> {
    r.config::<WasmConfig>()?;
    r.config::<hakiri_cap_connectors::ConnectorsConfig>()?;
    r.state(Installed::default())?;
    r.provide::<dyn hakiri_data_api::Connector>("wasm", Arc::new(connector::WasmConnectors))?;
    r.command(cli::command(), hakiri_kernel::Acts::Operator, cli::run)?;
    r.installed(|ctx| {
        let list = ctx
            .state::<Installed>()
            .map(|i| i.get(&ctx.config.data_dir))
            .transpose();
        match list {
            Ok(list) => serde_json::json!({
                "connectors": list.unwrap_or_default().iter().map(public_view).collect::<Vec<_>>()
            }),
            Err(e) => serde_json::json!({ "error": format!("{e:#}") }),
        }
    });
    r.tool(Tool::typed(
        "wasm.call",
        "Compile a WebAssembly module from WAT text and call one exported function with numeric arguments",
        |input: call::CallInput, ctx| async move {
            let limits = WasmConfig::clone(&ctx.section::<WasmConfig>());
            tokio::task::spawn_blocking(move || call::call(&input.module, &input.function, &input.args, &limits))
                .await
                .map_err(ToolError::failed)?
                .map_err(ToolError::Failed)
        },
    ))?;
    r.tool(Tool::typed(
        "connector.list",
        "The WebAssembly connectors installed here: for each, its name, the URL scheme it reads (ingest `scheme://…` to use it), what it reads, and the hosts it may fetch from",
        |_: NoInput, ctx| async move {
            let list = ctx
                .state::<Installed>()
                .ok_or_else(|| ToolError::Failed("wasm-host state missing".into()))?
                .get(&ctx.config.data_dir)
                .map_err(ToolError::failed)?;
            Ok(serde_json::json!({ "connectors": list.iter().map(public_view).collect::<Vec<_>>() }))
        },
    ))?;
    r.tool(Tool::typed(
        "connector.inspect",
        "What an installed WebAssembly connector can read at a source (its `discover` answer): give the source URL, e.g. jsonfeed://example.com/feed.json",
        |input: InspectInput, ctx| async move {
            let m = connector::installed_for(&ctx, &input.source).ok_or_else(|| {
                ToolError::Failed(format!(
                    "no installed connector reads `{}`; see connector.list",
                    hakiri_data_api::redact(&input.source)
                ))
            })?;
            let entries = records::discover(&ctx, &m, &input.source)
                .await
                .map_err(ToolError::failed)?;
            Ok(serde_json::json!({ "connector": m.name, "entries": entries }))
        },
    ))?;
    r.check(|ctx| async move {
        const ADD: &str = r#"(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))"#;
        const SPIN: &str = r#"(module (func (export "spin") (loop (br 0))))"#;
        let limits = WasmConfig { fuel: 10_000, ..WasmConfig::default() };
        let l = limits.clone();
        let sum = tokio::task::spawn_blocking(move || call::call(ADD, "add", &[2.0, 40.0], &l)).await;
        let spin = tokio::task::spawn_blocking(move || call::call(SPIN, "spin", &[], &limits)).await;
        let installed = ctx.state::<Installed>().map(|i| i.get(&ctx.config.data_dir).map(|l| l.len()));
        match (sum, spin, installed) {
            (Ok(Ok(v)), Ok(Err(_)), Some(Ok(n))) if v == vec![serde_json::json!(42)] => CheckOutcome::Ok(format!(
                "compiled and called add(2, 40) = 42; an endless loop ran out of fuel; {n} connector(s) installed"
            )),
            (sum, spin, installed) => CheckOutcome::Failed(format!(
                "add gave {sum:?}; spin gave {spin:?}; installed connectors: {:?}",
                installed.map(|r| r.map_err(|e| e.to_string()))
            )),
        }
    });
    Ok(())
}

/// What a remote caller may see of a connector: not its settings' values,
/// which may hold credentials.
fn public_view(m: &installed::Manifest) -> serde_json::Value {
    serde_json::json!({
        "name": m.name,
        "scheme": m.scheme,
        "description": m.description,
        "wit": m.wit,
        "allow_hosts": m.allow_hosts,
        "settings": m.settings.keys().chain(m.settings_env.keys()).collect::<Vec<_>>(),
        "sha256": m.sha256,
        "added": m.added,
    })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoInput {}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct InspectInput {
    /// A source the connector reads, e.g. `jsonfeed://example.com/feed.json`.
    source: String,
}
