//! Searches as SQL table functions: `text_search('docs', 'whale', 10)` and
//! `vector_search('docs', 'sea creatures', 10)` return the dataset's columns
//! (vectors left out) plus `_score`, best first, so hits join with anything
//! else in `hakiri sql` and `engine.query`. The engine registers one
//! function per [`SqlSearch`] provided; this is the search side.

use crate::retrieve::{self, Mode, Request};
use anyhow::anyhow;
use hakiri_data_api::retrieval::{SearchTable, SqlSearch, SqlType, SqlValue};
use hakiri_kernel::{BoxFuture, Context};

pub struct SqlSearchFn(pub Mode);

/// A catalog column type (Polars' name for it) as SQL sees it; `None` for
/// the lists (vectors) a table function leaves out.
fn sql_type(polars: &str) -> Option<SqlType> {
    Some(match polars {
        t if t.starts_with("list") || t.starts_with("array") => return None,
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" => SqlType::Int,
        "f32" | "f64" => SqlType::Float,
        "bool" => SqlType::Bool,
        _ => SqlType::Text,
    })
}

fn cell(v: Option<&serde_json::Value>, ty: SqlType) -> SqlValue {
    use serde_json::Value as J;
    match (v, ty) {
        (None | Some(J::Null), _) => SqlValue::Null,
        (Some(J::Number(n)), SqlType::Int) if n.as_i64().is_some() => {
            SqlValue::Int(n.as_i64().unwrap_or_default())
        }
        (Some(J::Number(n)), SqlType::Float) => n.as_f64().map_or(SqlValue::Null, SqlValue::Float),
        (Some(J::Bool(b)), SqlType::Bool) => SqlValue::Bool(*b),
        (Some(J::String(s)), _) => SqlValue::Text(s.clone()),
        (Some(other), _) => SqlValue::Text(other.to_string()),
    }
}

impl SqlSearch for SqlSearchFn {
    fn search<'a>(
        &'a self,
        ctx: &'a Context,
        dataset: &'a str,
        query: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, anyhow::Result<SearchTable>> {
        Box::pin(async move {
            hakiri_data_api::authorize_dataset(ctx, dataset, false)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            let (entry, _) = retrieve::current(ctx, dataset).await?;
            let mut columns: Vec<(String, SqlType)> = entry
                .schema
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| {
                    let name = c["name"].as_str()?;
                    Some((
                        name.to_string(),
                        sql_type(c["type"].as_str().unwrap_or(""))?,
                    ))
                })
                .collect();
            // vector_search takes a vector as a JSON array, or text to embed.
            let vector = match self.0 {
                Mode::Vector if query.trim_start().starts_with('[') => {
                    Some(serde_json::from_str::<Vec<f32>>(query).map_err(|e| {
                        anyhow!(
                            "the query looks like a vector but is not a JSON array of numbers: {e}"
                        )
                    })?)
                }
                _ => None,
            };
            let req = Request {
                dataset: dataset.to_string(),
                query: query.to_string(),
                vector,
                mode: self.0,
                limit,
                columns: Some(columns.iter().map(|(n, _)| n.clone()).collect()),
                rrf_k: None,
                filter: None,
            };
            let (hits, _) = retrieve::search(ctx, req).await?;
            columns.push(("_score".into(), SqlType::Float));
            let rows = hits
                .iter()
                .map(|hit| {
                    columns
                        .iter()
                        .map(|(name, ty)| cell(hit.get(name.as_str()), *ty))
                        .collect()
                })
                .collect();
            Ok(SearchTable { columns, rows })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_types_map_to_sql_and_vectors_are_left_out() {
        assert_eq!(sql_type("i64"), Some(SqlType::Int));
        assert_eq!(sql_type("f64"), Some(SqlType::Float));
        assert_eq!(sql_type("str"), Some(SqlType::Text));
        assert_eq!(sql_type("datetime[μs]"), Some(SqlType::Text));
        assert_eq!(sql_type("list[f32]"), None);
        assert_eq!(
            cell(Some(&serde_json::json!(3)), SqlType::Int),
            SqlValue::Int(3)
        );
        assert_eq!(
            cell(Some(&serde_json::json!(null)), SqlType::Int),
            SqlValue::Null
        );
        assert_eq!(
            cell(Some(&serde_json::json!(1.5)), SqlType::Float),
            SqlValue::Float(1.5)
        );
        assert_eq!(
            cell(Some(&serde_json::json!([1])), SqlType::Text),
            SqlValue::Text("[1]".into())
        );
    }
}
