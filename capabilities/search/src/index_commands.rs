//! `hakiri index create|list|drop|query`: a dataset's text and vector indexes.

use crate::dataset_index::{self, Spec};
use crate::retrieve;
use anyhow::{anyhow, bail};
use clap::{Arg, ArgAction, ArgMatches, Command};
use hakiri_data_api::retrieval::{self, VectorSpec};
use hakiri_kernel::Context;
use std::path::Path;
use std::process::ExitCode;

pub fn index_command() -> Command {
    Command::new("index")
        .about("Create, list and drop a dataset's full-text and vector indexes")
        .subcommand_required(true)
        .subcommand(
            Command::new("create")
                .about("Index a dataset; every later version is indexed before it is published")
                .arg(Arg::new("dataset").required(true))
                .arg(Arg::new("text").long("text").value_delimiter(',').action(ArgAction::Append).help("Text columns for the full-text index, e.g. title,body"))
                .arg(Arg::new("id").long("id").help("Full text: a column identifying each row, returned with every hit"))
                .arg(Arg::new("vector").long("vector").conflicts_with("embed").help("A column of float lists for the vector index"))
                .arg(Arg::new("embed").long("embed").help("A text column to embed ([embeddings] provider) for the vector index"))
                .arg(Arg::new("model").long("model").help("The embedding model (default: [embeddings] model); with --vector, the model that made the vectors, so text queries are embedded alike"))
                .arg(Arg::new("metric").long("metric").default_value("cosine").value_parser(["cosine", "dot", "l2"])),
        )
        .subcommand(
            Command::new("query")
                .about("Run query vectors from a file (one JSON array per line) against a dataset's vector index: each query's rows as NDJSON, latency on stderr")
                .arg(Arg::new("dataset").required(true))
                .arg(Arg::new("vectors").long("vectors").required(true).value_parser(clap::value_parser!(std::path::PathBuf)))
                .arg(Arg::new("limit").long("limit").default_value("10").value_parser(clap::value_parser!(usize)))
                .arg(Arg::new("ef").long("ef").value_parser(clap::value_parser!(usize)).help("Candidates kept per search (more finds more of the true nearest, slower; default 64)")),
        )
        .subcommand(Command::new("list").about("Datasets' indexes and their state").arg(Arg::new("json").long("json").action(ArgAction::SetTrue)))
        .subcommand(
            Command::new("drop")
                .about("Drop a dataset's indexes (both, unless --text or --vector)")
                .arg(Arg::new("dataset").required(true))
                .arg(Arg::new("text").long("text").action(ArgAction::SetTrue))
                .arg(Arg::new("vector").long("vector").action(ArgAction::SetTrue)),
        )
}

pub async fn run_index(m: ArgMatches, ctx: Context) -> anyhow::Result<ExitCode> {
    match m.subcommand() {
        Some(("create", m)) => create(&ctx, m).await?,
        Some(("list", m)) => list(&ctx, m.get_flag("json")).await?,
        Some(("query", m)) => {
            let dataset = m.get_one::<String>("dataset").expect("required");
            let file = m
                .get_one::<std::path::PathBuf>("vectors")
                .expect("required");
            query_file(
                &ctx,
                dataset,
                file,
                *m.get_one::<usize>("limit").expect("default"),
                m.get_one::<usize>("ef").copied(),
            )
            .await?;
        }
        Some(("drop", m)) => {
            let dataset = m.get_one::<String>("dataset").expect("required");
            let (text, vector) = match (m.get_flag("text"), m.get_flag("vector")) {
                (false, false) => (true, true),
                other => other,
            };
            drop_indexes(&ctx, dataset, text, vector).await?;
        }
        _ => unreachable!("clap requires a subcommand"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn create(ctx: &Context, m: &ArgMatches) -> anyhow::Result<()> {
    let data_dir = &ctx.config.data_dir;
    let dataset = m.get_one::<String>("dataset").expect("required").clone();
    let text: Vec<String> = m
        .get_many::<String>("text")
        .into_iter()
        .flatten()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect();
    let vector = VectorSpec {
        column: m.get_one::<String>("vector").cloned(),
        embed: m.get_one::<String>("embed").cloned(),
        model: m.get_one::<String>("model").cloned(),
        metric: m.get_one::<String>("metric").expect("default").clone(),
    };
    let wants_vector = vector.column.is_some() || vector.embed.is_some();
    if text.is_empty() && !wants_vector {
        bail!("say what to index: --text title,body for full text, --embed body or --vector embedding for vectors");
    }
    // Checked before anything is built: a missing vector capability should
    // not leave a text index half of what was asked.
    let vector_index = if wants_vector {
        Some(retrieval::vector_index(ctx)?)
    } else {
        None
    };
    let (entry, dir) = retrieve::current(ctx, &dataset).await?;
    if !text.is_empty() {
        let spec = Spec {
            text,
            id: m.get_one::<String>("id").cloned(),
        };
        dataset_index::check_columns(&dataset, &spec, &entry.schema)?;
        dataset_index::write_spec(data_dir, &dataset, &spec)?;
        let (name, spec_c, dir_c) = (dataset.clone(), spec.clone(), dir.clone());
        let built = hakiri_kernel::blocking("building the text index", move || {
            dataset_index::build(&name, &spec_c, &dir_c)
        })
        .await;
        match built {
            Ok(rows) => println!(
                "indexed {rows} rows of `{dataset}` (version {}): {}",
                entry.version,
                spec.text.join(", ")
            ),
            Err(e) => {
                let _ = dataset_index::remove_spec(data_dir, &dataset);
                return Err(e);
            }
        }
    }
    if let Some(index) = vector_index {
        let said = index.create(ctx, &dataset, &dir, vector).await?;
        println!("{said} for `{dataset}` (version {})", entry.version);
    }
    Ok(())
}

async fn list(ctx: &Context, json: bool) -> anyhow::Result<()> {
    let data_dir = &ctx.config.data_dir;
    let catalog = hakiri_data_api::open_catalog(ctx).await?;
    let vectors = retrieval::vector_index(ctx).ok();
    let mut rows = Vec::new();
    for entry in catalog.list().await? {
        let version_dir = Path::new(&entry.location);
        if let Some(spec) = dataset_index::read_spec(data_dir, &entry.name)? {
            let built = dataset_index::index_dir(version_dir).is_dir();
            rows.push(serde_json::json!({"dataset": entry.name, "version": entry.version, "kind": "text", "columns": spec.text, "id": spec.id, "state": if built { "ready" } else { "missing for this version" }}));
        }
        if let Some(spec) = vectors
            .as_ref()
            .and_then(|v| v.spec(ctx, &entry.name).ok().flatten())
        {
            let built = version_dir.join("indexes").join("vector").is_dir();
            let columns: Vec<&String> = spec.column.iter().chain(spec.embed.iter()).collect();
            rows.push(serde_json::json!({"dataset": entry.name, "version": entry.version, "kind": "vector", "columns": columns, "embedded": spec.embed.is_some(), "model": spec.model, "metric": spec.metric, "state": if built { "ready" } else { "missing for this version" }}));
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for r in &rows {
            println!(
                "{}\tv{}\t{}: {}\t{}",
                r["dataset"].as_str().unwrap_or(""),
                r["version"],
                r["kind"].as_str().unwrap_or(""),
                r["columns"],
                r["state"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}

async fn drop_indexes(
    ctx: &Context,
    dataset: &str,
    text: bool,
    vector: bool,
) -> anyhow::Result<()> {
    let data_dir = &ctx.config.data_dir;
    let mut dropped = Vec::new();
    let dir = retrieve::current(ctx, dataset)
        .await
        .ok()
        .map(|(_, d)| d.join("indexes"));
    if text && dataset_index::remove_spec(data_dir, dataset)? {
        if let Some(d) = &dir {
            let _ = std::fs::remove_dir_all(d.join("text"));
        }
        dropped.push("text");
    }
    if vector {
        if let Ok(index) = retrieval::vector_index(ctx) {
            if index.drop_index(ctx, dataset)? {
                if let Some(d) = &dir {
                    let _ = std::fs::remove_dir_all(d.join("vector"));
                }
                dropped.push("vector");
            }
        }
    }
    if dropped.is_empty() {
        bail!("dataset `{dataset}` has no such index; `hakiri index list` shows them");
    }
    println!("dropped the {} index of `{dataset}`", dropped.join(" and "));
    Ok(())
}

/// `hakiri index query`: many vector queries in one process, as a batch job
/// (or a benchmark) runs them; per-query latency is measured around the
/// index's search alone, once a first untimed search has loaded the index
/// (as a daemon holds it).
async fn query_file(
    ctx: &Context,
    dataset: &str,
    file: &Path,
    limit: usize,
    ef: Option<usize>,
) -> anyhow::Result<()> {
    use std::io::{BufRead, Write};
    let index = retrieval::vector_index(ctx)?;
    let (_, dir) = retrieve::current(ctx, dataset).await?;
    let reader = std::io::BufReader::new(
        std::fs::File::open(file).map_err(|e| anyhow!("cannot read {}: {e}", file.display()))?,
    );
    let mut queries: Vec<Vec<f32>> = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        queries.push(serde_json::from_str(&line).map_err(|e| {
            anyhow!(
                "line {} of {} is not a JSON array of numbers: {e}",
                n + 1,
                file.display()
            )
        })?);
    }
    if let Some(first) = queries.first() {
        let query = retrieval::VectorQuery::Vector(first.clone());
        index.search(ctx, dataset, &dir, query, limit, ef).await?;
    }
    // Answers are gathered, then printed: a stdout lock may not cross an await.
    let mut out = Vec::new();
    let mut took = Vec::new();
    for vector in queries {
        let start = std::time::Instant::now();
        let hits = index
            .search(
                ctx,
                dataset,
                &dir,
                retrieval::VectorQuery::Vector(vector),
                limit,
                ef,
            )
            .await?;
        took.push(start.elapsed());
        let rows: Vec<u64> = hits.iter().map(|h| h.row).collect();
        let scores: Vec<f32> = hits.iter().map(|h| h.score).collect();
        writeln!(
            out,
            "{}",
            serde_json::json!({ "rows": rows, "scores": scores })
        )?;
    }
    std::io::stdout().lock().write_all(&out)?;
    if !took.is_empty() {
        let total: std::time::Duration = took.iter().sum();
        took.sort();
        let at = |q: f64| took[((took.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
        eprintln!(
            "{} queries: p50 {:.0} us, p99 {:.0} us, {:.0} queries/s",
            took.len(),
            at(0.5),
            at(0.99),
            took.len() as f64 / total.as_secs_f64()
        );
    }
    Ok(())
}
