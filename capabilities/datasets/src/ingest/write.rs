//! Polars: lazy scans of the inputs streamed into one zstd Parquet part, and scans of parts.

use super::detect::sniff_delimiter;
use super::excel;
use super::{Format, IngestInput, Input, OnError};
use crate::csvcheck;
use anyhow::{anyhow, bail, Context as _, Result};
use polars::prelude::*;
use std::path::Path;

/// Rows read to infer CSV column types; `--schema` settles the rest.
const INFER_ROWS: usize = 100;

pub fn parse_type(name: &str) -> Result<DataType> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "int64" | "i64" | "bigint" | "long" => DataType::Int64,
        "int32" | "i32" | "int" | "integer" => DataType::Int32,
        "float64" | "f64" | "double" | "float" => DataType::Float64,
        "float32" | "f32" | "real" => DataType::Float32,
        "string" | "str" | "utf8" | "text" | "varchar" => DataType::String,
        "bool" | "boolean" => DataType::Boolean,
        "date" => DataType::Date,
        "datetime" | "timestamp" => DataType::Datetime(TimeUnit::Microseconds, None),
        other => bail!("unknown type `{other}`; use int64, int32, float64, float32, string, bool, date or datetime"),
    })
}

pub(super) fn parse_overrides(specs: &[String]) -> Result<Vec<(String, DataType)>> {
    specs
        .iter()
        .map(|s| {
            let (c, t) = s.split_once('=').ok_or_else(|| {
                anyhow!("--schema `{s}`: expected column=type, e.g. amount=float64")
            })?;
            Ok((
                c.trim().to_string(),
                parse_type(t.trim()).with_context(|| format!("--schema `{s}`"))?,
            ))
        })
        .collect()
}

fn pl_path(p: &Path) -> PlRefPath {
    PlRefPath::new(p.to_string_lossy().into_owned())
}

/// Builds the lazy scan of every input and sinks it into `out` (zstd Parquet),
/// streaming. Returns how many malformed rows were skipped.
pub(super) fn write_part(
    inputs: &[Input],
    input: &IngestInput,
    staging: &Path,
    out: &Path,
) -> Result<u64> {
    let header = input.header.unwrap_or(true);
    let overrides = parse_overrides(&input.schema)?;
    // CSV applies overrides while parsing (a later cast could not rescue a bad inference).
    let csv_overrides: Schema = overrides
        .iter()
        .map(|(c, t)| Field::new(c.as_str().into(), t.clone()))
        .collect();
    let mut skipped = 0;
    let mut frames = Vec::new();
    let mut csv_inputs = Vec::new();
    for (k, i) in inputs.iter().enumerate() {
        let lf = match i.format {
            Format::Csv | Format::Tsv => {
                let delimiter = match (input.delimiter, i.format) {
                    (Some(c), _) if c.is_ascii() => c as u8,
                    (Some(c), _) => bail!("delimiter `{c}` is not a single ASCII character"),
                    (None, Format::Tsv) => b'\t',
                    (None, _) => sniff_delimiter(&i.path, input.skip_rows)?,
                };
                // The cleaned copy starts at the header; the original still has its preamble.
                let skip_lines = if input.on_error == OnError::Skip {
                    0
                } else {
                    input.skip_rows
                };
                let path = if input.on_error == OnError::Skip {
                    let clean = staging.join(format!("clean-{k}.csv"));
                    skipped += csvcheck::copy_without_bad_rows(
                        &i.path,
                        &clean,
                        delimiter,
                        input.skip_rows,
                    )?;
                    clean
                } else {
                    i.path.clone()
                };
                csv_inputs.push((i, delimiter));
                let nulls = (!input.null.is_empty()).then(|| {
                    NullValues::AllColumns(input.null.iter().map(|n| n.as_str().into()).collect())
                });
                LazyCsvReader::new(pl_path(&path))
                    .with_has_header(header)
                    .with_skip_lines(skip_lines)
                    .with_null_values(nulls)
                    .with_separator(delimiter)
                    // Polars' default: a longer inference window costs more than the write itself.
                    .with_infer_schema_length(Some(INFER_ROWS))
                    .with_try_parse_dates(true)
                    .with_dtype_overwrite(
                        (!overrides.is_empty()).then(|| Arc::new(csv_overrides.clone())),
                    )
                    .finish()
            }
            Format::Ndjson => LazyJsonLineReader::new(pl_path(&i.path)).finish(),
            Format::Json => std::fs::File::open(&i.path)
                .map_err(PolarsError::from)
                .and_then(|f| JsonReader::new(f).finish())
                .map(DataFrame::lazy),
            Format::Parquet => {
                LazyFrame::scan_parquet(pl_path(&i.path), ScanArgsParquet::default())
            }
            Format::Excel => {
                let sheet = excel::Sheet {
                    name: input.sheet.as_deref(),
                    header,
                    skip_rows: input.skip_rows,
                    nulls: &input.null,
                };
                // Its errors name the source and the sheet already.
                frames.push(excel::read(&i.path, &i.label, &sheet)?.lazy());
                continue;
            }
        }
        .map_err(|e| anyhow!("{}: cannot read as {:?}: {e}", i.label, i.format))?;
        frames.push(lf);
    }
    let mut lf = if frames.len() == 1 {
        frames.pop().expect("one frame")
    } else {
        concat(frames, UnionArgs::default())
            .map_err(|e| anyhow!("the sources do not share one schema: {e}"))?
    };
    if !overrides.is_empty() {
        let schema = lf
            .collect_schema()
            .map_err(|e| explain(e, &csv_inputs, header, input.skip_rows))?;
        for (c, _) in &overrides {
            if schema.get(c.as_str()).is_none() {
                let names: Vec<String> = schema.iter_names().map(|n| n.to_string()).collect();
                bail!(
                    "--schema names column `{c}`, which the source does not have; columns: {}",
                    names.join(", ")
                );
            }
        }
        lf = lf.with_columns(
            overrides
                .iter()
                .map(|(c, t)| col(c.as_str()).strict_cast(t.clone()))
                .collect::<Vec<_>>(),
        );
    }
    let options = ParquetWriteOptions {
        compression: ParquetCompression::Zstd(None),
        ..Default::default()
    };
    // A file we open, not a path. With POLARS_FORCE_ASYNC (set for bounded
    // reads, see `polars_defaults`) Polars writes a path through its
    // object-store writer, which gathers the Parquet into 16 MiB buffers
    // before each write; the kernel's copy of buffers that large, which
    // come from memory rather than the CPU's cache, was 2% of a 2 GB
    // ingest's CPU against 0.2% in Python, which writes each page as it is
    // encoded, as Polars does to a local file.
    let file =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let target = SinkTarget::Dyn(SpecialEq::new(Arc::new(std::sync::Mutex::new(Some(
        polars::io::utils::file::Writable::Local(file),
    )))));
    lf.sink(
        SinkDestination::File { target },
        FileWriteFormat::Parquet(Arc::new(options)),
        UnifiedSinkArgs::default(),
    )
    .and_then(|lf| lf.collect_with_engine(Engine::Streaming))
    .map_err(|e| explain(e, &csv_inputs, header, input.skip_rows))?;
    Ok(skipped)
}

/// Turns a Polars error on CSV input into the file and line at fault.
fn explain(
    e: PolarsError,
    csv_inputs: &[(&Input, u8)],
    header: bool,
    skip: usize,
) -> anyhow::Error {
    for (i, delimiter) in csv_inputs {
        if let Ok(Some(problem)) = csvcheck::first_problem(&i.path, *delimiter, header, skip) {
            return anyhow!("{} {problem}; fix the row or pass --on-error skip", i.label);
        }
    }
    let msg = e.to_string();
    if msg.to_ascii_lowercase().contains("utf-8") || msg.to_ascii_lowercase().contains("utf8") {
        let label = csv_inputs
            .first()
            .map(|(i, _)| i.label.as_str())
            .unwrap_or("the input");
        return anyhow!(
            "{label} is not valid UTF-8; if it is Latin-1 (ISO-8859-1 / Windows-1252), pass --encoding latin1 ({msg})"
        );
    }
    if msg.starts_with("could not parse") {
        // Polars' message continues with hints for its Python API; keep the fact,
        // turn its byte offset into a line, and give our own remedy.
        let first = msg.lines().next().unwrap_or_default();
        let near = csv_inputs.first().and_then(|(i, _)| {
            let offset: usize = msg
                .split("offset in the file is ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()?;
            let bytes = std::fs::read(&i.path).ok()?;
            let line = bytes[..offset.min(bytes.len())]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            Some(format!("{} near line {line}: ", i.label))
        });
        return anyhow!(
            "{}{first}; column types are inferred from the first {INFER_ROWS} rows, so set this one with --schema column=type",
            near.unwrap_or_default()
        );
    }
    anyhow!("cannot ingest: {msg}")
}

/// The lazy scan of one Parquet file or glob.
pub fn scan(path: &Path) -> Result<LazyFrame> {
    Ok(LazyFrame::scan_parquet(
        pl_path(path),
        ScanArgsParquet::default(),
    )?)
}

/// Column names and types, as the catalog records them.
pub(super) fn schema_json(lf: &mut LazyFrame) -> Result<serde_json::Value> {
    let schema = lf.collect_schema()?;
    Ok(schema
        .iter()
        .map(|(n, t)| serde_json::json!({"name": n.as_str(), "type": t.to_string()}))
        .collect())
}

/// Rows and columns of a version's Parquet files.
pub fn stats(dir: &Path) -> Result<(u64, serde_json::Value)> {
    let mut lf = scan(&dir.join("*.parquet"))?;
    let columns = schema_json(&mut lf)?;
    let df = lf.select([len()]).collect()?;
    let rows = df.columns()[0].get(0)?.extract::<u64>().unwrap_or(0);
    Ok((rows, columns))
}

/// The self-check's entry: one local CSV through the same write path.
pub fn write_check(csv: &Path, input: &IngestInput, staging: &Path, out: &Path) -> Result<u64> {
    let inputs = [Input {
        path: csv.to_path_buf(),
        label: csv.display().to_string(),
        format: Format::Csv,
    }];
    write_part(&inputs, input, staging, out)
}
