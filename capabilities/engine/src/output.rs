//! Query results out: a table on a terminal, or csv, json, ndjson, Arrow IPC
//! or Parquet. Batches are written as DuckDB produces them, so a large result
//! never sits whole in memory (except `table`, which is for people).

use anyhow::{bail, Context as _, Result};
use arrow::record_batch::RecordBatch;
use duckdb::Connection;
use std::io::Write;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
    Ndjson,
    Parquet,
    Arrow,
}

fn sink(output: Option<&Path>) -> Result<Box<dyn Write + Send>> {
    Ok(match output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    })
}

pub fn write(
    conn: &Connection,
    sql: &str,
    format: OutputFormat,
    output: Option<&Path>,
) -> Result<()> {
    if format == OutputFormat::Parquet {
        let Some(path) = output else {
            bail!("--format parquet needs --output FILE");
        };
        // DuckDB writes Parquet itself, streaming. `sql` is one SELECT as
        // DuckDB's parser sees it (ensure_read_only), so it cannot close the
        // parentheses early, and the sandbox lets DuckDB write this one file.
        let target = path.to_string_lossy().replace('\'', "''");
        conn.execute_batch(&format!(
            "COPY ({sql}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)"
        ))
        .map_err(crate::duck)?;
        return Ok(());
    }
    let mut stmt = conn.prepare(sql).map_err(crate::duck)?;
    let batches = stmt.query_arrow([]).map_err(crate::duck)?;
    let schema = batches.get_schema();
    let mut out = sink(output)?;
    match format {
        OutputFormat::Table => {
            let all: Vec<RecordBatch> = batches.collect();
            writeln!(out, "{}", arrow::util::pretty::pretty_format_batches(&all)?)?;
        }
        OutputFormat::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            for b in batches {
                w.write(&b)?;
            }
            w.into_inner().flush()?;
        }
        OutputFormat::Json => {
            let mut w = arrow::json::ArrayWriter::new(out);
            for b in batches {
                w.write(&b)?;
            }
            w.finish()?;
            let mut out = w.into_inner();
            writeln!(out)?;
            out.flush()?;
        }
        OutputFormat::Ndjson => {
            let mut w = arrow::json::LineDelimitedWriter::new(out);
            for b in batches {
                w.write(&b)?;
            }
            w.finish()?;
            w.into_inner().flush()?;
        }
        OutputFormat::Arrow => {
            let mut w = arrow::ipc::writer::StreamWriter::try_new(out, &schema)?;
            for b in batches {
                w.write(&b)?;
            }
            w.finish()?;
            w.into_inner()?.flush()?;
        }
        OutputFormat::Parquet => unreachable!("handled above"),
    }
    Ok(())
}
