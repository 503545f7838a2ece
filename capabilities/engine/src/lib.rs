//! `engine`: SQL with DuckDB over every dataset in the catalog (each visible by
//! its name), and lazy dataframes with Polars; results travel as Arrow batches.

mod output;
mod sandbox;
mod search_sql;
mod views;

pub use sandbox::ensure_read_only;

use anyhow::Context as _;
use clap::{Arg, Command};
use duckdb::Connection;
use hakiri_data_api::CatalogConfig;
use hakiri_kernel::{CheckOutcome, Context, KernelError, Registrar, Section, Tool, ToolError};
use output::OutputFormat;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use views::{datasets, not_granted, View};

hakiri_kernel::capability!(register);

/// `[engine]` in hakiri.toml.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// DuckDB worker threads (default: DuckDB's choice, the core count).
    pub threads: Option<u32>,
    /// DuckDB memory limit, e.g. "1GB" (default: DuckDB's, 80% of RAM).
    pub memory_limit: Option<String>,
    /// A query running longer is interrupted (default 60000 ms).
    pub query_timeout_ms: Option<u64>,
    /// Most rows `engine.query` returns, whatever the caller asks (default 10000).
    pub max_rows: Option<usize>,
    /// Most result bytes (Arrow memory) `engine.query` returns (default 16 MiB).
    pub max_result_bytes: Option<usize>,
}

impl EngineConfig {
    fn query_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.query_timeout_ms.unwrap_or(60_000))
    }
}

impl Section for EngineConfig {
    const NAME: &'static str = "engine";
}

fn register(r: &mut Registrar) -> Result<(), KernelError> {
    r.config::<EngineConfig>()?;
    r.config::<CatalogConfig>()?;
    r.tool(Tool::typed(
        "engine.query",
        "Run a read-only SQL query with DuckDB over the catalog's datasets (each visible by its name); returns columns and rows as JSON",
        |input: QueryInput, ctx| async move {
            let datasets = datasets(&ctx, &input.at, &input.sql).await?;
            let cfg = ctx.section::<EngineConfig>();
            let ceiling = cfg.max_rows.unwrap_or(10_000);
            let limit = input.max_rows.unwrap_or(ceiling).min(ceiling);
            let run = ctx.clone();
            let outcome =
                tokio::task::spawn_blocking(move || query_json(&run, &datasets, &input.sql, limit))
                    .await
                    .map_err(ToolError::failed)?;
            match outcome {
                Ok(v) => Ok(v),
                Err(e) => Err(not_granted(&ctx, &e).await.unwrap_or_else(|| e.into())),
            }
        },
    ))?;
    r.command(
        Command::new("sql")
            .about("Run a read-only SQL query over the datasets (each visible by its name)")
            .arg(Arg::new("query").required(true).help("The SQL query"))
            .arg(
                Arg::new("format")
                    .long("format")
                    .value_parser(clap::value_parser!(OutputFormat))
                    .help("Output format (default: table on a terminal, else csv)"),
            )
            .arg(
                Arg::new("at")
                    .long("at")
                    .action(clap::ArgAction::Append)
                    .value_name("NAME=VERSION")
                    .help("Read a dataset at an older version, while retained (e.g. --at sales=3)"),
            )
            .arg(
                Arg::new("output")
                    .long("output")
                    .short('o')
                    .value_parser(clap::value_parser!(PathBuf))
                    .help("Write to a file instead of stdout"),
            ),
        hakiri_kernel::Acts::As("engine.query"),
        |m, ctx| async move {
            let sql = m.get_one::<String>("query").cloned().unwrap_or_default();
            // Absolute, as the sandbox's one writable path must be.
            let output = m
                .get_one::<PathBuf>("output")
                .map(std::path::absolute)
                .transpose()?;
            let format = match m.get_one::<OutputFormat>("format") {
                Some(f) => *f,
                None if output.is_none() && std::io::stdout().is_terminal() => OutputFormat::Table,
                None => OutputFormat::Csv,
            };
            let at = m
                .get_many::<String>("at")
                .map(|v| {
                    v.map(|a| parse_at(a))
                        .collect::<anyhow::Result<BTreeMap<_, _>>>()
                })
                .transpose()?
                .unwrap_or_default();
            let datasets = datasets(&ctx, &at, &sql).await?;
            for w in datasets.iter().filter_map(|v| v.warning.as_ref()) {
                eprintln!("hakiri: warning: {w}");
            }
            let run = ctx.clone();
            let outcome = tokio::task::spawn_blocking(move || {
                let conn = connect_with(&run, &datasets, output.as_deref())?;
                vet(&run, &conn, &datasets, &sql)?;
                let timeout = run.section::<EngineConfig>().query_timeout();
                sandbox::with_timeout(&conn, timeout, || {
                    output::write(&conn, &sql, format, output.as_deref())
                })
                .map_err(|e| search_sql::elsewhere(&run, e))
            })
            .await?;
            // Under a token, an ungranted table is "not granted", as for agents.
            if let Err(e) = outcome {
                return Err(match not_granted(&ctx, &e).await {
                    Some(denied) => denied.into(),
                    None => e,
                });
            }
            Ok(ExitCode::SUCCESS)
        },
    )?;
    r.check(|ctx| async move {
        let detail = tokio::task::spawn_blocking(move || self_check(&ctx)).await??;
        anyhow::Ok(CheckOutcome::Ok(detail))
    });
    Ok(())
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct QueryInput {
    /// The SQL query (read-only: SELECT, WITH, DESCRIBE, SUMMARIZE, …).
    sql: String,
    /// Return at most this many rows (default and ceiling: `[engine] max_rows`,
    /// 10000); `truncated` says if more existed.
    max_rows: Option<usize>,
    /// Read these datasets at an older version, while it is retained
    /// (`{"sales": 3}`); the others at their latest.
    #[serde(default)]
    at: BTreeMap<String, u64>,
}

/// `sales=3`.
fn parse_at(text: &str) -> anyhow::Result<(String, u64)> {
    text.split_once('=')
        .and_then(|(n, v)| {
            Some((
                n.trim().to_string(),
                v.trim().trim_start_matches('v').parse().ok()?,
            ))
        })
        .ok_or_else(|| anyhow::anyhow!("--at `{text}`: expected NAME=VERSION, e.g. --at sales=3"))
}

#[derive(Serialize)]
struct QueryOutput {
    columns: Vec<String>,
    rows: Vec<serde_json::Value>,
    truncated: bool,
    /// Why a dataset was answered from an older version than its latest.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// An in-memory DuckDB connection configured from `[engine]`, with a spill
/// directory of its own that goes when it does.
pub fn connect(ctx: &Context) -> anyhow::Result<Session> {
    // A shipped binary's first query touches ~10 MB of it: ask for them at once.
    hakiri_prefetch::warm_up();
    let cfg = ctx.section::<EngineConfig>();
    let mut config = duckdb::Config::default();
    if let Some(t) = cfg.threads {
        config = config.threads(i64::from(t))?;
    }
    if let Some(m) = &cfg.memory_limit {
        config = config
            .max_memory(m)
            .with_context(|| format!("[engine] memory_limit `{m}`"))?;
    }
    let scratch = scratch(&ctx.config.data_dir);
    if let Some(dir) = &scratch {
        config = config.with("temp_directory", dir.path().display().to_string())?;
    }
    Ok(Session {
        conn: Connection::open_in_memory_with_flags(config)?,
        _scratch: scratch,
    })
}

/// Where one query spills what outgrows `memory_limit`: under the home (not
/// the current directory, DuckDB's default for in-memory databases), in a
/// directory of its own, readable by this user only, with an unguessable
/// name, removed with the query. DuckDB lets a query read its own temporary
/// directory, so a shared one would hand each caller the others' spilled
/// rows. `None` when it cannot be made: the query then cannot spill.
fn scratch(data_dir: &std::path::Path) -> Option<tempfile::TempDir> {
    let parent = data_dir.join("tmp").join("duckdb");
    std::fs::create_dir_all(&parent).ok()?;
    let mut dir = tempfile::Builder::new();
    dir.prefix("q-").rand_bytes(24);
    #[cfg(unix)]
    dir.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
    dir.tempdir_in(parent).ok()
}

/// A connection and its spill directory; the connection closes first.
pub struct Session {
    conn: Connection,
    _scratch: Option<tempfile::TempDir>,
}

impl std::ops::Deref for Session {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A connection where every dataset is a view over its Parquet files, locked
/// down ([`sandbox::lock_down`]) so a query reads those files and nothing
/// else, and writes nothing but `writable` (the CLI user's `--output`).
fn connect_with(
    ctx: &Context,
    views: &[View],
    writable: Option<&std::path::Path>,
) -> anyhow::Result<Session> {
    let conn = connect(ctx)?;
    let mut readable = Vec::new();
    for View {
        name, dir, files, ..
    } in views
    {
        let files = match files {
            Some(list) => list
                .iter()
                .map(|f| sandbox::quote_literal(f))
                .collect::<Vec<_>>()
                .join(", "),
            None => sandbox::quote_literal(&format!("{}/*.parquet", dir.trim_end_matches('/'))),
        };
        // One unreadable dataset must not take every query down with it.
        let view = format!(
            "CREATE VIEW {} AS SELECT * FROM read_parquet([{files}])",
            quote_ident(name),
        );
        match conn.execute_batch(&view) {
            Ok(()) => readable.push(dir.as_str()),
            Err(e) => eprintln!(
                "hakiri: warning: dataset `{name}` at {dir} is unreadable and was skipped: {}",
                duck(e)
            ),
        }
    }
    search_sql::register(&conn, ctx)?;
    sandbox::lock_down(&conn, &readable, writable)?;
    Ok(conn)
}

/// One read-only statement; for anyone but the local user without a token,
/// one that names only the views ([`sandbox::ensure_allowed`]).
fn vet(ctx: &Context, conn: &Connection, views: &[View], sql: &str) -> anyhow::Result<()> {
    let trusted = matches!(
        ctx.caller(),
        hakiri_kernel::Caller::Local { credential: None }
    );
    let names: Vec<&str> = views.iter().map(|v| v.name.as_str()).collect();
    sandbox::ensure_allowed(conn, sql, trusted, &names)
}

/// DuckDB's own message (with its LINE/caret position), without the FFI code suffix.
pub fn duck(e: duckdb::Error) -> anyhow::Error {
    match e {
        duckdb::Error::DuckDBFailure(_, Some(msg)) => anyhow::anyhow!(msg),
        other => anyhow::anyhow!(other),
    }
}

fn query_json(
    ctx: &Context,
    views: &[View],
    sql: &str,
    limit: usize,
) -> anyhow::Result<QueryOutput> {
    let conn = connect_with(ctx, views, None)?;
    vet(ctx, &conn, views, sql)?;
    let cfg = ctx.section::<EngineConfig>();
    let max_bytes = cfg.max_result_bytes.unwrap_or(16 << 20);
    let mut out = sandbox::with_timeout(&conn, cfg.query_timeout(), || {
        rows_json(&conn, sql, limit, max_bytes)
    })
    .map_err(|e| search_sql::elsewhere(ctx, e))?;
    out.warnings = views.iter().filter_map(|v| v.warning.clone()).collect();
    Ok(out)
}

/// At most `limit` rows and about `max_bytes` of them, as JSON.
fn rows_json(
    conn: &Connection,
    sql: &str,
    limit: usize,
    max_bytes: usize,
) -> anyhow::Result<QueryOutput> {
    let mut stmt = conn.prepare(sql).map_err(duck)?;
    let mut columns = Vec::new();
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    let (mut taken, mut bytes, mut truncated) = (0usize, 0usize, false);
    for batch in stmt.query_arrow([]).map_err(duck)? {
        bytes += batch.get_array_memory_size();
        if taken > 0 && bytes > max_bytes {
            truncated = true;
            break;
        }
        if columns.is_empty() {
            columns = batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
        }
        let room = limit - taken;
        if batch.num_rows() > room {
            writer.write(&batch.slice(0, room))?;
            truncated = true;
            break;
        }
        taken += batch.num_rows();
        writer.write(&batch)?;
    }
    writer.finish()?;
    let bytes = writer.into_inner();
    let rows = if bytes.is_empty() {
        Vec::new()
    } else {
        serde_json::from_slice(&bytes)?
    };
    Ok(QueryOutput {
        columns,
        rows,
        truncated,
        warnings: Vec::new(),
    })
}

/// A DuckDB aggregate over generated rows, a DuckDB error that must come back
/// as an error (not an abort), a write that must be refused, and a Polars lazy query.
fn self_check(ctx: &Context) -> anyhow::Result<String> {
    use polars::prelude::*;
    let conn = connect(ctx)?;
    let total: i64 = conn.query_row("select sum(i) from range(1, 101) t(i)", [], |r| r.get(0))?;
    anyhow::ensure!(
        total == 5050,
        "DuckDB summed 1..100 to {total}, expected 5050"
    );
    let duck_version: String = conn.query_row("select version()", [], |r| r.get(0))?;
    anyhow::ensure!(
        conn.execute_batch("select * from no_such_table").is_err(),
        "DuckDB accepted a query on a missing table"
    );
    anyhow::ensure!(
        ensure_read_only(&conn, "create table t (x int)").is_err(),
        "a write was not refused"
    );
    let df = df!("region" => ["eu", "us", "eu"], "amount" => [10i64, 20, 5])?;
    let out = df
        .lazy()
        .group_by([col("region")])
        .agg([col("amount").sum()])
        .filter(col("region").eq(lit("eu")))
        .collect()?;
    let eu: i64 = out.column("amount")?.get(0)?.try_extract()?;
    anyhow::ensure!(eu == 15, "Polars grouped eu to {eu}, expected 15");
    Ok(format!(
        "DuckDB {duck_version} summed 1..100 and refused a write; Polars lazy group-by gave eu=15"
    ))
}
