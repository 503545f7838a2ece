//! Spreadsheets (`.xlsx`, `.xlsm`, `.xlsb`, `.xls`, `.ods`) through calamine:
//! one sheet, the first or `--sheet`, becomes a frame. Its first row (after
//! `--skip-rows`) names the columns unless `--header false`. Each column
//! takes the narrowest type all its cells fit: whole numbers → int64, other
//! numbers → float64, booleans, dates (a date-time column whose times are
//! all midnight) or date-times, else text. Empty and error cells (`#DIV/0!`)
//! and `--null` markers are null. A sheet is read whole: calamine has no
//! streaming reader, and a sheet holds at most 1 048 576 rows.

use anyhow::{anyhow, bail, Result};
use calamine::{open_workbook_auto, Data, ExcelDateTime, Reader};
use polars::prelude::*;
use std::io::Read as _;
use std::path::Path;

/// The most a remote caller's spreadsheet may expand to: it is read whole
/// into memory, so a zip bomb must stop before calamine opens it.
pub(super) const MAX_REMOTE_EXPANDED: u64 = 128 << 20;

/// Refuses a zipped workbook (xlsx, xlsb, ods) whose entries declare more
/// than `limit` bytes in all, do not declare their sizes, or inflate to more
/// than `limit` whatever they declare: a declared size is the archive's
/// word, and the inflater (calamine's zip) does not hold an entry to it.
/// So every entry is inflated here first, into nothing, counting, and never
/// past `limit` + 1 bytes. An xls (OLE2) is not compressed: its file's size
/// bounds it already.
pub(super) fn check_expansion(path: &Path, label: &str, limit: u64) -> Result<()> {
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let Ok(mut archive) = ::zip::ZipArchive::new(file) else {
        return Ok(());
    };
    let declared = match archive.decompressed_size() {
        Some(n) if n <= u128::from(limit) => n,
        Some(n) => bail!("{label} expands to {n} bytes, more than the {limit} a remote caller's spreadsheet may (a sheet is read whole); ingest it from the CLI"),
        None => bail!("{label} does not declare how large it expands; a remote caller's spreadsheet must"),
    };
    let mut inflated = 0u64;
    for i in 0..archive.len() {
        let entry = archive
            .by_index(i)
            .map_err(|e| anyhow!("{label}: cannot read entry {i} of its zip archive: {e}"))?;
        let room = limit - inflated;
        inflated += std::io::copy(&mut entry.take(room + 1), &mut std::io::sink())
            .map_err(|e| anyhow!("{label}: its zip archive is damaged: {e}"))?;
        if inflated > limit {
            bail!("{label} expands to more than {limit} bytes although it declares {declared}, more than a remote caller's spreadsheet may (a sheet is read whole); ingest it from the CLI");
        }
    }
    Ok(())
}

/// How a sheet is read.
pub(super) struct Sheet<'a> {
    pub name: Option<&'a str>,
    pub header: bool,
    pub skip_rows: usize,
    pub nulls: &'a [String],
}

/// Reads the chosen sheet of the workbook at `path`; `label` names the
/// source in errors.
pub(super) fn read(path: &Path, label: &str, sheet: &Sheet) -> Result<DataFrame> {
    let mut book = open_workbook_auto(path)
        .map_err(|e| anyhow!("{label}: cannot read as a spreadsheet: {e}"))?;
    let sheets = book.sheet_names();
    let name = match sheet.name {
        Some(wanted) if sheets.iter().any(|s| s == wanted) => wanted.to_string(),
        Some(wanted) => bail!(
            "{label} has no sheet `{wanted}`; its sheets: {}",
            sheets.join(", ")
        ),
        None => sheets
            .first()
            .cloned()
            .ok_or_else(|| anyhow!("{label} holds no sheets"))?,
    };
    let range = book
        .worksheet_range(&name)
        .map_err(|e| anyhow!("{label}: cannot read sheet `{name}`: {e}"))?;
    let mut rows = range.rows().skip(sheet.skip_rows).peekable();
    let header: Vec<String> = match (sheet.header, rows.peek()) {
        (true, Some(_)) => rows
            .next()
            .map(|r| r.iter().map(|c| c.to_string().trim().to_string()).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let mut body: Vec<&[Data]> = rows.collect();
    // A sheet's used range often ends in formatted but empty rows.
    while body
        .last()
        .is_some_and(|r| r.iter().all(|c| matches!(c, Data::Empty)))
    {
        body.pop();
    }
    let width = range.width();
    if width == 0 {
        bail!("{label}: sheet `{name}` is empty");
    }
    let names = column_names(&header, width);
    let columns = names
        .iter()
        .enumerate()
        .map(|(c, n)| {
            let cells = body.iter().map(|r| r.get(c).unwrap_or(&Data::Empty));
            column(n, cells, sheet.nulls)
        })
        .collect::<Result<Vec<Column>>>()?;
    DataFrame::new(body.len(), columns).map_err(|e| anyhow!("{label}: {e}"))
}

/// Header cells as column names: blanks become `column_<n>` and repeats get
/// `_2`, `_3`… so every column has a distinct name.
fn column_names(header: &[String], width: usize) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(width);
    for i in 0..width {
        let base = match header.get(i) {
            Some(h) if !h.is_empty() => h.clone(),
            _ => format!("column_{}", i + 1),
        };
        let mut name = base.clone();
        let mut n = 2;
        while names.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        names.push(name);
    }
    names
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Empty,
    Int,
    Float,
    Bool,
    DateTime,
    Text,
}

/// The kind of one cell, `Empty` for a null.
fn kind(cell: &Data, nulls: &[String]) -> Kind {
    match cell {
        Data::Empty | Data::Error(_) => Kind::Empty,
        Data::String(s) if s.is_empty() || nulls.iter().any(|n| n == s) => Kind::Empty,
        Data::Int(_) => Kind::Int,
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Kind::Int,
        Data::Float(_) => Kind::Float,
        Data::Bool(_) => Kind::Bool,
        Data::DateTime(d) if d.is_datetime() => Kind::DateTime,
        _ => Kind::Text,
    }
}

/// The narrowest kind both fit.
fn widen(a: Kind, b: Kind) -> Kind {
    use Kind::*;
    match (a, b) {
        (x, y) if x == y => x,
        (Empty, x) | (x, Empty) => x,
        (Int, Float) | (Float, Int) => Float,
        _ => Text,
    }
}

fn column<'a>(
    name: &str,
    cells: impl Iterator<Item = &'a Data> + Clone,
    nulls: &[String],
) -> Result<Column> {
    let widest = cells
        .clone()
        .fold(Kind::Empty, |k, c| widen(k, kind(c, nulls)));
    let name = PlSmallStr::from(name);
    // Numbers, booleans and dates are never null markers (those are text).
    Ok(match widest {
        Kind::Int => Column::new(
            name,
            cells
                .map(|c| match c {
                    Data::Int(i) => Some(*i),
                    Data::Float(f) => Some(*f as i64),
                    _ => None,
                })
                .collect::<Vec<Option<i64>>>(),
        ),
        Kind::Float => Column::new(
            name,
            cells
                .map(|c| match c {
                    Data::Int(i) => Some(*i as f64),
                    Data::Float(f) => Some(*f),
                    _ => None,
                })
                .collect::<Vec<Option<f64>>>(),
        ),
        Kind::Bool => Column::new(
            name,
            cells
                .map(|c| match c {
                    Data::Bool(b) => Some(*b),
                    _ => None,
                })
                .collect::<Vec<Option<bool>>>(),
        ),
        Kind::DateTime => {
            let millis: Vec<Option<i64>> = cells
                .map(|c| match c {
                    Data::DateTime(d) => Some(unix_millis(d)),
                    _ => None,
                })
                .collect();
            const DAY: i64 = 86_400_000;
            if millis.iter().flatten().all(|ms| ms % DAY == 0) {
                let days: Vec<Option<i32>> = millis
                    .iter()
                    .map(|m| m.map(|ms| (ms.div_euclid(DAY)) as i32))
                    .collect();
                Column::new(name, days).cast(&DataType::Date)?
            } else {
                // Microseconds: what DuckDB reads as TIMESTAMP.
                let micros: Vec<Option<i64>> =
                    millis.iter().map(|m| m.map(|ms| ms * 1000)).collect();
                Column::new(name, micros).cast(&DataType::Datetime(TimeUnit::Microseconds, None))?
            }
        }
        Kind::Text | Kind::Empty => Column::new(
            name,
            cells
                .map(|c| (kind(c, nulls) != Kind::Empty).then(|| c.to_string()))
                .collect::<Vec<Option<String>>>(),
        ),
    })
}

/// Milliseconds since 1970-01-01 of an Excel date-time (1900 or 1904 epoch).
fn unix_millis(d: &ExcelDateTime) -> i64 {
    let (y, mo, day, h, mi, s, ms) = d.to_ymd_hms_milli();
    let days = days_from_civil(y as i64, mo as i64, day as i64);
    ((days * 24 + h as i64) * 60 + mi as i64) * 60_000 + s as i64 * 1000 + ms as i64
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_widen_to_what_every_cell_fits() {
        let nulls = ["NA".to_string()];
        let k = |cells: &[Data]| {
            cells
                .iter()
                .fold(Kind::Empty, |k, c| widen(k, kind(c, &nulls)))
        };
        assert_eq!(k(&[Data::Float(1.0), Data::Int(2), Data::Empty]), Kind::Int);
        assert_eq!(k(&[Data::Float(1.5), Data::Int(2)]), Kind::Float);
        assert_eq!(k(&[Data::Float(1.0), Data::String("NA".into())]), Kind::Int);
        assert_eq!(k(&[Data::Float(1.0), Data::String("x".into())]), Kind::Text);
        assert_eq!(k(&[Data::Bool(true), Data::Empty]), Kind::Bool);
        assert_eq!(k(&[]), Kind::Empty);
    }

    #[test]
    fn names_are_filled_in_and_distinct() {
        let header = ["id".to_string(), String::new(), "id".to_string()];
        assert_eq!(
            column_names(&header, 4),
            ["id", "column_2", "id_2", "column_4"]
        );
    }

    #[test]
    fn civil_days_match_the_calendar() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }
}
