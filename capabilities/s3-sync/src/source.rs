//! `s3://bucket/key` (and `s3://bucket/prefix/*.csv`) as ingest sources,
//! streamed through object_store with the `[s3-sync]` endpoint and the
//! usual AWS credential chain (environment, then instance/container roles).
//! Remote callers read only under `[s3-sync] read_prefixes`.

use crate::layout::S3Result;
use crate::S3Config;
use anyhow::{bail, Context as _};
use futures::TryStreamExt;
use hakiri_data_api::{Connector, SourceReader};
use hakiri_kernel::{BoxFuture, Context};
use object_store::path::Path;
use object_store::ObjectStore;

pub struct S3Connector;

/// `s3://bucket/key` split.
pub(crate) fn split(source: &str) -> anyhow::Result<(&str, &str)> {
    let rest = source
        .strip_prefix("s3://")
        .with_context(|| format!("`{source}` is not an s3:// URL"))?;
    match rest.split_once('/') {
        Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok((bucket, key)),
        _ => bail!("`{source}`: expected s3://bucket/key"),
    }
}

fn guard(ctx: &Context, source: &str) -> anyhow::Result<()> {
    if ctx.caller().is_local() {
        return Ok(());
    }
    let cfg = ctx.section::<S3Config>();
    let allowed = cfg.read_prefixes.iter().any(|p| {
        let p = p.trim_end_matches('*');
        source.starts_with(p)
            && (p.ends_with('/') || source.len() == p.len() || source[p.len()..].starts_with('/'))
    });
    if !allowed {
        bail!("`{source}` is not under a prefix remote callers may read; add it to [s3-sync] read_prefixes");
    }
    Ok(())
}

fn store_for(ctx: &Context, bucket: &str) -> anyhow::Result<std::sync::Arc<dyn ObjectStore>> {
    crate::bucket_store(ctx, bucket)
}

/// `*` and `?` within one path segment's worth of text (`*` never crosses `/`).
fn matches(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            matches(&pattern[1..], text)
                || (!text.is_empty() && text[0] != b'/' && matches(pattern, &text[1..]))
        }
        (Some(b'?'), Some(c)) if *c != b'/' => matches(&pattern[1..], &text[1..]),
        (Some(p), Some(c)) if p == c => matches(&pattern[1..], &text[1..]),
        _ => false,
    }
}

impl Connector for S3Connector {
    fn accepts(&self, source: &str, _ctx: &Context) -> bool {
        source.starts_with("s3://")
    }

    fn expand<'a>(
        &'a self,
        source: &'a str,
        ctx: &'a Context,
    ) -> BoxFuture<'a, anyhow::Result<Vec<String>>> {
        Box::pin(async move {
            let (bucket, key) = split(source)?;
            let Some(wild) = key.find(['*', '?']) else {
                return Ok(vec![source.to_string()]);
            };
            guard(ctx, source)?;
            let prefix = &key[..key[..wild].rfind('/').map_or(0, |i| i + 1)];
            let store = store_for(ctx, bucket)?;
            let listed: Vec<_> = store
                .list((!prefix.is_empty()).then(|| Path::from(prefix)).as_ref())
                .try_collect()
                .await
                .s3(|| format!("cannot list s3://{bucket}/{prefix}"))?;
            let mut keys: Vec<String> = listed
                .into_iter()
                .map(|m| m.location.to_string())
                .filter(|k| matches(key.as_bytes(), k.as_bytes()))
                .map(|k| format!("s3://{bucket}/{k}"))
                .collect();
            keys.sort();
            if keys.is_empty() {
                bail!("no objects match `{source}`");
            }
            Ok(keys)
        })
    }

    fn open<'a>(
        &'a self,
        source: &'a str,
        ctx: &'a Context,
    ) -> BoxFuture<'a, anyhow::Result<SourceReader>> {
        Box::pin(async move {
            guard(ctx, source)?;
            let (bucket, key) = split(source)?;
            let store = store_for(ctx, bucket)?;
            let got = store
                .get(&Path::from(key))
                .await
                .s3(|| format!("cannot read {source}"))?;
            let mut stream = got.into_stream();
            let (tx, reader) = hakiri_data_api::chunk_channel(8);
            let shown = source.to_string();
            tokio::spawn(async move {
                loop {
                    let item = match stream.try_next().await {
                        Ok(Some(bytes)) => Ok(bytes.to_vec()),
                        Ok(None) => break,
                        Err(e) => Err(std::io::Error::other(format!("reading {shown}: {e}"))),
                    };
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() || failed {
                        break;
                    }
                }
            });
            Ok(reader)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_matches() {
        assert_eq!(split("s3://b/k/x.csv").unwrap(), ("b", "k/x.csv"));
        assert!(split("s3://b").is_err() && split("s3:///k").is_err());
        assert!(matches(b"logs/*.csv", b"logs/a.csv"));
        assert!(!matches(b"logs/*.csv", b"logs/sub/a.csv"));
        assert!(matches(b"logs/day-?.csv", b"logs/day-1.csv"));
        assert!(!matches(b"logs/*.csv", b"logs/a.parquet"));
    }
}
