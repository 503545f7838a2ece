//! The `ingest` command's arguments, and how `datasets` and `describe`
//! print for people (tools and `--json` return the same values as JSON).

use crate::ingest::{self, Encoding, Format, IngestInput, Mode, OnError};
use anyhow::Result;
use clap::{Arg, ArgAction, Command};
use hakiri_kernel::Context;
use std::io::IsTerminal;
use std::process::ExitCode;

pub(crate) fn ingest_command() -> Command {
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

pub(crate) async fn run_ingest(m: &clap::ArgMatches, ctx: &Context) -> Result<ExitCode> {
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

pub(crate) fn print_list(all: &[serde_json::Value]) {
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

pub(crate) fn print_describe(d: &serde_json::Value) {
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
