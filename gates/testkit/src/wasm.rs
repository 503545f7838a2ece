//! WebAssembly guests for the connector tests: the SDK's example and the
//! misbehaving test guests, built once per test process for `wasm32-wasip2`
//! into their own target directory (beside the persistent one), so the
//! host's flags and target never leak into them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The guest crates by short name: `jsonfeed` (the example connector),
/// `hostile` and `other-wit` (test guests).
pub fn crate_dir(name: &str) -> PathBuf {
    // The checkout the tests run from (cargo sets CARGO_MANIFEST_DIR for a
    // test process too), not the one this crate was compiled in: a target
    // directory shared between checkouts keeps the first one's paths.
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let root = start
        .ancestors()
        .find(|d| d.join("gates/guests").is_dir())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    match name {
        "jsonfeed" => root.join("examples/connectors/jsonfeed"),
        other => root.join("gates/guests").join(other),
    }
}

/// Where guests are built: `$HAKIRI_WASM_TARGET_DIR`, else `wasm` under the
/// persistent target directory, else under the system temp directory.
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HAKIRI_WASM_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache/hakiri/target/wasm"),
        None => std::env::temp_dir().join("hakiri-wasm-target"),
    }
}

/// Builds guest `name` (see [`crate_dir`]) and returns its `.wasm`. Panics
/// with cargo's output if it does not build, saying how to add the target
/// when it is missing.
pub fn guest(name: &str) -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let _one_at_a_time = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    let dir = crate_dir(name);
    let target = target_dir();
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("CARGO_")
            || k.starts_with("RUSTFLAGS")
            || k == "RUSTC_WRAPPER"
            || k.starts_with("CC_")
            || k.starts_with("CFLAGS")
        {
            cmd.env_remove(&key);
        }
    }
    let out = cmd
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build guest `{name}`: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let hint =
            if stderr.contains("wasm32-wasip2") && stderr.contains("target may not be installed") {
                "\nadd the target with `rustup target add wasm32-wasip2` (.ci/setup does)"
            } else {
                ""
            };
        panic!("guest `{name}` did not build:\n{stderr}{hint}");
    }
    let file = dir
        .file_name()
        .expect("crate dir")
        .to_string_lossy()
        .replace('-', "_");
    let package = match name {
        "jsonfeed" => "hakiri_connector_jsonfeed".to_string(),
        _ => format!("hakiri_guest_{file}"),
    };
    let wasm = target
        .join("wasm32-wasip2/release")
        .join(format!("{package}.wasm"));
    assert!(
        wasm.is_file(),
        "guest `{name}` built, but {} is missing",
        wasm.display()
    );
    wasm
}
