//! `hakiri push` / `hakiri pull`: dataset versions between the home and a
//! bucket. Layout under `s3://bucket/prefix/datasets/<name>/`:
//! `parts/<sha256>.parquet` (named by their content: immutable, shared by
//! the versions that contain them, so an append pushes only its new part,
//! and a re-ingested dataset never meets a stale part of the same name or
//! size), `v<N>.json` (a version's manifest:
//! its catalog entry and parts), and `latest.json`, written last. Readers go
//! by `latest.json`, never by listing parts, so they never see half a
//! version, and a push that dies midway leaves the previous one in place.

use crate::layout::{short_text, Manifest, Part, S3Result, Target};
use anyhow::{bail, Context as _};
use futures::{StreamExt, TryStreamExt};
use hakiri_data_api::open_catalog;
use hakiri_kernel::Context;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use std::io::IsTerminal;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn store(ctx: &Context, target: &Target) -> anyhow::Result<Arc<dyn ObjectStore>> {
    crate::bucket_store(ctx, &target.bucket)
}

/// Pushes the latest version of `names` (all datasets when empty).
pub async fn push(
    ctx: &Context,
    target: &Target,
    names: &[String],
    dry_run: bool,
) -> anyhow::Result<()> {
    let store = store(ctx, target)?;
    let catalog = open_catalog(ctx).await?;
    let all = catalog.list().await?;
    for name in names {
        if !all.iter().any(|d| &d.name == name) {
            bail!("no dataset `{name}`; `hakiri datasets` lists them");
        }
    }
    for d in all
        .iter()
        .filter(|d| names.is_empty() || names.contains(&d.name))
    {
        let dir = std::path::Path::new(&d.location);
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "parquet"))
            .collect();
        files.sort_by_key(|e| e.file_name());
        let (mut parts, mut missing) = (Vec::new(), Vec::new());
        for f in files {
            let (path, size) = (f.path(), f.metadata()?.len());
            let p = path.clone();
            let sha256 =
                hakiri_kernel::blocking(&format!("hashing {}", path.display()), move || {
                    crate::layout::sha256_file(&p)
                })
                .await?;
            let file = format!("{sha256}.parquet");
            let key = target.key(&format!("datasets/{}/parts/{file}", d.name));
            // Named by content: present at its size is the same part.
            // (a part may repeat in a version: the same rows appended twice)
            let queued = missing.iter().any(|(_, k, _)| *k == key);
            let present = queued || matches!(store.head(&key).await, Ok(meta) if meta.size == size);
            if !present {
                missing.push((path, key, size));
            }
            parts.push(Part {
                file,
                size,
                sha256: Some(sha256),
            });
        }
        let (sent, bytes) = (missing.len(), missing.iter().map(|m| m.2).sum::<u64>());
        if !dry_run {
            upload_all(&store, &d.name, missing).await?;
        }
        let mut entry = d.clone();
        entry.location = target.url(&format!("datasets/{}/parts", d.name));
        let manifest = serde_json::to_vec_pretty(&Manifest {
            format: 1,
            entry,
            parts,
        })?;
        let verb = if dry_run { "would push" } else { "pushed" };
        println!(
            "{}: {verb} v{} to {} ({sent} new part(s), {bytes} bytes; the rest already there)",
            d.name,
            d.version,
            target.url(&format!("datasets/{}", d.name))
        );
        if dry_run {
            continue;
        }
        // The version's manifest, then the pointer readers follow: last.
        let version_key = target.manifest(&d.name, Some(d.version));
        store
            .put(&version_key, PutPayload::from(manifest.clone()))
            .await
            .s3(|| "cannot write the manifest".into())?;
        let latest = target.manifest(&d.name, None);
        store
            .put(&latest, PutPayload::from(manifest))
            .await
            .s3(|| "cannot write latest.json".into())?;
    }
    Ok(())
}

/// Uploads `parts` (local file, key, size), four at a time, each streamed
/// (multipart, eight chunks in flight, beyond 10 MB); on a terminal, a
/// progress line counts the bytes.
async fn upload_all(
    store: &Arc<dyn ObjectStore>,
    dataset: &str,
    parts: Vec<(std::path::PathBuf, Path, u64)>,
) -> anyhow::Result<()> {
    let total: u64 = parts.iter().map(|p| p.2).sum();
    let progress = Progress::start(dataset, total);
    let done = futures::stream::iter(parts)
        .map(|(file, key, _)| {
            let (store, progress) = (store.clone(), progress.clone());
            async move { upload(&store, &file, key, &progress).await }
        })
        .buffer_unordered(4)
        .try_collect::<Vec<()>>()
        .await;
    progress.finish();
    done.map(|_| ())
}

/// Streams a local file to `key`.
async fn upload(
    store: &Arc<dyn ObjectStore>,
    file: &std::path::Path,
    key: Path,
    progress: &Progress,
) -> anyhow::Result<()> {
    let mut source = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("cannot open {}", file.display()))?;
    let mut writer = BufWriter::new(store.clone(), key.clone());
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = source
            .read(&mut chunk)
            .await
            .with_context(|| format!("cannot read {}", file.display()))?;
        if n == 0 {
            break;
        }
        writer
            .write_all(&chunk[..n])
            .await
            .map_err(|e| anyhow::anyhow!("uploading to {key}: {}", short_text(&e.to_string())))?;
        progress.add(n as u64);
    }
    writer.shutdown().await.map_err(|e| {
        anyhow::anyhow!(
            "completing the upload of {key}: {}",
            short_text(&e.to_string())
        )
    })?;
    Ok(())
}

/// Bytes sent so far, redrawn on stderr twice a second when it is a terminal.
#[derive(Clone)]
struct Progress {
    sent: Arc<std::sync::atomic::AtomicU64>,
    ticker: Option<Arc<tokio::task::JoinHandle<()>>>,
}

impl Progress {
    fn start(dataset: &str, total: u64) -> Progress {
        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let ticker = (std::io::stderr().is_terminal() && total > 0).then(|| {
            let (sent, dataset) = (sent.clone(), dataset.to_string());
            Arc::new(tokio::spawn(async move {
                loop {
                    let n = sent.load(std::sync::atomic::Ordering::Relaxed);
                    eprint!(
                        "\r{dataset}: {:.1} of {:.1} MB ({}%)  ",
                        n as f64 / 1e6,
                        total as f64 / 1e6,
                        n * 100 / total
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }))
        });
        Progress { sent, ticker }
    }

    fn add(&self, n: u64) {
        self.sent.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    fn finish(&self) {
        if let Some(t) = &self.ticker {
            t.abort();
            eprint!("\r\x1b[2K");
        }
    }
}

/// Pulls the latest pushed version of `names` (every dataset under the
/// target when empty) into the home, through `datasets.ingest`; a dataset
/// already at that pushed version is left alone.
pub async fn pull(ctx: &Context, target: &Target, names: &[String]) -> anyhow::Result<()> {
    let store = store(ctx, target)?;
    let mut wanted = names.to_vec();
    if wanted.is_empty() {
        wanted = target.dataset_names(store.as_ref()).await?;
    }
    let catalog = open_catalog(ctx).await?;
    for name in wanted {
        let latest = target.manifest(&name, None);
        let bytes = store
            .get(&latest)
            .await
            .s3(|| {
                format!(
                    "no pushed dataset `{name}` at {}",
                    target.url(&format!("datasets/{name}"))
                )
            })?
            .bytes()
            .await
            .s3(|| format!("reading {}", target.url(&format!("datasets/{name}"))))?;
        let manifest =
            Manifest::parse(&bytes, &target.url(&format!("datasets/{name}/latest.json")))?;
        let origin = format!(
            "{} v{}",
            target.url(&format!("datasets/{name}")),
            manifest.entry.version
        );
        let sources: Vec<String> = manifest
            .parts
            .iter()
            .map(|p| format!("{}/{}", manifest.entry.location, p.file))
            .collect();
        // Ingest records its sources, so a dataset already pulled from these
        // very parts is current.
        if catalog
            .get(&name)
            .await?
            .is_some_and(|local| local.source == hakiri_data_api::redact_source(&sources.join(" ")))
        {
            println!("{name}: already at {origin}");
            continue;
        }
        let report = ctx
            .call(
                "datasets.ingest",
                serde_json::json!({"sources": sources, "name": name, "format": "parquet"}),
            )
            .await
            .map_err(|e| anyhow::anyhow!("pulling `{name}`: {e}"))?;
        println!(
            "{name}: pulled {origin} as local v{} ({} rows)",
            report["version"], report["rows"]
        );
    }
    Ok(())
}
