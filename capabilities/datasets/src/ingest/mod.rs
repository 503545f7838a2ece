//! Ingest: sources → Polars lazy scans → one zstd Parquet part per version,
//! written aside and published to the catalog in one transaction.

mod detect;
mod excel;
mod publish;
mod resolve;
mod write;

pub use publish::ingest;
pub use write::{parse_type, scan, stats, write_check};

use crate::store;
use anyhow::{bail, Result};
use hakiri_data_api::DatasetEntry;
use hakiri_kernel::Context;
use resolve::resolve;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use write::{schema_json, write_part};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Tsv,
    Ndjson,
    Json,
    Parquet,
    /// A spreadsheet: xlsx, xlsm, xlsb, xls or ods (one sheet: `sheet`).
    Excel,
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Replace,
    Append,
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    #[default]
    Fail,
    Skip,
}

/// What to ingest; the `datasets.ingest` tool's input.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestInput {
    /// Paths, globs, directories, http(s) URLs, or `-` for stdin.
    pub sources: Vec<String>,
    /// Dataset name (a SQL identifier).
    pub name: String,
    /// Override format detection.
    #[serde(default)]
    pub format: Option<Format>,
    #[serde(default)]
    pub mode: Mode,
    /// CSV delimiter (default: detected from the first line).
    #[serde(default)]
    pub delimiter: Option<char>,
    /// Whether CSV files start with a header row (default true).
    #[serde(default)]
    pub header: Option<bool>,
    /// Column type overrides, `column=type` (int64, int32, float64, string, bool, date, datetime).
    #[serde(default)]
    pub schema: Vec<String>,
    /// `skip` drops malformed CSV rows and reports how many.
    #[serde(default)]
    pub on_error: OnError,
    /// CSV cells read as null, e.g. `NA`, `N/A`, `-` (an empty cell always is).
    #[serde(default)]
    pub null: Vec<String>,
    /// Lines to skip before the header (titles, notes above a table).
    #[serde(default)]
    pub skip_rows: usize,
    /// Text encoding of CSV/NDJSON input (default UTF-8).
    #[serde(default)]
    pub encoding: Encoding,
    /// The sheet of a spreadsheet to read (default: the first).
    #[serde(default)]
    pub sheet: Option<String>,
    /// What the data is, for people and agents (at most 2000 characters);
    /// without it, the new version keeps the previous one's.
    #[serde(default)]
    #[schemars(length(max = 2000))]
    pub description: Option<String>,
}

/// Text encodings ingest reads; others are transcoded to UTF-8 first.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Utf8,
    /// ISO-8859-1, read as its superset Windows-1252 (as browsers do).
    #[value(alias = "iso-8859-1", alias = "windows-1252", alias = "cp1252")]
    Latin1,
}

#[derive(Debug, Serialize)]
pub struct IngestReport {
    pub name: String,
    pub version: u64,
    pub rows: u64,
    pub bytes: u64,
    pub columns: usize,
    pub sources: usize,
    pub skipped_rows: u64,
}

/// One input file, local or materialized from a stream.
struct Input {
    path: PathBuf,
    label: String,
    format: Format,
}

fn dir_bytes(dir: &Path) -> u64 {
    store::parts(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

struct Written {
    rows: u64,
    bytes: u64,
    schema: serde_json::Value,
    sources: usize,
    skipped: u64,
}

async fn write_version(
    ctx: &Context,
    input: &IngestInput,
    previous: &Option<DatasetEntry>,
    version: u64,
    staging: &Path,
    progress: &indicatif::ProgressBar,
) -> Result<Written> {
    let inputs = resolve(ctx, input, staging, progress).await?;
    progress.set_message(format!("writing {} as Parquet", input.name));
    let out = staging.join("out");
    if input.mode == Mode::Append {
        if let Some(prev) = previous {
            for part in store::parts(Path::new(&prev.location))? {
                let dest = out.join(part.file_name().expect("parts are files"));
                std::fs::hard_link(&part, &dest)
                    .or_else(|_| std::fs::copy(&part, &dest).map(|_| ()))?;
            }
        }
    }
    let (input_c, staging_c, part) = (
        input.clone(),
        staging.to_path_buf(),
        out.join(format!("part-v{version:05}.parquet")),
    );
    let (skipped, sources, part_for_check) = tokio::task::spawn_blocking(move || {
        let skipped = write_part(&inputs, &input_c, &staging_c, &part)?;
        Ok::<_, anyhow::Error>((skipped, inputs.len(), part))
    })
    .await??;
    let out_c = out.clone();
    let previous_schema = previous.as_ref().map(|p| p.schema.clone());
    let mode = input.mode;
    tokio::task::spawn_blocking(move || {
        let (rows, schema) = stats(&out_c)?;
        if mode == Mode::Append {
            if let Some(prev) = previous_schema {
                let new_only = schema_json(&mut scan(&part_for_check)?)?;
                if new_only != prev {
                    bail!("cannot append: the new rows' columns {new_only} differ from the dataset's {prev}; ingest with --mode replace");
                }
            }
        }
        Ok(Written {
            rows,
            bytes: dir_bytes(&out_c),
            schema,
            sources,
            skipped,
        })
    })
    .await?
}
