//! Hierarchical navigable small-world graphs (Malkov & Yashunin, 2016) over
//! row numbers whose vectors live elsewhere: in a memory-mapped file at query
//! time. Written here rather than wrapped, because the crates fell short of
//! the benchmark (README, Measured): instant-distance fixes ef at build time
//! and built 100k × 384 in 120 s where hnswlib took 21 s, at half hnswlib's
//! queries per second; hnsw_rs keeps its own copy of every vector inside the
//! graph. This one keeps layer 0 as one flat array (a count and the links of
//! each row), marks visited rows in a per-thread array, takes ef per query,
//! and builds on every core with a lock per link list.

use crate::space::{kernel, Kernel, Metric};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Mutex;

/// The vectors distances read: `rows × dim` floats.
#[derive(Clone, Copy)]
pub struct Points<'a> {
    data: &'a [f32],
    dim: usize,
    metric: Metric,
    kernel: Kernel,
}

impl<'a> Points<'a> {
    pub fn new(data: &'a [f32], dim: usize, metric: Metric) -> Points<'a> {
        assert!(dim > 0 && data.len().is_multiple_of(dim));
        Points {
            data,
            dim,
            metric,
            kernel: kernel(metric),
        }
    }

    pub fn rows(&self) -> usize {
        self.data.len() / self.dim
    }

    fn row(&self, i: u32) -> &'a [f32] {
        let start = i as usize * self.dim;
        &self.data[start..start + self.dim]
    }

    fn distance(&self, query: &[f32], i: u32) -> f32 {
        self.metric.distance(self.kernel, query, self.row(i))
    }

    /// Asks the CPU to start loading row `i` while another distance runs.
    #[inline]
    fn prefetch(&self, i: u32) {
        #[cfg(target_arch = "x86_64")]
        #[allow(unused_unsafe)]
        // SAFETY: a prefetch never faults, whatever the address.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let at = self.data.as_ptr().wrapping_add(i as usize * self.dim);
            _mm_prefetch::<_MM_HINT_T0>(at.cast::<i8>());
        }
    }
}

/// A row and its distance to whatever is being searched for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Near {
    pub distance: f32,
    pub row: u32,
}

impl Eq for Near {}

impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then(self.row.cmp(&other.row))
    }
}

impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Rows already seen by the current search: a mark per row, cleared in O(1)
/// by moving to the next epoch.
struct Visited {
    marks: Vec<u16>,
    epoch: u16,
}

thread_local! {
    static VISITED: RefCell<Visited> = const { RefCell::new(Visited { marks: Vec::new(), epoch: 0 }) };
}

impl Visited {
    fn start(&mut self, rows: usize) {
        if self.marks.len() < rows {
            self.marks.resize(rows, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.fill(0);
            self.epoch = 1;
        }
    }

    /// True the first time `row` is seen in this search.
    fn first(&mut self, row: u32) -> bool {
        let mark = &mut self.marks[row as usize];
        let first = *mark != self.epoch;
        *mark = self.epoch;
        first
    }
}

/// Where a search reads a row's links on a layer: locked lists while
/// building, one flat array once built.
trait Links: Sync {
    fn with<R>(&self, row: u32, layer: usize, f: impl FnOnce(&[u32]) -> R) -> R;
}

/// The `ef` rows nearest to `query` reachable on `layer` from `entry`,
/// nearest first.
fn search_layer(
    links: &impl Links,
    points: Points,
    query: &[f32],
    entry: &[Near],
    ef: usize,
    layer: usize,
) -> Vec<Near> {
    VISITED.with(|visited| {
        let mut visited = visited.borrow_mut();
        visited.start(points.rows());
        let mut candidates: BinaryHeap<Reverse<Near>> = BinaryHeap::with_capacity(ef * 4);
        let mut found: BinaryHeap<Near> = BinaryHeap::with_capacity(ef + 1);
        for &e in entry {
            if visited.first(e.row) {
                candidates.push(Reverse(e));
                found.push(e);
            }
        }
        while found.len() > ef {
            found.pop();
        }
        while let Some(Reverse(nearest)) = candidates.pop() {
            let worst = found.peek().map_or(f32::INFINITY, |w| w.distance);
            if nearest.distance > worst && found.len() >= ef {
                break;
            }
            links.with(nearest.row, layer, |neighbours| {
                for (j, &n) in neighbours.iter().enumerate() {
                    if let Some(&next) = neighbours.get(j + 1) {
                        points.prefetch(next);
                    }
                    if !visited.first(n) {
                        continue;
                    }
                    let distance = points.distance(query, n);
                    let worst = found.peek().map_or(f32::INFINITY, |w| w.distance);
                    if found.len() < ef || distance < worst {
                        let near = Near { distance, row: n };
                        candidates.push(Reverse(near));
                        found.push(near);
                        if found.len() > ef {
                            found.pop();
                        }
                    }
                }
            });
        }
        found.into_sorted_vec()
    })
}

/// At most `m` of `candidates` (nearest first) to link to, keeping a
/// candidate only if it is nearer the new row than to any kept one: links
/// then reach in several directions instead of into one cluster (the
/// paper's heuristic, without refilling pruned ones, as hnswlib does).
fn select(points: Points, candidates: &[Near], m: usize) -> Vec<Near> {
    if candidates.len() <= m {
        return candidates.to_vec();
    }
    let mut kept: Vec<Near> = Vec::with_capacity(m);
    for &c in candidates {
        if kept.len() >= m {
            break;
        }
        let vector = points.row(c.row);
        if kept
            .iter()
            .all(|k| points.distance(vector, k.row) > c.distance)
        {
            kept.push(c);
        }
    }
    kept
}

/// A row's top layer: geometric with ratio 1/m, from a hash of the row so a
/// build is repeatable.
fn level(seed: u64, row: u32, m: usize) -> u8 {
    let mut x = seed ^ (row as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    let uniform = ((x >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    (-uniform.ln() / (m as f64).ln()).floor().min(16.0) as u8
}

/// The graph while rows are being inserted on several threads.
struct Building {
    /// Each row's link lists, layer 0 first, at `first[row]`.
    lists: Vec<Mutex<Vec<u32>>>,
    first: Vec<u32>,
    levels: Vec<u8>,
}

impl Links for Building {
    fn with<R>(&self, row: u32, layer: usize, f: impl FnOnce(&[u32]) -> R) -> R {
        let list = self
            .list(row, layer)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        f(&list)
    }
}

impl Building {
    fn list(&self, row: u32, layer: usize) -> &Mutex<Vec<u32>> {
        &self.lists[self.first[row as usize] as usize + layer]
    }

    fn set(&self, row: u32, layer: usize, links: Vec<u32>) {
        *self
            .list(row, layer)
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = links;
    }

    fn insert(&self, points: Points, row: u32, entry: &Mutex<(u32, u8)>, params: Params) {
        let query = points.row(row);
        let level = self.levels[row as usize] as usize;
        let (start, top) = *entry.lock().unwrap_or_else(|p| p.into_inner());
        let mut nearest = vec![Near {
            distance: points.distance(query, start),
            row: start,
        }];
        for layer in (level + 1..=top as usize).rev() {
            nearest = search_layer(self, points, query, &nearest, 1, layer);
        }
        for layer in (0..=level.min(top as usize)).rev() {
            let found = search_layer(self, points, query, &nearest, params.ef_construction, layer);
            let chosen = select(points, &found, params.m);
            self.set(row, layer, chosen.iter().map(|c| c.row).collect());
            let most = params.most_links(layer);
            for c in &chosen {
                let mut list = self
                    .list(c.row, layer)
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if list.len() < most {
                    list.push(row);
                    continue;
                }
                let vector = points.row(c.row);
                let mut candidates: Vec<Near> = list
                    .iter()
                    .map(|&r| Near {
                        distance: points.distance(vector, r),
                        row: r,
                    })
                    .chain([Near {
                        distance: c.distance,
                        row,
                    }])
                    .collect();
                candidates.sort_unstable();
                *list = select(points, &candidates, most)
                    .iter()
                    .map(|k| k.row)
                    .collect();
            }
            nearest = found;
        }
        if level > top as usize {
            let mut entry = entry.lock().unwrap_or_else(|p| p.into_inner());
            if level > entry.1 as usize {
                *entry = (row, level as u8);
            }
        }
    }
}

/// How a graph is built.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Links per row on the upper layers; twice as many on layer 0.
    pub m: usize,
    /// Candidates kept while inserting a row.
    pub ef_construction: usize,
    pub seed: u64,
}

impl Params {
    fn most_links(&self, layer: usize) -> usize {
        if layer == 0 {
            2 * self.m
        } else {
            self.m
        }
    }
}

/// A built graph, as stored in `graph.bin`.
#[derive(Serialize, Deserialize)]
pub struct Graph {
    m: u32,
    entry: u32,
    top: u8,
    levels: Vec<u8>,
    /// Layer 0: per row, the number of links, then room for `2m` links.
    base: Vec<u32>,
    /// Per row with a level above 0, where its layers 1.. start in `upper`
    /// (`u32::MAX` for the others); each layer holds a count and `m` links.
    upper_start: Vec<u32>,
    upper: Vec<u32>,
}

impl Links for Graph {
    fn with<R>(&self, row: u32, layer: usize, f: impl FnOnce(&[u32]) -> R) -> R {
        let (array, at) = if layer == 0 {
            (&self.base, row as usize * (1 + 2 * self.m as usize))
        } else {
            let start = self.upper_start[row as usize] as usize;
            (&self.upper, start + (layer - 1) * (1 + self.m as usize))
        };
        let count = array[at] as usize;
        f(&array[at + 1..at + 1 + count])
    }
}

impl Graph {
    /// Builds the graph of every row of `points`, on the current rayon pool.
    pub fn build(points: Points, params: Params) -> Graph {
        let rows = points.rows();
        assert!(rows < u32::MAX as usize && params.m >= 2);
        let levels: Vec<u8> = (0..rows as u32)
            .map(|r| level(params.seed, r, params.m))
            .collect();
        let mut first = Vec::with_capacity(rows);
        let mut total = 0u32;
        for &l in &levels {
            first.push(total);
            total += l as u32 + 1;
        }
        let building = Building {
            lists: (0..total).map(|_| Mutex::new(Vec::new())).collect(),
            first,
            levels,
        };
        if rows > 0 {
            let entry = Mutex::new((0u32, building.levels[0]));
            (1..rows as u32)
                .into_par_iter()
                .for_each(|row| building.insert(points, row, &entry, params));
            let (entry, top) = entry.into_inner().unwrap_or_else(|p| p.into_inner());
            Graph::freeze(building, params.m, entry, top)
        } else {
            Graph::freeze(building, params.m, 0, 0)
        }
    }

    fn freeze(building: Building, m: usize, entry: u32, top: u8) -> Graph {
        let rows = building.levels.len();
        let mut base = vec![0u32; rows * (1 + 2 * m)];
        let mut upper_start = vec![u32::MAX; rows];
        let mut upper = Vec::new();
        let lists: Vec<Vec<u32>> = building
            .lists
            .into_iter()
            .map(|l| l.into_inner().unwrap_or_else(|p| p.into_inner()))
            .collect();
        for (row, start) in upper_start.iter_mut().enumerate() {
            let first = building.first[row] as usize;
            let at = row * (1 + 2 * m);
            let links = &lists[first];
            base[at] = links.len() as u32;
            base[at + 1..at + 1 + links.len()].copy_from_slice(links);
            let level = building.levels[row] as usize;
            if level > 0 {
                *start = upper.len() as u32;
                for layer in 1..=level {
                    let links = &lists[first + layer];
                    upper.push(links.len() as u32);
                    upper.extend_from_slice(links);
                    upper.resize(upper.len() + m - links.len(), 0);
                }
            }
        }
        Graph {
            m: m as u32,
            entry,
            top,
            levels: building.levels,
            base,
            upper_start,
            upper,
        }
    }

    /// Checks a graph read from disk against the `rows` it indexes, so a
    /// damaged file is an error here rather than a wrong answer or a panic
    /// in a search.
    pub fn validate(&self, rows: usize) -> Result<(), String> {
        let m = self.m as usize;
        let bad = |what: &str| -> Result<(), String> {
            Err(format!("the graph's {what} does not match its {rows} rows"))
        };
        let stride = (2 * m).checked_add(1);
        if self.levels.len() != rows
            || self.upper_start.len() != rows
            || m < 2
            || stride.and_then(|s| s.checked_mul(rows)) != Some(self.base.len())
        {
            return bad("size");
        }
        if rows == 0 {
            return Ok(());
        }
        if self.entry as usize >= rows || self.levels[self.entry as usize] != self.top {
            return bad("entry point");
        }
        let links_ok = |list: &[u32], most: usize| {
            let count = list[0] as usize;
            count <= most && list[1..=count].iter().all(|&r| (r as usize) < rows)
        };
        for row in 0..rows {
            let at = row * (1 + 2 * m);
            if !links_ok(&self.base[at..at + 1 + 2 * m], 2 * m) {
                return bad("layer 0");
            }
            let level = self.levels[row] as usize;
            let start = self.upper_start[row] as usize;
            if level > self.top as usize
                || (level > 0 && start + level * (1 + m) > self.upper.len())
            {
                return bad("layers");
            }
            for layer in 1..=level {
                let at = start + (layer - 1) * (1 + m);
                let list = &self.upper[at..at + 1 + m];
                // A link on a layer must reach a row present on it, whose
                // links there a search then reads.
                if !links_ok(list, m)
                    || list[1..=list[0] as usize]
                        .iter()
                        .any(|&r| (self.levels[r as usize] as usize) < layer)
                {
                    return bad("upper layers");
                }
            }
        }
        Ok(())
    }

    /// The `k` rows nearest to `query`, nearest first, keeping `ef`
    /// candidates on layer 0 (more finds more of the true nearest, slower).
    pub fn search(&self, points: Points, query: &[f32], k: usize, ef: usize) -> Vec<Near> {
        if self.levels.is_empty() || k == 0 {
            return Vec::new();
        }
        let mut nearest = vec![Near {
            distance: points.distance(query, self.entry),
            row: self.entry,
        }];
        for layer in (1..=self.top as usize).rev() {
            nearest = search_layer(self, points, query, &nearest, 1, layer);
        }
        let mut found = search_layer(self, points, query, &nearest, ef.max(k), 0);
        found.truncate(k);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_unit(rows: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        let mut data: Vec<f32> = (0..rows * dim).map(|_| next()).collect();
        for v in data.chunks_exact_mut(dim) {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
        }
        data
    }

    #[test]
    fn finds_the_true_nearest_rows() {
        let (rows, dim) = (3000, 32);
        let data = random_unit(rows, dim, 1);
        let points = Points::new(&data, dim, Metric::Cosine);
        let params = Params {
            m: 12,
            ef_construction: 80,
            seed: 7,
        };
        let graph = Graph::build(points, params);
        graph.validate(rows).unwrap();
        let queries = random_unit(50, dim, 2);
        let mut hits = 0;
        for q in queries.chunks_exact(dim) {
            let mut exact: Vec<Near> = (0..rows as u32)
                .map(|r| Near {
                    distance: points.distance(q, r),
                    row: r,
                })
                .collect();
            exact.sort_unstable();
            let found = graph.search(points, q, 10, 64);
            assert_eq!(found.len(), 10);
            assert!(found.windows(2).all(|w| w[0] <= w[1]), "nearest first");
            hits += found
                .iter()
                .filter(|f| exact[..10].iter().any(|e| e.row == f.row))
                .count();
        }
        let recall = hits as f64 / 500.0;
        assert!(recall > 0.9, "recall@10 {recall}");
    }

    #[test]
    fn a_damaged_graph_is_refused() {
        let data = random_unit(200, 8, 3);
        let points = Points::new(&data, 8, Metric::L2);
        let mut graph = Graph::build(
            points,
            Params {
                m: 4,
                ef_construction: 20,
                seed: 1,
            },
        );
        assert!(graph.validate(200).is_ok());
        assert!(graph.validate(199).is_err());
        graph.base[1] = 999;
        graph.base[0] = graph.base[0].max(1);
        assert!(graph.validate(200).unwrap_err().contains("layer 0"));
        let mut graph = Graph::build(
            points,
            Params {
                m: 4,
                ef_construction: 20,
                seed: 1,
            },
        );
        let row = (0..200)
            .find(|&r| graph.levels[r] >= 1 && graph.upper[graph.upper_start[r] as usize] > 0)
            .expect("a row linked on layer 1");
        let low = (0..200)
            .find(|&r| graph.levels[r] == 0)
            .expect("a layer-0 row");
        let at = graph.upper_start[row] as usize;
        graph.upper[at + 1] = low as u32;
        assert!(graph.validate(200).unwrap_err().contains("upper layers"));
    }

    #[test]
    fn empty_and_single_row_graphs_answer() {
        let none = Graph::build(
            Points::new(&[], 2, Metric::L2),
            Params {
                m: 4,
                ef_construction: 10,
                seed: 0,
            },
        );
        none.validate(0).unwrap();
        assert!(none
            .search(Points::new(&[], 2, Metric::L2), &[0.0, 1.0], 3, 10)
            .is_empty());
        let one = [0.5f32, 0.5];
        let points = Points::new(&one, 2, Metric::L2);
        let graph = Graph::build(
            points,
            Params {
                m: 4,
                ef_construction: 10,
                seed: 0,
            },
        );
        assert_eq!(graph.search(points, &[0.0, 1.0], 3, 10)[0].row, 0);
    }
}
