//! Write a Hakiri connector in Rust. Implement [`Guest`] (who the connector
//! is, what it lists, how it opens a source) and [`GuestRecords`] (the next
//! batch of NDJSON records), then `hakiri_connector::export!(YourType);` and
//! build with `cargo build --release --target wasm32-wasip2`. Add the
//! `.wasm` to Hakiri with `hakiri connector add`.
//!
//! The bindings are generated from `wit/connector.wit`, the contract the
//! host checks a connector against (its version is [`WIT_VERSION`]).

wit_bindgen::generate!({
    path: "../../wit",
    world: "connector",
    pub_export_macro: true,
    default_bindings_module: "hakiri_connector",
});

pub use exports::hakiri::connector::source::{Entry, Guest, GuestRecords, Info, Records};
pub use hakiri::connector::host::{self, Level, Request, Response};

/// The `hakiri:connector` version these bindings speak.
pub const WIT_VERSION: &str = "0.1.0";

/// Logs `message` at `level` through the host's log.
pub fn log(level: Level, message: &str) {
    host::log(level, message);
}

/// GETs `url` through the host; a non-2xx status is an error naming it.
pub fn get(url: &str) -> Result<Vec<u8>, String> {
    let response = host::fetch(&Request {
        method: "GET".into(),
        url: url.into(),
        headers: vec![("accept".into(), "application/json".into())],
        body: None,
    })?;
    if !(200..300).contains(&response.status) {
        return Err(format!("GET {url} answered {}", response.status));
    }
    Ok(response.body)
}

/// A setting the operator gave this connector, or `default`.
pub fn config_or(key: &str, default: &str) -> String {
    host::config(key).unwrap_or_else(|| default.to_string())
}
