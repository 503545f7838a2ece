//! The constructor: runs from `.init_array` before `main`, first of all
//! (priority 0, ahead of mimalloc's and the capabilities' registrations), so
//! the prefetch is in flight while the rest of start-up faults its pages in.
//! It allocates nothing: the allocator may not be initialised yet.
//!
//! Where its code and data lie matters as much as what it does. Before it
//! runs, the kernel has read two readaround windows of the file: one around
//! the entry point (the start of `.text`) and one around the end of the file
//! (it clears the tail of `.data` while loading), which holds the end of
//! `.text` (musl: `getenv`, `madvise`, `posix_fadvise`), `.data` and the
//! table. Every other page the constructor touched before its requests cost
//! a synchronous read of a whole window (8 MB on this project's VMs, ~3 ms
//! each): its own code in the middle of `.text`, the variable name and the
//! path as literals at the start of `.rodata`. So its code up to the
//! requests lies in its own section, which the linker places right after
//! `.text` (an orphan section with `.text`'s flags), it reads no literal
//! (names are built from immediates), and the table lies in `.data`.

use crate::{HAKIRI_PREFETCH_TABLE as TABLE, MAX_RANGES, PAGE};
use std::ptr::{addr_of, read_volatile};
use std::sync::atomic::{AtomicBool, Ordering};

#[used]
#[link_section = ".init_array.00000"]
static AT_START: extern "C" fn() = at_start;

pub(crate) fn link() {
    std::hint::black_box(&AT_START);
}

extern "C" {
    /// musl's environment, set before any constructor runs.
    static environ: *const *const u8;
}

#[derive(PartialEq)]
enum Mode {
    Prefetch,
    Off,
    Record,
}

/// Whether the NUL-terminated `s` starts with the first `len` bytes of
/// `word` (little-endian), followed by a NUL when `whole`. Comparing
/// against an immediate keeps the literal out of `.rodata`.
#[inline(always)]
unsafe fn starts_with(s: *const u8, word: u64, len: usize, whole: bool) -> bool {
    for i in 0..len {
        // SAFETY (caller): `s` is NUL-terminated, and a mismatch (the NUL
        // included) stops the scan before its end.
        if unsafe { *s.add(i) } != (word >> (8 * i)) as u8 {
            return false;
        }
    }
    // SAFETY (caller): all `len` bytes matched non-NUL bytes.
    !whole || unsafe { *s.add(len) } == 0
}

/// `HAKIRI_PREFETCH`: unset (or anything else) prefetches, `off`, `record`.
#[inline(always)]
fn mode() -> Mode {
    const KEY_HEAD: u64 = u64::from_le_bytes(*b"HAKIRI_P");
    const KEY_TAIL: u64 = u64::from_le_bytes(*b"REFETCH=");
    // SAFETY: musl's environment: a NULL-terminated array of NUL-terminated
    // strings; before main nothing changes it.
    let mut entry = unsafe { environ };
    while !entry.is_null() {
        // SAFETY: `entry` points into the array, which ends with NULL.
        let s = unsafe { *entry };
        if s.is_null() {
            break;
        }
        // SAFETY: each entry is NUL-terminated; `starts_with` stops at it.
        unsafe {
            if starts_with(s, KEY_HEAD, 8, false) && starts_with(s.add(8), KEY_TAIL, 8, false) {
                let value = s.add(16);
                if starts_with(value, u64::from_le_bytes(*b"record\0\0"), 6, true) {
                    return Mode::Record;
                }
                if starts_with(value, u64::from_le_bytes(*b"off\0\0\0\0\0"), 3, true) {
                    return Mode::Off;
                }
                return Mode::Prefetch;
            }
            entry = entry.add(1);
        }
    }
    Mode::Prefetch
}

#[link_section = "hakiri_start"]
extern "C" fn at_start() {
    match mode() {
        Mode::Prefetch => prefetch(),
        Mode::Record => record(),
        Mode::Off => {}
    }
}

/// Asks for the start-up's ranges at once; the reads run while start-up goes on.
#[inline(always)]
fn prefetch() {
    // SAFETY: the table is a static; volatile only stops constant folding.
    let start = unsafe { read_volatile(addr_of!(TABLE.start_count)) } as usize;
    if start == 0 {
        return;
    }
    // The faults before this constructor read 8 MB windows around them and
    // mark pages that start reading the next window when touched; from here
    // on the table says what to read, so no more reading around (except
    // where the kernel ignores this: missing executable pages).
    let (segments, n) = file_segments();
    for &(va, _, len) in &segments[..n] {
        // SAFETY: advice over our own mapped segments changes no contents.
        unsafe { libc::madvise(va as *mut libc::c_void, len as usize, libc::MADV_RANDOM) };
    }
    ask(0, start);
}

/// The warm-up's ranges, unless this process records or runs without.
pub(crate) fn warm_up() {
    if mode() != Mode::Prefetch {
        return;
    }
    // SAFETY: as in `prefetch`.
    let (start, count) = unsafe {
        (
            read_volatile(addr_of!(TABLE.start_count)) as usize,
            read_volatile(addr_of!(TABLE.count)) as usize,
        )
    };
    ask(start, count);
}

/// `POSIX_FADV_WILLNEED` for ranges `from..to` of the table.
#[inline(always)]
fn ask(from: usize, to: usize) {
    let to = to.min(MAX_RANGES);
    if from >= to {
        return;
    }
    // "/proc/self/exe", NUL-terminated, built from immediates (no literal).
    let mut path = [0u8; 16];
    path[..8].copy_from_slice(&u64::from_le_bytes(*b"/proc/se").to_le_bytes());
    path[8..].copy_from_slice(&u64::from_le_bytes(*b"lf/exe\0\0").to_le_bytes());
    // SAFETY: a NUL-terminated path in our own buffer.
    let fd = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return;
    }
    for i in from..to {
        // SAFETY: the table is a static and `i` is in bounds.
        let [first, pages] = unsafe { read_volatile(addr_of!(TABLE.ranges[i])) };
        let (offset, len) = (u64::from(first) * PAGE, u64::from(pages) * PAGE);
        // SAFETY: advice on an open descriptor; a failure only loses the hint.
        unsafe { libc::posix_fadvise(fd, offset as i64, len as i64, libc::POSIX_FADV_WILLNEED) };
    }
    // SAFETY: our own descriptor.
    unsafe { libc::close(fd) };
}

/// Record mode: when the process exits (or is sent SIGTERM, as a Lambda
/// bootstrap is), writes the file pages of this binary that are mapped in
/// its page tables to `$HAKIRI_PREFETCH_OUT`, as little-endian u32 page
/// numbers. Page tables, not the page cache: the kernel reads executable
/// mappings ahead regardless of `MADV_RANDOM`, so residency over-counts.
/// For page tables to say exactly which pages were touched, the recorder
/// fills the page cache in small folios first, and this turns off the
/// kernel's fault-around (mapping 16 cached neighbours on each fault).
fn record() {
    without_fault_around();
    // SAFETY: registering handlers that only make async-signal-safe calls.
    unsafe {
        libc::atexit(dump_at_exit);
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = dump_on_term as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
    }
}

/// Registering the mappings with userfaultfd in asynchronous write-protect
/// mode (nothing is ever write-protected, so nothing changes) is the one
/// unprivileged way to turn fault-around off for them. Best effort: without
/// it (kernels before 6.7, userfaultfd denied) the record is coarser.
fn without_fault_around() {
    const UFFD_USER_MODE_ONLY: libc::c_int = 1;
    const UFFD_API: u64 = 0xAA;
    const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;
    const UFFDIO_API: u32 = 0xc018_aa3f;
    const UFFDIO_REGISTER: u32 = 0xc020_aa00;
    const UFFDIO_REGISTER_MODE_WP: u64 = 1 << 1;
    // SAFETY: a syscall taking flags only.
    let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | UFFD_USER_MODE_ONLY) }
        as libc::c_int;
    if fd < 0 {
        return;
    }
    // struct uffdio_api { api, features, ioctls }
    let mut api = [UFFD_API, UFFD_FEATURE_WP_ASYNC, 0u64];
    // SAFETY: the struct the ioctl reads and writes, in our own memory.
    if unsafe { libc::ioctl(fd, UFFDIO_API as _, api.as_mut_ptr()) } != 0 {
        // SAFETY: our own descriptor.
        unsafe { libc::close(fd) };
        return;
    }
    let (segments, n) = file_segments();
    for &(va, _, len) in &segments[..n] {
        // struct uffdio_register { range { start, len }, mode, ioctls }
        let mut register = [va, len.div_ceil(PAGE) * PAGE, UFFDIO_REGISTER_MODE_WP, 0];
        // SAFETY: as above; registration only changes how faults are served.
        unsafe { libc::ioctl(fd, UFFDIO_REGISTER as _, register.as_mut_ptr()) };
    }
    // The descriptor stays open: closing it would unregister the ranges.
}

extern "C" fn dump_at_exit() {
    dump();
}

extern "C" fn dump_on_term(_signal: libc::c_int) {
    dump();
    // SAFETY: ends the process without running anything else.
    unsafe { libc::_exit(0) };
}

/// Only allocation-free, async-signal-safe calls: it may run in a handler.
fn dump() {
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.swap(true, Ordering::SeqCst) {
        return;
    }
    // SAFETY: a constant NUL-terminated name.
    let path = unsafe { libc::getenv(c"HAKIRI_PREFETCH_OUT".as_ptr()) };
    if path.is_null() {
        return;
    }
    // SAFETY: a NUL-terminated path from the environment.
    let out = unsafe {
        libc::open(
            path,
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o644,
        )
    };
    // SAFETY: a constant NUL-terminated path.
    let map = unsafe {
        libc::open(
            c"/proc/self/pagemap".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if out >= 0 && map >= 0 {
        let mut sink = Sink {
            fd: out,
            buf: [0; 1024],
            len: 0,
        };
        let (segments, n) = file_segments();
        for &(va, file_offset, len) in &segments[..n] {
            mapped_pages(map, va, file_offset, len, &mut sink);
        }
        sink.flush();
    }
    // SAFETY: our own descriptors (a negative one only fails).
    unsafe {
        libc::close(out);
        libc::close(map);
    }
}

/// Loaded segments a binary may have; more are ignored.
const MAX_SEGMENTS: usize = 16;

/// The file-backed part of each loaded segment: (page-aligned address, its
/// file offset, length), from the program headers the kernel mapped (their
/// page, the file's first, was read by `execve` itself). A plain loop into
/// an array: no iterator adapters, which would be code outside this
/// section.
#[inline(always)]
fn file_segments() -> ([(u64, u64, u64); MAX_SEGMENTS], usize) {
    let mut out = [(0, 0, 0); MAX_SEGMENTS];
    // SAFETY: the auxiliary vector's view of this executable's headers.
    let (phdr, phnum) = unsafe {
        (
            libc::getauxval(libc::AT_PHDR) as *const libc::Elf64_Phdr,
            libc::getauxval(libc::AT_PHNUM) as usize,
        )
    };
    if phdr.is_null() {
        return (out, 0);
    }
    // A position-independent executable is loaded at a bias; PT_PHDR says where.
    let mut bias = 0u64;
    for i in 0..phnum {
        // SAFETY: `phnum` headers live at `phdr` for the life of the process.
        let h = unsafe { &*phdr.add(i) };
        if h.p_type == libc::PT_PHDR {
            bias = (phdr as u64).wrapping_sub(h.p_vaddr);
        }
    }
    let mut n = 0;
    for i in 0..phnum {
        // SAFETY: as above.
        let h = unsafe { &*phdr.add(i) };
        if h.p_type == libc::PT_LOAD && h.p_filesz > 0 && n < MAX_SEGMENTS {
            let va = bias.wrapping_add(h.p_vaddr);
            let skew = va % PAGE;
            out[n] = (va - skew, h.p_offset - skew, h.p_filesz + skew);
            n += 1;
        }
    }
    (out, n)
}

/// Writes the file page of each present page of [va, va + len).
fn mapped_pages(map: i32, va: u64, file_offset: u64, len: u64, sink: &mut Sink) {
    let pages = len.div_ceil(PAGE);
    let mut entries = [0u64; 512];
    let mut done = 0;
    while done < pages {
        let n = (pages - done).min(entries.len() as u64) as usize;
        let at = (va / PAGE + done) * 8;
        // SAFETY: reads into our own buffer of `n` entries.
        let read = unsafe { libc::pread(map, entries.as_mut_ptr().cast(), n * 8, at as i64) };
        if read != (n * 8) as isize {
            return;
        }
        for (i, e) in entries[..n].iter().enumerate() {
            if e >> 63 == 1 {
                sink.push((file_offset / PAGE + done + i as u64) as u32);
            }
        }
        done += n as u64;
    }
}

struct Sink {
    fd: i32,
    buf: [u32; 1024],
    len: usize,
}

impl Sink {
    fn push(&mut self, page: u32) {
        if self.len == self.buf.len() {
            self.flush();
        }
        self.buf[self.len] = page.to_le();
        self.len += 1;
    }

    fn flush(&mut self) {
        // SAFETY: writes the filled part of our own buffer.
        unsafe { libc::write(self.fd, self.buf.as_ptr().cast(), self.len * 4) };
        self.len = 0;
    }
}
