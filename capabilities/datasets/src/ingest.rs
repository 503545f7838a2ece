//! Ingest: sources → Polars lazy scans → one zstd Parquet part per version,
//! written aside and published to the catalog in one transaction.

use crate::{csvcheck, store};
use anyhow::{anyhow, bail, Context as _, Result};
use hakiri_kernel::{Context, DatasetEntry};
use polars::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

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

/// Rows read to infer CSV column types; `--schema` settles the rest.
const INFER_ROWS: usize = 100;

/// One input file, local or materialized from a stream.
struct Input {
    path: PathBuf,
    label: String,
    format: Format,
}

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

fn parse_overrides(specs: &[String]) -> Result<Vec<(String, DataType)>> {
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

fn format_from_name(name: &str) -> Option<Format> {
    let name = name
        .split(['?', '#'])
        .next()
        .unwrap_or(name)
        .to_ascii_lowercase();
    let ext = name.rsplit('.').next()?;
    Some(match ext {
        "csv" => Format::Csv,
        "tsv" | "tab" => Format::Tsv,
        "ndjson" | "jsonl" => Format::Ndjson,
        "json" => Format::Json,
        "parquet" | "pq" => Format::Parquet,
        _ => return None,
    })
}

/// Looks at the first bytes: `PAR1` Parquet, `[` a JSON array, `{` NDJSON, else CSV.
fn sniff(path: &Path) -> Result<Format> {
    let mut head = [0u8; 64];
    let n = std::fs::File::open(path)?.read(&mut head)?;
    let head = &head[..n];
    if head.starts_with(b"PAR1") {
        return Ok(Format::Parquet);
    }
    Ok(match head.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => Format::Json,
        Some(b'{') => Format::Ndjson,
        _ => Format::Csv,
    })
}

/// The most frequent of `, \t ; |` in the first line.
fn sniff_delimiter(path: &Path) -> Result<u8> {
    let mut buf = vec![0u8; 64 * 1024];
    let n = std::fs::File::open(path)?.read(&mut buf)?;
    let line = buf[..n].split(|b| *b == b'\n').next().unwrap_or_default();
    Ok([b',', b'\t', b';', b'|']
        .into_iter()
        .max_by_key(|d| line.iter().filter(|b| *b == d).count())
        .unwrap_or(b','))
}

fn is_stream(source: &str) -> bool {
    source == "-" || source.contains("://")
}

/// Expands sources into files; streams (stdin, URLs) are copied into `staging`.
async fn resolve(
    ctx: &Context,
    input: &IngestInput,
    staging: &Path,
    progress: &indicatif::ProgressBar,
) -> Result<Vec<Input>> {
    let mut out = Vec::new();
    for (k, source) in input.sources.iter().enumerate() {
        let mut files: Vec<(PathBuf, String)> = Vec::new();
        if is_stream(source) {
            let (_, reader) = ctx.open_source(source).await?;
            let dest = staging.join(format!("source-{k}"));
            let (d, pb) = (dest.clone(), progress.clone());
            let bytes =
                tokio::task::spawn_blocking(move || copy_counting(reader, &d, &pb)).await??;
            if bytes == 0 {
                bail!(
                    "{} is empty; nothing to ingest",
                    if source == "-" { "stdin" } else { source }
                );
            }
            files.push((dest, source.clone()));
        } else if source.contains(['*', '?', '[']) {
            for p in glob::glob(source).with_context(|| format!("invalid glob `{source}`"))? {
                let p = p?;
                if p.is_file() {
                    let label = p.display().to_string();
                    files.push((p, label));
                }
            }
            if files.is_empty() {
                bail!("no files match `{source}`");
            }
        } else {
            let path = PathBuf::from(source);
            let meta = std::fs::metadata(&path).with_context(|| format!("cannot read {source}"))?;
            if meta.is_dir() {
                let mut inside: Vec<PathBuf> = std::fs::read_dir(&path)?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file() && format_from_name(&p.to_string_lossy()).is_some())
                    .collect();
                inside.sort();
                if inside.is_empty() {
                    bail!("directory {source} holds no .csv, .tsv, .ndjson, .jsonl, .json or .parquet files");
                }
                files.extend(inside.into_iter().map(|p| {
                    let label = p.display().to_string();
                    (p, label)
                }));
            } else {
                files.push((path, source.clone()));
            }
        }
        for (path, label) in files {
            if std::fs::metadata(&path)?.len() == 0 {
                bail!("{label} is empty; nothing to ingest");
            }
            // Explicit --format, else the name's extension (stdin has none), else the bytes.
            let format = match input.format.or_else(|| format_from_name(&label)) {
                Some(f) => f,
                None => sniff(&path)?,
            };
            out.push(Input {
                path,
                label,
                format,
            });
        }
    }
    Ok(out)
}

fn copy_counting(
    mut reader: hakiri_kernel::SourceReader,
    dest: &Path,
    progress: &indicatif::ProgressBar,
) -> Result<u64> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(dest)?);
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n])?;
        total += n as u64;
        progress.set_message(format!("reading {}", indicatif::HumanBytes(total)));
    }
    file.flush()?;
    Ok(total)
}

fn pl_path(p: &Path) -> PlRefPath {
    PlRefPath::new(p.to_string_lossy().into_owned())
}

/// Builds the lazy scan of every input and sinks it into `out` (zstd Parquet),
/// streaming. Returns how many malformed rows were skipped.
fn write_part(inputs: &[Input], input: &IngestInput, staging: &Path, out: &Path) -> Result<u64> {
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
                    (None, _) => sniff_delimiter(&i.path)?,
                };
                let path = if input.on_error == OnError::Skip {
                    let clean = staging.join(format!("clean-{k}.csv"));
                    skipped += csvcheck::copy_without_bad_rows(&i.path, &clean, delimiter)?;
                    clean
                } else {
                    i.path.clone()
                };
                csv_inputs.push((i, delimiter));
                LazyCsvReader::new(pl_path(&path))
                    .with_has_header(header)
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
            .map_err(|e| explain(e, &csv_inputs, header))?;
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
    lf.sink(
        SinkDestination::File {
            target: SinkTarget::Path(pl_path(out)),
        },
        FileWriteFormat::Parquet(Arc::new(options)),
        UnifiedSinkArgs::default(),
    )
    .and_then(|lf| lf.collect_with_engine(Engine::Streaming))
    .map_err(|e| explain(e, &csv_inputs, header))?;
    Ok(skipped)
}

/// Turns a Polars error on CSV input into the file and line at fault.
fn explain(e: PolarsError, csv_inputs: &[(&Input, u8)], header: bool) -> anyhow::Error {
    for (i, delimiter) in csv_inputs {
        if let Ok(Some(problem)) = csvcheck::first_problem(&i.path, *delimiter, header) {
            return anyhow!("{} {problem}; fix the row or pass --on-error skip", i.label);
        }
    }
    let msg = e.to_string();
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
fn schema_json(lf: &mut LazyFrame) -> Result<serde_json::Value> {
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

fn dir_bytes(dir: &Path) -> u64 {
    store::parts(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

pub async fn ingest(
    ctx: &Context,
    input: IngestInput,
    progress: indicatif::ProgressBar,
) -> Result<IngestReport> {
    store::validate_name(&input.name)?;
    if input.sources.is_empty() {
        bail!("no sources given; name files, globs, directories, URLs or - for stdin");
    }
    parse_overrides(&input.schema)?;
    let data_dir = ctx.config.data_dir.clone();
    let name = input.name.clone();
    let _lock = store::WriteLock::acquire(&data_dir, &name)?;
    let catalog = ctx.catalog().await?;
    let previous = catalog.get(&name).await?;
    let version = previous.as_ref().map_or(1, |p| p.version + 1);
    let staging = store::dataset_dir(&data_dir, &name)
        .join(format!(".staging-{}-{version}", std::process::id()));
    std::fs::create_dir_all(staging.join("out"))
        .with_context(|| format!("cannot create {}", staging.display()))?;
    let result = write_version(ctx, &input, &previous, version, &staging, &progress).await;
    let outcome = match result {
        Ok(report) => {
            let target = store::version_dir(&data_dir, &name, version);
            std::fs::rename(staging.join("out"), &target)
                .with_context(|| format!("cannot move the new version to {}", target.display()))?;
            let entry = DatasetEntry {
                name: name.clone(),
                version,
                location: target.display().to_string(),
                source: input.sources.join(" "),
                rows: report.rows,
                bytes: report.bytes,
                schema: report.schema.clone(),
                updated: hakiri_kernel::clock::rfc3339(hakiri_kernel::clock::unix_now()),
            };
            match catalog.publish(entry).await {
                Ok(()) => Ok(IngestReport {
                    name: name.clone(),
                    version,
                    rows: report.rows,
                    bytes: report.bytes,
                    columns: report.schema.as_array().map_or(0, Vec::len),
                    sources: report.sources,
                    skipped_rows: report.skipped,
                }),
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&target);
                    Err(e.context("cannot publish the new version; the previous one is unchanged"))
                }
            }
        }
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_dir_all(&staging);
    if outcome.is_ok() {
        store::remove_stale(&data_dir, &name, Some(version));
    } else {
        // A first ingest that failed leaves no empty dataset directory behind.
        let _ = std::fs::remove_dir(store::dataset_dir(&data_dir, &name));
    }
    progress.finish_and_clear();
    outcome
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

/// The self-check's entry: one local CSV through the same write path.
pub fn write_check(csv: &Path, input: &IngestInput, staging: &Path, out: &Path) -> Result<u64> {
    let inputs = [Input {
        path: csv.to_path_buf(),
        label: csv.display().to_string(),
        format: Format::Csv,
    }];
    write_part(&inputs, input, staging, out)
}
