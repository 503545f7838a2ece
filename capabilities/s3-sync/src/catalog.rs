//! `[catalog] url = "s3://bucket/prefix"`: the datasets `hakiri push`
//! published there, read from their manifests. Read-only: it is how a
//! Lambda (or any reader) sees a bucket, while writers ingest into their own
//! home and push. An entry's `location` is its version's manifest, which
//! the part cache ([`crate::cache`]) turns into local files on demand.

use crate::layout::{Manifest, Manifests, S3Result, Target};
use futures::{StreamExt, TryStreamExt};
use hakiri_data_api::{Catalog, CatalogBackend, DatasetEntry};
use hakiri_kernel::{BoxFuture, Context};
use object_store::ObjectStore;
use std::sync::Arc;

pub struct S3CatalogBackend;

impl CatalogBackend for S3CatalogBackend {
    fn open<'a>(
        &'a self,
        url: &'a str,
        ctx: &'a Context,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn Catalog>>> {
        Box::pin(async move {
            // Bare `s3://`: the bucket and prefix of `[s3-sync]`.
            let target = match url.trim_end_matches('/') {
                "s3:" => Target::resolve(ctx, None)?,
                _ => Target::parse(url)?,
            };
            let store = crate::bucket_store(ctx, &target.bucket)?;
            Ok(Box::new(S3Catalog {
                target,
                store,
                manifests: ctx.state::<Manifests>(),
            }) as Box<dyn Catalog>)
        })
    }
}

struct S3Catalog {
    target: Target,
    store: Arc<dyn ObjectStore>,
    manifests: Option<Arc<Manifests>>,
}

impl S3Catalog {
    /// Dataset `name`'s latest pushed version, its location its manifest.
    async fn latest(&self, name: &str) -> anyhow::Result<Option<DatasetEntry>> {
        let key = self.target.manifest(name, None);
        let url = format!("s3://{}/{key}", self.target.bucket);
        let bytes = match self.store.get(&key).await {
            Ok(got) => got.bytes().await.s3(|| format!("reading {url}"))?,
            Err(object_store::Error::NotFound { .. }) => {
                // A missing bucket answers 404 as well: say so, rather than
                // that the dataset does not exist (listing tells them apart).
                self.target.dataset_names(self.store.as_ref()).await?;
                return Ok(None);
            }
            Err(e) => return Err(e).s3(|| format!("cannot read {url}")),
        };
        let mut entry = Manifest::parse(&bytes, &url)?.entry;
        entry.location = self
            .target
            .url(&format!("datasets/{name}/v{}.json", entry.version));
        if let Some(m) = &self.manifests {
            m.put(entry.location.clone(), bytes);
        }
        Ok(Some(entry))
    }

    fn read_only(&self) -> anyhow::Error {
        anyhow::anyhow!(
            "the catalog at {} is read-only: it shows what `hakiri push` published there; ingest into a local home and push, or use a sqlite://, postgres:// or dynamodb:// catalog to write",
            self.target.url("")
        )
    }
}

impl Catalog for S3Catalog {
    fn list(&self) -> BoxFuture<'_, anyhow::Result<Vec<DatasetEntry>>> {
        Box::pin(async move {
            let names = self.target.dataset_names(self.store.as_ref()).await?;
            // A dataset whose first push is still under way has no latest.json yet.
            let found: Vec<Option<DatasetEntry>> = futures::stream::iter(names)
                .map(|n| async move { self.latest(&n).await })
                .buffered(16)
                .try_collect()
                .await?;
            Ok(found.into_iter().flatten().collect())
        })
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, anyhow::Result<Option<DatasetEntry>>> {
        Box::pin(async move {
            if name.is_empty() || name.contains('/') {
                return Ok(None);
            }
            self.latest(name).await
        })
    }

    fn lists_cheaply(&self) -> bool {
        false // a request per dataset
    }

    fn publish(&self, _entry: DatasetEntry) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move { Err(self.read_only()) })
    }

    fn remove<'a>(&'a self, _name: &'a str) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move { Err(self.read_only()) })
    }
}
