//! One search over a dataset, in any mode: `text` (the Tantivy index, BM25),
//! `vector` (the vector capability's HNSW index), or `hybrid`, which fuses
//! both rankings by reciprocal rank fusion: a row's score is the sum over
//! the rankings that hold it of 1 / (k + rank), k = 60 unless asked. Every
//! hit carries `_row`, `_score`, the text `_snippet` when there is one, and
//! the row's columns read back from the version's Parquet files.

use crate::dataset_index::{self, Spec};
use anyhow::{anyhow, bail};
use hakiri_data_api::retrieval::{self, RankedRow, VectorQuery};
use hakiri_data_api::DatasetEntry;
use hakiri_kernel::Context;
use polars::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Reciprocal rank fusion's default k (Cormack et al.; what Spice.ai and
/// Elasticsearch use).
pub const RRF_K: f32 = 60.0;
/// Longest text returned per cell, in characters; longer text is cut and flagged.
const MAX_CELL_CHARS: usize = 2000;
/// The longest query text accepted: a query is embedded or parsed whole.
pub const MAX_QUERY_CHARS: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Text,
    Vector,
    Hybrid,
}

impl Mode {
    pub fn parse(s: &str) -> anyhow::Result<Mode> {
        match s {
            "text" => Ok(Mode::Text),
            "vector" => Ok(Mode::Vector),
            "hybrid" => Ok(Mode::Hybrid),
            other => bail!("mode `{other}` is unknown: use text, vector or hybrid"),
        }
    }
}

pub struct Request {
    pub dataset: String,
    pub query: String,
    /// A query vector (vector mode), instead of text to embed.
    pub vector: Option<Vec<f32>>,
    pub mode: Mode,
    pub limit: usize,
    /// Columns to return (default: every column but vectors).
    pub columns: Option<Vec<String>>,
    pub rrf_k: Option<f32>,
    /// A SQL predicate over the dataset's columns (see `filter`).
    pub filter: Option<String>,
}

/// The dataset's published entry and its local version directory.
pub async fn current(ctx: &Context, dataset: &str) -> anyhow::Result<(DatasetEntry, PathBuf)> {
    let catalog = hakiri_data_api::open_catalog(ctx).await?;
    let entry = catalog
        .get(dataset)
        .await?
        .ok_or_else(|| anyhow!("no dataset `{dataset}`; `hakiri datasets` lists them"))?;
    if hakiri_data_api::hydrator(ctx, &entry.location).is_some() {
        bail!("dataset `{dataset}` lives at {}; indexes are built for datasets on local disk only, for now", entry.location);
    }
    let dir = PathBuf::from(&entry.location);
    Ok((entry, dir))
}

/// Runs `req`: the hits as JSON objects, best first, and whether any cell was cut.
pub async fn search(ctx: &Context, req: Request) -> anyhow::Result<(Vec<serde_json::Value>, bool)> {
    hakiri_data_api::authorize_dataset(ctx, &req.dataset, false).await?;
    if req.query.chars().count() > MAX_QUERY_CHARS {
        bail!("the query is longer than {MAX_QUERY_CHARS} characters");
    }
    if req.limit == 0 || req.limit > dataset_index::MAX_LIMIT {
        bail!(
            "limit must be between 1 and {}, got {}",
            dataset_index::MAX_LIMIT,
            req.limit
        );
    }
    if let Some(predicate) = &req.filter {
        return crate::filter::filtered(ctx, &req, predicate).await;
    }
    let (entry, dir) = current(ctx, &req.dataset).await?;
    // Hybrid ranks deeper than it returns, so fusion sees rows either side ranks lower.
    let depth = match req.mode {
        Mode::Hybrid => (req.limit * 2).clamp(50, dataset_index::MAX_LIMIT),
        _ => req.limit,
    };
    let text = match req.mode {
        Mode::Text | Mode::Hybrid => Some(text_ranking(ctx, &req, &entry, &dir, depth).await?),
        Mode::Vector => None,
    };
    let vector = match req.mode {
        Mode::Vector | Mode::Hybrid => {
            let query = match &req.vector {
                Some(v) => VectorQuery::Vector(v.clone()),
                None => VectorQuery::Text(req.query.clone()),
            };
            let index = retrieval::vector_index(ctx)?;
            Some(
                index
                    .search(ctx, &req.dataset, &dir, query, depth, None)
                    .await?,
            )
        }
        Mode::Text => None,
    };
    let snippets: HashMap<u64, String> = text
        .iter()
        .flatten()
        .map(|h| (h._row, h._snippet.clone()))
        .collect();
    let ranked: Vec<RankedRow> = match (&text, &vector) {
        (Some(t), None) => t
            .iter()
            .map(|h| RankedRow {
                row: h._row,
                score: h._score,
            })
            .collect(),
        (None, Some(v)) => v.clone(),
        (Some(t), Some(v)) => {
            let t: Vec<RankedRow> = t
                .iter()
                .map(|h| RankedRow {
                    row: h._row,
                    score: h._score,
                })
                .collect();
            fuse(&[&t, v], req.rrf_k.unwrap_or(RRF_K), req.limit)
        }
        (None, None) => unreachable!("every mode ranks"),
    };
    let ranked: Vec<RankedRow> = ranked.into_iter().take(req.limit).collect();
    // Text hits carry their indexed columns already: no Parquet read unless
    // other columns are asked for.
    if let (Some(t), None, None) = (&text, &vector, &req.columns) {
        let hits = t
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<Vec<_>, _>>()?;
        return Ok((hits, false));
    }
    let columns = req.columns.clone();
    let rows: Vec<u64> = ranked.iter().map(|r| r.row).collect();
    let name = req.dataset.clone();
    let (mut fetched, cut) = hakiri_kernel::blocking("reading rows", move || {
        fetch_rows(&name, &dir, &rows, columns.as_deref())
    })
    .await?;
    let hits = ranked
        .iter()
        .zip(fetched.iter_mut())
        .map(|(r, fields)| {
            let mut hit = serde_json::Map::new();
            hit.insert("_row".into(), r.row.into());
            hit.insert("_score".into(), serde_json::json!(r.score));
            if let Some(s) = snippets.get(&r.row) {
                hit.insert("_snippet".into(), s.clone().into());
            }
            if let Some(obj) = fields.as_object_mut() {
                hit.append(obj);
            }
            serde_json::Value::Object(hit)
        })
        .collect();
    Ok((hits, cut))
}

async fn text_ranking(
    ctx: &Context,
    req: &Request,
    entry: &DatasetEntry,
    dir: &Path,
    depth: usize,
) -> anyhow::Result<Vec<dataset_index::Hit>> {
    let spec: Spec = dataset_index::read_spec(&ctx.config.data_dir, &req.dataset)?.ok_or_else(|| {
        anyhow!("dataset `{}` has no text index; create one with `hakiri index create {} --text <columns>`", req.dataset, req.dataset)
    })?;
    let (name, query, version, dir) = (
        req.dataset.clone(),
        req.query.clone(),
        entry.version,
        dir.to_path_buf(),
    );
    hakiri_kernel::blocking("searching", move || {
        dataset_index::search(&name, version, &spec, &dir, &query, depth)
    })
    .await
}

/// Reciprocal rank fusion of `rankings` (each best first): the `limit` rows
/// with the highest Σ 1/(k + rank), rank counted from 1.
pub fn fuse(rankings: &[&Vec<RankedRow>], k: f32, limit: usize) -> Vec<RankedRow> {
    let mut score: HashMap<u64, f32> = HashMap::new();
    let mut first_seen: Vec<u64> = Vec::new();
    for ranking in rankings {
        for (i, r) in ranking.iter().enumerate() {
            let s = score.entry(r.row).or_insert_with(|| {
                first_seen.push(r.row);
                0.0
            });
            *s += 1.0 / (k + i as f32 + 1.0);
        }
    }
    let mut fused: Vec<RankedRow> = first_seen
        .into_iter()
        .map(|row| RankedRow {
            row,
            score: score[&row],
        })
        .collect();
    // Stable: ties keep the order rows were first ranked in.
    fused.sort_by(|a, b| b.score.total_cmp(&a.score));
    fused.truncate(limit);
    fused
}

/// Reads `rows` (row numbers of the version in `dir`) as JSON objects, in
/// that order: each row is a one-row slice of the scan, which Parquet
/// answers from the one row group holding it.
fn fetch_rows(
    dataset: &str,
    dir: &Path,
    rows: &[u64],
    columns: Option<&[String]>,
) -> anyhow::Result<(Vec<serde_json::Value>, bool)> {
    if rows.is_empty() {
        return Ok((Vec::new(), false));
    }
    let glob = dir.join("*.parquet");
    let mut lf = LazyFrame::scan_parquet(
        PlRefPath::new(glob.to_string_lossy().into_owned()),
        ScanArgsParquet::default(),
    )
    .map_err(|e| anyhow!("cannot read dataset `{dataset}`: {e}"))?;
    let schema = lf.collect_schema()?;
    let names: Vec<String> = match columns {
        Some(wanted) => {
            for c in wanted {
                if schema.get(c.as_str()).is_none() {
                    let all: Vec<&str> = schema.iter_names().map(|n| n.as_str()).collect();
                    bail!(
                        "dataset `{dataset}` has no column `{c}`; its columns: {}",
                        all.join(", ")
                    );
                }
            }
            wanted.to_vec()
        }
        // Vectors are long and say nothing to a reader: left out unless asked for.
        None => schema
            .iter()
            .filter(|(_, t)| !matches!(t, DataType::List(_)))
            .map(|(n, _)| n.to_string())
            .collect(),
    };
    // One scan, keeping the wanted rows by their position in it, then put
    // in the order asked: slicing row by row read the column chunk again
    // for every hit (tens of milliseconds per search).
    const ROW: &str = "__hakiri_row";
    let wanted = rows
        .iter()
        .map(|&r| col(ROW).eq(lit(r as IdxSize)))
        .reduce(|a, b| a.or(b))
        .expect("rows is not empty");
    let mut select: Vec<Expr> = vec![col(ROW)];
    select.extend(names.iter().map(|n| col(n.as_str())));
    let found = lf
        .with_row_index(ROW, None)
        .filter(wanted)
        .select(select)
        .collect()?;
    let at: HashMap<IdxSize, IdxSize> = found
        .column(ROW)?
        .idx()?
        .into_no_null_iter()
        .enumerate()
        .map(|(i, r)| (r, i as IdxSize))
        .collect();
    let order: Vec<IdxSize> = rows
        .iter()
        .map(|&r| {
            at.get(&(r as IdxSize)).copied().ok_or_else(|| {
                anyhow!(
                    "row {r} of dataset `{dataset}` is missing; its index does not match its files"
                )
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let mut df = found.take(&IdxCa::from_vec(ROW.into(), order))?.drop(ROW)?;
    let mut json = Vec::new();
    JsonWriter::new(&mut json)
        .with_json_format(JsonFormat::Json)
        .finish(&mut df)?;
    let mut out: Vec<serde_json::Value> = serde_json::from_slice(&json)?;
    let cut = hakiri_data_api::dataset_files::cut_long_text(&mut out, MAX_CELL_CHARS);
    Ok((out, cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranking(rows: &[u64]) -> Vec<RankedRow> {
        rows.iter()
            .map(|&row| RankedRow { row, score: 0.0 })
            .collect()
    }

    #[test]
    fn fusion_rewards_rows_both_rankings_hold() {
        let text = ranking(&[1, 2, 3]);
        let vector = ranking(&[3, 4, 1]);
        let fused = fuse(&[&text, &vector], 60.0, 10);
        let order: Vec<u64> = fused.iter().map(|r| r.row).collect();
        // 1: 1/61 + 1/63, 3: 1/63 + 1/61 tie, first ranked first; then 2 (1/62), 4 (1/62).
        assert_eq!(order, [1, 3, 2, 4]);
        assert!((fused[0].score - (1.0 / 61.0 + 1.0 / 63.0)).abs() < 1e-6);
        assert_eq!(fuse(&[&text, &vector], 60.0, 2).len(), 2);
    }
}
