//! Metrics and their distance kernels: AVX2 with FMA where the CPU has
//! them, else portable loops the compiler vectorizes.

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
    pub(crate) fn distance(self, kernel: Kernel, a: &[f32], b: &[f32]) -> f32 {
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
pub(crate) type Kernel = fn(&[f32], &[f32]) -> f32;

/// The fastest kernel for `metric` this CPU runs: AVX2 with FMA where the
/// CPU has them (checked once per index opened: the binary itself targets
/// baseline x86-64), else the portable one.
pub(crate) fn kernel(metric: Metric) -> Kernel {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_order_and_score() {
        let k = kernel(Metric::Cosine);
        assert!((Metric::Cosine.distance(k, &[1.0, 0.0], &[0.6, 0.8]) - 0.4).abs() < 1e-6);
        assert!((Metric::Cosine.score(0.4) - 0.6).abs() < 1e-6);
        assert!((Metric::Dot.distance(k, &[2.0, 0.0], &[3.0, 1.0]) + 6.0).abs() < 1e-6);
        let l2 = kernel(Metric::L2);
        assert!((Metric::L2.distance(l2, &[0.0, 0.0], &[3.0, 4.0]) - 25.0).abs() < 1e-6);
        assert!((Metric::L2.score(25.0) + 5.0).abs() < 1e-6);
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
