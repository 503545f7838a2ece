//! `hakiri search <dataset> <query>`: text, vector or hybrid, optionally
//! filtered by a SQL predicate, printed as a table, JSON, NDJSON or CSV.

use crate::retrieve::{self, Mode, Request};
use anyhow::anyhow;
use clap::{Arg, ArgAction, ArgMatches, Command};
use hakiri_kernel::Context;
use std::process::ExitCode;

pub fn search_command() -> Command {
    Command::new("search")
        .about("Search a dataset through its indexes: full text, vectors, or both fused (create them with `hakiri index create`)")
        .arg(Arg::new("dataset").required(true))
        .arg(Arg::new("query").required(true).help(
            "text: a Tantivy query (terms, \"phrases\", AND/OR, -exclusions); vector: text to embed, or a JSON array of floats",
        ))
        .arg(Arg::new("mode").long("mode").default_value("text").value_parser(["text", "vector", "hybrid"]))
        .arg(Arg::new("limit").long("limit").default_value("10").value_parser(clap::value_parser!(usize)))
        .arg(Arg::new("columns").long("columns").value_delimiter(',').action(ArgAction::Append).help("Columns to show (default: every column but vectors)"))
        .arg(Arg::new("where").long("where").value_name("PREDICATE").help(
            "A SQL predicate over the dataset's columns (DuckDB), e.g. \"year > 1900 and lang = 'en'\": a post-filter over the best 10 × limit hits (at most 1000)",
        ))
        .arg(Arg::new("rrf-k").long("rrf-k").value_parser(clap::value_parser!(f32)).help("Hybrid: reciprocal rank fusion's k (default 60)"))
        .arg(Arg::new("format").long("format").default_value("table").value_parser(["table", "json", "ndjson", "csv"]))
}

/// The tool each `--mode` performs, as an agent would call it.
pub fn acts(m: &ArgMatches) -> hakiri_kernel::Acts {
    hakiri_kernel::Acts::As(match m.get_one::<String>("mode").map(String::as_str) {
        Some("vector") => "search.vector",
        Some("hybrid") => "search.hybrid",
        _ => "search.dataset",
    })
}

/// Reads a query given as a JSON array of numbers; `None` for text.
fn query_vector(query: &str) -> anyhow::Result<Option<Vec<f32>>> {
    if !query.trim_start().starts_with('[') {
        return Ok(None);
    }
    serde_json::from_str(query).map(Some).map_err(|e| {
        anyhow!("the query looks like a vector but is not a JSON array of numbers: {e}")
    })
}

pub async fn run_search(m: ArgMatches, ctx: Context) -> anyhow::Result<ExitCode> {
    let query = m.get_one::<String>("query").expect("required").clone();
    let mode = Mode::parse(m.get_one::<String>("mode").expect("default"))?;
    let vector = match mode {
        Mode::Vector => query_vector(&query)?,
        _ => None,
    };
    let req = Request {
        dataset: m.get_one::<String>("dataset").expect("required").clone(),
        query,
        vector,
        mode,
        limit: *m.get_one::<usize>("limit").expect("default"),
        columns: m
            .get_many::<String>("columns")
            .map(|c| c.cloned().collect()),
        rrf_k: m.get_one::<f32>("rrf-k").copied(),
        filter: m.get_one::<String>("where").cloned(),
    };
    let hits = retrieve::search(&ctx, req).await?.0;
    print_hits(
        &hits,
        m.get_one::<String>("format")
            .map_or("table", String::as_str),
    )?;
    Ok(if hits.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn print_hits(hits: &[serde_json::Value], format: &str) -> anyhow::Result<()> {
    match format {
        "json" => println!("{}", serde_json::to_string_pretty(hits)?),
        "ndjson" => {
            for h in hits {
                println!("{h}");
            }
        }
        "csv" => {
            let mut keys: Vec<String> = Vec::new();
            for h in hits.iter().filter_map(|h| h.as_object()) {
                for k in h.keys() {
                    if !keys.contains(k) {
                        keys.push(k.clone());
                    }
                }
            }
            let quote = |s: String| {
                if s.contains([',', '"', '\n', '\r']) {
                    format!("\"{}\"", s.replace('"', "\"\""))
                } else {
                    s
                }
            };
            println!(
                "{}",
                keys.iter()
                    .map(|k| quote(k.clone()))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            for h in hits {
                let row: Vec<String> = keys.iter().map(|k| quote(cell(&h[k.as_str()]))).collect();
                println!("{}", row.join(","));
            }
        }
        _ => {
            for h in hits {
                let score = h["_score"].as_f64().unwrap_or(0.0);
                let who = h
                    .get("id")
                    .map(cell)
                    .unwrap_or_else(|| format!("row {}", h["_row"]));
                let text = match h.get("_snippet").map(cell) {
                    Some(s) if !s.is_empty() => s,
                    _ => h
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter(|(k, _)| !k.starts_with('_') && k.as_str() != "id")
                        .map(|(k, v)| format!("{k}={}", cell(v)))
                        .collect::<Vec<_>>()
                        .join("  "),
                };
                let text: String = text.replace('\n', " ").chars().take(200).collect();
                println!("{score:.3}\t{who}\t{text}");
            }
        }
    }
    Ok(())
}
