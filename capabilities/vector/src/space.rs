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

    /// The distance the graph orders by (lower is nearer), with `kernel`
    /// this metric's kernel (see [`kernel`]).
    fn distance(self, kernel: Kernel, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Metric::Cosine => 1.0 - kernel(a, b),
            Metric::Dot => -kernel(a, b),
            Metric::L2 => kernel(a, b),
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

/// A dot product or squared distance over two equal-length vectors.
type Kernel = fn(&[f32], &[f32]) -> f32;

/// The fastest kernel for `metric` this CPU runs: AVX2 with FMA where the
/// CPU has them (checked once per index opened: the binary itself targets
/// baseline x86-64), else the portable one.
fn kernel(metric: Metric) -> Kernel {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        return match metric {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            Metric::L2 => |a, b| unsafe { avx2::l2(a, b) },
            _ => |a, b| unsafe { avx2::dot(a, b) },
        };
    }
    match metric {
        Metric::L2 => l2,
        _ => dot,
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Sums the eight lanes of `v`.
    #[target_feature(enable = "avx2,fma")]
    fn sum(v: __m256) -> f32 {
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` holds eight floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
        lanes.iter().sum()
    }

    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        // SAFETY: every load reads 8 floats that end at or before `n`.
        unsafe {
            while i + 16 <= n {
                let (pa, pb) = (a.as_ptr().add(i), b.as_ptr().add(i));
                s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa), _mm256_loadu_ps(pb), s0);
                s1 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(8)), _mm256_loadu_ps(pb.add(8)), s1);
                i += 16;
            }
            if i + 8 <= n {
                let (pa, pb) = (a.as_ptr().add(i), b.as_ptr().add(i));
                s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa), _mm256_loadu_ps(pb), s0);
                i += 8;
            }
        }
        let tail: f32 = a[i..n].iter().zip(&b[i..n]).map(|(x, y)| x * y).sum();
        sum(_mm256_add_ps(s0, s1)) + tail
    }

    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn l2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let mut s = _mm256_setzero_ps();
        let mut i = 0;
        // SAFETY: every load reads 8 floats that end at or before `n`.
        unsafe {
            while i + 8 <= n {
                let d = _mm256_sub_ps(
                    _mm256_loadu_ps(a.as_ptr().add(i)),
                    _mm256_loadu_ps(b.as_ptr().add(i)),
                );
                s = _mm256_fmadd_ps(d, d, s);
                i += 8;
            }
        }
        let tail: f32 = a[i..n]
            .iter()
            .zip(&b[i..n])
            .map(|(x, y)| (x - y) * (x - y))
            .sum();
        sum(s) + tail
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
    kernel: Kernel,
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
        assert!(
            dim > 0
                && vectors.len().is_multiple_of(dim)
                && (query.is_empty() || query.len() == dim)
        );
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
            kernel: kernel(metric),
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
            .distance(space.kernel, space.vector(*self), space.vector(*other))
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
        let plain_l2: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
        assert!((l2(&a, &b) - plain_l2).abs() < 1e-2);
        // Whatever kernel this CPU gets agrees with the portable ones.
        for len in [0, 7, 8, 19, 384] {
            let (a, b) = (&a.repeat(21)[..len], &b.repeat(21)[..len]);
            assert!(
                (kernel(Metric::Cosine)(a, b) - dot(a, b)).abs() < 1e-1,
                "dot, {len}"
            );
            assert!(
                (kernel(Metric::L2)(a, b) - l2(a, b)).abs() < 1e-1,
                "l2, {len}"
            );
        }
    }
}
