//! The vector capability's side of the data path: builds a dataset's vector
//! index (at `hakiri index create` and in every later publish) and answers
//! vector queries, as `hakiri search` and the MCP tools ask through
//! [`VectorIndex`].

use crate::dataset_index::{self, index_dir, read_spec, Meta};
use crate::space::Metric;
use anyhow::{anyhow, bail};
use hakiri_data_api::retrieval::{self, RankedRow, VectorIndex, VectorQuery, VectorSpec};
use hakiri_data_api::{DatasetStatus, VersionBuilder};
use hakiri_kernel::{BoxFuture, Context};
use std::path::{Path, PathBuf};

pub struct HnswIndex;

/// The model name a spec's recorded `<provider>/<model>` passes to the provider.
fn model_name(recorded: &str) -> &str {
    recorded.split_once('/').map_or(recorded, |(_, m)| m)
}

/// Reads or embeds the spec's vectors for the version in `dir`, then builds.
async fn build_version(
    ctx: &Context,
    dataset: &str,
    dir: &Path,
    spec: &VectorSpec,
) -> anyhow::Result<Meta> {
    let metric = Metric::parse(&spec.metric)?;
    let (name, dir_c) = (dataset.to_string(), dir.to_path_buf());
    let (vectors, dim, model) = match (&spec.column, &spec.embed) {
        (Some(column), None) => {
            let column = column.clone();
            let (v, d) = hakiri_kernel::blocking("reading vectors", move || {
                dataset_index::read_vectors(&name, &dir_c, &column)
            })
            .await?;
            (v, d, spec.model.clone())
        }
        (None, Some(column)) => embed_column(ctx, dataset, dir, spec, column).await?,
        _ => bail!("a vector index takes exactly one of --vector <column> and --embed <column>"),
    };
    let dir = dir.to_path_buf();
    hakiri_kernel::blocking("building the vector index", move || {
        dataset_index::build(&dir, vectors, dim, metric, model)
    })
    .await
}

/// Embeds a text column of the version in `dir`, reusing the vectors the
/// published version's index already holds for the same texts and model:
/// an append, or a refresh that changed a few rows, embeds only what is new.
async fn embed_column(
    ctx: &Context,
    dataset: &str,
    dir: &Path,
    spec: &VectorSpec,
    column: &str,
) -> anyhow::Result<(Vec<f32>, usize, Option<String>)> {
    let (name, dir_c, column_c) = (dataset.to_string(), dir.to_path_buf(), column.to_string());
    let texts = hakiri_kernel::blocking("reading texts", move || {
        dataset_index::read_texts(&name, &dir_c, &column_c)
    })
    .await?;
    if texts.is_empty() {
        bail!("dataset `{dataset}` has no rows to index");
    }
    let previous = match (&spec.model, published_dir(ctx, dataset).await) {
        (Some(model), Some(published)) => {
            let (name, column, model) = (dataset.to_string(), column.to_string(), model.clone());
            hakiri_kernel::blocking("reading the published embeddings", move || {
                dataset_index::previous_embeddings(&name, &published, &column, &model)
            })
            .await
            .unwrap_or(None)
        }
        _ => None,
    };
    let found: Vec<Option<usize>> = texts
        .iter()
        .map(|t| previous.as_ref().and_then(|p| p.rows.get(t).copied()))
        .collect();
    let missing: Vec<String> = texts
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(t, _)| t.clone())
        .collect();
    let embedded = if missing.is_empty() {
        None
    } else {
        let wanted = spec.model.as_deref().map(model_name);
        let embedded = retrieval::embedder(ctx)?
            .embed(ctx, wanted, missing)
            .await?;
        if let Some(recorded) = &spec.model {
            if recorded.contains('/') && *recorded != embedded.model {
                bail!("dataset `{dataset}`'s vector index was made with {recorded}, but [embeddings] now gives {}; create the index again to switch models", embedded.model);
            }
        }
        Some(embedded)
    };
    let dim = match (&embedded, &previous) {
        (Some(e), _) => e.vectors.first().map_or(0, Vec::len),
        (None, Some(p)) => p.dimension,
        (None, None) => 0,
    };
    if let (Some(p), true) = (&previous, embedded.is_some()) {
        if p.dimension != dim {
            bail!("the embeddings provider now returns {dim} dimensions where the published index holds {}; create the index again", p.dimension);
        }
    }
    let mut fresh = embedded
        .as_ref()
        .map(|e| e.vectors.iter())
        .into_iter()
        .flatten();
    let mut flat = Vec::with_capacity(dim * texts.len());
    for row in &found {
        match (row, &previous) {
            (Some(r), Some(p)) => flat.extend_from_slice(&p.vectors[r * dim..(r + 1) * dim]),
            _ => flat.extend_from_slice(
                fresh
                    .next()
                    .ok_or_else(|| anyhow!("the embeddings provider returned too few vectors"))?,
            ),
        }
    }
    let model = embedded.map(|e| e.model).or_else(|| spec.model.clone());
    Ok((flat, dim, model))
}

/// The published version's directory, when it is local.
async fn published_dir(ctx: &Context, dataset: &str) -> Option<PathBuf> {
    let catalog = hakiri_data_api::open_catalog(ctx).await.ok()?;
    let entry = catalog.get(dataset).await.ok()??;
    if hakiri_data_api::hydrator(ctx, &entry.location).is_some() {
        return None;
    }
    Some(PathBuf::from(entry.location))
}

impl VectorIndex for HnswIndex {
    fn create<'a>(
        &'a self,
        ctx: &'a Context,
        dataset: &'a str,
        version_dir: &'a Path,
        mut spec: VectorSpec,
    ) -> BoxFuture<'a, anyhow::Result<String>> {
        Box::pin(async move {
            Metric::parse(&spec.metric)?;
            let data_dir = &ctx.config.data_dir;
            // The spec first: an ingest racing this one indexes its version too.
            dataset_index::write_spec(data_dir, dataset, &spec)?;
            match build_version(ctx, dataset, version_dir, &spec).await {
                Ok(meta) => {
                    spec.model = meta.model.clone();
                    dataset_index::write_spec(data_dir, dataset, &spec)?;
                    Ok(format!(
                        "indexed {} vectors of dimension {} ({}{})",
                        meta.rows,
                        meta.dimension,
                        meta.metric,
                        meta.model.map(|m| format!(", {m}")).unwrap_or_default()
                    ))
                }
                Err(e) => {
                    let _ = dataset_index::remove_spec(data_dir, dataset);
                    Err(e)
                }
            }
        })
    }

    fn drop_index(&self, ctx: &Context, dataset: &str) -> anyhow::Result<bool> {
        dataset_index::remove_spec(&ctx.config.data_dir, dataset)
    }

    fn spec(&self, ctx: &Context, dataset: &str) -> anyhow::Result<Option<VectorSpec>> {
        read_spec(&ctx.config.data_dir, dataset)
    }

    fn search<'a>(
        &'a self,
        ctx: &'a Context,
        dataset: &'a str,
        version_dir: &'a Path,
        query: VectorQuery,
        limit: usize,
        ef: Option<usize>,
    ) -> BoxFuture<'a, anyhow::Result<Vec<RankedRow>>> {
        Box::pin(async move {
            if !(1..=dataset_index::MAX_EF).contains(&limit) {
                bail!(
                    "a vector search returns 1 to {} rows, not {limit}",
                    dataset_index::MAX_EF
                );
            }
            let missing = || {
                anyhow!("dataset `{dataset}` has no vector index; create one with `hakiri index create {dataset} --embed <text column>` or `--vector <column>`")
            };
            let vector = match query {
                // A vector needs no spec read, only its presence: this is
                // the hot path of a daemon answering vector queries.
                VectorQuery::Vector(v) => {
                    if !dataset_index::has_spec(&ctx.config.data_dir, dataset) {
                        return Err(missing());
                    }
                    v
                }
                VectorQuery::Text(text) => {
                    let spec = read_spec(&ctx.config.data_dir, dataset)?.ok_or_else(missing)?;
                    let Some(recorded) = &spec.model else {
                        bail!("dataset `{dataset}`'s vector index holds column `{}` as given, with no model to embed text: query it with a vector, or create it with --model naming the model that made the vectors", spec.column.as_deref().unwrap_or("?"));
                    };
                    let embedded = retrieval::embedder(ctx)?
                        .embed(ctx, Some(model_name(recorded)), vec![text])
                        .await?;
                    if recorded.contains('/') && embedded.model != *recorded {
                        bail!("dataset `{dataset}`'s vector index was made with {recorded}, but [embeddings] gives {}; set [embeddings] back, or create the index again", embedded.model);
                    }
                    embedded.vectors.into_iter().next().unwrap_or_default()
                }
            };
            // A loaded index answers in well under a millisecond (ef is at
            // most MAX_EF): inline, since handing it to a blocking thread
            // cost more than the search. Loading one reads files: blocking.
            let dir: PathBuf = index_dir(version_dir);
            if let Some(index) = dataset_index::loaded(&dir) {
                return index.search(&vector, limit, ef);
            }
            if !dir.is_dir() {
                bail!("dataset `{dataset}` has no vector index for its current version (its build failed, or a binary without vectors wrote it); create it again with `hakiri index create`");
            }
            hakiri_kernel::blocking("searching vectors", move || {
                dataset_index::open(&dir)?.search(&vector, limit, ef)
            })
            .await
        })
    }
}

impl VersionBuilder for HnswIndex {
    fn build<'a>(
        &'a self,
        ctx: &'a Context,
        dataset: &'a str,
        dir: &'a Path,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let Some(spec) = read_spec(&ctx.config.data_dir, dataset)? else {
                return Ok(());
            };
            build_version(ctx, dataset, dir, &spec).await.map(|_| ()).map_err(|e| {
                anyhow!("dataset `{dataset}`'s vector index cannot be built for the new version: {e:#}; the previous version stays published (`hakiri index drop {dataset} --vector` to ingest without it)")
            })
        })
    }
}

impl DatasetStatus for HnswIndex {
    fn status(&self, ctx: &Context, dataset: &str) -> Option<serde_json::Value> {
        let spec = read_spec(&ctx.config.data_dir, dataset).ok()??;
        let what = match (&spec.column, &spec.embed) {
            (Some(c), _) => format!("vectors in {c}"),
            (_, Some(c)) => format!("embeddings of {c}"),
            _ => "?".into(),
        };
        let model = spec
            .model
            .clone()
            .map(|m| format!(", {m}"))
            .unwrap_or_default();
        let summary = format!(
            "{what} ({}{model}; search.vector, search.hybrid)",
            spec.metric
        );
        Some(
            serde_json::json!({ "column": spec.column, "embed": spec.embed, "model": spec.model, "metric": spec.metric, "summary": summary }),
        )
    }
}
