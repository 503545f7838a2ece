//! `where`: a search filtered by a SQL predicate over the dataset's columns.
//! The search runs as its SQL table function (see `sql`), ranking 10 × limit
//! deep (up to its cap); DuckDB applies the predicate to those hits (a
//! post-filter) and the best `limit` that pass are kept, so the limit still
//! fills unless the predicate rejects most of the best hits. It runs through
//! `engine.query` as the caller, so a token must grant that tool too, and the
//! engine's refusals (writes, files, other datasets) hold for the predicate.

use crate::dataset_index;
use crate::retrieve::{Mode, Request};
use anyhow::{anyhow, bail};
use hakiri_kernel::Context;

/// The longest predicate accepted.
pub const MAX_PREDICATE_CHARS: usize = 2000;

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Runs `req` filtered by `predicate`: the hits, best first, and whether
/// the engine cut any.
pub async fn filtered(
    ctx: &Context,
    req: &Request,
    predicate: &str,
) -> anyhow::Result<(Vec<serde_json::Value>, bool)> {
    if predicate.chars().count() > MAX_PREDICATE_CHARS {
        bail!("the where predicate is longer than {MAX_PREDICATE_CHARS} characters");
    }
    // One predicate, not a way to end the statement or hide its tail.
    if predicate.contains(';') || predicate.contains("--") || predicate.contains("/*") {
        bail!("the where predicate may not hold `;`, `--` or `/*`: give one SQL condition, e.g. \"year > 1900 and lang = 'en'\"");
    }
    if req.vector.is_some() {
        bail!("where filters a search by text; a query vector cannot be filtered yet (give the query as text, or filter the rows yourself)");
    }
    let function = match req.mode {
        Mode::Text => "text_search",
        Mode::Vector => "vector_search",
        Mode::Hybrid => "hybrid_search",
    };
    let select = match &req.columns {
        Some(cols) => {
            let mut quoted: Vec<String> = cols
                .iter()
                .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
                .collect();
            quoted.push("_score".into());
            quoted.join(", ")
        }
        None => "*".into(),
    };
    let sql = format!(
        "SELECT {select} FROM {function}({}, {}, {}) WHERE ({predicate}) ORDER BY _score DESC LIMIT {}",
        literal(&req.dataset),
        literal(&req.query),
        (req.limit * 10).clamp(1, dataset_index::MAX_LIMIT),
        req.limit
    );
    let out = ctx
        .call("engine.query", serde_json::json!({ "sql": sql }))
        .await
        .map_err(|e| anyhow!("where: {e}"))?;
    Ok((
        out["rows"].as_array().cloned().unwrap_or_default(),
        out["truncated"].as_bool().unwrap_or(false),
    ))
}
