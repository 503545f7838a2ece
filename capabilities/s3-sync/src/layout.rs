//! Where datasets sit in a bucket, shared by `push`/`pull`, the `s3://`
//! catalog and the part cache: under `s3://bucket/prefix/datasets/<name>/`,
//! `parts/<file>` (immutable), `v<N>.json` (a version's manifest) and
//! `latest.json` (the manifest readers follow, written last).

use crate::S3Config;
use anyhow::{bail, Context as _};
use hakiri_data_api::DatasetEntry;
use hakiri_kernel::Context;
use object_store::path::Path;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};

/// `s3://bucket/prefix`, or `[s3-sync] bucket` and `prefix`.
#[derive(Debug, Clone)]
pub struct Target {
    pub bucket: String,
    pub prefix: String,
}

impl Target {
    pub fn resolve(ctx: &Context, url: Option<&str>) -> anyhow::Result<Target> {
        if let Some(url) = url {
            return Target::parse(url);
        }
        let cfg = ctx.section::<S3Config>();
        let bucket = cfg
            .bucket
            .clone()
            .context("no bucket: pass s3://bucket/prefix, or set [s3-sync] bucket (and prefix)")?;
        Ok(Target {
            bucket,
            prefix: cfg.prefix.trim_matches('/').into(),
        })
    }

    /// `s3://bucket[/prefix]`.
    pub fn parse(url: &str) -> anyhow::Result<Target> {
        let rest = url
            .strip_prefix("s3://")
            .with_context(|| format!("`{url}`: expected s3://bucket[/prefix]"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            bail!("`{url}`: expected s3://bucket[/prefix]");
        }
        Ok(Target {
            bucket: bucket.into(),
            prefix: prefix.trim_matches('/').into(),
        })
    }

    pub fn key(&self, rest: &str) -> Path {
        Path::from(if self.prefix.is_empty() {
            rest.to_string()
        } else {
            format!("{}/{rest}", self.prefix)
        })
    }

    pub fn url(&self, rest: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(rest))
    }

    /// The datasets pushed under this target (by their directories).
    pub async fn dataset_names(&self, store: &dyn ObjectStore) -> anyhow::Result<Vec<String>> {
        let listed = store
            .list_with_delimiter(Some(&self.key("datasets")))
            .await
            .s3(|| format!("cannot list {}", self.url("datasets")))?;
        let mut names: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// The key of dataset `name`'s manifest for `version` (`None`: latest.json).
    pub fn manifest(&self, name: &str, version: Option<u64>) -> Path {
        match version {
            Some(v) => self.key(&format!("datasets/{name}/v{v}.json")),
            None => self.key(&format!("datasets/{name}/latest.json")),
        }
    }
}

/// One pushed version: its catalog entry (whose `location` is the parts'
/// `s3://…/parts` prefix) and its parts.
#[derive(Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub entry: DatasetEntry,
    pub parts: Vec<Part>,
}

#[derive(Serialize, Deserialize)]
pub struct Part {
    pub file: String,
    pub size: u64,
    /// Hex SHA-256 of the part's bytes (absent in manifests pushed before
    /// parts were named by content); the part cache checks it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// Hex SHA-256 of a file's bytes, read in 1 MiB blocks.
pub fn sha256_file(path: &std::path::Path) -> anyhow::Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = sha2::Sha256::new();
    let mut block = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut block)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&block[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Manifests by the URL of their version (`…/v<N>.json`). Versions are
/// immutable, so what the catalog read as `latest.json` serves the part
/// cache without a second request. Per kernel; bounded.
#[derive(Default)]
pub struct Manifests(std::sync::Mutex<std::collections::HashMap<String, bytes::Bytes>>);

impl Manifests {
    const MOST: usize = 1024;

    pub fn get(&self, url: &str) -> Option<bytes::Bytes> {
        self.0.lock().ok()?.get(url).cloned()
    }

    pub fn put(&self, url: String, bytes: bytes::Bytes) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= Self::MOST {
                map.clear();
            }
            map.insert(url, bytes);
        }
    }
}

impl Manifest {
    pub fn parse(bytes: &[u8], url: &str) -> anyhow::Result<Manifest> {
        serde_json::from_slice(bytes)
            .with_context(|| format!("{url} is not a Hakiri manifest (written by `hakiri push`)"))
    }
}

/// `object_store` results with short errors: what was being done, then the
/// server's code and message (`NoSuchBucket: The specified bucket does not
/// exist`), not the whole request and XML body, repeated per retry.
pub trait S3Result<T> {
    fn s3(self, doing: impl FnOnce() -> String) -> anyhow::Result<T>;
}

impl<T> S3Result<T> for Result<T, object_store::Error> {
    fn s3(self, doing: impl FnOnce() -> String) -> anyhow::Result<T> {
        self.map_err(|e| anyhow::anyhow!("{}: {}", doing(), short(&e)))
    }
}

fn short(e: &object_store::Error) -> String {
    if let object_store::Error::NotFound { .. } = e {
        return "not found".into();
    }
    short_text(&e.to_string())
}

/// The server's `Code: Message` out of an error's text (object_store errors
/// also reach us wrapped in `std::io::Error`s, from the buffered writer).
pub fn short_text(text: &str) -> String {
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find("</")? + start;
        Some(text[start..end].to_string())
    };
    match (tag("Code"), tag("Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code,
        _ => {
            let first = text.lines().next().unwrap_or_default();
            first.chars().take(300).collect()
        }
    }
}
