//! The part cache: a pushed dataset version (its `v<N>.json` manifest) made
//! local by fetching only the parts not already cached, into
//! `[s3-sync] cache_dir`, bounded by `cache_max_bytes` (least recently used
//! parts go first). Parts are immutable, so a cached part is reused across
//! versions and, in Lambda, across warm invocations.

use crate::layout::{Manifest, Manifests, S3Result};
use crate::source::split;
use crate::S3Config;
use anyhow::{bail, Context as _};
use futures::{StreamExt, TryStreamExt};
use hakiri_data_api::{DatasetEntry, Hydrate, LocalCopy};
use hakiri_kernel::{BoxFuture, Context};
use object_store::path::Path;
use object_store::ObjectStore;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;
use tokio::io::AsyncWriteExt;

/// Default ceiling: Lambda's smallest `/tmp` is 512 MB.
const DEFAULT_MAX_BYTES: u64 = 400_000_000;

pub struct S3Hydrate;

/// A manifest names a part the bucket does not hold.
#[derive(Debug, thiserror::Error)]
#[error("part {0} is missing from the bucket")]
struct MissingPart(String);

impl Hydrate for S3Hydrate {
    fn accepts(&self, location: &str) -> bool {
        location.starts_with("s3://") && location.ends_with(".json")
    }

    fn local<'a>(
        &'a self,
        ctx: &'a Context,
        entry: &'a DatasetEntry,
        version: Option<u64>,
    ) -> BoxFuture<'a, anyhow::Result<LocalCopy>> {
        Box::pin(async move {
            let wanted = version.unwrap_or(entry.version);
            if wanted == 0 || wanted > entry.version {
                bail!(
                    "version {wanted} of `{}` does not exist: the latest pushed is {}",
                    entry.name,
                    entry.version
                );
            }
            let cache = Cache::new(ctx);
            let first = match cache.version(entry, wanted).await {
                Ok(copy) => return Ok(copy),
                Err(e) => e,
            };
            // A broken latest version (a part deleted or never uploaded)
            // must not take the dataset down: serve the newest whole one.
            let Some(missing) = first.downcast_ref::<MissingPart>() else {
                return Err(first);
            };
            if version.is_some() {
                return Err(first);
            }
            for older in (1..wanted).rev() {
                if let Ok(mut copy) = cache.version(entry, older).await {
                    let why = format!(
                        "`{}` v{wanted} cannot be read ({missing}); answering from v{older}, the newest complete version",
                        entry.name
                    );
                    eprintln!("hakiri: warning: {why}");
                    copy.warning = Some(why);
                    return Ok(copy);
                }
            }
            Err(first.context(format!("no complete version of `{}` is left", entry.name)))
        })
    }
}

struct Cache {
    root: PathBuf,
    max_bytes: u64,
    ctx: Context,
    manifests: Option<std::sync::Arc<Manifests>>,
}

impl Cache {
    fn new(ctx: &Context) -> Cache {
        let cfg = S3Config::clone(&ctx.section::<S3Config>());
        Cache {
            root: cfg
                .cache_dir
                .clone()
                .unwrap_or_else(|| ctx.config.data_dir.join("cache").join("s3")),
            max_bytes: cfg.cache_max_bytes.unwrap_or(DEFAULT_MAX_BYTES),
            ctx: ctx.clone(),
            manifests: ctx.state::<Manifests>(),
        }
    }

    /// Version `version` of `entry`'s dataset, whose latest manifest is `entry.location`.
    async fn version(&self, entry: &DatasetEntry, version: u64) -> anyhow::Result<LocalCopy> {
        let url = match entry.location.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/v{version}.json"),
            None => bail!("`{}` is not a manifest URL", entry.location),
        };
        let (bucket, key) = split(&url)?;
        let store = crate::bucket_store(&self.ctx, bucket)?;
        let bytes = match self.manifests.as_ref().and_then(|m| m.get(&url)) {
            Some(b) => b,
            None => {
                let b = store
                    .get(&Path::from(key))
                    .await
                    .s3(|| format!("cannot read {url}"))?
                    .bytes()
                    .await
                    .s3(|| format!("reading {url}"))?;
                if let Some(m) = &self.manifests {
                    m.put(url.clone(), b.clone());
                }
                b
            }
        };
        let manifest = Manifest::parse(&bytes, &url)?;
        let total: u64 = manifest.parts.iter().map(|p| p.size).sum();
        if total > self.max_bytes {
            bail!(
                "`{}` v{version} is {total} bytes, more than the part cache holds ([s3-sync] cache_max_bytes = {}); raise it (and Lambda's ephemeral storage)",
                entry.name,
                self.max_bytes
            );
        }
        // Part names come from the bucket: plain file names only, so none
        // lands outside the cache.
        if let Some(bad) = manifest
            .parts
            .iter()
            .find(|p| p.file.is_empty() || p.file.starts_with('.') || p.file.contains(['/', '\\']))
        {
            bail!(
                "{url} names part `{}`, which is not a part file name; push again",
                bad.file
            );
        }
        let (_, parts_key) = split(&manifest.entry.location)?;
        let dir = self.root.join(bucket).join(parts_key);
        tokio::fs::create_dir_all(&dir)
            .await
            .with_context(|| format!("cannot create the part cache {}", dir.display()))?;
        let jobs: Vec<(PathBuf, Path, u64, Option<String>)> = manifest
            .parts
            .iter()
            .map(|p| {
                let key = Path::from(format!("{parts_key}/{}", p.file));
                (dir.join(&p.file), key, p.size, p.sha256.clone())
            })
            .collect();
        let files: Vec<PathBuf> = futures::stream::iter(jobs)
            .map(|(local, key, size, sha256)| {
                let (store, url) = (store.clone(), format!("s3://{bucket}/{key}"));
                async move {
                    let want = Want { size, sha256 };
                    fetch(store.as_ref(), &key, &url, &local, &want).await?;
                    anyhow::Ok(local)
                }
            })
            .buffered(4)
            .try_collect()
            .await?;
        self.evict(&files);
        Ok(LocalCopy {
            dir,
            files,
            version,
            warning: None,
        })
    }

    /// Deletes the least recently used parts outside `keep` until the cache
    /// fits in `max_bytes` again.
    fn evict(&self, keep: &[PathBuf]) {
        let mut all = Vec::new();
        collect(&self.root, &mut all);
        let mut total: u64 = all.iter().map(|(_, len, _)| len).sum();
        all.sort_by_key(|(_, _, used)| *used);
        for (path, len, _) in all {
            if total <= self.max_bytes {
                break;
            }
            if !keep.contains(&path) && std::fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
    }
}

/// Every cached part with its size and last use.
fn collect(dir: &std::path::Path, out: &mut Vec<(PathBuf, u64, SystemTime)>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = e.metadata() else { continue };
        if meta.is_dir() {
            collect(&e.path(), out);
        } else if e.path().extension().is_some_and(|x| x == "parquet") {
            let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            out.push((e.path(), meta.len(), used));
        }
    }
}

/// What a manifest says of a part.
struct Want {
    size: u64,
    sha256: Option<String>,
}

/// `local` holds the part `key`: reused (and marked used) when cached,
/// else downloaded beside it, checked against its manifest (size, and
/// SHA-256 when recorded) and renamed into place, so a half-downloaded or
/// foreign part is never read.
async fn fetch(
    store: &dyn ObjectStore,
    key: &Path,
    url: &str,
    local: &std::path::Path,
    want: &Want,
) -> anyhow::Result<()> {
    use sha2::Digest;
    let size = want.size;
    if std::fs::metadata(local).is_ok_and(|m| m.len() == size) {
        if let Ok(f) = std::fs::File::options().write(true).open(local) {
            let _ = f.set_modified(SystemTime::now());
        }
        return Ok(());
    }
    let mut stream = match store.get(key).await {
        Ok(got) => got.into_stream(),
        Err(object_store::Error::NotFound { .. }) => {
            return Err(MissingPart(url.to_string()).into())
        }
        Err(e) => return Err(e).s3(|| format!("cannot read {url}")),
    };
    static DOWNLOADS: AtomicU64 = AtomicU64::new(0);
    let n = DOWNLOADS.fetch_add(1, Ordering::Relaxed);
    let partial = local.with_extension(format!("part-{}-{n}", std::process::id()));
    let mut out = tokio::fs::File::create(&partial)
        .await
        .with_context(|| format!("cannot write {}", partial.display()))?;
    let mut got = 0u64;
    let mut hasher = sha2::Sha256::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.s3(|| format!("downloading {url}"))?;
        got += chunk.len() as u64;
        hasher.update(&chunk);
        out.write_all(&chunk)
            .await
            .with_context(|| format!("cannot write {}", partial.display()))?;
    }
    out.flush().await?;
    drop(out);
    if got != size {
        let _ = std::fs::remove_file(&partial);
        bail!("{url} is {got} bytes, but its manifest says {size}: the bucket holds a different part; push again");
    }
    let sha256 = hex::encode(hasher.finalize());
    if want.sha256.as_ref().is_some_and(|w| *w != sha256) {
        let _ = std::fs::remove_file(&partial);
        bail!("{url} has SHA-256 {sha256}, but its manifest says {}: the bucket holds a different part; push again", want.sha256.as_deref().unwrap_or_default());
    }
    std::fs::rename(&partial, local)
        .with_context(|| format!("cannot move {} into place", partial.display()))?;
    Ok(())
}
