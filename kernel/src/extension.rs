//! Extension points that capabilities fill: catalog backends (chosen by URL
//! scheme) and connectors (chosen by source kind). The traits are deliberately
//! small; the data path grows them.

use crate::registry::Context;
use crate::BoxFuture;
use serde::{Deserialize, Serialize};

/// One dataset as the catalog records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatasetEntry {
    pub name: String,
    pub version: u64,
    /// Where the dataset's files live (a directory or object prefix).
    pub location: String,
    pub source: String,
    pub rows: u64,
    pub bytes: u64,
    /// JSON description of the columns.
    pub schema: serde_json::Value,
    /// RFC 3339 timestamp of the last publish.
    pub updated: String,
}

/// A catalog backend, registered under a URL scheme (`sqlite`, `postgres`, `dynamodb`).
pub trait CatalogBackend: Send + Sync {
    /// Opens the catalog at `url` (whose scheme selected this backend).
    fn open<'a>(
        &'a self,
        url: &'a str,
        ctx: &'a Context,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn Catalog>>>;
}

/// An open catalog. `publish` must switch a dataset to its new version atomically.
pub trait Catalog: Send + Sync {
    fn list(&self) -> BoxFuture<'_, anyhow::Result<Vec<DatasetEntry>>>;
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, anyhow::Result<Option<DatasetEntry>>>;
    fn publish(&self, entry: DatasetEntry) -> BoxFuture<'_, anyhow::Result<()>>;
    fn remove<'a>(&'a self, name: &'a str) -> BoxFuture<'a, anyhow::Result<bool>>;
}

/// Bytes from a source, read sequentially.
pub type SourceReader = Box<dyn std::io::Read + Send>;

/// A connector, registered under a source kind (`file`, `http`).
pub trait Connector: Send + Sync {
    /// Whether this connector reads `source` (a path, URL, `-`, …).
    fn accepts(&self, source: &str) -> bool;
    /// Opens `source` for reading.
    fn open<'a>(
        &'a self,
        source: &'a str,
        ctx: &'a Context,
    ) -> BoxFuture<'a, anyhow::Result<SourceReader>>;
}
