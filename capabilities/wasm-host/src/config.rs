//! `[wasm-host]`: the bounds every guest runs under. A guest may be hostile,
//! so each limit ends the call with an error naming the setting; the host
//! keeps serving.

use hakiri_kernel::Section;
use serde::Deserialize;

/// `[wasm-host]` in hakiri.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WasmConfig {
    /// Fuel (roughly, instructions) a `wasm.call` may burn before it is
    /// stopped (default 2 000 000 000). Connectors are bounded by time instead.
    pub fuel: u64,
    /// Linear memory a guest instance may hold, in MiB (default 128).
    pub memory_mb: usize,
    /// Wall-clock time one call into a guest may take, in milliseconds,
    /// host requests included (default 30 000).
    pub timeout_ms: u64,
    /// Largest WAT module `wasm.call` accepts, in bytes (default 1 MiB).
    pub max_module_bytes: usize,
    /// Largest connector component `connector add` accepts, in MiB (default 64).
    pub max_component_mb: u64,
    /// Wall-clock time one ingest through a connector may take, in seconds
    /// (default 600).
    pub ingest_timeout_s: u64,
    /// Most NDJSON one ingest through a connector may produce, in MiB
    /// (default 4096).
    pub max_output_mb: u64,
    /// Largest single batch a connector may return, in MiB (default 64).
    pub max_batch_mb: u64,
    /// Largest response body a connector's `fetch` receives, in MiB (default 64).
    pub max_fetch_mb: u64,
}

impl Section for WasmConfig {
    const NAME: &'static str = "wasm-host";
}

impl Default for WasmConfig {
    fn default() -> Self {
        WasmConfig {
            fuel: 2_000_000_000,
            memory_mb: 128,
            timeout_ms: 30_000,
            max_module_bytes: 1 << 20,
            max_component_mb: 64,
            ingest_timeout_s: 600,
            max_output_mb: 4096,
            max_batch_mb: 64,
            max_fetch_mb: 64,
        }
    }
}

impl WasmConfig {
    pub fn memory_bytes(&self) -> usize {
        self.memory_mb.saturating_mul(1 << 20)
    }
}
