//! `catalog-coord`: the dataset catalog on a cluster of coordinators
//! (`coord://c1:7979,c2:7979,c3:7979`), so several daemons share one view of
//! their datasets. A thin client of the coordinators' HTTP API: each
//! dataset is one key, `catalog/datasets/<name>`, holding its entry as JSON;
//! `publish` is a compare-and-swap on that key's version, so a concurrent
//! publisher gets the catalog's conflict error and never overwrites.
//!
//! Any coordinator answers (followers forward to the leader); a request
//! that finds one down or leaderless tries the next. The dataset's files
//! live on shared storage; the entry says where.

mod client;
mod lease;

use client::{Coordinators, Put};
use hakiri_data_api::{conflict, Catalog, CatalogBackend, CatalogConfig, DatasetEntry, WriterLock};
use hakiri_kernel::{BoxFuture, CheckOutcome, Context, KernelError, Registrar, Section};
use lease::{Lease, Leases};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

hakiri_kernel::capability!(register);

/// Where the catalog's keys live on the coordinators.
const PREFIX: &str = "catalog/datasets/";

/// `[catalog-coord]` in hakiri.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoordCatalogConfig {
    /// The environment variable holding a coordinator API token (one minted
    /// with `hakiri-coord auth token --tool 'kv.*'`); unset: no token, for
    /// coordinators serving with `[coord-api] auth = "none"` on loopback.
    pub token_env: String,
    /// How long one request may take, in milliseconds.
    pub timeout_ms: u64,
    /// A writer's lease on a dataset lasts this long without renewal (it is
    /// renewed every third of it): how long a crashed writer blocks others.
    pub lease_ttl_ms: u64,
}

impl Default for CoordCatalogConfig {
    fn default() -> Self {
        CoordCatalogConfig {
            token_env: "HAKIRI_COORD_TOKEN".into(),
            timeout_ms: 30_000,
            lease_ttl_ms: 15_000,
        }
    }
}

impl Section for CoordCatalogConfig {
    const NAME: &'static str = "catalog-coord";
}

fn register(r: &mut Registrar) -> Result<(), KernelError> {
    r.config::<CoordCatalogConfig>()?;
    r.config::<CatalogConfig>()?;
    r.provide::<dyn CatalogBackend>("coord", Arc::new(Backend))?;
    r.check(|ctx| async move { self_check(&ctx).await });
    Ok(())
}

struct Backend;

impl CatalogBackend for Backend {
    fn open<'a>(
        &'a self,
        url: &'a str,
        ctx: &'a Context,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn Catalog>>> {
        Box::pin(async move {
            let config = ctx.section::<CoordCatalogConfig>();
            let coords = Arc::new(Coordinators::parse(url, &config)?);
            let leases = Leases::new(coords.clone(), config.lease_ttl_ms);
            Ok(Box::new(CoordCatalog { coords, leases }) as Box<dyn Catalog>)
        })
    }
}

struct CoordCatalog {
    coords: Arc<Coordinators>,
    /// The writer leases this catalog holds: its publishes are fenced by them.
    leases: Leases,
}

fn key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

fn decode(name: &str, kv: &Value) -> anyhow::Result<DatasetEntry> {
    let text = kv["value"].as_str().unwrap_or_default();
    serde_json::from_str(text).map_err(|e| {
        anyhow::anyhow!(
            "the coordinators' entry for dataset `{name}` is unreadable ({e}); drop it with `hakiri drop {name}`"
        )
    })
}

impl CoordCatalog {
    /// The entry and its key's version (0: absent).
    async fn current(&self, name: &str) -> anyhow::Result<(u64, Option<DatasetEntry>)> {
        match self.coords.get(&key(name)).await? {
            None => Ok((0, None)),
            Some(kv) => Ok((
                kv["version"].as_u64().unwrap_or(0),
                Some(decode(name, &kv)?),
            )),
        }
    }
}

impl Catalog for CoordCatalog {
    fn list(&self) -> BoxFuture<'_, anyhow::Result<Vec<DatasetEntry>>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for (k, kv) in self.coords.list(PREFIX).await? {
                out.push(decode(&k[PREFIX.len()..], &kv)?);
            }
            Ok(out)
        })
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, anyhow::Result<Option<DatasetEntry>>> {
        Box::pin(async move { Ok(self.current(name).await?.1) })
    }

    fn publish(&self, entry: DatasetEntry) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let name = entry.name.clone();
            let expected = entry.version.saturating_sub(1);
            let (at, current) = self.current(&name).await?;
            let found = current.as_ref().map(|e| e.version);
            if found != (expected > 0).then_some(expected) {
                // A retry whose first attempt landed finds its own entry.
                return if current.as_ref() == Some(&entry) {
                    Ok(())
                } else {
                    Err(conflict(&name, expected, found))
                };
            }
            let value = serde_json::to_string(&entry)?;
            let mut body = json!({ "value": value, "expect_version": at });
            if let Some(fence) = self.leases.fence(&name) {
                body["lease"] = fence;
            }
            match self.coords.put(&key(&name), &body).await? {
                Put::Applied => return Ok(()),
                Put::Refused(why) if why.contains("lease") => anyhow::bail!(
                    "this writer lost its lease on dataset `{name}` ({why}): another writer took it over; nothing was published, retry"
                ),
                Put::Refused(_) => {}
            }
            // Lost the compare-and-swap: to a rival, or to our own earlier attempt.
            let (_, now) = self.current(&name).await?;
            if now.as_ref() == Some(&entry) {
                Ok(())
            } else {
                Err(conflict(&name, expected, now.map(|e| e.version)))
            }
        })
    }

    fn remove<'a>(&'a self, name: &'a str) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move { self.coords.delete(&key(name)).await })
    }

    fn lock<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Option<Box<dyn WriterLock>>>> {
        Box::pin(async move {
            let lease: Lease = self.leases.acquire(name).await?;
            Ok(Some(Box::new(lease) as Box<dyn WriterLock>))
        })
    }
}

/// With `[catalog] url = "coord://…"`: runs the catalog conformance checks'
/// basic round trip against the coordinators.
async fn self_check(ctx: &Context) -> anyhow::Result<CheckOutcome> {
    let url = ctx.section::<CatalogConfig>().url.clone();
    if !url.starts_with("coord://") {
        return Ok(CheckOutcome::Skipped(
            "no coord:// catalog configured ([catalog] url = \"coord://host:7979,…\")".into(),
        ));
    }
    let config = ctx.section::<CoordCatalogConfig>();
    let coords = Coordinators::parse(&url, &config)?;
    let n = coords.list(PREFIX).await?.len();
    Ok(CheckOutcome::Ok(format!(
        "listed {n} dataset(s) on the coordinators at {url}"
    )))
}
