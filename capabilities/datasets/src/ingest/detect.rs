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
        _ => return None,
    })
}

/// Looks at the first bytes: `PAR1` Parquet, `[` a JSON array, `{` NDJSON, else CSV.
pub(super) fn sniff(path: &Path) -> Result<Format> {
    let mut head = [0u8; 64];
    let n = std::fs::File::open(path)?.read(&mut head)?;
    let head = &head[..n];
    if head.starts_with(b"PAR1") {
        return Ok(Format::Parquet);
    }
    Ok(match head.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => Format::Json,
        Some(b'{') => Format::Ndjson,
        _ => Format::Csv,
    })
}

/// The most frequent of `, \t ; |` in the first line.
pub(super) fn sniff_delimiter(path: &Path) -> Result<u8> {
    let mut buf = vec![0u8; 64 * 1024];
    let n = std::fs::File::open(path)?.read(&mut buf)?;
    let line = buf[..n].split(|b| *b == b'\n').next().unwrap_or_default();
    Ok([b',', b'\t', b';', b'|']
        .into_iter()
        .max_by_key(|d| line.iter().filter(|b| *b == d).count())
        .unwrap_or(b','))
}
