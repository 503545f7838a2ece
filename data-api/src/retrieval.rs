//! Retrieval beyond SQL: sentence embeddings and vector indexes over
//! datasets. The `embeddings` capability provides an [`Embedder`], the
//! `vector` capability a [`VectorIndex`]; the `search` capability, which owns
//! `hakiri index` and `hakiri search`, finds them here by name, so a profile
//! without them answers "part of hakiri-full" instead of failing to link.

use hakiri_kernel::{BoxFuture, Context, ExtensionPoint};
use serde::{Deserialize, Serialize};

/// Texts embedded by one provider and model.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// `<provider>/<model>`, e.g. `local/all-MiniLM-L6-v2`: an index records
    /// it, and a query against that index must be embedded the same way.
    pub model: String,
    /// One unit-length (for local models) vector per text, in order.
    pub vectors: Vec<Vec<f32>>,
}

/// Turns texts into vectors with the configured provider (`[embeddings]`).
pub trait Embedder: Send + Sync {
    /// Embeds `texts` with `model` (`None`: the configured default model).
    fn embed<'a>(
        &'a self,
        ctx: &'a Context,
        model: Option<&'a str>,
        texts: Vec<String>,
    ) -> BoxFuture<'a, anyhow::Result<Embedded>>;
}

impl ExtensionPoint for dyn Embedder {
    const NAME: &'static str = "embedder";
}

/// The name the configured embeddings provider is registered under.
pub const CONFIGURED_EMBEDDER: &str = "configured";

/// The configured embeddings provider, or an error saying which binary has one.
pub fn embedder(ctx: &Context) -> anyhow::Result<std::sync::Arc<dyn Embedder>> {
    ctx.get::<dyn Embedder>(CONFIGURED_EMBEDDER).ok_or_else(|| {
        anyhow::anyhow!(
            "embeddings are part of hakiri-full; this binary has no embeddings provider"
        )
    })
}

/// What a dataset's vector index holds: vectors read from a column of float
/// lists, or computed from a text column by the embeddings provider.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VectorSpec {
    /// A column of fixed-size float lists (`--vector`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// A text column to embed (`--embed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embed: Option<String>,
    /// The embedding model (`--model`); recorded as `<provider>/<model>` once built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `cosine` (default), `dot` or `l2`.
    #[serde(default = "cosine")]
    pub metric: String,
}

fn cosine() -> String {
    "cosine".into()
}

/// What a vector query is: text to embed as the index's model did, or a vector.
#[derive(Debug, Clone)]
pub enum VectorQuery {
    Text(String),
    Vector(Vec<f32>),
}

/// One row of a dataset's version, ranked: higher `score` is better.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankedRow {
    pub row: u64,
    pub score: f32,
}

/// Vector indexes over datasets: one per dataset, rebuilt with every version.
pub trait VectorIndex: Send + Sync {
    /// Records `spec` for `dataset` and builds the index of its current
    /// version (in `version_dir`); returns a one-line summary.
    fn create<'a>(
        &'a self,
        ctx: &'a Context,
        dataset: &'a str,
        version_dir: &'a std::path::Path,
        spec: VectorSpec,
    ) -> BoxFuture<'a, anyhow::Result<String>>;
    /// Forgets `dataset`'s vector index; false when it had none.
    fn drop_index(&self, ctx: &Context, dataset: &str) -> anyhow::Result<bool>;
    /// The spec of `dataset`'s vector index, if it has one.
    fn spec(&self, ctx: &Context, dataset: &str) -> anyhow::Result<Option<VectorSpec>>;
    /// The `limit` rows of the version in `version_dir` nearest to `query`;
    /// `ef` trades speed for recall (None: the index's default).
    fn search<'a>(
        &'a self,
        ctx: &'a Context,
        dataset: &'a str,
        version_dir: &'a std::path::Path,
        query: VectorQuery,
        limit: usize,
        ef: Option<usize>,
    ) -> BoxFuture<'a, anyhow::Result<Vec<RankedRow>>>;
}

impl ExtensionPoint for dyn VectorIndex {
    const NAME: &'static str = "vector-index";
}

/// The name the vector capability registers its index under.
pub const HNSW: &str = "hnsw";

/// The vector index provider, or an error saying which binary has one.
pub fn vector_index(ctx: &Context) -> anyhow::Result<std::sync::Arc<dyn VectorIndex>> {
    ctx.get::<dyn VectorIndex>(HNSW).ok_or_else(|| {
        anyhow::anyhow!(
            "vector indexes are part of hakiri-full; this binary has no vector capability"
        )
    })
}

/// A column type of a search's result table, as SQL sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlType {
    Int,
    Float,
    Text,
    Bool,
}

/// A cell of a search's result table.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
}

/// A search's hits as a table: the dataset's columns (vectors left out)
/// then `_score`, best first.
#[derive(Debug, Clone, Default)]
pub struct SearchTable {
    pub columns: Vec<(String, SqlType)>,
    pub rows: Vec<Vec<SqlValue>>,
}

/// A search offered to SQL as a table function named like the provision,
/// `text_search('docs', 'whale', 10)`: the engine registers one for each
/// provider linked, so a binary without search simply has none.
pub trait SqlSearch: Send + Sync {
    /// `limit` hits of `query` over `dataset`, for the context's caller
    /// (who must be granted the dataset).
    fn search<'a>(
        &'a self,
        ctx: &'a Context,
        dataset: &'a str,
        query: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, anyhow::Result<SearchTable>>;
}

impl ExtensionPoint for dyn SqlSearch {
    const NAME: &'static str = "sql-search";
}
