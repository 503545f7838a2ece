//! Resolving sources: globs and directories into files, stdin and URLs copied into staging.

use super::detect::{compression, format_from_name, sniff, strip_compression, Compression};
use super::{Encoding, Format, IngestInput, Input};
use anyhow::{bail, Context as _, Result};
use hakiri_kernel::Context;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

fn is_stream(source: &str) -> bool {
    source == "-" || source.contains("://")
}

/// Expands sources into files; streams (stdin, URLs) are copied into `staging`.
pub(super) async fn resolve(
    ctx: &Context,
    input: &IngestInput,
    staging: &Path,
    progress: &indicatif::ProgressBar,
) -> Result<Vec<Input>> {
    let mut out = Vec::new();
    // A remote caller's sources all go through the connectors, whose guards
    // ([connectors] allow_paths / allow_urls) decide; globs and directories
    // are the CLI user's.
    let remote = !ctx.caller().is_local();
    let max_decompressed = ctx
        .section::<crate::config::DatasetsConfig>()
        .max_decompressed_bytes;
    for (k, source) in input.sources.iter().enumerate() {
        // (staged file, label, the format its connector says it yields)
        let mut files: Vec<(PathBuf, String, Option<&'static str>)> = Vec::new();
        if remote && !is_stream(source) && source.contains(['*', '?', '[']) {
            bail!("`{source}`: globs are for the CLI; remote callers name each file");
        }
        if is_stream(source) || remote {
            // A connector may expand a pattern (`s3://b/logs/*.csv`) into objects.
            let expanded = match source.contains("://") {
                true => hakiri_data_api::expand_source(ctx, source).await?,
                false => vec![source.clone()],
            };
            for (j, one) in expanded.into_iter().enumerate() {
                let opened = hakiri_data_api::open_source(ctx, &one).await?;
                let (reader, yields) = (opened.reader, opened.format);
                let dest = staging.join(format!("source-{k}-{j}"));
                let (d, pb) = (dest.clone(), progress.clone());
                let bytes = hakiri_kernel::blocking(&format!("reading {one}"), move || {
                    copy_counting(reader, &d, &pb)
                })
                .await?;
                if bytes == 0 {
                    bail!(
                        "{} is empty; nothing to ingest",
                        if one == "-" { "stdin" } else { &one }
                    );
                }
                files.push((dest, one, yields));
            }
        } else if source.contains(['*', '?', '[']) {
            for p in glob::glob(source).with_context(|| format!("invalid glob `{source}`"))? {
                let p = p?;
                if p.is_file() {
                    let label = p.display().to_string();
                    files.push((p, label, None));
                }
            }
            if files.is_empty() {
                bail!("no files match `{source}`");
            }
        } else {
            let path = PathBuf::from(source);
            let meta = std::fs::metadata(&path).with_context(|| format!("cannot read {source}"))?;
            if meta.is_dir() {
                let mut inside: Vec<PathBuf> = std::fs::read_dir(&path)?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file() && format_from_name(&p.to_string_lossy()).is_some())
                    .collect();
                inside.sort();
                if inside.is_empty() {
                    bail!("directory {source} holds no .csv, .tsv, .ndjson, .jsonl, .json or .parquet files");
                }
                files.extend(inside.into_iter().map(|p| {
                    let label = p.display().to_string();
                    (p, label, None)
                }));
            } else {
                files.push((path, source.clone(), None));
            }
        }
        for (i, (mut path, label, yields)) in files.into_iter().enumerate() {
            if std::fs::metadata(&path)?.len() == 0 {
                bail!("{label} is empty; nothing to ingest");
            }
            // gzip and zstd inputs (by their bytes) are streamed, decompressed,
            // into staging: bounded memory, and every format reads them.
            if let Some(kind) = compression(&path)? {
                let dest = staging.join(format!("decompressed-{k}-{i}"));
                let limit = if remote { max_decompressed } else { u64::MAX };
                let (src, d, pb, shown) =
                    (path.clone(), dest.clone(), progress.clone(), label.clone());
                hakiri_kernel::blocking(&format!("decompressing {label}"), move || {
                    decompress(kind, &src, &d, &pb, limit, &shown)
                })
                .await?;
                path = dest;
            }
            if input.encoding == Encoding::Latin1 {
                let dest = staging.join(format!("utf8-{k}-{i}"));
                let (src, d) = (path.clone(), dest.clone());
                hakiri_kernel::blocking(&format!("transcoding {label}"), move || {
                    latin1_to_utf8(&src, &d)
                })
                .await?;
                path = dest;
            }
            // Explicit --format, else what the connector yields, else the
            // name's extension (stdin has none), else the bytes.
            let format = match input
                .format
                .or_else(|| yields.and_then(|f| format_from_name(&format!(".{f}"))))
                .or_else(|| format_from_name(strip_compression(&label)))
            {
                Some(f) => f,
                None => sniff(&path)?,
            };
            if remote && format == Format::Excel {
                super::excel::check_expansion(&path, &label, super::excel::MAX_REMOTE_EXPANDED)?;
            }
            out.push(Input {
                path,
                label,
                format,
            });
        }
    }
    Ok(out)
}

fn copy_counting(
    mut reader: impl Read,
    dest: &Path,
    progress: &indicatif::ProgressBar,
) -> Result<u64> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(dest)?);
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n])?;
        total += n as u64;
        progress.set_message(format!("reading {}", indicatif::HumanBytes(total)));
    }
    file.flush()?;
    Ok(total)
}

/// Streams `src` through its decompressor into `dest`, at most `limit`
/// bytes (a remote caller's gzip bomb stops there).
fn decompress(
    kind: Compression,
    src: &Path,
    dest: &Path,
    progress: &indicatif::ProgressBar,
    limit: u64,
    label: &str,
) -> Result<()> {
    let file = std::fs::File::open(src).with_context(|| format!("cannot open {label}"))?;
    let reader: Box<dyn Read> = match kind {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(
            file,
        ))),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(file)
                .with_context(|| format!("{label}: cannot start zstd decompression"))?,
        ),
    };
    let mut capped = reader.take(limit.saturating_add(1));
    let written = copy_counting(&mut capped, dest, progress)
        .with_context(|| format!("{label}: the compressed data is damaged"))?;
    if written > limit {
        bail!(
            "{label} expands to more than {limit} bytes, the most a remote caller may ingest; raise [datasets] max_decompressed_bytes"
        );
    }
    Ok(())
}

/// Transcodes Latin-1 (read as Windows-1252, its superset) to UTF-8, streaming.
fn latin1_to_utf8(src: &Path, dest: &Path) -> Result<()> {
    let mut reader = std::io::BufReader::new(std::fs::File::open(src)?);
    let mut out = std::io::BufWriter::new(std::fs::File::create(dest)?);
    let mut decoder = encoding_rs::WINDOWS_1252.new_decoder();
    let mut input = vec![0u8; 1 << 16];
    // Every Windows-1252 byte is at most 3 bytes of UTF-8.
    let mut output = vec![0u8; 3 * (1 << 16) + 16];
    loop {
        let n = reader.read(&mut input)?;
        let (_, read, written, _) = decoder.decode_to_utf8(&input[..n], &mut output, n == 0);
        debug_assert_eq!(read, n);
        out.write_all(&output[..written])?;
        if n == 0 {
            break;
        }
    }
    out.flush()?;
    Ok(())
}
