//! Arms a shipped binary's start-up prefetch (the `hakiri-prefetch` crate):
//! records which pages of the file a cold start touches and writes them into
//! the binary's prefetch table, so the next cold start asks for them all at
//! once instead of faulting them in one readaround window at a time.
//!
//! The recording runs the binary with `HAKIRI_PREFETCH=record` over a page
//! cache filled in single pages: at exit (or SIGTERM) it writes the file
//! pages its page tables map, which is what the run touched (see
//! `hakiri-prefetch`'s record mode for why page tables and not `mincore`). Patching the table
//! changes no code or layout, so the recorded offsets stay true in the
//! patched file.

use crate::{artifact, probe};
use anyhow::{bail, Context, Result};
use hakiri_prefetch::{COUNT_OFFSET, MAGIC, MAX_RANGES, PAGE, RANGES_OFFSET, START_COUNT_OFFSET};
use std::path::Path;

/// What a start-up does, to be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `capabilities --json`: what every command's start-up shares.
    Capabilities,
    /// A Lambda bootstrap answering its first invocation.
    LambdaBootstrap,
    /// `sql "select 42"`: the first query (the warm-up's pages).
    FirstQuery,
}

impl Workload {
    /// Whether its pages are asked for before `main` (else on warm-up).
    pub fn at_start(self) -> bool {
        self != Workload::FirstQuery
    }
}

/// Ranges of file pages: (first page, page count).
pub type Ranges = Vec<(u32, u32)>;

/// A binary's prefetch table. Releases publish it (`<profile>-<version>.prefetch.json`):
/// it is the one part of a shipped binary that depends on the recording
/// run, so a stripped rebuild with it applied ([`apply`]) is the shipped file.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Table {
    /// Asked for before `main`.
    pub start: Ranges,
    /// Asked for on the first query (`hakiri_prefetch::warm_up`).
    pub warm_up: Ranges,
}

/// Records `workloads` on `bin` and patches the table. Returns the table
/// written, or `None` for a binary without one (one that does not link the
/// kernel, like the hello-world baseline). Each workload adds the pages no
/// earlier one touched, so the warm-up holds only what the start-up lacks.
pub fn arm(bin: &Path, workloads: &[Workload]) -> Result<Option<Table>> {
    if table_offset(&std::fs::read(bin)?)?.is_none() {
        return Ok(None);
    }
    anyhow::ensure!(
        workloads
            .windows(2)
            .all(|w| w[0].at_start() || !w[1].at_start()),
        "start-up workloads come before warm-up ones: {workloads:?}"
    );
    let home = probe::scratch_home("prefetch")?;
    let recorded = record(bin, &home, workloads);
    let _ = std::fs::remove_dir_all(&home);
    let per_workload = to_table(&recorded?, MAX_RANGES);
    let mut table = Table::default();
    for (w, ranges) in workloads.iter().zip(per_workload) {
        if w.at_start() {
            &mut table.start
        } else {
            &mut table.warm_up
        }
        .extend(ranges);
    }
    write_table(bin, &table)?;
    Ok(Some(table))
}

/// The pages each workload touched, in the workloads' order.
fn record(bin: &Path, home: &Path, workloads: &[Workload]) -> Result<Vec<Vec<bool>>> {
    let pages = std::fs::metadata(bin)?.len().div_ceil(PAGE) as usize;
    let mut recorded = Vec::new();
    for (i, w) in workloads.iter().enumerate() {
        let mut touched = vec![false; pages];
        fill_in_small_folios(bin)?;
        let out = home.join(format!("prefetch-{i}.pages"));
        let out_str = out.to_str().context("a scratch path that is not UTF-8")?;
        let env = [
            ("HAKIRI_PREFETCH", "record"),
            ("HAKIRI_PREFETCH_OUT", out_str),
        ];
        match w {
            Workload::Capabilities => {
                probe::capabilities_with(bin, home, &env)?;
            }
            Workload::LambdaBootstrap => {
                // Returns after the first response; the bootstrap is then
                // sent SIGTERM, which writes its pages.
                probe::cold_start(bin, home, &env)?;
            }
            Workload::FirstQuery => {
                probe::first_query(bin, home, false, &env)?;
            }
        }
        let dump = std::fs::read(&out)
            .with_context(|| format!("{w:?} under HAKIRI_PREFETCH=record wrote no page list"))?;
        anyhow::ensure!(!dump.is_empty(), "{w:?} recorded no pages");
        for page in dump.chunks_exact(4) {
            let page = u32::from_le_bytes(page.try_into()?) as usize;
            if let Some(t) = touched.get_mut(page) {
                *t = true;
            }
        }
        recorded.push(touched);
    }
    Ok(recorded)
}

/// Fills the page cache with the whole binary in single pages: the kernel
/// maps a large folio whole on a fault, and then page tables would say a
/// touched page's 2 MB neighbourhood was touched. `POSIX_FADV_WILLNEED`
/// reads in single pages; the read after it waits for those reads. A file
/// that cannot leave the page cache (a target directory on tmpfs) is
/// recorded as it is: coarser, never wrong.
fn fill_in_small_folios(bin: &Path) -> Result<()> {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    if artifact::evict_from_page_cache(bin).is_err() {
        return Ok(());
    }
    let mut f = std::fs::File::open(bin)?;
    // SAFETY: advice on an open descriptor.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_WILLNEED) };
    anyhow::ensure!(rc == 0, "posix_fadvise(WILLNEED) failed with {rc}");
    let mut buf = vec![0u8; 1 << 20];
    while f.read(&mut buf)? > 0 {}
    Ok(())
}

/// For each group of touched pages, its runs of pages that no earlier group
/// touched, merged across the smallest gaps until at most `max` remain in
/// all (a gap's pages are read too: cheaper than another request).
pub fn to_table(groups: &[Vec<bool>], max: usize) -> Vec<Ranges> {
    let mut covered: Vec<bool> = Vec::new();
    let mut per_group: Vec<Ranges> = Vec::new();
    for group in groups {
        covered.resize(covered.len().max(group.len()), false);
        let mut ranges: Ranges = Vec::new();
        for (page, _) in group.iter().enumerate().filter(|(_, t)| **t) {
            if std::mem::replace(&mut covered[page], true) {
                continue;
            }
            let page = page as u32;
            match ranges.last_mut() {
                Some((first, count)) if *first + *count == page => *count += 1,
                _ => ranges.push((page, 1)),
            }
        }
        per_group.push(ranges);
    }
    let mut gap = 1;
    while per_group.iter().map(Vec::len).sum::<usize>() > max.max(per_group.len()) {
        for ranges in &mut per_group {
            *ranges = merge_gaps(ranges, gap);
        }
        gap *= 2;
    }
    per_group
}

fn merge_gaps(ranges: &Ranges, gap: u32) -> Ranges {
    let mut merged: Ranges = Vec::with_capacity(ranges.len());
    for &(first, count) in ranges {
        match merged.last_mut() {
            Some((f, c)) if first - (*f + *c) <= gap => *c = first + count - *f,
            _ => merged.push((first, count)),
        }
    }
    merged
}

/// Where the table starts in the file, if the binary has one; an error if
/// the marker appears more than once (then no offset is trustworthy).
pub fn table_offset(data: &[u8]) -> Result<Option<usize>> {
    let mut found = data
        .windows(MAGIC.len())
        .enumerate()
        .filter(|(_, w)| *w == MAGIC)
        .map(|(i, _)| i);
    let first = found.next();
    if first.is_some() && found.next().is_some() {
        bail!("the prefetch table marker appears more than once; cannot tell which to patch");
    }
    Ok(first)
}

/// Writes `table` into `bin`'s prefetch table, zeroing the unused slots,
/// so the result depends on the table alone, not on what was there before.
pub fn write_table(bin: &Path, table: &Table) -> Result<()> {
    let mut data = std::fs::read(bin)?;
    let at = table_offset(&data)?.context("no prefetch table")?;
    let end = at + RANGES_OFFSET + MAX_RANGES * 8;
    anyhow::ensure!(end <= data.len(), "the prefetch table is cut off");
    let ranges: Ranges = [table.start.as_slice(), &table.warm_up].concat();
    anyhow::ensure!(
        ranges.len() <= MAX_RANGES,
        "{} ranges do not fit",
        ranges.len()
    );
    let mut put = |o: usize, v: u32| data[o..o + 4].copy_from_slice(&v.to_le_bytes());
    put(at + COUNT_OFFSET, ranges.len() as u32);
    put(at + START_COUNT_OFFSET, table.start.len() as u32);
    for i in 0..MAX_RANGES {
        let (first, count) = ranges.get(i).copied().unwrap_or((0, 0));
        put(at + RANGES_OFFSET + i * 8, first);
        put(at + RANGES_OFFSET + i * 8 + 4, count);
    }
    std::fs::write(bin, data).with_context(|| format!("cannot patch {}", bin.display()))
}

/// `cargo gates prefetch --apply TABLE BIN`: writes a published table
/// (JSON) into a binary, e.g. a stripped rebuild being checked against a release.
pub fn apply(table_json: &Path, bin: &Path) -> Result<()> {
    let text = std::fs::read_to_string(table_json)
        .with_context(|| format!("cannot read {}", table_json.display()))?;
    let table: Table = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a prefetch table (a release's <profile>-<version>.prefetch.json)",
            table_json.display()
        )
    })?;
    write_table(bin, &table)
}

/// The table as shipped in `bin`: `None` without one.
pub fn read_table(bin: &Path) -> Result<Option<Table>> {
    let data = std::fs::read(bin)?;
    let Some(at) = table_offset(&data)? else {
        return Ok(None);
    };
    let word = |o: usize| -> Result<u32> {
        let b = data
            .get(o..o + 4)
            .context("the prefetch table is cut off")?;
        Ok(u32::from_le_bytes(b.try_into()?))
    };
    let count = (word(at + COUNT_OFFSET)? as usize).min(MAX_RANGES);
    let start = (word(at + START_COUNT_OFFSET)? as usize).min(count);
    let mut ranges = (0..count)
        .map(|i| {
            let o = at + RANGES_OFFSET + i * 8;
            Ok((word(o)?, word(o + 4)?))
        })
        .collect::<Result<Ranges>>()?;
    let warm_up = ranges.split_off(start);
    Ok(Some(Table {
        start: ranges,
        warm_up,
    }))
}

/// Bytes the ranges ask for.
pub fn bytes(ranges: &Ranges) -> u64 {
    ranges.iter().map(|(_, c)| u64::from(*c) * PAGE).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages(set: &[usize], len: usize) -> Vec<bool> {
        (0..len).map(|i| set.contains(&i)).collect()
    }

    #[test]
    fn adjacent_pages_form_one_range() {
        assert_eq!(
            to_table(&[pages(&[2, 3, 4, 9], 12)], 10),
            vec![vec![(2, 3), (9, 1)]]
        );
    }

    #[test]
    fn too_many_ranges_merge_across_the_smallest_gaps() {
        let r = to_table(&[pages(&[0, 2, 4, 20, 40], 50)], 3).concat();
        assert!(r.len() <= 3, "{r:?}");
        // Every touched page stays covered.
        for p in [0, 2, 4, 20, 40] {
            assert!(
                r.iter().any(|(f, c)| (*f..*f + *c).contains(&p)),
                "{p} in {r:?}"
            );
        }
    }

    #[test]
    fn a_later_workload_adds_only_its_new_pages_after_the_first() {
        let start = pages(&[10, 11], 30);
        let query = pages(&[1, 10, 11, 12, 20], 30);
        assert_eq!(
            to_table(&[start, query], 10),
            vec![vec![(10, 2)], vec![(1, 1), (12, 1), (20, 1)]]
        );
    }

    #[test]
    fn a_repeated_marker_is_refused() {
        let mut data = vec![0u8; 64];
        data.extend_from_slice(&MAGIC);
        assert_eq!(table_offset(&data).unwrap(), Some(64));
        data.extend_from_slice(&MAGIC);
        assert!(table_offset(&data).is_err());
        assert_eq!(table_offset(&[0u8; 100]).unwrap(), None);
    }

    #[test]
    fn a_patched_table_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        let mut data = vec![7u8; 100];
        data.extend_from_slice(&MAGIC);
        data.extend(vec![0u8; 8 + MAX_RANGES * 8 + 10]);
        std::fs::write(&bin, &data).unwrap();
        assert_eq!(read_table(&bin).unwrap(), Some(Table::default()));
        let table = Table {
            start: vec![(5, 2)],
            warm_up: vec![(100, 30), (200, 1)],
        };
        write_table(&bin, &table).unwrap();
        assert_eq!(read_table(&bin).unwrap(), Some(table.clone()));
        assert_eq!(bytes(&table.warm_up), 31 * PAGE);
    }
}
