//! `datasets`: the data path's front door. Ingests files, globs, directories,
//! URLs and stdin (through the registered connectors) into zstd Parquet with
//! Polars, records them in the configured catalog, and lists, describes and
//! drops them.

mod config;
mod csvcheck;
pub mod ingest;
mod relabel;
mod sample;
pub mod store;

use anyhow::{bail, Result};
use clap::{Arg, ArgAction, Command};
use hakiri_data_api::{
    authorize_dataset, open_catalog, CatalogConfig, DatasetEntry, DatasetStatus,
};
use hakiri_kernel::{CheckOutcome, Context, KernelError, Registrar, Tool};
use ingest::{Encoding, Format, IngestInput, Mode, OnError};
use polars::prelude::*;
use schemars::JsonSchema;
use serde::Deserialize;
use std::io::IsTerminal;
use std::process::ExitCode;

hakiri_kernel::capability!(register);

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NameInput {
    /// Dataset name.
    name: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoInput {}

/// Polars reads these once, from the environment. Registration runs before
/// any worker thread exists, so ours are in place first (a user's own
/// settings win): CSV is read in bounded 8 MiB chunks instead of being
/// memory-mapped whole, so ingest's memory does not grow with the input.
fn polars_defaults() {
    for (var, value) in [
        ("POLARS_FORCE_ASYNC", "1"),
        ("POLARS_CSV_CHUNK_SIZE", "8388608"),
    ] {
        if std::env::var_os(var).is_none() {
            std::env::set_var(var, value);
        }
    }
}

fn register(r: &mut Registrar) -> Result<(), KernelError> {
    polars_defaults();
    r.config::<CatalogConfig>()?;
    r.config::<config::DatasetsConfig>()?;
    r.tool(Tool::typed(
        "datasets.ingest",
        "Ingest files, globs, directories or http(s) URLs (CSV, TSV, NDJSON, JSON, Parquet) into a dataset",
        |input: IngestInput, ctx| async move {
            authorize_dataset(&ctx, &input.name, true).await?;
            Ok(ingest::ingest(&ctx, input, indicatif::ProgressBar::hidden()).await?)
        },
    ))?;
    r.tool(Tool::typed(
        "datasets.list",
        "List the datasets this token may read: {\"datasets\": [...]}, each with name, its description when it has one, rows, size, columns, version, source, updated, and what other capabilities know of it (its text and vector indexes, its refresh schedule). Start here, then datasets.describe or datasets.sample one.",
        |_: NoInput, ctx| async move {
            let mut visible = Vec::new();
            for entry in list(&ctx).await? {
                if authorize_dataset(&ctx, &entry.name, false).await.is_ok() {
                    visible.push(entry);
                }
            }
            // An object, not a bare list: MCP's structured content must be one.
            Ok(serde_json::json!({ "datasets": annotated(&ctx, &visible)? }))
        },
    ))?;
    r.tool(Tool::typed(
        "datasets.describe",
        "A dataset's schema and per-column stats: nulls, min, max, mean, distinct estimate",
        |input: NameInput, ctx| async move {
            authorize_dataset(&ctx, &input.name, false).await?;
            Ok(describe(&ctx, &input.name).await?)
        },
    ))?;
    r.tool(Tool::typed(
        "datasets.sample",
        "The first rows of a dataset (default 5, at most 100) as JSON objects, long text cut to 500 characters (`truncated` says so): what its values look like before you query it",
        |input: sample::SampleInput, ctx| async move {
            authorize_dataset(&ctx, &input.name, false).await?;
            let d = find(&ctx, &input.name).await?;
            let dir = std::path::PathBuf::from(&d.location);
            let rows = input.rows.unwrap_or(5);
            let (rows, truncated) =
                hakiri_kernel::blocking("sampling", move || sample::sample(&dir, rows)).await?;
            Ok(serde_json::json!({"name": d.name, "version": d.version, "rows": rows, "truncated": truncated}))
        },
    ))?;
    r.tool(Tool::typed(
        "datasets.drop",
        "Remove a dataset and its files",
        |input: NameInput, ctx| async move {
            authorize_dataset(&ctx, &input.name, true).await?;
            drop_dataset(&ctx, &input.name).await?;
            Ok(serde_json::json!({"dropped": input.name}))
        },
    ))?;
    r.command(ingest_command(), |m, ctx| async move {
        run_ingest(&m, &ctx).await
    })?;
    r.command(
        Command::new("datasets").about("List datasets").arg(
            Arg::new("json")
                .long("json")
                .action(ArgAction::SetTrue)
                .help("Print JSON"),
        ),
        |m, ctx| async move {
            let all = annotated(&ctx, &list(&ctx).await?)?;
            if m.get_flag("json") {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                print_list(&all);
            }
            Ok(ExitCode::SUCCESS)
        },
    )?;
    r.command(
        Command::new("describe")
            .about("Show a dataset's schema and per-column stats, or set its description")
            .arg(Arg::new("name").required(true))
            .arg(
                Arg::new("set-description")
                    .long("set-description")
                    .value_name("TEXT")
                    .help("Set the description agents see in datasets.list (\"\" clears it); publishes a version of hard links to the current files"),
            )
            .arg(
                Arg::new("json")
                    .long("json")
                    .action(ArgAction::SetTrue)
                    .help("Print JSON"),
            ),
        |m, ctx| async move {
            let name = m.get_one::<String>("name").cloned().unwrap_or_default();
            if let Some(text) = m.get_one::<String>("set-description") {
                let version = relabel::set_description(&ctx, &name, text).await?;
                println!("{name}: description set (version {version})");
                return Ok(ExitCode::SUCCESS);
            }
            let d = describe(&ctx, &name).await?;
            if m.get_flag("json") {
                println!("{}", serde_json::to_string_pretty(&d)?);
            } else {
                print_describe(&d);
            }
            Ok(ExitCode::SUCCESS)
        },
    )?;
    r.command(
        Command::new("gc")
            .about("Remove replaced dataset versions no reader can still be using")
            .arg(Arg::new("dataset").num_args(0..).help("Datasets to sweep (default: all)"))
            .arg(
                Arg::new("retain")
                    .long("retain")
                    .help("Keep versions replaced less than this long ago (default: [datasets] retain_for), e.g. 0s"),
            ),
        |m, ctx| async move {
            let mut retention = ctx.section::<config::DatasetsConfig>().retention();
            if let Some(text) = m.get_one::<String>("retain") {
                retention.keep_for = hakiri_kernel::clock::parse_duration(text)
                    .map_err(|e| anyhow::anyhow!("--retain {e}"))?;
            }
            let named: Vec<String> = m.get_many::<String>("dataset").map(|v| v.cloned().collect()).unwrap_or_default();
            for d in list(&ctx).await? {
                if !named.is_empty() && !named.contains(&d.name) {
                    continue;
                }
                let _lock = match store::WriteLock::acquire(&ctx.config.data_dir, &d.name) {
                    Ok(lock) => lock,
                    Err(e) => {
                        eprintln!("hakiri: gc: skipped {}: {e}", d.name);
                        continue;
                    }
                };
                let removed = store::sweep(&ctx.config.data_dir, &d.name, d.version, retention);
                println!("{}: removed {} replaced version(s){}", d.name, removed.len(),
                    if removed.is_empty() { String::new() } else { format!(" ({})", removed.iter().map(|v| format!("v{v}")).collect::<Vec<_>>().join(", ")) });
            }
            Ok(ExitCode::SUCCESS)
        },
    )?;
    r.command(
        Command::new("drop")
            .about("Remove a dataset and its files")
            .arg(Arg::new("name").required(true)),
        |m, ctx| async move {
            let name = m.get_one::<String>("name").cloned().unwrap_or_default();
            drop_dataset(&ctx, &name).await?;
            println!("dropped {name}");
            Ok(ExitCode::SUCCESS)
        },
    )?;
    r.check(|_ctx| async {
        let detail = tokio::task::spawn_blocking(self_check).await??;
        anyhow::Ok(CheckOutcome::Ok(detail))
    });
    Ok(())
}

fn ingest_command() -> Command {
    Command::new("ingest")
        .about("Ingest files, globs, directories, http(s) URLs or - (stdin) into a dataset")
        .arg(
            Arg::new("sources")
                .required(true)
                .action(ArgAction::Append)
                .help("Sources"),
        )
        .arg(
            Arg::new("as")
                .long("as")
                .required(true)
                .value_name("NAME")
                .help("Dataset name"),
        )
        .arg(
            Arg::new("format")
                .long("format")
                .value_parser(clap::value_parser!(Format))
                .help("Override format detection"),
        )
        .arg(
            Arg::new("mode")
                .long("mode")
                .value_parser(clap::value_parser!(Mode))
                .default_value("replace"),
        )
        .arg(
            Arg::new("delimiter")
                .long("delimiter")
                .value_parser(clap::value_parser!(char))
                .help("CSV delimiter (default: detected)"),
        )
        .arg(
            Arg::new("no-header")
                .long("no-header")
                .action(ArgAction::SetTrue)
                .help("CSV files have no header row"),
        )
        .arg(
            Arg::new("schema")
                .long("schema")
                .action(ArgAction::Append)
                .value_name("COL=TYPE")
                .help("Column type override"),
        )
        .arg(
            Arg::new("on-error")
                .long("on-error")
                .value_parser(clap::value_parser!(OnError))
                .default_value("fail")
                .help("skip: drop malformed CSV rows and count them"),
        )
        .arg(
            Arg::new("null")
                .long("null")
                .action(ArgAction::Append)
                .value_name("MARKER")
                .help("Read CSV cells equal to MARKER as null (repeatable), e.g. --null NA"),
        )
        .arg(
            Arg::new("skip-rows")
                .long("skip-rows")
                .value_parser(clap::value_parser!(usize))
                .value_name("N")
                .help("Skip N lines (CSV) or rows (spreadsheets) before the header"),
        )
        .arg(
            Arg::new("sheet")
                .long("sheet")
                .value_name("NAME")
                .help("The sheet of a spreadsheet (xlsx, xls, ods) to read (default: the first)"),
        )
        .arg(
            Arg::new("encoding")
                .long("encoding")
                .value_parser(clap::value_parser!(Encoding))
                .help("Input text encoding (default utf8; latin1 is transcoded)"),
        )
        .arg(
            Arg::new("description")
                .long("description")
                .help("What the data is, shown to people and agents (datasets.list); kept by later versions unless given anew"),
        )
        .arg(
            Arg::new("quiet")
                .long("quiet")
                .short('q')
                .action(ArgAction::SetTrue)
                .help("No progress output"),
        )
}

async fn run_ingest(m: &clap::ArgMatches, ctx: &Context) -> Result<ExitCode> {
    let input = IngestInput {
        sources: m
            .get_many::<String>("sources")
            .into_iter()
            .flatten()
            .cloned()
            .collect(),
        name: m.get_one::<String>("as").cloned().unwrap_or_default(),
        description: m.get_one::<String>("description").cloned(),
        format: m.get_one::<Format>("format").copied(),
        mode: m.get_one::<Mode>("mode").copied().unwrap_or_default(),
        delimiter: m.get_one::<char>("delimiter").copied(),
        header: Some(!m.get_flag("no-header")),
        schema: m
            .get_many::<String>("schema")
            .into_iter()
            .flatten()
            .cloned()
            .collect(),
        on_error: m
            .get_one::<OnError>("on-error")
            .copied()
            .unwrap_or_default(),
        null: m
            .get_many::<String>("null")
            .into_iter()
            .flatten()
            .cloned()
            .collect(),
        skip_rows: m.get_one::<usize>("skip-rows").copied().unwrap_or(0),
        encoding: m
            .get_one::<Encoding>("encoding")
            .copied()
            .unwrap_or_default(),
        sheet: m.get_one::<String>("sheet").cloned(),
    };
    let quiet = m.get_flag("quiet");
    let progress = if !quiet && std::io::stderr().is_terminal() {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.enable_steady_tick(std::time::Duration::from_millis(120));
        pb
    } else {
        indicatif::ProgressBar::hidden()
    };
    let r = ingest::ingest(ctx, input, progress).await?;
    if !quiet {
        let skipped = if r.skipped_rows > 0 {
            format!("; skipped {} malformed rows", r.skipped_rows)
        } else {
            String::new()
        };
        eprintln!(
            "ingested {} v{}: {} rows, {} columns, {} from {} source file(s){skipped}",
            r.name,
            r.version,
            r.rows,
            r.columns,
            indicatif::HumanBytes(r.bytes),
            r.sources
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(ctx: &Context) -> Result<Vec<DatasetEntry>> {
    open_catalog(ctx).await?.list().await
}

/// Each entry as JSON plus what other capabilities know about it (e.g.
/// `"refresh"`: its schedule and freshness), under the provider's name.
fn annotated(ctx: &Context, entries: &[DatasetEntry]) -> Result<Vec<serde_json::Value>> {
    let providers = ctx.all::<dyn DatasetStatus>();
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let mut v = serde_json::to_value(entry)?;
        for (name, provider) in &providers {
            if let Some(status) = provider.status(ctx, &entry.name) {
                v[*name] = status;
            }
        }
        out.push(v);
    }
    Ok(out)
}

fn print_list(all: &[serde_json::Value]) {
    // Providers' one-line summaries (e.g. "ok, next 2026-…") as a last column.
    let status = |d: &serde_json::Value| -> String {
        d.as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some(format!("{k}: {}", v.get("summary")?.as_str()?)))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let show_status = all.iter().any(|d| !status(d).is_empty());
    println!(
        "{:20} {:>10} {:>10} {:>7} {:>7}  {:20}  {:30}{}",
        "NAME",
        "ROWS",
        "SIZE",
        "COLUMNS",
        "VERSION",
        "UPDATED",
        "SOURCE",
        if show_status { "  STATUS" } else { "" }
    );
    for d in all {
        let text = |k: &str| d[k].as_str().unwrap_or_default().to_string();
        println!(
            "{:20} {:>10} {:>10} {:>7} {:>7}  {:20}  {:30}{}",
            text("name"),
            d["rows"].as_u64().unwrap_or_default(),
            indicatif::HumanBytes(d["bytes"].as_u64().unwrap_or_default()).to_string(),
            d["schema"].as_array().map_or(0, Vec::len),
            d["version"].as_u64().unwrap_or_default(),
            text("updated"),
            text("source"),
            if show_status {
                format!("  {}", status(d))
            } else {
                String::new()
            }
        );
    }
}

/// The dataset, or an error naming the nearest known one.
async fn find(ctx: &Context, name: &str) -> Result<DatasetEntry> {
    let catalog = open_catalog(ctx).await?;
    if let Some(d) = catalog.get(name).await? {
        return Ok(d);
    }
    let all = catalog.list().await?;
    bail!(
        "no dataset `{name}`{}; `hakiri datasets` lists them",
        store::suggestion(name, all.iter().map(|d| d.name.as_str()))
    )
}

async fn drop_dataset(ctx: &Context, name: &str) -> Result<()> {
    store::validate_name(name)?;
    let data_dir = ctx.config.data_dir.clone();
    let _lock = store::WriteLock::acquire(&data_dir, name)?;
    find(ctx, name).await?;
    let catalog = open_catalog(ctx).await?;
    let lease = catalog.lock(name).await?;
    let removed = catalog.remove(name).await;
    hakiri_data_api::release(lease).await;
    removed?;
    let _ = std::fs::remove_dir_all(store::dataset_dir(&data_dir, name));
    Ok(())
}

async fn describe(ctx: &Context, name: &str) -> Result<serde_json::Value> {
    let d = find(ctx, name).await?;
    let dir = std::path::PathBuf::from(&d.location);
    let columns = tokio::task::spawn_blocking(move || column_stats(&dir)).await??;
    Ok(serde_json::json!({
        "name": d.name, "version": d.version, "rows": d.rows, "bytes": d.bytes,
        "source": d.source, "updated": d.updated, "description": d.description, "columns": columns,
    }))
}

/// Per column: type, nulls, min, max, mean (numeric) and a distinct estimate,
/// in one lazy pass over the Parquet files.
fn column_stats(dir: &std::path::Path) -> Result<Vec<serde_json::Value>> {
    let mut lf = ingest::scan(&dir.join("*.parquet"))?;
    let schema = lf.collect_schema()?;
    let mut exprs = Vec::new();
    for (n, t) in schema.iter() {
        let c = || col(n.as_str());
        exprs.push(
            c().null_count()
                .cast(DataType::UInt64)
                .alias(format!("{n}\u{1}nulls")),
        );
        exprs.push(
            c().min()
                .cast(DataType::String)
                .alias(format!("{n}\u{1}min")),
        );
        exprs.push(
            c().max()
                .cast(DataType::String)
                .alias(format!("{n}\u{1}max")),
        );
        exprs.push(
            c().approx_n_unique()
                .cast(DataType::UInt64)
                .alias(format!("{n}\u{1}distinct")),
        );
        if t.is_primitive_numeric() {
            exprs.push(
                c().mean()
                    .cast(DataType::Float64)
                    .alias(format!("{n}\u{1}mean")),
            );
        }
    }
    let row = lf
        .select(exprs)
        .collect()
        .map_err(|e| anyhow::anyhow!("cannot compute column stats: {e}"))?;
    let get = |n: &str, stat: &str| -> serde_json::Value {
        match row
            .column(&format!("{n}\u{1}{stat}"))
            .ok()
            .and_then(|c| c.get(0).ok())
        {
            Some(AnyValue::UInt64(v)) => serde_json::json!(v),
            Some(AnyValue::Float64(v)) => serde_json::json!(v),
            Some(AnyValue::String(v)) => serde_json::json!(v),
            Some(AnyValue::StringOwned(v)) => serde_json::json!(v.as_str()),
            _ => serde_json::Value::Null,
        }
    };
    Ok(schema
        .iter()
        .map(|(n, t)| {
            serde_json::json!({
                "name": n.as_str(), "type": t.to_string(),
                "nulls": get(n, "nulls"), "min": get(n, "min"), "max": get(n, "max"),
                "mean": get(n, "mean"), "distinct_estimate": get(n, "distinct"),
            })
        })
        .collect())
}

fn print_describe(d: &serde_json::Value) {
    println!(
        "{} v{}: {} rows, {} ({}; updated {})",
        d["name"].as_str().unwrap_or(""),
        d["version"],
        d["rows"],
        indicatif::HumanBytes(d["bytes"].as_u64().unwrap_or(0)),
        d["source"].as_str().unwrap_or(""),
        d["updated"].as_str().unwrap_or("")
    );
    if let Some(text) = d["description"].as_str() {
        println!("{text}");
    }
    println!(
        "{:20} {:10} {:>8} {:>16} {:>16} {:>14} {:>9}",
        "COLUMN", "TYPE", "NULLS", "MIN", "MAX", "MEAN", "DISTINCT~"
    );
    let show = |v: &serde_json::Value| match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.chars().take(16).collect(),
        serde_json::Value::Number(n) => n
            .as_f64()
            .map(|f| {
                if f.fract() == 0.0 {
                    format!("{f}")
                } else {
                    format!("{f:.4}")
                }
            })
            .unwrap_or_default(),
        other => other.to_string(),
    };
    for c in d["columns"].as_array().into_iter().flatten() {
        println!(
            "{:20} {:10} {:>8} {:>16} {:>16} {:>14} {:>9}",
            c["name"].as_str().unwrap_or(""),
            c["type"].as_str().unwrap_or(""),
            show(&c["nulls"]),
            show(&c["min"]),
            show(&c["max"]),
            show(&c["mean"]),
            show(&c["distinct_estimate"])
        );
    }
}

/// Writes a small CSV, streams it into zstd Parquet with Polars, and reads the stats back.
fn self_check() -> Result<String> {
    let dir = std::env::temp_dir().join(format!("hakiri-datasets-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| {
        let csv = dir.join("in.csv");
        std::fs::write(&csv, "region,amount\neu,10\nus,20\neu,5\n")?;
        let out = dir.join("part.parquet");
        let inputs = IngestInput {
            sources: vec![csv.display().to_string()],
            name: "check".into(),
            format: None,
            mode: Mode::Replace,
            delimiter: None,
            header: None,
            schema: vec!["amount=float64".into()],
            on_error: OnError::Fail,
            null: Vec::new(),
            skip_rows: 0,
            encoding: Encoding::Utf8,
            sheet: None,
            description: None,
        };
        ingest::write_check(&csv, &inputs, &dir, &out)?;
        let (rows, schema) = ingest::stats(&dir)?;
        anyhow::ensure!(rows == 3, "read back {rows} rows, expected 3");
        anyhow::ensure!(schema[1]["type"] == "f64", "override not applied: {schema}");
        Ok(format!(
            "Polars streamed a CSV into zstd Parquet: {rows} rows, amount cast to f64"
        ))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
