//! The `coord://` dataset catalog: each dataset is one key,
//! `catalog/datasets/<name>`, holding its entry as JSON; `publish` is a
//! compare-and-swap on that key's version (fenced by the writer's lease when
//! it holds one), so a concurrent publisher gets the catalog's conflict
//! error and never overwrites.

use crate::client::{Coordinators, Put};
use crate::lease::{Lease, Leases};
use crate::ClientConfig;
use hakiri_data_api::{conflict, Catalog, CatalogBackend, DatasetEntry, WriterLock};
use hakiri_kernel::{BoxFuture, Context};
use serde_json::{json, Value};
use std::sync::Arc;

/// Where the catalog's keys live on the coordinators.
pub(crate) const PREFIX: &str = "catalog/datasets/";

pub(crate) struct Backend;

impl CatalogBackend for Backend {
    fn open<'a>(
        &'a self,
        url: &'a str,
        ctx: &'a Context,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn Catalog>>> {
        Box::pin(async move {
            let config = ctx.section::<ClientConfig>();
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

/// The entry stored under dataset `name`'s key, if it is one this daemon
/// may serve: anyone holding a coordinator token could have written it, so
/// its name must be the key's and its files that dataset's own.
fn decode(name: &str, kv: &Value) -> anyhow::Result<DatasetEntry> {
    let text = kv["value"].as_str().unwrap_or_default();
    let entry: DatasetEntry = serde_json::from_str(text).map_err(|e| {
        anyhow::anyhow!(
            "the coordinators' entry for dataset `{name}` is unreadable ({e}); drop it with `hakiri drop {name}`"
        )
    })?;
    anyhow::ensure!(
        entry.name == name,
        "the coordinators' entry for dataset `{name}` names dataset `{}`; it was refused (drop it with `hakiri drop {name}`)",
        entry.name
    );
    hakiri_data_api::check_location(name, &entry.location).map_err(anyhow::Error::msg)?;
    Ok(entry)
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
                // One forged entry must not hide every other dataset.
                match decode(&k[PREFIX.len()..], &kv) {
                    Ok(entry) => out.push(entry),
                    Err(e) => eprintln!("hakiri: warning: {e:#}"),
                }
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
