//! The gates as a library, so tests can prove each gate can fail.

pub mod artifact;
pub mod check;
pub mod diff;
pub mod graph;
pub mod homebrew;
pub mod judge;
pub mod prefetch;
pub mod probe;
pub mod release;
pub mod sbom;
pub mod size;
pub mod soak;
pub mod workspace;

/// Formats bytes as MB (MiB, as the budgets count).
pub fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / hakiri_build::MB)
}
