//! `datasets.sample`: a few rows of a dataset, for an agent that knows
//! nothing about it yet. Bounded: at most [`MAX_ROWS`] rows, and long text
//! cut to [`MAX_CELL_CHARS`] characters (flagged), so a column of documents
//! cannot flood the answer.

use crate::ingest;
use anyhow::Result;
use polars::prelude::*;
use schemars::JsonSchema;
use serde::Deserialize;
use std::path::Path;

pub const MAX_ROWS: usize = 100;
const MAX_CELL_CHARS: usize = 500;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleInput {
    /// Dataset name.
    pub name: String,
    /// How many rows, from the start (default 5, at most 100).
    #[schemars(range(min = 1, max = 100))]
    pub rows: Option<usize>,
}

/// The first `rows` rows of the version in `dir`, as JSON objects; whether
/// any text was cut.
pub fn sample(dir: &Path, rows: usize) -> Result<(Vec<serde_json::Value>, bool)> {
    anyhow::ensure!(
        (1..=MAX_ROWS).contains(&rows),
        "rows must be between 1 and {MAX_ROWS}, got {rows}"
    );
    let mut df = ingest::scan(&dir.join("*.parquet"))?
        .limit(rows as IdxSize)
        .collect()?;
    let mut json = Vec::new();
    JsonWriter::new(&mut json)
        .with_json_format(JsonFormat::Json)
        .finish(&mut df)?;
    let mut out: Vec<serde_json::Value> = serde_json::from_slice(&json)?;
    let cut = hakiri_data_api::dataset_files::cut_long_text(&mut out, MAX_CELL_CHARS);
    Ok((out, cut))
}
