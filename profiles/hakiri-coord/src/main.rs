//! hakiri-coord: its capabilities are the `hakiri-cap-*` dependencies in
//! Cargo.toml; build.rs links each of them. Budgets live in profile.toml.

// musl's allocator is slow under threads.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

include!(concat!(env!("OUT_DIR"), "/profile.rs"));

fn main() -> std::process::ExitCode {
    // Transparent huge pages make each sparse touch of mimalloc's arena a
    // whole 2 MiB page: a coordinator idled at 30 MB with them, 12 without.
    // A coordinator's heap is small; it has no use for huge pages.
    // SAFETY: prctl(PR_SET_THP_DISABLE) only sets a flag on this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    hakiri_kernel::cli::main(&PROFILE)
}
