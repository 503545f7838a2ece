//! `hakiri push` / `hakiri pull`: dataset versions between the home and a
//! bucket. Layout under `s3://bucket/prefix/datasets/<name>/`:
//! `parts/<file>` (immutable, shared by the versions that contain them, so
//! an append pushes only its new part), `v<N>.json` (a version's manifest:
//! its catalog entry and parts), and `latest.json`, written last. Readers go
//! by `latest.json`, never by listing parts, so they never see half a
//! version, and a push that dies midway leaves the previous one in place.

use crate::layout::{Manifest, Part, S3Result, Target};
use crate::S3Config;
use anyhow::{bail, Context as _};
use hakiri_data_api::open_catalog;
use hakiri_kernel::Context;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

fn store(ctx: &Context, target: &Target) -> anyhow::Result<Arc<dyn ObjectStore>> {
    Ok(Arc::from(crate::build(
        &ctx.section::<S3Config>(),
        &target.bucket,
    )?))
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
        let (mut parts, mut sent, mut bytes) = (Vec::new(), 0, 0u64);
        for f in files {
            let file = f.file_name().to_string_lossy().into_owned();
            let size = f.metadata()?.len();
            let key = target.key(&format!("datasets/{}/parts/{file}", d.name));
            let present = matches!(store.head(&key).await, Ok(meta) if meta.size == size);
            if !present {
                sent += 1;
                bytes += size;
                if !dry_run {
                    upload(&store, &f.path(), key).await?;
                }
            }
            parts.push(Part { file, size });
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

/// Streams a local file to `key` (multipart beyond 10 MB).
async fn upload(
    store: &Arc<dyn ObjectStore>,
    file: &std::path::Path,
    key: Path,
) -> anyhow::Result<()> {
    let mut source = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("cannot open {}", file.display()))?;
    let mut writer = BufWriter::new(store.clone(), key.clone());
    tokio::io::copy(&mut source, &mut writer)
        .await
        .with_context(|| format!("uploading to {key}"))?;
    writer
        .shutdown()
        .await
        .with_context(|| format!("completing the upload of {key}"))?;
    Ok(())
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
            .is_some_and(|local| local.source == sources.join(" "))
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
