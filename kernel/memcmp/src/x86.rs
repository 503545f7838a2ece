//! SSE2 (every x86_64) and, when compiled for it, AVX2. Every load lies
//! within the `n` bytes: tails are read as one block ending at byte `n`,
//! overlapping bytes already known to be equal. No loop here is one LLVM
//! turns back into a call to `memcmp` or `bcmp` (which would be these).

use core::arch::x86_64::*;

/// Block size of the main loop.
#[cfg(target_feature = "avx2")]
const BLOCK: usize = 32;
#[cfg(not(target_feature = "avx2"))]
const BLOCK: usize = 16;

/// A bit per byte of the block at `a` and `b`, set where they are equal.
#[cfg(target_feature = "avx2")]
#[inline(always)]
unsafe fn equal_mask(a: *const u8, b: *const u8) -> u32 {
    // SAFETY (caller): 32 readable bytes at each; loads are unaligned.
    unsafe {
        let x = _mm256_loadu_si256(a.cast());
        let y = _mm256_loadu_si256(b.cast());
        _mm256_movemask_epi8(_mm256_cmpeq_epi8(x, y)) as u32
    }
}

#[cfg(not(target_feature = "avx2"))]
use self::equal_mask16 as equal_mask;

/// As [`equal_mask`], over 16 bytes (the upper 16 bits set): the block
/// under SSE2, and 16 ≤ n < 32 under AVX2.
#[inline(always)]
unsafe fn equal_mask16(a: *const u8, b: *const u8) -> u32 {
    // SAFETY (caller): 16 readable bytes at each; loads are unaligned.
    unsafe {
        let x = _mm_loadu_si128(a.cast());
        let y = _mm_loadu_si128(b.cast());
        _mm_movemask_epi8(_mm_cmpeq_epi8(x, y)) as u32 | 0xffff_0000
    }
}

#[inline(always)]
unsafe fn u64_at(p: *const u8) -> u64 {
    // SAFETY (caller): 8 readable bytes.
    unsafe { p.cast::<u64>().read_unaligned() }
}

#[inline(always)]
unsafe fn u32_at(p: *const u8) -> u32 {
    // SAFETY (caller): 4 readable bytes.
    unsafe { p.cast::<u32>().read_unaligned() }
}

/// The difference of the bytes at offset `i`, as `memcmp` returns it.
#[inline(always)]
unsafe fn byte_difference(a: *const u8, b: *const u8, i: usize) -> i32 {
    // SAFETY (caller): `i` < n.
    unsafe { i32::from(*a.add(i)) - i32::from(*b.add(i)) }
}

/// The first difference within the block at offset `i`, given its
/// [`equal_mask`], as `memcmp` returns it; `None` if the block is equal.
#[inline(always)]
unsafe fn first_difference(a: *const u8, b: *const u8, i: usize, equal: u32) -> Option<i32> {
    // SAFETY (caller): the block at `i` lies within 0..n.
    (equal != u32::MAX)
        .then(|| unsafe { byte_difference(a, b, i + (!equal).trailing_zeros() as usize) })
}

/// `memcmp`: negative, zero or positive as the first differing byte of `a`
/// is below, absent or above `b`'s.
///
/// # Safety
/// `a` and `b` are readable for `n` bytes.
#[inline]
pub unsafe fn compare(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: every offset read below is within 0..n.
    unsafe {
        if n >= BLOCK {
            let mut i = 0;
            loop {
                if let Some(d) = first_difference(a, b, i, equal_mask(a.add(i), b.add(i))) {
                    return d;
                }
                if i + BLOCK == n {
                    return 0;
                }
                // The last block ends at n; the bytes it shares with the
                // previous one are equal, so its first difference is the first.
                i = (i + BLOCK).min(n - BLOCK);
            }
        }
        if n >= 16 {
            for i in [0, n - 16] {
                if let Some(d) = first_difference(a, b, i, equal_mask16(a.add(i), b.add(i))) {
                    return d;
                }
            }
            return 0;
        }
        // Big-endian words order as their bytes do.
        if n >= 8 {
            for i in [0, n - 8] {
                let (x, y) = (u64_at(a.add(i)).to_be(), u64_at(b.add(i)).to_be());
                if x != y {
                    return if x < y { -1 } else { 1 };
                }
            }
            return 0;
        }
        if n >= 4 {
            for i in [0, n - 4] {
                let (x, y) = (u32_at(a.add(i)).to_be(), u32_at(b.add(i)).to_be());
                if x != y {
                    return if x < y { -1 } else { 1 };
                }
            }
            return 0;
        }
        for i in 0..n {
            let d = byte_difference(a, b, i);
            if d != 0 {
                return d;
            }
        }
        0
    }
}

/// `bcmp`: whether the `n` bytes at `a` and `b` differ anywhere.
///
/// # Safety
/// `a` and `b` are readable for `n` bytes.
#[inline]
pub unsafe fn differ(a: *const u8, b: *const u8, n: usize) -> bool {
    // SAFETY: every offset read below is within 0..n.
    unsafe {
        if n >= BLOCK {
            let mut i = 0;
            loop {
                if equal_mask(a.add(i), b.add(i)) != u32::MAX {
                    return true;
                }
                if i + BLOCK == n {
                    return false;
                }
                i = (i + BLOCK).min(n - BLOCK);
            }
        }
        if n >= 16 {
            return (equal_mask16(a, b) & equal_mask16(a.add(n - 16), b.add(n - 16))) != u32::MAX;
        }
        if n >= 8 {
            return (u64_at(a) ^ u64_at(b)) | (u64_at(a.add(n - 8)) ^ u64_at(b.add(n - 8))) != 0;
        }
        if n >= 4 {
            return (u32_at(a) ^ u32_at(b)) | (u32_at(a.add(n - 4)) ^ u32_at(b.add(n - 4))) != 0;
        }
        // n ≤ 3: the first, middle and last bytes are all of them.
        n != 0 && (*a != *b || *a.add(n / 2) != *b.add(n / 2) || *a.add(n - 1) != *b.add(n - 1))
    }
}
