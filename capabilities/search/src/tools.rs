//! The agent's search tools over datasets: `search.dataset` (full text),
//! `search.vector` and `search.hybrid`. Each names one dataset the caller's
//! token must grant, returns at most `limit` rows with long text cut
//! (`truncated` says so), and refuses queries past a bounded length. Each
//! takes an optional `where` predicate (see `filter`).

use crate::retrieve::{self, Mode, Request};
use hakiri_kernel::{Registrar, Tool, ToolError};
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TextInput {
    /// The dataset, which must have a text index (datasets.list shows indexes).
    dataset: String,
    /// Tantivy query syntax: terms, "phrases", AND/OR, -exclusions.
    #[schemars(length(max = 4096))]
    query: String,
    /// Maximum hits (default 10, at most 1000).
    #[schemars(range(min = 1, max = 1000))]
    limit: Option<usize>,
    /// Columns to return (default: the indexed columns and the id).
    columns: Option<Vec<String>>,
    /// A SQL condition over the dataset's columns (DuckDB syntax), e.g.
    /// "year > 1900 and lang = 'en'": applied to the best 10 × limit hits.
    /// Runs through engine.query, so the token must grant that tool too.
    #[serde(rename = "where")]
    #[schemars(length(max = 2000))]
    filter: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VectorInput {
    /// The dataset, which must have a vector index (datasets.list shows indexes).
    dataset: String,
    /// Text to embed with the index's model; or give `vector` instead.
    #[schemars(length(max = 4096))]
    query: Option<String>,
    /// A query vector of the index's dimension, instead of `query`.
    vector: Option<Vec<f32>>,
    /// Maximum hits (default 10, at most 100).
    #[schemars(range(min = 1, max = 100))]
    limit: Option<usize>,
    /// Columns to return (default: every column but vectors).
    columns: Option<Vec<String>>,
    /// A SQL condition over the dataset's columns (DuckDB syntax), e.g.
    /// "year > 1900 and lang = 'en'": applied to the best 10 × limit hits.
    /// Runs through engine.query, so the token must grant that tool too.
    #[serde(rename = "where")]
    #[schemars(length(max = 2000))]
    filter: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HybridInput {
    /// The dataset, which must have both a text and a vector index.
    dataset: String,
    /// Natural-language text: parsed as a Tantivy query and embedded.
    #[schemars(length(max = 4096))]
    query: String,
    /// Maximum hits (default 10, at most 100).
    #[schemars(range(min = 1, max = 100))]
    limit: Option<usize>,
    /// Columns to return (default: every column but vectors).
    columns: Option<Vec<String>>,
    /// A SQL condition over the dataset's columns (DuckDB syntax), e.g.
    /// "year > 1900 and lang = 'en'": applied to the best 10 × limit hits.
    /// Runs through engine.query, so the token must grant that tool too.
    #[serde(rename = "where")]
    #[schemars(length(max = 2000))]
    filter: Option<String>,
    /// Reciprocal rank fusion's k (default 60): higher flattens the ranks' weight.
    #[schemars(range(min = 1.0, max = 1000.0))]
    rrf_k: Option<f32>,
}

async fn answer(
    ctx: &hakiri_kernel::Context,
    req: Request,
) -> Result<serde_json::Value, ToolError> {
    hakiri_data_api::authorize_dataset(ctx, &req.dataset, false).await?;
    if let Some(k) = req.rrf_k {
        if !(1.0..=1000.0).contains(&k) {
            return Err(ToolError::Failed(format!(
                "rrf_k must be between 1 and 1000, got {k}"
            )));
        }
    }
    let (dataset, mode) = (req.dataset.clone(), req.mode);
    let (hits, truncated) = retrieve::search(ctx, req).await.map_err(ToolError::from)?;
    let mode = match mode {
        Mode::Text => "text",
        Mode::Vector => "vector",
        Mode::Hybrid => "hybrid",
    };
    Ok(
        serde_json::json!({ "dataset": dataset, "mode": mode, "hits": hits, "truncated": truncated }),
    )
}

pub fn register(r: &mut Registrar) -> Result<(), hakiri_kernel::KernelError> {
    r.tool(Tool::typed(
        "search.dataset",
        "Full-text search over a dataset's text index (BM25): the best rows for a Tantivy query (terms, \"phrases\", AND/OR, -exclusions), each with _score, a _snippet with matches in <b>, _row, its id and the indexed columns. Use it for exact words and names; datasets.list shows which datasets have a text index. Narrow hits with `where`, a SQL condition on the row's columns.",
        |input: TextInput, ctx| async move {
            let req = Request { dataset: input.dataset, query: input.query, vector: None, mode: Mode::Text, limit: input.limit.unwrap_or(10), columns: input.columns, rrf_k: None, filter: input.filter };
            answer(&ctx, req).await
        },
    ))?;
    r.tool(Tool::typed(
        "search.vector",
        "Semantic search over a dataset's vector index: the rows whose embeddings are nearest to `query` (text, embedded with the index's model) or to `vector`, each with _score (cosine similarity unless the index says otherwise), _row and the row's columns. Use it for meaning rather than exact words; datasets.list shows which datasets have a vector index. Narrow hits with `where`, a SQL condition on the row's columns.",
        |input: VectorInput, ctx| async move {
            let (query, vector) = match (input.query, input.vector) {
                (Some(q), None) => (q, None),
                (None, Some(v)) => (String::new(), Some(v)),
                _ => return Err(ToolError::Failed("give exactly one of `query` (text) and `vector`".into())),
            };
            let limit = input.limit.unwrap_or(10);
            if limit > 100 {
                return Err(ToolError::Failed(format!("limit must be between 1 and 100, got {limit}")));
            }
            let req = Request { dataset: input.dataset, query, vector, mode: Mode::Vector, limit, columns: input.columns, rrf_k: None, filter: input.filter };
            answer(&ctx, req).await
        },
    ))?;
    r.tool(Tool::typed(
        "search.hybrid",
        "Hybrid search over a dataset with both a text and a vector index: full-text (BM25) and semantic rankings fused by reciprocal rank fusion, so rows that match the words or the meaning both surface. Each hit has _score (the fused score), _row, a _snippet when the words matched, and the row's columns. The best default when a dataset has both indexes. Narrow hits with `where`, a SQL condition on the row's columns.",
        |input: HybridInput, ctx| async move {
            let limit = input.limit.unwrap_or(10);
            if limit > 100 {
                return Err(ToolError::Failed(format!("limit must be between 1 and 100, got {limit}")));
            }
            let req = Request { dataset: input.dataset, query: input.query, vector: None, mode: Mode::Hybrid, limit, columns: input.columns, rrf_k: input.rrf_k, filter: input.filter };
            answer(&ctx, req).await
        },
    ))?;
    Ok(())
}
