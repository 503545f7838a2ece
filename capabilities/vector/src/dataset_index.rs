//! Persistent vector indexes over datasets. The spec (which column, which
//! model, which metric) lives beside the dataset's versions in
//! `<data_dir>/datasets/<name>/vector.json`; each version carries its own
//! index in `<version>/indexes/vector/`:
//! - `vectors.f32`: the rows' vectors, little-endian, row after row
//!   (unit-length for cosine), memory-mapped at query time;
//! - `graph.bin`: the HNSW graph over row numbers (see `hnsw`);
//! - `meta.json`: dimension, metric, rows, the model that made them.

use crate::hnsw::{Graph, Params, Points};
use crate::space::Metric;
use anyhow::{anyhow, bail, Context as _};
use hakiri_data_api::dataset_files;
use hakiri_data_api::retrieval::{RankedRow, VectorSpec};
use polars::prelude::{col, DataType, LazyFrame, PlRefPath, ScanArgsParquet};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Candidates kept on the bottom layer by a search that does not say (at
/// least its limit): the knob trading speed for recall (README, Measured).
pub const EF_SEARCH: usize = 64;
/// The most rows, and candidates, one search may ask for.
pub const MAX_EF: usize = 1000;
/// Links per row on the upper layers (twice as many on the bottom one).
const M: usize = 16;
/// Candidates kept while inserting a row during a build.
const EF_CONSTRUCTION: usize = 128;
/// What `graph.bin` holds: 2 is hakiri's own HNSW (1 was instant-distance's).
const FORMAT: u32 = 2;
/// The widest vector accepted.
const MAX_DIMENSION: usize = 8192;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    pub dimension: usize,
    pub metric: String,
    pub rows: u64,
    #[serde(default)]
    pub model: Option<String>,
    pub ef_search: usize,
    /// Links per row on the upper layers.
    #[serde(default)]
    pub m: usize,
    #[serde(default)]
    pub ef_construction: usize,
    #[serde(default)]
    pub format: u32,
}

const SPEC: &str = "vector.json";

pub fn read_spec(data_dir: &Path, dataset: &str) -> anyhow::Result<Option<VectorSpec>> {
    let remedy = format!("`hakiri index drop {dataset} --vector` and create it again");
    dataset_files::read_json(data_dir, dataset, SPEC, &remedy)
}

/// Whether `dataset` has a vector index (one stat, for the query path).
pub fn has_spec(data_dir: &Path, dataset: &str) -> bool {
    dataset_files::beside(data_dir, dataset, SPEC).is_file()
}

pub fn write_spec(data_dir: &Path, dataset: &str, spec: &VectorSpec) -> anyhow::Result<()> {
    dataset_files::write_json(data_dir, dataset, SPEC, spec)
}

pub fn remove_spec(data_dir: &Path, dataset: &str) -> anyhow::Result<bool> {
    dataset_files::remove(data_dir, dataset, SPEC)
}

pub fn index_dir(version_dir: &Path) -> PathBuf {
    version_dir.join("indexes").join("vector")
}

fn scan(dataset: &str, version_dir: &Path) -> anyhow::Result<LazyFrame> {
    let glob = version_dir.join("*.parquet");
    LazyFrame::scan_parquet(
        PlRefPath::new(glob.to_string_lossy().into_owned()),
        ScanArgsParquet::default(),
    )
    .with_context(|| format!("cannot read dataset `{dataset}`'s Parquet files"))
}

/// The column's type, or an error naming the dataset's columns.
fn column_type(dataset: &str, lf: &mut LazyFrame, column: &str) -> anyhow::Result<DataType> {
    let schema = lf.collect_schema()?;
    schema.get(column).cloned().ok_or_else(|| {
        let names: Vec<&str> = schema.iter_names().map(|n| n.as_str()).collect();
        anyhow!(
            "dataset `{dataset}` has no column `{column}`; its columns: {}",
            names.join(", ")
        )
    })
}

/// Reads a column of float lists as `rows × dim` floats; every row must
/// hold a vector of one dimension. Blocking.
pub fn read_vectors(
    dataset: &str,
    version_dir: &Path,
    column: &str,
) -> anyhow::Result<(Vec<f32>, usize)> {
    let mut lf = scan(dataset, version_dir)?;
    let ty = column_type(dataset, &mut lf, column)?;
    let numeric_list = match &ty {
        DataType::List(inner) => inner.is_primitive_numeric(),
        _ => false,
    };
    if !numeric_list {
        bail!("column `{column}` of dataset `{dataset}` holds {ty}, not lists of numbers; --vector takes a column of float lists (use --embed for a text column)");
    }
    let df = lf
        .select([col(column).cast(DataType::List(Box::new(DataType::Float32)))])
        .collect()
        .with_context(|| format!("cannot read column `{column}` of dataset `{dataset}`"))?;
    let lists = df.column(column)?.list()?.clone();
    let mut out = Vec::new();
    let mut dim = 0;
    for row in 0..lists.len() {
        let Some(values) = lists.get_as_series(row) else {
            bail!("row {row} of column `{column}` is null; every row needs a vector (filter them out before indexing)");
        };
        let floats = values.f32()?;
        if row == 0 {
            dim = floats.len();
            if dim == 0 || dim > MAX_DIMENSION {
                bail!("row 0 of column `{column}` holds {dim} values; vectors need 1 to {MAX_DIMENSION}");
            }
            out.reserve_exact(dim * lists.len());
        } else if floats.len() != dim {
            bail!("row {row} of column `{column}` holds {} values but row 0 holds {dim}: vectors must all have one dimension", floats.len());
        }
        for v in floats.iter() {
            match v {
                Some(x) if x.is_finite() => out.push(x),
                _ => bail!("row {row} of column `{column}` holds a null or non-finite value"),
            }
        }
    }
    if out.is_empty() {
        bail!("dataset `{dataset}` has no rows to index");
    }
    Ok((out, dim))
}

/// Reads a text column to embed (nulls embed as empty text). Blocking.
pub fn read_texts(dataset: &str, version_dir: &Path, column: &str) -> anyhow::Result<Vec<String>> {
    let mut lf = scan(dataset, version_dir)?;
    let ty = column_type(dataset, &mut lf, column)?;
    if ty != DataType::String {
        bail!("column `{column}` of dataset `{dataset}` holds {ty}, not text; --embed takes a text column");
    }
    let df = lf.select([col(column)]).collect()?;
    let texts = df.column(column)?.str()?;
    Ok((0..texts.len())
        .map(|row| texts.get(row).unwrap_or_default().to_string())
        .collect())
}

/// What the published version's index holds, for reuse by the next build.
pub struct Previous {
    /// Each text's first row.
    pub rows: std::collections::HashMap<String, usize>,
    pub vectors: Vec<f32>,
    pub dimension: usize,
}

/// The embeddings of column `column` in the published version at
/// `version_dir`, if its index was made with `model`. Blocking.
pub fn previous_embeddings(
    dataset: &str,
    version_dir: &Path,
    column: &str,
    model: &str,
) -> anyhow::Result<Option<Previous>> {
    let dir = index_dir(version_dir);
    let Ok(bytes) = std::fs::read(dir.join("meta.json")) else {
        return Ok(None);
    };
    let meta: Meta = serde_json::from_slice(&bytes)?;
    if meta.model.as_deref() != Some(model) {
        return Ok(None);
    }
    let texts = read_texts(dataset, version_dir, column)?;
    let raw = std::fs::read(dir.join("vectors.f32"))?;
    if texts.len() as u64 != meta.rows || raw.len() as u64 != meta.rows * meta.dimension as u64 * 4
    {
        return Ok(None);
    }
    let vectors = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let mut rows = std::collections::HashMap::with_capacity(texts.len());
    for (i, t) in texts.into_iter().enumerate() {
        rows.entry(t).or_insert(i);
    }
    Ok(Some(Previous {
        rows,
        vectors,
        dimension: meta.dimension,
    }))
}

fn normalize(vectors: &mut [f32], dim: usize) {
    for v in vectors.chunks_exact_mut(dim) {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
    }
}

/// Builds the index of `vectors` (`rows × dim`) into `<version_dir>/indexes/vector`,
/// replacing any there: written beside it, then renamed. Blocking.
pub fn build(
    version_dir: &Path,
    mut vectors: Vec<f32>,
    dim: usize,
    metric: Metric,
    model: Option<String>,
) -> anyhow::Result<Meta> {
    let rows = vectors.len() / dim;
    if rows >= u32::MAX as usize {
        bail!("a vector index holds at most {} rows", u32::MAX - 1);
    }
    if metric == Metric::Cosine {
        normalize(&mut vectors, dim);
    }
    let graph = Graph::build(
        Points::new(&vectors, dim, metric),
        Params {
            m: M,
            ef_construction: EF_CONSTRUCTION,
            seed: 0x4841_4b49,
        },
    );
    let meta = Meta {
        dimension: dim,
        metric: metric_name(metric).into(),
        rows: rows as u64,
        model,
        ef_search: EF_SEARCH,
        m: M,
        ef_construction: EF_CONSTRUCTION,
        format: FORMAT,
    };
    let indexes = version_dir.join("indexes");
    let building = indexes.join(format!(".vector-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    std::fs::create_dir_all(&building)
        .with_context(|| format!("cannot create {}", building.display()))?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(building.join("vectors.f32"))?);
    for x in &vectors {
        out.write_all(&x.to_le_bytes())?;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    let mut graph_file =
        std::io::BufWriter::new(std::fs::File::create(building.join("graph.bin"))?);
    bincode::serde::encode_into_std_write(&graph, &mut graph_file, bincode_config())?;
    graph_file
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    std::fs::write(
        building.join("meta.json"),
        serde_json::to_vec_pretty(&meta)?,
    )?;
    let target = index_dir(version_dir);
    if target.exists() {
        let old = indexes.join(format!(".vector-old-{}", std::process::id()));
        std::fs::rename(&target, &old)?;
        let _ = std::fs::remove_dir_all(&old);
    }
    std::fs::rename(&building, &target)
        .with_context(|| format!("cannot move the index to {}", target.display()))?;
    Ok(meta)
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_fixed_int_encoding()
}

pub fn metric_name(m: Metric) -> &'static str {
    match m {
        Metric::Cosine => "cosine",
        Metric::Dot => "dot",
        Metric::L2 => "l2",
    }
}

/// A loaded index: its graph in memory, its vectors mapped.
pub struct Loaded {
    pub meta: Meta,
    metric: Metric,
    graph: Graph,
    vectors: memmap2::Mmap,
}

impl Loaded {
    fn open(dir: &Path) -> anyhow::Result<Loaded> {
        let meta: Meta = serde_json::from_slice(&std::fs::read(dir.join("meta.json"))?)?;
        let metric = Metric::parse(&meta.metric)?;
        if meta.format != FORMAT {
            bail!("{} was built by an older hakiri; create the index again with `hakiri index create`", dir.display());
        }
        let file = std::fs::File::open(dir.join("vectors.f32"))?;
        // SAFETY: a published index is never written again (a rebuild writes
        // a new directory and renames it into place).
        let vectors = unsafe { memmap2::Mmap::map(&file)? };
        // A search reads scattered vectors: without this, readahead and
        // fault-around map whole neighbourhoods of the file, and one query
        // made the daemon's RSS grow by the whole index.
        vectors.advise(memmap2::Advice::Random)?;
        if vectors.len() as u64 != meta.rows * meta.dimension as u64 * 4
            || vectors.as_ptr().align_offset(4) != 0
        {
            bail!(
                "{} does not hold {} vectors of dimension {}",
                dir.join("vectors.f32").display(),
                meta.rows,
                meta.dimension
            );
        }
        let mut graph_file = std::io::BufReader::new(std::fs::File::open(dir.join("graph.bin"))?);
        let graph: Graph = bincode::serde::decode_from_std_read(&mut graph_file, bincode_config())
            .with_context(|| format!("cannot read {}", dir.join("graph.bin").display()))?;
        graph.validate(meta.rows as usize).map_err(|e| {
            anyhow!(
                "{}: {e}; create the index again",
                dir.join("graph.bin").display()
            )
        })?;
        Ok(Loaded {
            meta,
            metric,
            graph,
            vectors,
        })
    }

    fn floats(&self) -> &[f32] {
        // SAFETY: length and alignment checked in `open`; any bit pattern is an f32.
        unsafe {
            std::slice::from_raw_parts(self.vectors.as_ptr().cast::<f32>(), self.vectors.len() / 4)
        }
    }

    /// The `limit` rows nearest to `query`, nearest first, keeping `ef`
    /// candidates (default [`EF_SEARCH`]; at least `limit`). Blocking.
    pub fn search(
        &self,
        query: &[f32],
        limit: usize,
        ef: Option<usize>,
    ) -> anyhow::Result<Vec<RankedRow>> {
        if query.len() != self.meta.dimension {
            bail!(
                "the query vector has {} values; this index holds vectors of dimension {}",
                query.len(),
                self.meta.dimension
            );
        }
        if query.iter().any(|x| !x.is_finite()) {
            bail!("the query vector holds a non-finite value");
        }
        let mut query = query.to_vec();
        if self.metric == Metric::Cosine {
            normalize(&mut query, self.meta.dimension);
        }
        let points = Points::new(self.floats(), self.meta.dimension, self.metric);
        let ef = ef.unwrap_or(EF_SEARCH).clamp(limit, MAX_EF);
        Ok(self
            .graph
            .search(points, &query, limit, ef)
            .into_iter()
            .map(|near| RankedRow {
                row: near.row as u64,
                score: self.metric.score(near.distance),
            })
            .collect())
    }
}

/// Loaded indexes by directory and inode (see the text index's cache).
static OPEN: Mutex<Vec<(PathBuf, u64, Arc<Loaded>)>> = Mutex::new(Vec::new());

/// The index in `dir` if it is loaded already (a cheap check).
pub fn loaded(dir: &Path) -> Option<Arc<Loaded>> {
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(dir).ok()?.ino();
    let cache = OPEN.lock().unwrap_or_else(|p| p.into_inner());
    cache
        .iter()
        .find(|(d, i, _)| d == dir && *i == inode)
        .map(|(_, _, l)| l.clone())
}

/// Loads the index in `dir`, or finds it loaded. Blocking.
pub fn open(dir: &Path) -> anyhow::Result<Arc<Loaded>> {
    use std::os::unix::fs::MetadataExt;
    if let Some(loaded) = loaded(dir) {
        return Ok(loaded);
    }
    let inode = std::fs::metadata(dir)?.ino();
    let loaded = Arc::new(Loaded::open(dir)?);
    let mut cache = OPEN.lock().unwrap_or_else(|p| p.into_inner());
    cache.retain(|(d, _, _)| d != dir);
    if cache.len() >= 8 {
        cache.remove(0);
    }
    cache.push((dir.to_path_buf(), inode, loaded.clone()));
    Ok(loaded)
}
