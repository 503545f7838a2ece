//! memcmp and bcmp against a byte-at-a-time reference, at every length up to
//! a few blocks, every position of a difference, both signs and unaligned
//! starts; and, in the musl binaries, that the C symbols are these.
#![cfg(target_arch = "x86_64")]

use hakiri_memcmp::{compare, differ};
use std::cmp::Ordering;

fn reference(a: &[u8], b: &[u8]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    Ordering::Equal
}

fn check(a: &[u8], b: &[u8]) {
    let n = a.len();
    // SAFETY: both slices hold n bytes.
    let (c, d) = unsafe {
        (
            compare(a.as_ptr(), b.as_ptr(), n),
            differ(a.as_ptr(), b.as_ptr(), n),
        )
    };
    let want = reference(a, b);
    assert_eq!(c.cmp(&0), want, "compare, n={n}, a={a:?}, b={b:?}");
    assert_eq!(
        d,
        want != Ordering::Equal,
        "differ, n={n}, a={a:?}, b={b:?}"
    );
}

#[test]
fn every_length_and_position_of_a_difference() {
    let lengths: Vec<usize> = (0..=130).chain([255, 256, 257, 1000, 4099]).collect();
    // A buffer with room for an unaligned start, filled with varied bytes.
    let base: Vec<u8> = (0..4200u32).map(|i| (i * 7 + 3) as u8).collect();
    for &n in &lengths {
        for start in 0..4 {
            let a = &base[start..start + n];
            let b = a.to_vec();
            check(a, &b);
            for at in 0..n {
                for delta in [1u8, 0x80, 0xff] {
                    let mut c = b.clone();
                    c[at] = c[at].wrapping_add(delta);
                    check(a, &c);
                    // A second, later difference must not change the answer.
                    if at + 1 < n {
                        c[n - 1] = c[n - 1].wrapping_sub(delta);
                        check(a, &c);
                    }
                }
            }
        }
    }
}

#[test]
fn bytes_compare_as_unsigned() {
    check(&[0x7f], &[0x80]);
    check(&[0x00; 40], &[0xff; 40]);
    let mut a = [0u8; 33];
    a[32] = 0x80;
    check(&a, &[0u8; 33]);
}

/// In the musl binaries (and this test binary, built alike), C's `memcmp`
/// and `bcmp` are this crate's, not the C library's weak byte loops.
#[cfg(target_env = "musl")]
#[test]
fn the_c_symbols_are_these() {
    use core::ffi::{c_int, c_void};
    extern "C" {
        fn memcmp(a: *const c_void, b: *const c_void, n: usize) -> c_int;
        fn bcmp(a: *const c_void, b: *const c_void, n: usize) -> c_int;
    }
    hakiri_memcmp::link();
    type Cmp = unsafe extern "C" fn(*const c_void, *const c_void, usize) -> c_int;
    assert_eq!(
        memcmp as Cmp as usize,
        hakiri_memcmp::export::memcmp as Cmp as usize
    );
    assert_eq!(
        bcmp as Cmp as usize,
        hakiri_memcmp::export::bcmp as Cmp as usize
    );
    let (x, y) = (b"hakiri-memcmp", b"hakiri-memcmq");
    // SAFETY: both hold 13 bytes.
    unsafe {
        assert!(memcmp(x.as_ptr().cast(), y.as_ptr().cast(), 13) < 0);
        assert_ne!(bcmp(x.as_ptr().cast(), y.as_ptr().cast(), 13), 0);
        assert_eq!(bcmp(x.as_ptr().cast(), y.as_ptr().cast(), 12), 0);
    }
}
