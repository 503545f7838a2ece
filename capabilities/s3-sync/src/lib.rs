//! `s3-sync`: object storage on S3 or any S3-compatible server.

use anyhow::Context as _;
use futures::TryStreamExt;
use hakiri_kernel::{CheckOutcome, Context, KernelError, Registrar, Section, Tool};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

mod cache;
mod catalog;
mod layout;
mod push;
mod source;

hakiri_kernel::capability!(register);

/// `[s3-sync]` in hakiri.toml. Unset fields fall back to the AWS chain:
/// environment, shared profile files, web identity, ECS and EC2 roles.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub bucket: Option<String>,
    /// Key prefix under which Hakiri writes.
    #[serde(default)]
    pub prefix: String,
    pub region: Option<String>,
    /// For S3-compatible servers, e.g. "http://127.0.0.1:9000".
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Allow plain-HTTP endpoints (local servers).
    #[serde(default)]
    pub allow_http: bool,
    /// `s3://bucket/prefix/` URLs remote callers (MCP, Lambda) may ingest
    /// from; the CLI user reads any bucket their credentials reach.
    #[serde(default)]
    pub read_prefixes: Vec<String>,
    /// Where parts of datasets read from an `s3://` catalog are cached
    /// (default: `<data_dir>/cache/s3`).
    pub cache_dir: Option<std::path::PathBuf>,
    /// Most bytes the part cache keeps; least recently used parts are
    /// deleted first (default 400000000, within Lambda's 512 MB `/tmp`).
    pub cache_max_bytes: Option<u64>,
}

impl Section for S3Config {
    const NAME: &'static str = "s3-sync";
}

fn register(r: &mut Registrar) -> Result<(), KernelError> {
    r.config::<S3Config>()?;
    r.provide::<dyn hakiri_data_api::Connector>("s3", std::sync::Arc::new(source::S3Connector))?;
    r.provide::<dyn hakiri_data_api::CatalogBackend>(
        "s3",
        std::sync::Arc::new(catalog::S3CatalogBackend),
    )?;
    r.provide::<dyn hakiri_data_api::Hydrate>("s3", std::sync::Arc::new(cache::S3Hydrate))?;
    r.state(layout::Manifests::default())?;
    r.state(Stores::default())?;
    let datasets = || {
        clap::Arg::new("dataset")
            .num_args(0..)
            .help("Datasets (default: all)")
    };
    r.command(
        clap::Command::new("push")
            .about("Copy datasets' latest versions to S3: new parts first, the manifest last")
            .arg(datasets())
            .arg(
                clap::Arg::new("to")
                    .long("to")
                    .value_name("s3://bucket/prefix")
                    .help("Default: [s3-sync] bucket and prefix"),
            )
            .arg(
                clap::Arg::new("dry-run")
                    .long("dry-run")
                    .action(clap::ArgAction::SetTrue)
                    .help("Say what would be uploaded"),
            ),
        hakiri_kernel::Acts::Operator,
        |m, ctx| async move {
            let target =
                layout::Target::resolve(&ctx, m.get_one::<String>("to").map(String::as_str))?;
            push::push(&ctx, &target, &named(&m), m.get_flag("dry-run")).await?;
            Ok(std::process::ExitCode::SUCCESS)
        },
    )?;
    r.command(
        clap::Command::new("pull")
            .about("Bring datasets pushed to S3 into this home (their latest pushed versions)")
            .arg(datasets())
            .arg(
                clap::Arg::new("from")
                    .long("from")
                    .value_name("s3://bucket/prefix")
                    .help("Default: [s3-sync] bucket and prefix"),
            ),
        hakiri_kernel::Acts::Operator,
        |m, ctx| async move {
            let target =
                layout::Target::resolve(&ctx, m.get_one::<String>("from").map(String::as_str))?;
            push::pull(&ctx, &target, &named(&m)).await?;
            Ok(std::process::ExitCode::SUCCESS)
        },
    )?;
    r.tool(Tool::typed(
        "s3.list",
        "List objects under a prefix in the configured S3 bucket (with a token: only the objects of datasets it grants)",
        |input: ListInput, ctx| async move { Ok(list(&ctx, &input.prefix).await?) },
    ))?;
    r.check(|ctx| async move { self_check(&ctx).await });
    Ok(())
}

/// The datasets a `push`/`pull` names (none: all).
fn named(m: &clap::ArgMatches) -> Vec<String> {
    m.get_many::<String>("dataset")
        .map(|v| v.cloned().collect())
        .unwrap_or_default()
}

/// The configured bucket as an object store, or `None` when no bucket is set.
pub fn store(ctx: &Context) -> anyhow::Result<Option<(Arc<dyn ObjectStore>, S3Config)>> {
    let cfg = S3Config::clone(&ctx.section::<S3Config>());
    let Some(bucket) = cfg.bucket.clone() else {
        return Ok(None);
    };
    Ok(Some((bucket_store(ctx, &bucket)?, cfg)))
}

/// Clients built once per bucket and kernel: building one loads the TLS
/// roots, which would otherwise cost every query tens of milliseconds.
#[derive(Default)]
struct Stores(std::sync::Mutex<std::collections::HashMap<String, Arc<dyn ObjectStore>>>);

/// The client for `bucket`, per [`build`], reused across calls.
pub(crate) fn bucket_store(ctx: &Context, bucket: &str) -> anyhow::Result<Arc<dyn ObjectStore>> {
    let stores = ctx.state::<Stores>();
    if let Some(found) = stores
        .as_ref()
        .and_then(|s| s.0.lock().ok()?.get(bucket).cloned())
    {
        return Ok(found);
    }
    let store: Arc<dyn ObjectStore> = Arc::from(build(&ctx.section::<S3Config>(), bucket)?);
    if let Some(Ok(mut map)) = stores.as_ref().map(|s| s.0.lock()) {
        map.insert(bucket.to_string(), store.clone());
    }
    Ok(store)
}

/// `bucket` with `[s3-sync]`'s endpoint, region and keys, else the AWS
/// chain ([`hakiri_aws`]).
pub(crate) fn build(cfg: &S3Config, bucket: &str) -> anyhow::Result<Box<dyn ObjectStore>> {
    let settings = hakiri_aws::Settings {
        region: cfg.region.clone(),
        endpoint: cfg.endpoint.clone(),
        access_key_id: cfg.access_key_id.clone(),
        secret_access_key: cfg.secret_access_key.clone(),
        allow_http: cfg.allow_http,
    };
    let s = hakiri_aws::s3(&settings, bucket)
        .and_then(|b| Ok(b.build()?))
        .with_context(|| format!("invalid [s3-sync] settings for bucket `{bucket}`"))?;
    Ok(Box::new(s))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListInput {
    /// Prefix under the configured `[s3-sync] prefix`.
    #[serde(default)]
    prefix: String,
}

#[derive(Serialize)]
struct Object {
    key: String,
    size: u64,
    modified: String,
}

async fn list(ctx: &Context, prefix: &str) -> anyhow::Result<Vec<Object>> {
    let (store, cfg) = store(ctx)?.context(
        "no bucket configured; set [s3-sync] bucket (and endpoint for S3-compatible servers)",
    )?;
    let full = join(&cfg.prefix, prefix);
    let path = (!full.is_empty()).then(|| Path::from(full.as_str()));
    let metas: Vec<_> = store
        .list(path.as_ref())
        .try_collect()
        .await
        .context("cannot list the bucket")?;
    // A token sees the objects of the datasets it may read, nothing else:
    // not the other datasets' names, nor whatever else the bucket holds.
    let scoped = ctx.caller().credential().is_some();
    let mut granted: std::collections::HashMap<String, bool> = Default::default();
    let mut out = Vec::new();
    for m in metas {
        let key = m.location.to_string();
        if scoped {
            let Some(dataset) = dataset_of(&cfg.prefix, &key) else {
                continue;
            };
            if !granted.contains_key(dataset) {
                let ok = hakiri_data_api::authorize_dataset(ctx, dataset, false)
                    .await
                    .is_ok();
                granted.insert(dataset.to_string(), ok);
            }
            if !granted[dataset] {
                continue;
            }
        }
        out.push(Object {
            key,
            size: m.size,
            modified: m.last_modified.to_rfc3339(),
        });
    }
    Ok(out)
}

/// The dataset whose object `key` is (`<prefix>/datasets/<name>/…`), if any.
fn dataset_of<'a>(prefix: &str, key: &'a str) -> Option<&'a str> {
    let below = join(prefix, "datasets/");
    let rest = key.strip_prefix(below.as_str())?.strip_prefix('/')?;
    rest.split_once('/').map(|(name, _)| name)
}

fn join(a: &str, b: &str) -> String {
    [a.trim_matches('/'), b.trim_matches('/')]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/")
}

/// Put, get, list and delete one object: always in memory, and against the
/// configured bucket when there is one.
async fn round_trip(store: &dyn ObjectStore, prefix: &str) -> anyhow::Result<()> {
    let key = Path::from(join(
        prefix,
        &format!(".hakiri-check-{}", std::process::id()),
    ));
    let body = b"hakiri self-check".to_vec();
    store
        .put(&key, PutPayload::from(body.clone()))
        .await
        .context("put failed")?;
    let got = store.get(&key).await.context("get failed")?.bytes().await?;
    anyhow::ensure!(got.as_ref() == body.as_slice(), "read back different bytes");
    // list() takes a directory-like prefix, so list the key's parent and find the key in it.
    let parent =
        (!prefix.trim_matches('/').is_empty()).then(|| Path::from(prefix.trim_matches('/')));
    let listed: Vec<_> = store
        .list(parent.as_ref())
        .try_collect()
        .await
        .context("list failed")?;
    anyhow::ensure!(
        listed.iter().any(|m| m.location == key),
        "the object just written was not listed"
    );
    store.delete(&key).await.context("delete failed")?;
    Ok(())
}

async fn self_check(ctx: &Context) -> anyhow::Result<CheckOutcome> {
    round_trip(&InMemory::new(), "")
        .await
        .context("in-memory store")?;
    match store(ctx)? {
        None => Ok(CheckOutcome::Skipped(
            "not configured: set [s3-sync] bucket for a real round trip (in-memory round trip ok)"
                .into(),
        )),
        Some((s, cfg)) => {
            round_trip(s.as_ref(), &cfg.prefix)
                .await
                .with_context(|| format!("bucket {}", cfg.bucket.unwrap_or_default()))?;
            Ok(CheckOutcome::Ok(format!(
                "put/get/list/delete round trip on {}",
                s
            )))
        }
    }
}
