//! `connectors`: built-in sources (local files and stdin, HTTP(S) URLs),
//! registered by source kind, and a Polars-based preview of what they hold.
//!
//! The CLI user reads any file and fetches any URL. Remote callers (MCP,
//! Lambda, cluster peers) read only what `[connectors]` allows: files under
//! `allow_paths`, URLs under `allow_urls` that reach public addresses (or
//! `allow_addresses`), at most `max_bytes` per HTTP source. Timeouts apply to
//! everyone.

mod config;
mod file;
pub mod guard;
mod http;
#[cfg(test)]
mod http_tests;

pub use config::ConnectorsConfig;
pub use http::{guarded_client, request_error};

use crate::file::FileConnector;
use crate::http::HttpConnector;
use anyhow::bail;
use hakiri_data_api::Connector;
use hakiri_kernel::{CheckOutcome, Context, KernelError, Registrar, Tool};
use polars::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::sync::Arc;

hakiri_kernel::capability!(register);

fn register(r: &mut Registrar) -> Result<(), KernelError> {
    r.config::<ConnectorsConfig>()?;
    r.provide::<dyn Connector>("file", Arc::new(FileConnector))?;
    r.provide::<dyn Connector>("http", Arc::new(HttpConnector))?;
    r.tool(Tool::typed(
        "connectors.preview",
        "Read the first rows of a CSV source (path, http(s) URL or -) and return its inferred columns and rows",
        |input: PreviewInput, ctx| async move { Ok(preview(&ctx, input).await?) },
    ))?;
    r.check(|_ctx| async {
        match parse_csv(b"region,amount\neu,10\nus,20\n".to_vec(), 10) {
            Ok(p) if p.rows.len() == 2 && p.columns[1].dtype == "i64" => CheckOutcome::Ok(format!(
                "Polars read a CSV: {} columns, {} rows",
                p.columns.len(),
                p.rows.len()
            )),
            Ok(p) => CheckOutcome::Failed(format!("unexpected CSV parse: {:?}", p.columns)),
            Err(e) => e.into(),
        }
    });
    Ok(())
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PreviewInput {
    /// A local path, an http(s) URL, or `-` for stdin.
    source: String,
    /// How many rows to return (default 10, at most 1000).
    #[serde(default)]
    rows: Option<usize>,
}

#[derive(Debug, Serialize)]
struct Column {
    name: String,
    dtype: String,
}

#[derive(Debug, Serialize)]
struct Preview {
    connector: String,
    columns: Vec<Column>,
    rows: Vec<serde_json::Value>,
}

/// How much of a source a preview reads.
const PREVIEW_BYTES: u64 = 1 << 20;

async fn preview(ctx: &Context, input: PreviewInput) -> anyhow::Result<Preview> {
    let rows = input.rows.unwrap_or(10).clamp(1, 1000);
    let hakiri_data_api::OpenedSource { kind, reader, .. } =
        hakiri_data_api::open_source(ctx, &input.source).await?;
    let mut p = tokio::task::spawn_blocking(move || {
        let mut bytes = Vec::new();
        reader.take(PREVIEW_BYTES).read_to_end(&mut bytes)?;
        // Cut at the last complete line so a partial row never reaches the parser.
        if bytes.len() as u64 == PREVIEW_BYTES {
            if let Some(end) = bytes.iter().rposition(|b| *b == b'\n') {
                bytes.truncate(end + 1);
            }
        }
        parse_csv(bytes, rows)
    })
    .await??;
    p.connector = kind;
    Ok(p)
}

fn parse_csv(bytes: Vec<u8>, rows: usize) -> anyhow::Result<Preview> {
    if bytes.is_empty() {
        bail!("the source is empty; nothing to preview");
    }
    let mut df = CsvReadOptions::default()
        .with_has_header(true)
        .with_n_rows(Some(rows))
        .into_reader_with_file_handle(std::io::Cursor::new(bytes))
        .finish()
        .map_err(|e| anyhow::anyhow!("cannot parse the source as CSV: {e}"))?;
    let columns = df
        .schema()
        .iter()
        .map(|(name, dtype)| Column {
            name: name.to_string(),
            dtype: dtype.to_string(),
        })
        .collect();
    let mut json = Vec::new();
    JsonWriter::new(&mut json)
        .with_json_format(JsonFormat::Json)
        .finish(&mut df)?;
    Ok(Preview {
        connector: String::new(),
        columns,
        rows: serde_json::from_slice(&json)?,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use hakiri_kernel::{Caller, Config, Profile};

    static PROFILE: Profile = hakiri_kernel::embedded_profile!("connectors-test");

    /// A kernel over this crate with `config` as hakiri.toml; the local caller.
    pub(crate) fn context(config: &str) -> Context {
        Context::from_inventory(Config::parse(config, None).unwrap(), &PROFILE).expect("context")
    }

    /// The same kernel acting for an agent over MCP (a remote caller).
    pub(crate) fn remote(ctx: &Context) -> Context {
        ctx.with_caller(Caller::Agent {
            transport: "mcp-http",
            session: None,
            credential: None,
        })
    }

    #[test]
    fn config_defaults_and_rejects_unknown_keys() {
        let cfg = context("").section::<ConnectorsConfig>();
        assert!(cfg.allow_paths.is_empty() && cfg.allow_urls.is_empty());
        assert!(cfg.allow_addresses.is_empty());
        assert_eq!(cfg.connect_timeout_ms, 5_000);
        assert_eq!(cfg.timeout_ms, 60_000);
        assert_eq!(cfg.max_bytes, 256 << 20);
        let cfg = context("[connectors]\nmax_bytes = 10\n").section::<ConnectorsConfig>();
        assert_eq!((cfg.max_bytes, cfg.timeout_ms), (10, 60_000));
        let bad = Config::parse("[connectors]\nallow_path = []\n", None).unwrap();
        let err = Context::from_inventory(bad, &PROFILE)
            .err()
            .expect("unknown key refused");
        assert!(
            err.to_string().contains("unknown field `allow_path`"),
            "{err}"
        );
    }

    #[test]
    fn parses_csv_with_types() {
        let p = parse_csv(b"a,b\n1,x\n2,y\n3,z\n".to_vec(), 2).unwrap();
        assert_eq!(p.columns.len(), 2);
        assert_eq!(p.columns[0].dtype, "i64");
        assert_eq!(p.rows.len(), 2);
        assert_eq!(p.rows[1]["b"], "y");
    }

    #[test]
    fn empty_source_is_a_clear_error() {
        let e = parse_csv(Vec::new(), 2).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
    }

    #[test]
    fn kinds_split_paths_from_urls() {
        let ctx = context("");
        assert!(FileConnector.accepts("./sales.csv", &ctx));
        assert!(FileConnector.accepts("-", &ctx));
        assert!(!FileConnector.accepts("https://example.com/a.csv", &ctx));
        assert!(HttpConnector.accepts("https://example.com/a.csv", &ctx));
    }
}
