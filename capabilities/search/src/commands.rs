//! `hakiri search <dataset> <query>` and `hakiri index create|list|drop`.

use crate::dataset_index::{self, Hit, Spec};
use anyhow::{anyhow, bail};
use clap::{Arg, ArgAction, ArgMatches, Command};
use hakiri_data_api::DatasetEntry;
use hakiri_kernel::Context;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn search_command() -> Command {
    Command::new("search")
        .about(
            "Full-text search over a dataset's text index (create it with `hakiri index create`)",
        )
        .arg(Arg::new("dataset").required(true))
        .arg(
            Arg::new("query")
                .required(true)
                .help("Tantivy query: terms, \"phrases\", AND/OR, -exclusions"),
        )
        .arg(
            Arg::new("limit")
                .long("limit")
                .default_value("10")
                .value_parser(clap::value_parser!(usize)),
        )
        .arg(
            Arg::new("format")
                .long("format")
                .default_value("table")
                .value_parser(["table", "json"]),
        )
}

pub fn index_command() -> Command {
    Command::new("index")
        .about("Create, list and drop a dataset's full-text index")
        .subcommand_required(true)
        .subcommand(
            Command::new("create")
                .about("Index text columns of a dataset; every later version is indexed before it is published")
                .arg(Arg::new("dataset").required(true))
                .arg(Arg::new("text").long("text").required(true).value_delimiter(',').action(ArgAction::Append).help("Text columns to index, e.g. title,body"))
                .arg(Arg::new("id").long("id").help("A column identifying each row, returned with every hit")),
        )
        .subcommand(Command::new("list").about("Datasets with a text index").arg(Arg::new("json").long("json").action(ArgAction::SetTrue)))
        .subcommand(Command::new("drop").about("Drop a dataset's text index").arg(Arg::new("dataset").required(true)))
}

/// The dataset's published entry and its local version directory.
async fn current(ctx: &Context, dataset: &str) -> anyhow::Result<(DatasetEntry, PathBuf)> {
    let catalog = hakiri_data_api::open_catalog(ctx).await?;
    let entry = catalog
        .get(dataset)
        .await?
        .ok_or_else(|| anyhow!("no dataset `{dataset}`; `hakiri datasets` lists them"))?;
    if hakiri_data_api::hydrator(ctx, &entry.location).is_some() {
        bail!("dataset `{dataset}` lives at {}; text indexes are built for datasets on local disk only, for now", entry.location);
    }
    let dir = PathBuf::from(&entry.location);
    Ok((entry, dir))
}

pub async fn search(
    ctx: &Context,
    dataset: &str,
    query: &str,
    limit: usize,
) -> anyhow::Result<Vec<Hit>> {
    let (entry, dir) = current(ctx, dataset).await?;
    let spec = dataset_index::read_spec(&ctx.config.data_dir, dataset)?
        .ok_or_else(|| anyhow!("dataset `{dataset}` has no text index; create one with `hakiri index create {dataset} --text <columns>`"))?;
    let (name, query) = (dataset.to_string(), query.to_string());
    hakiri_kernel::blocking("searching", move || {
        dataset_index::search(&name, entry.version, &spec, &dir, &query, limit)
    })
    .await
}

pub async fn run_search(m: ArgMatches, ctx: Context) -> anyhow::Result<ExitCode> {
    let dataset = m.get_one::<String>("dataset").expect("required");
    let query = m.get_one::<String>("query").expect("required");
    let limit = *m.get_one::<usize>("limit").expect("default");
    let hits = search(&ctx, dataset, query, limit).await?;
    if m.get_one::<String>("format").map(String::as_str) == Some("json") {
        println!("{}", serde_json::to_string_pretty(&hits)?);
    } else {
        for h in &hits {
            let who = h.id.clone().unwrap_or_else(|| format!("row {}", h._row));
            println!("{:.3}\t{who}\t{}", h._score, h._snippet.replace('\n', " "));
        }
    }
    Ok(if hits.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub async fn run_index(m: ArgMatches, ctx: Context) -> anyhow::Result<ExitCode> {
    let data_dir = ctx.config.data_dir.clone();
    match m.subcommand() {
        Some(("create", m)) => {
            let dataset = m.get_one::<String>("dataset").expect("required").clone();
            let spec = Spec {
                text: m
                    .get_many::<String>("text")
                    .into_iter()
                    .flatten()
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty())
                    .collect(),
                id: m.get_one::<String>("id").cloned(),
            };
            let (entry, dir) = current(&ctx, &dataset).await?;
            dataset_index::check_columns(&dataset, &spec, &entry.schema)?;
            // The spec first: an ingest racing this one indexes its version too.
            dataset_index::write_spec(&data_dir, &dataset, &spec)?;
            let (name, spec_c) = (dataset.clone(), spec.clone());
            let built = hakiri_kernel::blocking("building the text index", move || {
                dataset_index::build(&name, &spec_c, &dir)
            })
            .await;
            match built {
                Ok(rows) => println!(
                    "indexed {rows} rows of `{dataset}` (version {}): {}",
                    entry.version,
                    spec.text.join(", ")
                ),
                Err(e) => {
                    let _ = dataset_index::remove_spec(&data_dir, &dataset);
                    return Err(e);
                }
            }
        }
        Some(("list", m)) => {
            let catalog = hakiri_data_api::open_catalog(&ctx).await?;
            let mut rows = Vec::new();
            for entry in catalog.list().await? {
                if let Some(spec) = dataset_index::read_spec(&data_dir, &entry.name)? {
                    let built =
                        dataset_index::index_dir(std::path::Path::new(&entry.location)).is_dir();
                    rows.push(serde_json::json!({"dataset": entry.name, "version": entry.version, "text": spec.text, "id": spec.id, "state": if built { "ready" } else { "missing for this version" }}));
                }
            }
            if m.get_flag("json") {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                for r in &rows {
                    println!(
                        "{}\tv{}\ttext: {}\t{}",
                        r["dataset"].as_str().unwrap_or(""),
                        r["version"],
                        r["text"],
                        r["state"].as_str().unwrap_or("")
                    );
                }
            }
        }
        Some(("drop", m)) => {
            let dataset = m.get_one::<String>("dataset").expect("required");
            if !dataset_index::remove_spec(&data_dir, dataset)? {
                bail!("dataset `{dataset}` has no text index");
            }
            if let Ok((_, dir)) = current(&ctx, dataset).await {
                let _ = std::fs::remove_dir_all(dir.join("indexes"));
            }
            println!("dropped the text index of `{dataset}`");
        }
        _ => unreachable!("clap requires a subcommand"),
    }
    Ok(ExitCode::SUCCESS)
}
