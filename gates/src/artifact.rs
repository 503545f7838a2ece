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

/// Drops the file from the page cache, so the next exec reads it from disk.
pub fn evict_from_page_cache(path: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path)?;
    // SAFETY: a valid open file descriptor; fadvise only drops clean cached pages.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    anyhow::ensure!(rc == 0, "posix_fadvise failed with {rc}");
    Ok(())
}
