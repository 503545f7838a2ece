//! `memcmp` and `bcmp` for the static musl binaries.
//!
//! The profiles link zig's C runtime, whose `memcmp` and `bcmp` compare one
//! byte at a time (musl's own `memcmp` does too). Rust's `==` on slices and
//! strings compiles to `bcmp`, and ordering to `memcmp`; an ingest's Parquet
//! dictionary encoding compares every repeated string against the one it
//! hashed to, and its statistics compare min and max: 5% of a 2 GB ingest's
//! CPU went to these two loops. glibc has vectorized ones; these are the
//! same idea (16- or 32-byte blocks, overlapping loads for the tails).
//!
//! zig's definitions are weak, so the strong ones here replace them in the
//! whole binary, C and C++ included, once the kernel references this crate
//! ([`link`]). Other targets keep their C library's.

#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(target_arch = "x86_64")]
pub use x86::{compare, differ};

/// The C symbols, public so that a test can check they are the ones linked.
#[cfg(all(target_arch = "x86_64", target_env = "musl"))]
pub mod export {
    use core::ffi::{c_int, c_void};

    /// C's `memcmp`: the sign of the difference of the first differing
    /// bytes (as unsigned), 0 if the `n` bytes are equal.
    ///
    /// # Safety
    /// `a` and `b` are readable for `n` bytes.
    #[no_mangle]
    pub unsafe extern "C" fn memcmp(a: *const c_void, b: *const c_void, n: usize) -> c_int {
        // SAFETY: the caller's contract, passed on.
        unsafe { super::compare(a.cast(), b.cast(), n) }
    }

    /// `bcmp`: 0 if the `n` bytes are equal, nonzero otherwise.
    ///
    /// # Safety
    /// `a` and `b` are readable for `n` bytes.
    #[no_mangle]
    pub unsafe extern "C" fn bcmp(a: *const c_void, b: *const c_void, n: usize) -> c_int {
        // SAFETY: the caller's contract, passed on.
        c_int::from(unsafe { super::differ(a.cast(), b.cast(), n) })
    }
}

/// Keeps the definitions in the link: the linker takes an object from a
/// library only for a symbol still undefined, and zig's weak `memcmp`
/// would otherwise do. The kernel calls this once.
pub fn link() {
    #[cfg(all(target_arch = "x86_64", target_env = "musl"))]
    {
        type Cmp = unsafe extern "C" fn(
            *const core::ffi::c_void,
            *const core::ffi::c_void,
            usize,
        ) -> core::ffi::c_int;
        std::hint::black_box(export::memcmp as Cmp);
        std::hint::black_box(export::bcmp as Cmp);
    }
}
