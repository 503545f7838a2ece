//! Persistent full-text indexes over datasets. A dataset's index spec (which
//! text columns, which id column) lives beside its versions, in
//! `<data_dir>/datasets/<name>/indexes.json`, so dropping the dataset drops
//! it; each version carries its own Tantivy index in `<version>/indexes/text`,
//! built before that version is published (see [`TextIndexer`]), so a query
//! never pairs one version's rows with another's index.

use anyhow::{anyhow, bail, Context as _};
use hakiri_data_api::dataset_files;
use hakiri_data_api::VersionBuilder;
use hakiri_kernel::{BoxFuture, Context};
use polars::prelude::{col, DataType, Expr, LazyFrame, PlRefPath, ScanArgsParquet, StringChunked};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tantivy::collector::TopDocs;
use tantivy::query::QueryParser;
use tantivy::schema::{Field, Schema, Value, INDEXED, STORED, TEXT};
use tantivy::snippet::SnippetGenerator;
use tantivy::{Index, IndexReader, ReloadPolicy, TantivyDocument};

/// Tantivy's indexing memory budget per build.
const WRITER_BYTES: usize = 32 << 20;
/// The most hits one search returns.
pub const MAX_LIMIT: usize = 1000;
/// Longest stored text returned per column, in characters.
const MAX_FIELD_CHARS: usize = 2000;

/// Which columns a dataset's text index covers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Spec {
    pub text: Vec<String>,
    #[serde(default)]
    pub id: Option<String>,
}

const SPEC: &str = "indexes.json";

pub fn read_spec(data_dir: &Path, dataset: &str) -> anyhow::Result<Option<Spec>> {
    let remedy = format!("drop the index (`hakiri index drop {dataset}`) and create it again");
    dataset_files::read_json(data_dir, dataset, SPEC, &remedy)
}

pub fn write_spec(data_dir: &Path, dataset: &str, spec: &Spec) -> anyhow::Result<()> {
    dataset_files::write_json(data_dir, dataset, SPEC, spec)
}

pub fn remove_spec(data_dir: &Path, dataset: &str) -> anyhow::Result<bool> {
    dataset_files::remove(data_dir, dataset, SPEC)
}

/// Where a version's text index lives.
pub fn index_dir(version_dir: &Path) -> PathBuf {
    version_dir.join("indexes").join("text")
}

/// Checks `spec` against a version's columns (`[{"name","type"}]`): each
/// named column exists, and text columns hold text.
pub fn check_columns(dataset: &str, spec: &Spec, schema: &serde_json::Value) -> anyhow::Result<()> {
    let columns: Vec<(&str, &str)> = schema
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c["name"].as_str()?, c["type"].as_str().unwrap_or(""))))
        .collect();
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
    let find = |col: &str| columns.iter().find(|(n, _)| *n == col).map(|(_, t)| *t);
    for col in spec.text.iter().chain(spec.id.iter()) {
        if find(col).is_none() {
            bail!(
                "dataset `{dataset}` has no column `{col}`; its columns: {}",
                names.join(", ")
            );
        }
    }
    for col in &spec.text {
        let ty = find(col).unwrap_or_default();
        if ty != "str" && ty != "String" {
            bail!("column `{col}` of dataset `{dataset}` holds {ty}, not text; --text takes text columns");
        }
    }
    if spec.text.is_empty() {
        bail!("name the text columns to index: --text title,body");
    }
    Ok(())
}

/// Field names inside the index: `t0, t1, …` for the text columns (dataset
/// column names may hold anything) and `id`, `row`.
struct Fields {
    text: Vec<Field>,
    id: Field,
    row: Field,
}

fn schema(spec: &Spec) -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = (0..spec.text.len())
        .map(|i| b.add_text_field(&format!("t{i}"), TEXT | STORED))
        .collect();
    let id = b.add_text_field("id", STORED);
    let row = b.add_u64_field("row", STORED | INDEXED);
    (b.build(), Fields { text, id, row })
}

fn fields(index: &Index, spec: &Spec) -> anyhow::Result<Fields> {
    let s = index.schema();
    Ok(Fields {
        text: (0..spec.text.len())
            .map(|i| s.get_field(&format!("t{i}")))
            .collect::<Result<_, _>>()?,
        id: s.get_field("id")?,
        row: s.get_field("row")?,
    })
}

/// Builds the text index of the version in `version_dir` (its `*.parquet`)
/// into `<version_dir>/indexes/text`, replacing any there. Blocking.
pub fn build(dataset: &str, spec: &Spec, version_dir: &Path) -> anyhow::Result<u64> {
    let glob = version_dir.join("*.parquet");
    let mut lf = LazyFrame::scan_parquet(
        PlRefPath::new(glob.to_string_lossy().into_owned()),
        ScanArgsParquet::default(),
    )
    .with_context(|| format!("cannot read dataset `{dataset}`'s Parquet files"))?;
    let schema_json: serde_json::Value = lf
        .collect_schema()?
        .iter()
        .map(|(n, t)| serde_json::json!({"name": n.as_str(), "type": t.to_string()}))
        .collect();
    check_columns(dataset, spec, &schema_json)?;
    let mut select: Vec<Expr> = spec
        .text
        .iter()
        .map(|c| col(c.as_str()).cast(DataType::String))
        .collect();
    if let Some(id) = &spec.id {
        select.push(col(id.as_str()).cast(DataType::String).alias("__hakiri_id"));
    }
    let df = lf
        .select(select)
        .collect()
        .with_context(|| format!("cannot read dataset `{dataset}`"))?;
    let (tantivy_schema, f) = schema(spec);
    let indexes = version_dir.join("indexes");
    let building = indexes.join(format!(".text-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    std::fs::create_dir_all(&building)
        .with_context(|| format!("cannot create {}", building.display()))?;
    let index = Index::create_in_dir(&building, tantivy_schema)?;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    let mut writer =
        index.writer_with_num_threads::<TantivyDocument>(threads, WRITER_BYTES * threads)?;
    let texts: Vec<&StringChunked> = spec
        .text
        .iter()
        .map(|c| df.column(c.as_str()).and_then(|s| s.str()))
        .collect::<Result<_, _>>()?;
    let ids = match spec.id {
        Some(_) => Some(df.column("__hakiri_id")?.str()?),
        None => None,
    };
    for row in 0..df.height() {
        let mut doc = TantivyDocument::new();
        for (field, values) in f.text.iter().zip(&texts) {
            if let Some(v) = values.get(row) {
                doc.add_text(*field, v);
            }
        }
        if let Some(v) = ids.and_then(|ids| ids.get(row)) {
            doc.add_text(f.id, v);
        }
        doc.add_u64(f.row, row as u64);
        writer.add_document(doc)?;
    }
    writer.commit()?;
    writer.wait_merging_threads()?;
    let target = index_dir(version_dir);
    if target.exists() {
        let old = indexes.join(format!(".old-{}", std::process::id()));
        std::fs::rename(&target, &old)?;
        let _ = std::fs::remove_dir_all(&old);
    }
    std::fs::rename(&building, &target)
        .with_context(|| format!("cannot move the index to {}", target.display()))?;
    Ok(df.height() as u64)
}

/// Opened indexes by directory and inode: a published version's index never
/// changes, and one rebuilt in place (`index create`) is a new directory.
type Opened = (PathBuf, u64, Index, IndexReader);

/// Opens the index in `dir`, or reuses the one opened before: opening reads
/// its metadata and maps its segments, which costs more than a query.
fn open(dir: &Path) -> anyhow::Result<(Index, IndexReader)> {
    use std::os::unix::fs::MetadataExt;
    static OPEN: Mutex<Vec<Opened>> = Mutex::new(Vec::new());
    let inode = std::fs::metadata(dir)?.ino();
    let mut cache = OPEN.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, _, index, reader)) = cache.iter().find(|(d, i, _, _)| d == dir && *i == inode) {
        return Ok((index.clone(), reader.clone()));
    }
    let index = Index::open_in_dir(dir)?;
    let reader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()?;
    cache.retain(|(d, _, _, _)| d != dir);
    if cache.len() >= 32 {
        cache.remove(0);
    }
    cache.push((dir.to_path_buf(), inode, index.clone(), reader.clone()));
    Ok((index, reader))
}

/// One search hit: its score, a snippet with the matched terms in `<b>`,
/// the id column (if the spec names one), the row and the indexed columns.
#[derive(Debug, Serialize)]
pub struct Hit {
    pub _score: f32,
    pub _snippet: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub _row: u64,
    #[serde(flatten)]
    pub columns: serde_json::Map<String, serde_json::Value>,
}

/// Runs `query` (Tantivy syntax over every indexed column) against the
/// version in `version_dir`. Blocking.
pub fn search(
    dataset: &str,
    version: u64,
    spec: &Spec,
    version_dir: &Path,
    query: &str,
    limit: usize,
) -> anyhow::Result<Vec<Hit>> {
    if !(1..=MAX_LIMIT).contains(&limit) {
        bail!("limit must be between 1 and {MAX_LIMIT}, got {limit}");
    }
    let dir = index_dir(version_dir);
    if !dir.is_dir() {
        bail!(
            "dataset `{dataset}` has no text index for version {version} (it was written by a binary without the search capability, or its build failed); rebuild it with `hakiri index create {dataset} --text {}`",
            spec.text.join(",")
        );
    }
    let (index, reader) =
        open(&dir).with_context(|| format!("cannot open the text index of dataset `{dataset}`"))?;
    let f = fields(&index, spec)?;
    let searcher = reader.searcher();
    let parsed = QueryParser::for_index(&index, f.text.clone())
        .parse_query(query)
        .map_err(|e| anyhow!("invalid query `{query}`: {e}"))?;
    // One generator per indexed column, made once per query: a hit's snippet
    // comes from the first column where a term matched.
    let snippets = f
        .text
        .iter()
        .map(|field| SnippetGenerator::create(&searcher, &*parsed, *field))
        .collect::<Result<Vec<_>, _>>()?;
    let top = searcher.search(&parsed, &TopDocs::with_limit(limit).order_by_score())?;
    top.into_iter()
        .map(|(score, addr)| {
            let doc: TantivyDocument = searcher.doc(addr)?;
            let snippet = snippets
                .iter()
                .map(|g| g.snippet_from_doc(&doc).to_html())
                .find(|s| !s.is_empty())
                .unwrap_or_default();
            let mut columns = serde_json::Map::new();
            for (name, field) in spec.text.iter().zip(&f.text) {
                let text = doc.get_first(*field).and_then(|v| v.as_str()).unwrap_or("");
                let shown: String = text.chars().take(MAX_FIELD_CHARS).collect();
                columns.insert(name.clone(), serde_json::Value::String(shown));
            }
            Ok(Hit {
                _score: score,
                _snippet: snippet,
                id: doc
                    .get_first(f.id)
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
                _row: doc.get_first(f.row).and_then(|v| v.as_u64()).unwrap_or(0),
                columns,
            })
        })
        .collect()
}

/// Builds every new version's text index before it is published.
pub struct TextIndexer;

impl VersionBuilder for TextIndexer {
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
            let (name, dir) = (dataset.to_string(), dir.to_path_buf());
            hakiri_kernel::blocking("building the text index", move || {
                build(&name, &spec, &dir).map(|_| ()).map_err(|e| {
                    anyhow!(
                        "dataset `{name}`'s text index cannot be built for the new version: {e:#}; the previous version stays published (drop the index with `hakiri index drop {name}` to ingest without it)"
                    )
                })
            })
            .await
        })
    }
}

/// `hakiri datasets` and `datasets.list` show which columns a dataset's text
/// index covers, so an agent knows `search.dataset` applies.
pub struct IndexStatus;

impl hakiri_data_api::DatasetStatus for IndexStatus {
    fn status(&self, ctx: &Context, dataset: &str) -> Option<serde_json::Value> {
        let spec = read_spec(&ctx.config.data_dir, dataset).ok()??;
        let summary = format!("{} (search.dataset)", spec.text.join(","));
        Some(serde_json::json!({ "text": spec.text, "id": spec.id, "summary": summary }))
    }
}
