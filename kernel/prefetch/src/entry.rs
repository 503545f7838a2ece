//! The entry point of the x86_64 musl binaries, in the constructor's section
//! (`hakiri_start`, see `start`). musl's `_start` (crt1) is the first code of
//! `.text`, 80 MB before everything else start-up runs; its fault alone read
//! a third readaround window. The profiles link with `--entry hakiri_entry`
//! (`hakiri_build::profile`), which does what crt1 does: clear the frame
//! pointer, align the stack and hand argc/argv to `__libc_start_main`.
//!
//! First, though, it checks the CPU. The binaries are compiled for
//! x86-64-v3 (`.cargo/config.toml`), and on an older CPU the first AVX2
//! instruction, anywhere from the allocator's start-up on, would kill the
//! process with SIGILL and no word of why. The check is assembly, run before
//! any compiled code: Rust code of this crate may itself use AVX2.

/// What an older CPU gets on standard error, then exit status 1.
#[cfg(all(target_arch = "x86_64", target_env = "musl", target_feature = "avx2"))]
const CPU_TEXT: &[u8] = b"hakiri: this binary needs an x86-64-v3 CPU (AVX2, BMI1/2, FMA, LZCNT, MOVBE: Intel Haswell, AMD Excavator or later, as the default Polars build does) and this CPU lacks some of them. Build one for any x86-64 CPU from source with CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS='-C target-cpu=x86-64' (README, \"Supported CPUs\").\n";
#[cfg(all(target_arch = "x86_64", target_env = "musl", target_feature = "avx2"))]
static CPU_MESSAGE: [u8; CPU_TEXT.len()] = *CPU_TEXT.first_chunk().unwrap();

// `hakiri_check_cpu` returns if the CPU has every feature of x86-64-v3 (and
// so of v2) and the kernel saves the AVX registers; otherwise it writes
// CPU_MESSAGE and exits. CPUID bits (Intel SDM vol. 2, "CPUID"):
// leaf 1 ECX: SSE3 0, SSSE3 9, FMA 12, CX16 13, SSE4.1 19, SSE4.2 20,
//   MOVBE 22, POPCNT 23, OSXSAVE 27, AVX 28, F16C 29 = 0x38d83201;
// XCR0: SSE and AVX state enabled by the OS = 0b110;
// leaf 7 EBX: BMI1 3, AVX2 5, BMI2 8 = 0x128;
// leaf 0x8000_0001 ECX: LAHF/SAHF 0, LZCNT 5 = 0x21.
#[cfg(all(target_arch = "x86_64", target_env = "musl", target_feature = "avx2"))]
std::arch::global_asm!(
    ".pushsection hakiri_start,\"ax\",@progbits",
    ".globl hakiri_check_cpu",
    ".hidden hakiri_check_cpu",
    ".type hakiri_check_cpu,@function",
    "hakiri_check_cpu:",
    "xor eax, eax",
    "cpuid",
    "cmp eax, 7",
    "jb 2f",
    "mov eax, 0x80000000",
    "cpuid",
    "cmp eax, 0x80000001",
    "jb 2f",
    "mov eax, 1",
    "xor ecx, ecx",
    "cpuid",
    "and ecx, 0x38d83201",
    "cmp ecx, 0x38d83201",
    "jne 2f",
    "xor ecx, ecx",
    "xgetbv",
    "and eax, 6",
    "cmp eax, 6",
    "jne 2f",
    "mov eax, 7",
    "xor ecx, ecx",
    "cpuid",
    "and ebx, 0x128",
    "cmp ebx, 0x128",
    "jne 2f",
    "mov eax, 0x80000001",
    "xor ecx, ecx",
    "cpuid",
    "and ecx, 0x21",
    "cmp ecx, 0x21",
    "jne 2f",
    "ret",
    "2:",
    // write(2, CPU_MESSAGE, len), then exit_group(1): raw system calls,
    // as nothing of libc is set up yet.
    "mov eax, 1",
    "mov edi, 2",
    "lea rsi, [rip + {message}]",
    "mov edx, {len}",
    "syscall",
    "mov eax, 231",
    "mov edi, 1",
    "syscall",
    "ud2",
    ".size hakiri_check_cpu, . - hakiri_check_cpu",
    ".popsection",
    message = sym CPU_MESSAGE,
    len = const CPU_TEXT.len(),
);

// A build for any x86-64 CPU (target-cpu=x86-64) has nothing to check.
#[cfg(all(
    target_arch = "x86_64",
    target_env = "musl",
    not(target_feature = "avx2")
))]
std::arch::global_asm!(
    ".pushsection hakiri_start,\"ax\",@progbits",
    ".globl hakiri_check_cpu",
    ".hidden hakiri_check_cpu",
    ".type hakiri_check_cpu,@function",
    "hakiri_check_cpu:",
    "ret",
    ".size hakiri_check_cpu, . - hakiri_check_cpu",
    ".popsection",
);

// CPUID and XGETBV clobber only rax, rbx, rcx and rdx: rdi still holds the
// initial stack when `start_c` is called.
#[cfg(all(target_arch = "x86_64", target_env = "musl"))]
std::arch::global_asm!(
    ".pushsection hakiri_start,\"ax\",@progbits",
    ".globl hakiri_entry",
    ".type hakiri_entry,@function",
    "hakiri_entry:",
    "xor ebp, ebp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call hakiri_check_cpu",
    "call {start_c}",
    "ud2",
    ".size hakiri_entry, . - hakiri_entry",
    ".popsection",
    start_c = sym start_c,
);

#[cfg(all(target_arch = "x86_64", target_env = "musl"))]
extern "C" {
    fn main(
        argc: libc::c_int,
        argv: *mut *mut libc::c_char,
        envp: *mut *mut libc::c_char,
    ) -> libc::c_int;
    fn __libc_start_main(
        main: unsafe extern "C" fn(
            libc::c_int,
            *mut *mut libc::c_char,
            *mut *mut libc::c_char,
        ) -> libc::c_int,
        argc: libc::c_int,
        argv: *mut *mut libc::c_char,
        init: usize,
        fini: usize,
        ldso: usize,
    ) -> libc::c_int;
}

/// crt1's `_start_c`: `p` is the initial stack, argc then argv.
#[cfg(all(target_arch = "x86_64", target_env = "musl"))]
#[link_section = "hakiri_start"]
unsafe extern "C" fn start_c(p: *mut usize) -> ! {
    // SAFETY: the kernel's initial stack layout: argc, then argv's pointers.
    unsafe {
        let argc = *p as libc::c_int;
        let argv = p.add(1).cast::<*mut libc::c_char>();
        // musl ignores init, fini and ldso (it runs `.init_array` itself).
        __libc_start_main(main, argc, argv, 0, 0, 0);
        libc::_exit(127)
    }
}
