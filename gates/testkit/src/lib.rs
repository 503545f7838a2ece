//! What the profiles' end-to-end tests share.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `bin args…` with `home` as its Hakiri home, no config file and no stdin.
pub fn run(bin: &str, home: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env("HAKIRI_HOME", home)
        .env_remove("HAKIRI_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"))
}

/// Output bytes as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The capability names in a `capabilities --json` document, in order.
pub fn capability_names(report: &Value) -> Vec<String> {
    report["capabilities"]
        .as_array()
        .expect("a capabilities array")
        .iter()
        .map(|c| c["name"].as_str().expect("a name").to_string())
        .collect()
}
