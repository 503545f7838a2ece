//! Properties of a built binary: compressed size, Lambda zip, static linking.

use anyhow::{Context, Result};
use object::elf;
use object::read::elf::{ElfFile64, ProgramHeader};
use object::Endianness;
use std::io::Write;
use std::path::Path;

/// Bytes of gzip -9 of the file.
pub fn gzip_size(path: &Path) -> Result<u64> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut enc = flate2::write::GzEncoder::new(CountingSink(0), flate2::Compression::best());
    enc.write_all(&data)?;
    Ok(enc.finish()?.0)
}

struct CountingSink(u64);

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes a Lambda deployment zip holding the binary as an executable
/// `bootstrap`, and returns its size.
pub fn lambda_zip(binary: &Path, out: &Path) -> Result<u64> {
    let data = std::fs::read(binary)?;
    let file =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut zip = zip::ZipWriter::new(file);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(9))
        .unix_permissions(0o755);
    zip.start_file("bootstrap", opts)?;
    zip.write_all(&data)?;
    zip.finish()?;
    Ok(std::fs::metadata(out)?.len())
}

/// Why a binary is not fully static: an ELF interpreter or DT_NEEDED entries.
pub fn static_problems(path: &Path) -> Result<Vec<String>> {
    let data = std::fs::read(path)?;
    let file = ElfFile64::<Endianness>::parse(data.as_slice())
        .with_context(|| format!("{} is not a 64-bit ELF", path.display()))?;
    let endian = file.endian();
    let mut problems = Vec::new();
    for ph in file.elf_program_headers() {
        if ph.p_type(endian) == elf::PT_INTERP {
            let interp = ph
                .interpreter(endian, data.as_slice())
                .ok()
                .flatten()
                .unwrap_or_default();
            problems.push(format!(
                "ELF interpreter {}",
                String::from_utf8_lossy(interp)
            ));
        }
        if let Ok(Some(dynamic)) = ph.dynamic(endian, data.as_slice()) {
            let needed = dynamic
                .iter()
                .filter(|d| d.d_tag.get(endian) == elf::DT_NEEDED)
                .count();
            if needed > 0 {
                problems.push(format!("{needed} DT_NEEDED entries (shared libraries)"));
            }
        }
    }
    Ok(problems)
}

/// Most of the file may stay cached and the eviction still count: a few
/// pages can be re-read by a concurrent reader between the two calls.
pub const MAX_RESIDENT_AFTER_EVICTION: f64 = 0.02;

/// Drops the file from the page cache, so the next exec reads it from disk,
/// and proves it did: a cold start measured on a cached binary is a warm
/// start, and the gate would pass by accident.
pub fn evict_from_page_cache(path: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path)?;
    // Dirty pages cannot be dropped: a freshly written binary (strip, a
    // relink) must reach the disk first.
    f.sync_all()?;
    // SAFETY: a valid open file descriptor; fadvise only drops clean cached pages.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    anyhow::ensure!(rc == 0, "posix_fadvise failed with {rc}");
    let resident = resident_fraction(path)?;
    anyhow::ensure!(
        resident <= MAX_RESIDENT_AFTER_EVICTION,
        "{} is still {:.0}% in the page cache after POSIX_FADV_DONTNEED (is a process \
         running it, or is the file on tmpfs?): a cold start cannot be measured",
        path.display(),
        resident * 100.0
    );
    Ok(())
}

/// The share of the file's pages in the page cache (mincore over a map).
pub fn resident_fraction(path: &Path) -> Result<f64> {
    let f = std::fs::File::open(path)?;
    let len = f.metadata()?.len() as usize;
    if len == 0 {
        return Ok(0.0);
    }
    // SAFETY: a read-only map of a file nothing truncates meanwhile; only its
    // residency is queried, never its bytes.
    let map = unsafe { memmap2::Mmap::map(&f)? };
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let mut vec = vec![0u8; len.div_ceil(page)];
    // SAFETY: `vec` has one byte per page of the mapping, as mincore requires.
    let rc = unsafe { libc::mincore(map.as_ptr() as *mut libc::c_void, len, vec.as_mut_ptr()) };
    anyhow::ensure!(
        rc == 0,
        "mincore failed: {}",
        std::io::Error::last_os_error()
    );
    let resident = vec.iter().filter(|b| *b & 1 == 1).count();
    Ok(resident as f64 / vec.len() as f64)
}
