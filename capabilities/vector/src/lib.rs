//! `vector`: nearest-neighbour search over HNSW graphs (`hnsw`): persistent
//! indexes over datasets' vector or embedded text columns, rebuilt with
//! every version (see `dataset_index`), and `vector.nearest` over the
//! vectors passed in one call.

mod dataset_index;
mod hnsw;
mod provider;
mod space;

use hakiri_kernel::{CheckOutcome, KernelError, Registrar, Tool, ToolError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

hakiri_kernel::capability!(register);

fn register(r: &mut Registrar) -> Result<(), KernelError> {
    let index = std::sync::Arc::new(provider::HnswIndex);
    r.provide::<dyn hakiri_data_api::retrieval::VectorIndex>(
        hakiri_data_api::retrieval::HNSW,
        index.clone(),
    )?;
    r.provide::<dyn hakiri_data_api::VersionBuilder>("vector-index", index.clone())?;
    r.provide::<dyn hakiri_data_api::DatasetStatus>("vector-index", index)?;
    r.tool(Tool::typed(
        "vector.nearest",
        "Build an HNSW index over the given vectors and return the k nearest to the query (Euclidean distance)",
        |input: NearestInput, _ctx| async move { nearest(input).map_err(ToolError::Failed) },
    ))?;
    r.check(|_ctx| async {
        let input = NearestInput {
            vectors: vec![
                vec![0.0, 0.0],
                vec![10.0, 10.0],
                vec![1.0, 1.2],
                vec![-5.0, 3.0],
            ],
            query: vec![0.9, 1.0],
            k: Some(1),
        };
        match nearest(input) {
            Ok(hits) if hits.first().map(|h| h.index) == Some(2) => CheckOutcome::Ok(format!(
                "HNSW over 4 points found vector 2 nearest (distance {:.3})",
                hits[0].distance
            )),
            Ok(hits) => CheckOutcome::Failed(format!(
                "wrong nearest neighbour: {:?}",
                hits.first().map(|h| h.index)
            )),
            Err(e) => CheckOutcome::Failed(e),
        }
    });
    Ok(())
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NearestInput {
    /// The vectors to index; all must have the query's dimension.
    vectors: Vec<Vec<f32>>,
    query: Vec<f32>,
    /// How many neighbours to return (default 5).
    k: Option<usize>,
}

#[derive(Debug, Serialize)]
struct Hit {
    /// Position of the vector in the input.
    index: usize,
    distance: f32,
}

fn nearest(input: NearestInput) -> Result<Vec<Hit>, String> {
    let dim = input.query.len();
    if dim == 0 {
        return Err("query is empty; give a vector of at least one dimension".into());
    }
    if let Some((i, v)) = input
        .vectors
        .iter()
        .enumerate()
        .find(|(_, v)| v.len() != dim)
    {
        return Err(format!(
            "vector {i} has {} dimensions but the query has {dim}",
            v.len()
        ));
    }
    if input
        .vectors
        .iter()
        .flatten()
        .chain(&input.query)
        .any(|x| !x.is_finite())
    {
        return Err("vectors must hold finite numbers (no NaN or infinity)".into());
    }
    let k = input.k.unwrap_or(5).min(input.vectors.len());
    let flat: Vec<f32> = input.vectors.into_iter().flatten().collect();
    let points = hnsw::Points::new(&flat, dim, space::Metric::L2);
    let params = hnsw::Params {
        m: 16,
        ef_construction: 100,
        seed: 42,
    };
    let graph = hnsw::Graph::build(points, params);
    Ok(graph
        .search(points, &input.query, k, k.max(64))
        .into_iter()
        .map(|near| Hit {
            index: near.row as usize,
            distance: near.distance.max(0.0).sqrt(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nearest_and_rejects_mismatched_dimensions() {
        let hits = nearest(NearestInput {
            vectors: vec![vec![0.0, 0.0], vec![5.0, 5.0]],
            query: vec![4.0, 4.5],
            k: Some(2),
        })
        .unwrap();
        assert_eq!(hits[0].index, 1);
        assert_eq!(hits.len(), 2);
        let err = nearest(NearestInput {
            vectors: vec![vec![0.0]],
            query: vec![1.0, 2.0],
            k: None,
        })
        .unwrap_err();
        assert!(err.contains("vector 0 has 1 dimensions"), "{err}");
    }
}
