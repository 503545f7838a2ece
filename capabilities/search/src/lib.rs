//! `search`: full-text search with Tantivy: persistent indexes over
//! datasets (`hakiri index create`, `hakiri search`, `search.dataset`), and
//! `search.text` over documents passed in one call.

mod commands;
pub mod dataset_index;
mod filter;
mod index_commands;
mod retrieve;
mod sql;
mod tools;

use hakiri_kernel::{CheckOutcome, KernelError, Registrar, Tool, ToolError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tantivy::collector::TopDocs;
use tantivy::query::QueryParser;
use tantivy::schema::{Schema, Value, STORED, TEXT};
use tantivy::{doc, Index, TantivyDocument};

hakiri_kernel::capability!(register);

/// Tantivy's minimum indexing memory budget.
const WRITER_BYTES: usize = 15_000_000;

fn register(r: &mut Registrar) -> Result<(), KernelError> {
    r.tool(Tool::typed(
        "search.text",
        "Index the given documents in memory and return those matching a Tantivy query, best first",
        |input: SearchInput, _ctx| async move {
            tokio::task::spawn_blocking(move || {
                search(&input.documents, &input.query, input.limit.unwrap_or(10))
            })
            .await
            .map_err(ToolError::failed)?
            .map_err(ToolError::from)
        },
    ))?;
    r.provide::<dyn hakiri_data_api::VersionBuilder>(
        "text-index",
        std::sync::Arc::new(dataset_index::TextIndexer),
    )?;
    tools::register(r)?;
    r.provide::<dyn hakiri_data_api::retrieval::SqlSearch>(
        "text_search",
        std::sync::Arc::new(sql::SqlSearchFn(retrieve::Mode::Text)),
    )?;
    r.provide::<dyn hakiri_data_api::retrieval::SqlSearch>(
        "vector_search",
        std::sync::Arc::new(sql::SqlSearchFn(retrieve::Mode::Vector)),
    )?;
    r.provide::<dyn hakiri_data_api::retrieval::SqlSearch>(
        "hybrid_search",
        std::sync::Arc::new(sql::SqlSearchFn(retrieve::Mode::Hybrid)),
    )?;
    r.provide::<dyn hakiri_data_api::DatasetStatus>(
        "text-index",
        std::sync::Arc::new(dataset_index::IndexStatus),
    )?;
    r.command(
        commands::search_command(),
        hakiri_kernel::Acts::By(commands::acts),
        commands::run_search,
    )?;
    r.command(
        index_commands::index_command(),
        hakiri_kernel::Acts::Operator,
        index_commands::run_index,
    )?;
    r.check(|_ctx| async {
        let docs = [
            "The old man and the sea".to_string(),
            "A tale of two cities".to_string(),
        ];
        match search(&docs, "sea", 5) {
            Ok(h) if h.len() == 1 && h[0].index == 0 => {
                CheckOutcome::Ok("indexed 2 documents in RAM; `sea` found the right one".into())
            }
            Ok(h) => CheckOutcome::Failed(format!("unexpected hits: {h:?}")),
            Err(e) => e.into(),
        }
    });
    Ok(())
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SearchInput {
    documents: Vec<String>,
    /// Tantivy query syntax: terms, "phrases", AND/OR, -exclusions.
    query: String,
    /// Maximum hits (default 10, at most 1000).
    #[schemars(range(min = 1, max = 1000))]
    limit: Option<usize>,
}

#[derive(Debug, Serialize)]
struct Hit {
    index: u64,
    score: f32,
    text: String,
}

/// The most hits one call returns: Tantivy sizes its collector by `limit`,
/// so an unchecked `limit` lets a caller make the daemon allocate at will.
const MAX_LIMIT: usize = 1000;

fn search(documents: &[String], query: &str, limit: usize) -> anyhow::Result<Vec<Hit>> {
    anyhow::ensure!(
        (1..=MAX_LIMIT).contains(&limit),
        "limit must be between 1 and {MAX_LIMIT}, got {limit}"
    );
    let mut builder = Schema::builder();
    let body = builder.add_text_field("body", TEXT | STORED);
    let id = builder.add_u64_field("id", STORED);
    let index = Index::create_in_ram(builder.build());
    let mut writer = index.writer_with_num_threads::<TantivyDocument>(1, WRITER_BYTES)?;
    for (i, d) in documents.iter().enumerate() {
        writer.add_document(doc!(body => d.as_str(), id => i as u64))?;
    }
    writer.commit()?;
    let searcher = index.reader()?.searcher();
    let parsed = QueryParser::for_index(&index, vec![body])
        .parse_query(query)
        .map_err(|e| anyhow::anyhow!("invalid query `{query}`: {e}"))?;
    let top = searcher.search(&parsed, &TopDocs::with_limit(limit).order_by_score())?;
    top.into_iter()
        .map(|(score, addr)| {
            let d: TantivyDocument = searcher.doc(addr)?;
            Ok(Hit {
                index: d.get_first(id).and_then(|v| v.as_u64()).unwrap_or(0),
                score,
                text: d
                    .get_first(body)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_and_reports_bad_queries() {
        let docs = vec![
            "alpha beta".to_string(),
            "beta gamma".to_string(),
            "delta".to_string(),
        ];
        let hits = super::search(&docs, "beta", 10).unwrap();
        assert_eq!(hits.len(), 2);
        assert!(super::search(&docs, "zeta", 10).unwrap().is_empty());
        let err = super::search(&docs, "body:(", 10).unwrap_err().to_string();
        assert!(err.contains("invalid query"), "{err}");
        for absurd in [0, 1001, 1_000_000_000_000] {
            let err = super::search(&docs, "beta", absurd)
                .unwrap_err()
                .to_string();
            assert!(err.contains("between 1 and 1000"), "{err}");
        }
    }
}
