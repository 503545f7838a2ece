//! Where a vector index's points live. instant-distance keeps its points
//! inside the graph; ours are row numbers (4 bytes) whose vectors sit in a
//! memory-mapped file beside the graph, so a loaded 100k × 384 index costs
//! its graph in RAM and only the vector pages a query touches. A distance
//! between two rows reads the vectors through the [`Space`] installed on the
//! current thread for the length of a build or a search.

use serde::{Deserialize, Serialize};
use std::cell::Cell;

/// A point of the graph: a row of the indexed version.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Row(pub u32);

/// The row number that stands for the query vector.
pub const QUERY: Row = Row(u32::MAX);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// 1 − cosine similarity; vectors are stored unit-length.
    Cosine,
    /// −dot product (maximum inner product).
    Dot,
    /// Squared Euclidean distance (same order as Euclidean).
    L2,
}

impl Metric {
    pub fn parse(name: &str) -> anyhow::Result<Metric> {
        match name {
            "cosine" => Ok(Metric::Cosine),
            "dot" => Ok(Metric::Dot),
            "l2" => Ok(Metric::L2),
            other => anyhow::bail!("metric `{other}` is unknown: use cosine, dot or l2"),
        }
    }

    /// The distance the graph orders by (lower is nearer).
    fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Metric::Cosine => 1.0 - dot(a, b),
            Metric::Dot => -dot(a, b),
            Metric::L2 => l2(a, b),
        }
    }

    /// The score shown for a distance (higher is better): cosine similarity,
    /// dot product, or negated Euclidean distance.
    pub fn score(self, distance: f32) -> f32 {
        match self {
            Metric::Cosine => 1.0 - distance,
            Metric::Dot => -distance,
            Metric::L2 => -distance.max(0.0).sqrt(),
        }
    }
}

/// Eight lanes so the compiler vectorizes it on any x86-64 or aarch64.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The vectors a thread's distances read: `rows × dim` floats, and a query.
#[derive(Clone, Copy)]
pub struct Space {
    base: *const f32,
    rows: usize,
    dim: usize,
    query: *const f32,
    metric: Metric,
}

// SAFETY: a Space only points at memory that outlives every thread it is
// installed on (see `Scope` and `build_pool`); it is read, never written.
unsafe impl Send for Space {}
unsafe impl Sync for Space {}

thread_local! {
    static CURRENT: Cell<Option<Space>> = const { Cell::new(None) };
}

impl Space {
    /// `vectors` holds `rows × dim` floats; `query` is empty or `dim` floats.
    pub fn new(vectors: &[f32], dim: usize, query: &[f32], metric: Metric) -> Space {
        assert!(dim > 0 && vectors.len() % dim == 0 && (query.is_empty() || query.len() == dim));
        Space {
            base: vectors.as_ptr(),
            rows: vectors.len() / dim,
            dim,
            query: if query.is_empty() {
                std::ptr::null()
            } else {
                query.as_ptr()
            },
            metric,
        }
    }

    fn vector(&self, row: Row) -> &[f32] {
        let ptr = if row.0 == QUERY.0 {
            assert!(!self.query.is_null(), "no query vector installed");
            self.query
        } else {
            assert!(
                (row.0 as usize) < self.rows,
                "row {} out of {}",
                row.0,
                self.rows
            );
            // SAFETY: in bounds (checked), and the buffer outlives the Space's installation.
            unsafe { self.base.add(row.0 as usize * self.dim) }
        };
        // SAFETY: `ptr` starts `dim` valid floats (see `new`).
        unsafe { std::slice::from_raw_parts(ptr, self.dim) }
    }

    /// Installs this space on the current thread until the scope ends.
    /// The borrowed buffers must outlive the returned scope.
    pub fn install<'a>(self, _vectors: &'a [f32], _query: &'a [f32]) -> Scope<'a> {
        let previous = CURRENT.with(|c| c.replace(Some(self)));
        Scope {
            previous,
            _data: std::marker::PhantomData,
        }
    }

    /// Installs this space on every thread of a rayon pool made for one build.
    pub fn build_pool(self, threads: usize) -> anyhow::Result<rayon::ThreadPool> {
        Ok(rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("hakiri-hnsw-{i}"))
            .start_handler(move |_| CURRENT.with(|c| c.set(Some(self))))
            .build()?)
    }
}

/// Restores the thread's previous space when dropped.
pub struct Scope<'a> {
    previous: Option<Space>,
    _data: std::marker::PhantomData<&'a [f32]>,
}

impl Drop for Scope<'_> {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

impl instant_distance::Point for Row {
    fn distance(&self, other: &Self) -> f32 {
        let space = CURRENT
            .with(|c| c.get())
            .expect("a vector distance was computed with no Space installed");
        space
            .metric
            .distance(space.vector(*self), space.vector(*other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use instant_distance::Point;

    #[test]
    fn distances_read_the_installed_space() {
        let vectors = [1.0, 0.0, 0.0, 1.0, 0.6, 0.8];
        let query = [1.0, 0.0];
        let space = Space::new(&vectors, 2, &query, Metric::Cosine);
        let _scope = space.install(&vectors, &query);
        assert!((QUERY.distance(&Row(0)) - 0.0).abs() < 1e-6);
        assert!((QUERY.distance(&Row(1)) - 1.0).abs() < 1e-6);
        assert!((QUERY.distance(&Row(2)) - 0.4).abs() < 1e-6);
        assert!((Metric::Cosine.score(0.4) - 0.6).abs() < 1e-6);
    }

    #[test]
    fn lanes_match_a_plain_sum() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| 3.0 - i as f32).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-3);
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
        assert!((l2(&a, &b) - plain).abs() < 1e-2);
    }
}
