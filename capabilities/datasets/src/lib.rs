//! `datasets`: the data path's front door. Ingests files, globs, directories,
//! URLs and stdin (through the registered connectors) into zstd Parquet with
//! Polars, records them in the configured catalog, and lists, describes and
//! drops them.

mod cli;
mod config;
mod csvcheck;
pub mod ingest;
mod relabel;
mod sample;
pub mod store;

use anyhow::{bail, Result};
use clap::{Arg, ArgAction, Command};
use cli::{ingest_command, print_describe, print_list, run_ingest};
use hakiri_data_api::{
    authorize_dataset, open_catalog, CatalogConfig, DatasetEntry, DatasetStatus,
};
use hakiri_kernel::{Acts, CheckOutcome, Context, KernelError, Registrar, Tool};
use ingest::{Encoding, IngestInput, Mode, OnError};
use polars::prelude::*;
use schemars::JsonSchema;
use serde::Deserialize;
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
/// settings win): CSV is read in bounded 2 MiB chunks instead of being
/// memory-mapped whole, so ingest's memory does not grow with the input.
/// 2 MiB rather than 8: each chunk is zeroed, read into and copied once
/// more, which then stays in the CPU's cache; at 2 GB the ingest's peak
/// RSS was 250 MB instead of 300, in the same time. (Forcing async would
/// also send a path sink through Polars' object-store writer; ingest hands
/// its sink an open file instead, see `ingest::write`.)
fn polars_defaults() {
    for (var, value) in [
        ("POLARS_FORCE_ASYNC", "1"),
        ("POLARS_CSV_CHUNK_SIZE", "2097152"),
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
    ).changing())?;
    r.tool(Tool::typed(
        "datasets.list",
        "List the datasets this token may read: {\"datasets\": [...]}, each with name, its description when it has one, rows, size, columns, version, source, updated, and what other capabilities know of it (its text and vector indexes, its refresh schedule). Start here, then datasets.describe or datasets.sample one.",
        |_: NoInput, ctx| async move {
            // An object, not a bare list: MCP's structured content must be one.
            Ok(serde_json::json!({ "datasets": annotated(&ctx, &list(&ctx).await?)? }))
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
    r.tool(
        Tool::typed(
            "datasets.drop",
            "Remove a dataset and its files",
            |input: NameInput, ctx| async move {
                authorize_dataset(&ctx, &input.name, true).await?;
                drop_dataset(&ctx, &input.name).await?;
                Ok(serde_json::json!({"dropped": input.name}))
            },
        )
        .changing(),
    )?;
    r.command(
        ingest_command(),
        Acts::As("datasets.ingest"),
        |m, ctx| async move { run_ingest(&m, &ctx).await },
    )?;
    r.command(
        Command::new("datasets").about("List datasets").arg(
            Arg::new("json")
                .long("json")
                .action(ArgAction::SetTrue)
                .help("Print JSON"),
        ),
        Acts::As("datasets.list"),
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
        Acts::As("datasets.describe"),
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
        Acts::Operator,
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
        Acts::As("datasets.drop"),
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

/// The datasets this caller may read (every one, for the local user).
async fn list(ctx: &Context) -> Result<Vec<DatasetEntry>> {
    let mut visible = Vec::new();
    for entry in open_catalog(ctx).await?.list().await? {
        if authorize_dataset(ctx, &entry.name, false).await.is_ok() {
            visible.push(entry);
        }
    }
    Ok(visible)
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

/// The dataset, if the caller may read it, or an error naming the nearest
/// known one.
async fn find(ctx: &Context, name: &str) -> Result<DatasetEntry> {
    authorize_dataset(ctx, name, false).await?;
    let catalog = open_catalog(ctx).await?;
    if let Some(d) = catalog.get(name).await? {
        return Ok(d);
    }
    // Suggest only names this caller may see.
    let all = list(ctx).await?;
    bail!(
        "no dataset `{name}`{}; `hakiri datasets` lists them",
        store::suggestion(name, all.iter().map(|d| d.name.as_str()))
    )
}

async fn drop_dataset(ctx: &Context, name: &str) -> Result<()> {
    store::validate_name(name)?;
    authorize_dataset(ctx, name, true).await?;
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
