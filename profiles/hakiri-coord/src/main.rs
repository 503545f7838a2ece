//! hakiri-coord: its capabilities are the `hakiri-cap-*` dependencies in
//! Cargo.toml; build.rs links each of them. Budgets live in profile.toml.

// musl's allocator is slow under threads.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

include!(concat!(env!("OUT_DIR"), "/profile.rs"));

fn main() -> std::process::ExitCode {
    hakiri_kernel::cli::main(&PROFILE)
}
