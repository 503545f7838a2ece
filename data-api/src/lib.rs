//! The data path's vocabulary, shared by the capabilities that speak it:
//! catalog backends (chosen by URL scheme), connectors (chosen by source),
//! and the dataset entries a catalog records. This crate registers nothing
//! and wraps no library; the kernel never sees these names, only the
//! [`ExtensionPoint`]s declared here.
//!
//! A capability provides an implementation with
//! `r.provide::<dyn CatalogBackend>("sqlite", Arc::new(Backend))?` and the
//! data path finds it with [`open_catalog`] / [`open_source`].

pub mod dataset_files;
pub mod retrieval;

use hakiri_kernel::{BoxFuture, Context, ExtensionPoint, Section, ToolError};
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
    /// What the data is, in a sentence or two, for people and agents
    /// (`ingest --description`); later versions keep it unless given anew.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl DatasetEntry {
    /// Parses the schema JSON a catalog stored for `name`; a corrupt value is
    /// an error naming the dataset, never a silent `null`.
    pub fn parse_schema(name: &str, text: &str) -> anyhow::Result<serde_json::Value> {
        serde_json::from_str(text).map_err(|e| {
            anyhow::anyhow!(
                "catalog entry for dataset `{name}` has an unreadable schema ({e}); re-ingest it or drop it with `hakiri drop {name}`"
            )
        })
    }
}

/// A catalog backend, provided under a URL scheme (`sqlite`, `postgres`).
pub trait CatalogBackend: Send + Sync {
    /// Opens the catalog at `url` (whose scheme selected this backend).
    fn open<'a>(
        &'a self,
        url: &'a str,
        ctx: &'a Context,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn Catalog>>>;
}

impl ExtensionPoint for dyn CatalogBackend {
    const NAME: &'static str = "catalog";
}

/// An open catalog. `publish` must switch a dataset to its new version atomically.
/// A catalog: what datasets exist, at which version, where. Every backend
/// passes [`conformance::check`].
pub trait Catalog: Send + Sync {
    /// Every dataset, ordered by name.
    fn list(&self) -> BoxFuture<'_, anyhow::Result<Vec<DatasetEntry>>>;
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, anyhow::Result<Option<DatasetEntry>>>;
    /// Publishes `entry` if the catalog still holds the version before it
    /// (`entry.version - 1`, or nothing for version 1): optimistic
    /// concurrency, so of two writers racing for one dataset exactly one
    /// wins and the other gets [`conflict`]'s error.
    fn publish(&self, entry: DatasetEntry) -> BoxFuture<'_, anyhow::Result<()>>;
    fn remove<'a>(&'a self, name: &'a str) -> BoxFuture<'a, anyhow::Result<bool>>;
    /// Takes the single-writer lock on `name` across every process sharing
    /// this catalog, until [`WriterLock::release`] (or a drop). A catalog
    /// that cannot (a local file) returns `None`: the local lock is all.
    /// While it is held, this catalog's `publish` of `name` is fenced by it.
    fn lock<'a>(
        &'a self,
        _name: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Option<Box<dyn WriterLock>>>> {
        Box::pin(async { Ok(None) })
    }
    /// Whether listing costs about as much as one lookup. A catalog for which
    /// it does not (one request per dataset, as on S3) is asked by name
    /// only for the datasets a query names.
    fn lists_cheaply(&self) -> bool {
        true
    }
}

/// A dataset's writer lock, held across processes (a lease on the
/// coordinators). Dropping it gives it back in the background.
pub trait WriterLock: Send + Sync {
    /// Gives it back now, so the next writer need not wait for it to expire.
    fn release(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// Releases `lock`, if any.
pub async fn release(lock: Option<Box<dyn WriterLock>>) {
    if let Some(l) = lock {
        l.release().await;
    }
}

/// The error of a publish that lost a race: `found` is the version the
/// catalog holds now (`None`: no entry).
pub fn conflict(name: &str, expected: u64, found: Option<u64>) -> anyhow::Error {
    let had = |v: Option<u64>| v.map_or("no version".to_string(), |v| format!("version {v}"));
    anyhow::anyhow!(
        "dataset `{name}` changed while this version was written: expected {} in the catalog, found {}; another writer published meanwhile, retry",
        had((expected > 0).then_some(expected)),
        had(found)
    )
}

pub mod conformance;

pub type SourceReader = Box<dyn std::io::Read + Send>;

/// A connector, provided under a source kind (`file`, `http`).
pub trait Connector: Send + Sync {
    /// Whether this connector reads `source` (a path, URL, `-`, …). `ctx`
    /// is there for connectors installed at run time (WASM ones), whose
    /// schemes live under the home.
    fn accepts(&self, source: &str, ctx: &Context) -> bool;
    /// The format `open` yields when the connector decides it rather than
    /// the source's name (`ndjson` for a WASM connector's records).
    fn yields(&self, _source: &str, _ctx: &Context) -> Option<&'static str> {
        None
    }
    /// Opens `source` for reading.
    fn open<'a>(
        &'a self,
        source: &'a str,
        ctx: &'a Context,
    ) -> BoxFuture<'a, anyhow::Result<SourceReader>>;
    /// The sources a pattern stands for (default: `source` itself).
    fn expand<'a>(
        &'a self,
        source: &'a str,
        _ctx: &'a Context,
    ) -> BoxFuture<'a, anyhow::Result<Vec<String>>> {
        Box::pin(async move { Ok(vec![source.to_string()]) })
    }
}

impl ExtensionPoint for dyn Connector {
    const NAME: &'static str = "connector";
}

/// Every source `source` stands for: the connector's expansion of a pattern
/// (`s3://bucket/logs/*.csv`), or `source` itself.
pub async fn expand_source(ctx: &Context, source: &str) -> anyhow::Result<Vec<String>> {
    for (_, connector) in ctx.all::<dyn Connector>() {
        if connector.accepts(source, ctx) {
            return connector.expand(source, ctx).await;
        }
    }
    Ok(vec![source.to_string()])
}

/// A [`SourceReader`] fed by an async task: the task sends chunks (or an
/// error, which ends the read) and the reader blocks on them. Read it from
/// a blocking thread, never from async code. `capacity` chunks are buffered.
pub fn chunk_channel(
    capacity: usize,
) -> (
    tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>,
    SourceReader,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(capacity);
    (
        tx,
        Box::new(ChannelReader {
            rx,
            buf: Vec::new(),
            pos: 0,
        }),
    )
}

struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    pos: usize,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.buf = chunk?;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// `[catalog]`: where the catalog lives. Registered by every capability that
/// opens it (`r.config::<CatalogConfig>()`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// Catalog URL; its scheme picks the backend (`sqlite://`, `postgres://…`).
    #[serde(default = "default_url")]
    pub url: String,
}

/// SQLite under `data_dir`.
pub const DEFAULT_CATALOG: &str = "sqlite://";

fn default_url() -> String {
    DEFAULT_CATALOG.to_string()
}

impl Default for CatalogConfig {
    fn default() -> Self {
        CatalogConfig { url: default_url() }
    }
}

impl Section for CatalogConfig {
    const NAME: &'static str = "catalog";
}

/// Opens the configured catalog through the backend provided for its scheme.
pub async fn open_catalog(ctx: &Context) -> anyhow::Result<Box<dyn Catalog>> {
    let url = ctx.section::<CatalogConfig>().url.clone();
    let scheme = url.split(':').next().unwrap_or_default();
    let backend = ctx
        .require::<dyn CatalogBackend>(scheme)
        .map_err(|e| anyhow::anyhow!("catalog `{}`: {e}", redact(&url)))?;
    backend.open(&url, ctx).await
}

/// A source opened by a connector.
pub struct OpenedSource {
    /// The connector's kind (`file`, `http`, `wasm`).
    pub kind: String,
    /// The format the connector yields, when it decides it ([`Connector::yields`]).
    pub format: Option<&'static str>,
    pub reader: SourceReader,
}

/// Opens `source` with the first connector (in kind order) that accepts it.
pub async fn open_source(ctx: &Context, source: &str) -> anyhow::Result<OpenedSource> {
    let connectors = ctx.all::<dyn Connector>();
    let Some((kind, connector)) = connectors.iter().find(|(_, c)| c.accepts(source, ctx)) else {
        let kinds: Vec<&str> = connectors.iter().map(|(k, _)| *k).collect();
        anyhow::bail!(
            "no connector reads `{source}`; connectors in this binary: {}",
            kinds.join(", ")
        );
    };
    Ok(OpenedSource {
        kind: kind.to_string(),
        format: connector.yields(source, ctx),
        reader: connector.open(source, ctx).await?,
    })
}

/// Whether a connector in this binary (or installed under its home) reads `source`.
pub fn readable(ctx: &Context, source: &str) -> bool {
    ctx.all::<dyn Connector>()
        .iter()
        .any(|(_, c)| c.accepts(source, ctx))
}

/// Something derived from a dataset's version (its indexes), built into the
/// new version's directory before that version is published: a version and
/// what is derived from it appear together, and a build that fails stops
/// the publish, leaving the previous version served.
pub trait VersionBuilder: Send + Sync {
    /// Builds into `dir` (the unpublished version: its `*.parquet` files)
    /// whatever `dataset` is configured to have.
    fn build<'a>(
        &'a self,
        ctx: &'a Context,
        dataset: &'a str,
        dir: &'a std::path::Path,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}

impl ExtensionPoint for dyn VersionBuilder {
    const NAME: &'static str = "version-builder";
}

/// Runs every [`VersionBuilder`] over a new version before it is published.
pub async fn build_derived(
    ctx: &Context,
    dataset: &str,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    for (_, builder) in ctx.all::<dyn VersionBuilder>() {
        builder.build(ctx, dataset, dir).await?;
    }
    Ok(())
}

/// What a capability knows about a dataset that listings should show (its
/// refresh schedule, its indexes, …): `hakiri datasets` and `datasets.list`
/// add each provider's answer under the provider's name.
pub trait DatasetStatus: Send + Sync {
    fn status(&self, ctx: &Context, dataset: &str) -> Option<serde_json::Value>;
}

impl ExtensionPoint for dyn DatasetStatus {
    const NAME: &'static str = "dataset-status";
}

/// Where version `version` of `entry`'s dataset lives while retained:
/// versions sit side by side (`…/<name>/v<N>`), the latest being `entry.location`.
pub fn version_location(entry: &DatasetEntry, version: u64) -> std::path::PathBuf {
    let latest = std::path::Path::new(&entry.location);
    latest
        .parent()
        .unwrap_or(latest)
        .join(format!("v{version}"))
}

/// A dataset whose `location` is remote (an `s3://…` manifest) brought to
/// local Parquet files: only the parts missing from a bounded local cache
/// are fetched, so a Lambda hydrates what a query names and nothing else.
pub trait Hydrate: Send + Sync {
    /// Whether this provider fetches datasets stored at `location`.
    fn accepts(&self, location: &str) -> bool;
    /// Local files of `entry` at `version` (`None`: its latest).
    fn local<'a>(
        &'a self,
        ctx: &'a Context,
        entry: &'a DatasetEntry,
        version: Option<u64>,
    ) -> BoxFuture<'a, anyhow::Result<LocalCopy>>;
}

impl ExtensionPoint for dyn Hydrate {
    const NAME: &'static str = "hydrate";
}

/// Where a remote dataset's parts sit locally.
#[derive(Debug, Clone)]
pub struct LocalCopy {
    /// The directory holding `files` (what the SQL sandbox may read).
    pub dir: std::path::PathBuf,
    pub files: Vec<std::path::PathBuf>,
    /// The version these files are.
    pub version: u64,
    /// Set when the latest version was unusable and an older one is served.
    pub warning: Option<String>,
}

/// The provider that fetches datasets at `location`, if it is remote.
pub fn hydrator(ctx: &Context, location: &str) -> Option<std::sync::Arc<dyn Hydrate>> {
    ctx.all::<dyn Hydrate>()
        .into_iter()
        .find(|(_, h)| h.accepts(location))
        .map(|(_, h)| h)
}

/// The resource kind tokens grant datasets under (`hakiri auth token --dataset`).
pub const DATASET: &str = "dataset";

/// Whether the caller may read (or, with `write`, change) dataset `name`:
/// tools call this for every dataset a call touches.
pub async fn authorize_dataset(ctx: &Context, name: &str, write: bool) -> Result<(), ToolError> {
    ctx.authorize_resource(DATASET, name, write).await
}

/// Whether `location` can be dataset `name`'s: every layout keeps a
/// dataset's files under a `datasets/<name>/` directory or prefix
/// (`<home>/datasets/<name>/v3`, `s3://b/p/datasets/<name>/parts`), so the
/// location must be an absolute path or a URL with those two segments and
/// something below them, and no `..` segment. A catalog others can write
/// (the coordinators') is checked with it on both ends, so an entry naming
/// another dataset's files, or the host's, is refused whatever it says: a
/// location becomes a directory the SQL sandbox lets queries read.
pub fn check_location(name: &str, location: &str) -> Result<(), String> {
    let refuse = |why: &str| {
        Err(format!(
            "the catalog's entry for dataset `{name}` points at {location:?}, {why}; it was refused (re-publish the dataset, or drop it)"
        ))
    };
    if location.contains('\0') || location.split(['/', '\\']).any(|s| s == "..") {
        return refuse("which climbs out of its directory");
    }
    let path: Vec<&str> = match location.split_once("://") {
        Some((_, rest)) => rest.split('/').skip(1).collect(),
        None if location.starts_with('/') => location.split('/').collect(),
        None => return refuse("a relative path"),
    };
    if path
        .windows(3)
        .any(|w| w[0] == "datasets" && w[1] == name && !w[2].is_empty())
    {
        Ok(())
    } else {
        refuse(&format!(
            "which is not under a `datasets/{name}/` directory"
        ))
    }
}

/// `url` with any password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s && url[s + 3..at].contains(':') => {
            let user = url[s + 3..at].split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// Query parameters whose values are credentials: API keys, tokens,
/// passwords and the signatures of presigned URLs (S3, GCS, Azure SAS).
const SECRET_PARAMS: [&str; 12] = [
    "key",
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "sig",
    "signature",
    "auth",
    "credential",
    "session",
    "code",
];

/// `sources` (space-separated URLs or paths) as a catalog may keep them for
/// agents to read: no user information (`user:pass@` becomes `***@`) and
/// no value of a credential-like query parameter (`api_key`, `X-Amz-Signature`,
/// `sig`, `token`, ... become `***`). The operator's own configuration keeps
/// the original where a refresh needs it.
pub fn redact_source(sources: &str) -> String {
    sources
        .split(' ')
        .map(redact_one_source)
        .collect::<Vec<_>>()
        .join(" ")
}

fn redact_one_source(source: &str) -> String {
    let Some(scheme_end) = source.find("://") else {
        return source.to_string();
    };
    let (scheme, rest) = source.split_at(scheme_end + 3);
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority_end = before_query.find('/').unwrap_or(before_query.len());
    let (authority, path) = before_query.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_string(),
    };
    let mut out = format!("{scheme}{authority}{path}");
    if let Some(query) = query {
        let (query, fragment) = match query.split_once('#') {
            Some((q, f)) => (q, Some(f)),
            None => (query, None),
        };
        let params: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if secret_param(name) => format!("{name}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
        if let Some(f) = fragment {
            out.push('#');
            out.push_str(f);
        }
    }
    out
}

fn secret_param(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    lower.starts_with("x-amz-") && lower != "x-amz-date" && lower != "x-amz-expires"
        || words.iter().any(|w| {
            SECRET_PARAMS.contains(w) || SECRET_PARAMS.iter().any(|s| w.ends_with(s) && s.len() > 3)
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn locations_belong_to_their_dataset() {
        let ok = |l: &str| super::check_location("sales", l);
        assert!(ok("/srv/hakiri/datasets/sales/v3").is_ok());
        assert!(ok("s3://b/prefix/datasets/sales/parts").is_ok());
        assert!(ok("s3://b/prefix/datasets/sales/v2.json").is_ok());
        for bad in [
            "/srv/hakiri/datasets/hr/v1",
            "/srv/hakiri/datasets/sales",
            "/srv/hakiri/datasets/sales/../hr/v1",
            "/etc",
            "s3://b/prefix/datasets/hr/parts",
            "s3://datasets/sales/x",
            "relative/datasets/sales/v1",
        ] {
            let e = ok(bad).unwrap_err();
            assert!(
                e.contains("dataset `sales`") && e.contains("refused"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn sources_keep_no_credentials() {
        let r = super::redact_source;
        assert_eq!(
            r("http://alice:s3cr3t@host/data.csv?api_key=KEY123&day=2"),
            "http://***@host/data.csv?api_key=***&day=2"
        );
        assert_eq!(
            r("https://b.s3.amazonaws.com/x.csv?X-Amz-Algorithm=AWS4&X-Amz-Credential=AK%2F1&X-Amz-Date=20260101&X-Amz-Expires=60&X-Amz-Signature=abc&X-Amz-Security-Token=t"),
            "https://b.s3.amazonaws.com/x.csv?X-Amz-Algorithm=***&X-Amz-Credential=***&X-Amz-Date=20260101&X-Amz-Expires=60&X-Amz-Signature=***&X-Amz-Security-Token=***"
        );
        assert_eq!(
            r("https://acct.blob.core.windows.net/c/f.csv?sv=2022&sig=ZZZ&accessToken=q"),
            "https://acct.blob.core.windows.net/c/f.csv?sv=2022&sig=***&accessToken=***"
        );
        assert_eq!(
            r("/data/sales.csv s3://bucket/datasets/x/parts"),
            "/data/sales.csv s3://bucket/datasets/x/parts"
        );
        assert_eq!(r("https://h/a@b.csv"), "https://h/a@b.csv");
    }

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            super::redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(super::redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact("sqlite://"), "sqlite://");
    }
}
