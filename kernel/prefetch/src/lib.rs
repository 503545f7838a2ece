//! Profile-guided start-up prefetch.
//!
//! A cold start of a 100 MB binary touches ~1,000 pages scattered over all of
//! it; each page fault reads a whole readaround window (8 MB on some disks),
//! so a start that needs 3 MB reads 60. This crate holds a table of the file
//! ranges a start-up touches, filled in after the link by the gates
//! (`hakiri-gates`' `prefetch` module, which records a cold start and patches
//! the table into the shipped copy), and a constructor that runs before
//! `main` and asks the kernel for all of them at once (`POSIX_FADV_WILLNEED`,
//! asynchronous), and, on the first query, for what it touches ([`warm_up`]).
//! A binary whose table is empty (any unshipped build) does
//! nothing; a stale table only prefetches the wrong pages.
//!
//! `HAKIRI_PREFETCH=off` skips the prefetch (to measure without it);
//! `HAKIRI_PREFETCH=record` writes, at exit or SIGTERM, the pages of the
//! binary the run has mapped to `$HAKIRI_PREFETCH_OUT` (what the gates read).

/// Marks the table in the binary; the gates patch the bytes that follow.
pub const MAGIC: [u8; 16] = *b"HAKIRI-PREFETCH1";
/// Ranges the table holds; the gates merge nearby ranges to fit.
pub const MAX_RANGES: usize = 1024;
/// The unit of the table's ranges, in bytes.
pub const PAGE: u64 = 4096;

/// The table as it lies in the file: `MAGIC`, then `count` and
/// `start_count` (u32 LE), then `MAX_RANGES` pairs of (first page, page
/// count), u32 LE each. The first `start_count` ranges are the start-up's,
/// asked for before `main`; the rest are the warm-up's ([`warm_up`]).
#[repr(C)]
pub struct Table {
    magic: [u8; 16],
    count: u32,
    start_count: u32,
    ranges: [[u32; 2]; MAX_RANGES],
}

/// Byte offset of `count` from the start of `MAGIC`.
pub const COUNT_OFFSET: usize = 16;
/// Byte offset of `start_count` from the start of `MAGIC`.
pub const START_COUNT_OFFSET: usize = 20;
/// Byte offset of the first range from the start of `MAGIC`.
pub const RANGES_OFFSET: usize = 24;

// Immutable, so it lies in the file; read volatile so the compiler never
// folds the zero `count` it was compiled with. In `.data`, at the end of
// the file, whose pages the kernel has read before the constructor runs
// (see `start`); `.rodata`, at the start, would cost one more read.
#[used]
#[no_mangle]
#[link_section = ".data.hakiri_prefetch"]
static HAKIRI_PREFETCH_TABLE: Table = Table {
    magic: MAGIC,
    count: 0,
    start_count: 0,
    ranges: [[0; 2]; MAX_RANGES],
};

#[cfg(target_os = "linux")]
mod entry;
#[cfg(target_os = "linux")]
mod start;

/// Asks for the warm-up's pages (what the first query touches beyond the
/// start-up), once per process; the reads run while the caller goes on.
/// Code about to do its first heavy work (the engine opening DuckDB) calls
/// it: asking at start-up would put these reads ahead of the start-up's own
/// faults, asking on first use keeps them off a start that never queries.
pub fn warm_up() {
    #[cfg(target_os = "linux")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(start::warm_up);
    }
}

/// Keeps this crate's constructor and table in the link: a crate nothing
/// references is not linked, so the kernel calls this once.
pub fn link() {
    std::hint::black_box(&HAKIRI_PREFETCH_TABLE);
    #[cfg(target_os = "linux")]
    start::link();
}
