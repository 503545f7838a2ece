//! Format detection: a source's extension, else its first bytes; the CSV delimiter.

use super::Format;
use anyhow::Result;
use std::io::Read;
use std::path::Path;

pub(super) fn format_from_name(name: &str) -> Option<Format> {
    let name = name
        .split(['?', '#'])
        .next()
        .unwrap_or(name)
        .to_ascii_lowercase();
    let ext = name.rsplit('.').next()?;
    Some(match ext {
        "csv" => Format::Csv,
        "tsv" | "tab" => Format::Tsv,
        "ndjson" | "jsonl" => Format::Ndjson,
        "json" => Format::Json,
        "parquet" | "pq" => Format::Parquet,
        "xlsx" | "xlsm" | "xlsb" | "xls" | "ods" => Format::Excel,
        _ => return None,
    })
}

/// Looks at the first bytes: `PAR1` Parquet, a zip or OLE2 container a
/// spreadsheet, `[` a JSON array, `{` NDJSON, else CSV.
pub(super) fn sniff(path: &Path) -> Result<Format> {
    let mut head = [0u8; 64];
    let n = std::fs::File::open(path)?.read(&mut head)?;
    let head = &head[..n];
    if head.starts_with(b"PAR1") {
        return Ok(Format::Parquet);
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
        return Ok(Format::Excel);
    }
    Ok(match head.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => Format::Json,
        Some(b'{') => Format::Ndjson,
        _ => Format::Csv,
    })
}

/// The most frequent of `, \t ; |` in the first line after `skip` lines.
pub(super) fn sniff_delimiter(path: &Path, skip: usize) -> Result<u8> {
    let mut buf = vec![0u8; 64 * 1024];
    let n = std::fs::File::open(path)?.read(&mut buf)?;
    let line = buf[..n]
        .split(|b| *b == b'\n')
        .nth(skip)
        .unwrap_or_default();
    Ok([b',', b'\t', b';', b'|']
        .into_iter()
        .max_by_key(|d| line.iter().filter(|b| *b == d).count())
        .unwrap_or(b','))
}

/// A compressed input, recognized by its first bytes (whatever its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Compression {
    Gzip,
    Zstd,
}

pub(super) fn compression(path: &Path) -> Result<Option<Compression>> {
    let mut head = [0u8; 4];
    let n = std::fs::File::open(path)?.read(&mut head)?;
    Ok(match &head[..n] {
        [0x1f, 0x8b, ..] => Some(Compression::Gzip),
        [0x28, 0xb5, 0x2f, 0xfd] => Some(Compression::Zstd),
        [b'B', b'Z', b'h', ..] => anyhow::bail!(
            "{} is bzip2-compressed, which ingest does not read; decompress it (bunzip2) or recompress with gzip or zstd",
            path.display()
        ),
        _ => None,
    })
}

/// The name without a compression suffix, for format detection (`a.csv.gz` → `a.csv`).
pub(super) fn strip_compression(name: &str) -> &str {
    [".gz", ".gzip", ".zst", ".zstd"]
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
        .unwrap_or(name)
}
