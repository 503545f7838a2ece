//! A CSV pass with line numbers. Polars' fast reader says *that* a file is
//! malformed; this pass says *where* (on the error path), and with
//! `--on-error skip` it drops bad rows into a clean copy (counting them).

use anyhow::{Context as _, Result};
use std::path::Path;

/// The first malformed row: a ragged field count or bytes that are not UTF-8.
pub fn first_problem(
    path: &Path,
    delimiter: u8,
    header: bool,
    skip_lines: usize,
) -> Result<Option<String>> {
    let mut reader = reader(path, delimiter)?;
    let mut expected = None;
    let mut first = true;
    for (i, rec) in reader.byte_records().enumerate() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => return Ok(Some(format!("{e}"))),
        };
        let line = rec.position().map_or(i as u64 + 1, |p| p.line());
        if line <= skip_lines as u64 {
            continue;
        }
        let is_header = header && std::mem::take(&mut first);
        if let Some(problem) = check(&rec, &mut expected, is_header) {
            return Ok(Some(format!("line {line}: {problem}")));
        }
    }
    Ok(None)
}

fn reader(path: &Path, delimiter: u8) -> Result<csv::Reader<std::fs::File>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(file))
}

fn check(rec: &csv::ByteRecord, expected: &mut Option<usize>, is_header: bool) -> Option<String> {
    if let Some((i, _)) = rec
        .iter()
        .enumerate()
        .find(|(_, f)| std::str::from_utf8(f).is_err())
    {
        return Some(format!(
            "field {} is not valid UTF-8; if the file is Latin-1 (ISO-8859-1 / Windows-1252) pass --encoding latin1, else re-encode it as UTF-8",
            i + 1
        ));
    }
    match *expected {
        None => {
            *expected = Some(rec.len());
            None
        }
        Some(n) if n != rec.len() => Some(format!(
            "expected {n} fields{}, found {}",
            if is_header {
                ""
            } else {
                " (as in the first row)"
            },
            rec.len()
        )),
        Some(_) => None,
    }
}

/// Copies `path` to `out` without malformed rows; returns how many were dropped.
/// Copies the rows after the first `skip_lines` lines, dropping malformed ones.
pub fn copy_without_bad_rows(
    path: &Path,
    out: &Path,
    delimiter: u8,
    skip_lines: usize,
) -> Result<u64> {
    let mut reader = reader(path, delimiter)?;
    let file =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut writer = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .from_writer(std::io::BufWriter::new(file));
    let mut expected = None;
    let mut skipped = 0;
    for rec in reader.byte_records() {
        if let Ok(r) = &rec {
            if r.position().is_some_and(|p| p.line() <= skip_lines as u64) {
                continue;
            }
        }
        match rec {
            Ok(rec) if check(&rec, &mut expected, false).is_none() => {
                writer.write_byte_record(&rec)?
            }
            _ => skipped += 1,
        }
    }
    writer.flush()?;
    Ok(skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_ragged_and_non_utf8_rows_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.csv");
        std::fs::write(&p, "a,b\n1,2\n3,4,5\n6,7\n").unwrap();
        assert_eq!(
            first_problem(&p, b',', true, 0).unwrap().unwrap(),
            "line 3: expected 2 fields (as in the first row), found 3"
        );
        std::fs::write(&p, b"a,b\n1,\xff\xfe\n").unwrap();
        assert!(first_problem(&p, b',', true, 0)
            .unwrap()
            .unwrap()
            .starts_with("line 2: field 2 is not valid UTF-8"));
        std::fs::write(&p, "a,b\n\"x,y\",2\n").unwrap();
        assert_eq!(
            first_problem(&p, b',', true, 0).unwrap(),
            None,
            "quoted delimiters are fine"
        );
    }

    #[test]
    fn skipping_counts_dropped_rows() {
        let dir = tempfile::tempdir().unwrap();
        let (p, out) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
        std::fs::write(&p, "a,b\n1,2\n3,4,5\n6,7\n8\n").unwrap();
        assert_eq!(copy_without_bad_rows(&p, &out, b',', 0).unwrap(), 2);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "a,b\n1,2\n6,7\n");
    }
}
