//! `engine`: SQL with DuckDB and lazy dataframes with Polars; results travel as Arrow.

use arrow::record_batch::RecordBatch;
use clap::{Arg, Command};
use duckdb::Connection;
use hakiri_kernel::{CheckOutcome, Context, KernelError, Registrar, Tool, ToolError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::process::ExitCode;

hakiri_kernel::capability!(register);

/// `[engine]` in hakiri.toml.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// DuckDB worker threads (default: DuckDB's choice, the core count).
    pub threads: Option<u32>,
    /// DuckDB memory limit, e.g. "1GB" (default: DuckDB's, 80% of RAM).
    pub memory_limit: Option<String>,
}

fn register(r: &mut Registrar) -> Result<(), KernelError> {
    r.config::<EngineConfig>()?;
    r.tool(Tool::typed(
        "engine.query",
        "Run a SQL query with DuckDB and return its columns and rows as JSON",
        |input: QueryInput, ctx| async move {
            tokio::task::spawn_blocking(move || query_json(&ctx, &input.sql))
                .await
                .map_err(ToolError::failed)?
                .map_err(ToolError::failed)
        },
    ))?;
    r.command(
        Command::new("sql")
            .about("Run a SQL query with DuckDB and print the result")
            .arg(Arg::new("query").required(true).help("The SQL query")),
        |m, ctx| async move {
            let sql = m.get_one::<String>("query").cloned().unwrap_or_default();
            let table = tokio::task::spawn_blocking(move || {
                let batches = query_batches(&ctx, &sql)?;
                Ok::<_, anyhow::Error>(
                    arrow::util::pretty::pretty_format_batches(&batches)?.to_string(),
                )
            })
            .await??;
            println!("{table}");
            Ok(ExitCode::SUCCESS)
        },
    )?;
    r.check(|ctx| async move {
        match tokio::task::spawn_blocking(move || self_check(&ctx)).await {
            Ok(Ok(s)) => CheckOutcome::Ok(s),
            Ok(Err(e)) => CheckOutcome::Failed(format!("{e:#}")),
            Err(e) => CheckOutcome::Failed(e.to_string()),
        }
    });
    Ok(())
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct QueryInput {
    /// The SQL query.
    sql: String,
}

#[derive(Serialize)]
struct QueryOutput {
    columns: Vec<String>,
    rows: Vec<serde_json::Value>,
}

/// An in-memory DuckDB connection configured from `[engine]`.
pub fn connect(ctx: &Context) -> anyhow::Result<Connection> {
    let cfg: EngineConfig = ctx.config.section("engine")?;
    let mut config = duckdb::Config::default();
    if let Some(t) = cfg.threads {
        config = config.threads(i64::from(t))?;
    }
    if let Some(m) = &cfg.memory_limit {
        config = config.max_memory(m)?;
    }
    Ok(Connection::open_in_memory_with_flags(config)?)
}

/// Runs `sql` and returns its result as Arrow batches.
pub fn query_batches(ctx: &Context, sql: &str) -> anyhow::Result<Vec<RecordBatch>> {
    let conn = connect(ctx)?;
    let mut stmt = conn.prepare(sql)?;
    Ok(stmt.query_arrow([])?.collect())
}

fn query_json(ctx: &Context, sql: &str) -> anyhow::Result<QueryOutput> {
    let batches = query_batches(ctx, sql)?;
    let columns = batches
        .first()
        .map(|b| {
            b.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        })
        .unwrap_or_default();
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    for b in &batches {
        writer.write(b)?;
    }
    writer.finish()?;
    let bytes = writer.into_inner();
    let rows = if bytes.is_empty() {
        Vec::new()
    } else {
        serde_json::from_slice(&bytes)?
    };
    Ok(QueryOutput { columns, rows })
}

/// A DuckDB aggregate over generated rows, a DuckDB error that must come back
/// as an error (not an abort), and a Polars lazy query.
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
        "DuckDB {duck_version} summed 1..100; Polars lazy group-by gave eu=15"
    ))
}
