//! What the profiles' end-to-end tests and the gates share: a scratch home,
//! a profile binary run with a clean environment and a timeout, `serve`
//! started and stopped, a small HTTP client, and skipping tests whose
//! services are not configured.

pub mod coord;
pub mod function_url;
pub mod http;
pub mod mcp;
pub mod s3;
mod serve;
pub mod wasm;

pub use hakiri_lambda_emulator as lambda;
pub use serve::{service_addr, start_bootstrap, start_serve, Running, READY_TIMEOUT};

use serde_json::Value;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long [`run`] lets a command take before killing it and failing.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// A scratch Hakiri home, removed when dropped.
pub struct Home(tempfile::TempDir);

impl Home {
    pub fn new() -> Home {
        Home(tempfile::tempdir().expect("cannot create a scratch home"))
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// Writes `hakiri.toml` into the home, where the binary looks for it, and
    /// returns its path.
    pub fn write_config(&self, toml: &str) -> PathBuf {
        let path = self.path().join("hakiri.toml");
        std::fs::write(&path, toml)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }
}

impl Default for Home {
    fn default() -> Home {
        Home::new()
    }
}

/// `bin` with a clean Hakiri environment: `home` as its home, none of the
/// caller's `HAKIRI_*` (so no `HAKIRI_CONFIG`) or `AWS_*` variables, services
/// on port 0, and no stdin.
pub fn command(bin: impl AsRef<OsStr>, home: &Path) -> Command {
    let mut cmd = Command::new(bin);
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if name.starts_with("HAKIRI_") || name.starts_with("AWS_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("HAKIRI_HOME", home)
        .env("HAKIRI_MCP__LISTEN", "127.0.0.1:0")
        .env("HAKIRI_COORD_API__LISTEN", "127.0.0.1:0")
        .env("HAKIRI_RAFT__LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null());
    cmd
}

/// Runs `bin args…` in `home` (see [`command`]) to completion, within [`TIMEOUT`].
pub fn run(bin: impl AsRef<OsStr>, home: &Path, args: &[&str]) -> Output {
    output(command(bin, home).args(args), &[], TIMEOUT)
}

/// [`run`] that must succeed; returns its stdout, or panics with its stderr.
pub fn run_ok(bin: impl AsRef<OsStr>, home: &Path, args: &[&str]) -> String {
    let out = run(bin, home, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// [`run`] that must fail; returns its stderr (the message to check), or
/// panics with its stdout.
pub fn run_err(bin: impl AsRef<OsStr>, home: &Path, args: &[&str]) -> String {
    let out = run(bin, home, args);
    assert!(
        !out.status.success(),
        "{args:?} succeeded: {}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

/// Mints a token in `home` with `bin auth token args…` (`--tool`,
/// `--dataset`, `--ttl`, `--read-only`), creating the home's root key on
/// first use. Panics with the binary's message if it cannot.
pub fn mint_token(bin: impl AsRef<OsStr>, home: &Path, args: &[&str]) -> String {
    let bin = bin.as_ref();
    if !home.join("auth/root.key").exists() {
        let init = run(bin, home, &["auth", "init"]);
        assert!(init.status.success(), "auth init: {}", text(&init.stderr));
    }
    let mut all = vec!["auth", "token"];
    all.extend_from_slice(args);
    let out = run(bin, home, &all);
    assert!(
        out.status.success(),
        "auth token {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout).trim().to_string()
}

/// [`run`] with extra environment variables and bytes on stdin.
pub fn run_with(
    bin: impl AsRef<OsStr>,
    home: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &[u8],
) -> Output {
    output(
        command(bin, home).args(args).envs(env.iter().copied()),
        stdin,
        TIMEOUT,
    )
}

/// Runs `cmd` to completion with `stdin` as its input (none if empty) and
/// collects its output. If it takes longer than `timeout` it is killed and
/// this panics, showing the command and what it printed so far.
pub fn output(cmd: &mut Command, stdin: &[u8], timeout: Duration) -> Output {
    let shown = describe(cmd);
    let input = if stdin.is_empty() {
        Stdio::null()
    } else {
        Stdio::piped()
    };
    let mut child = cmd
        .stdin(input)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    if let Some(mut pipe) = child.stdin.take() {
        let input = stdin.to_vec();
        // From a thread: a child that writes before it reads must not deadlock us.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let stdout = Collector::start(child.stdout.take().expect("piped stdout"));
    let stderr = Collector::start(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + timeout;
    loop {
        let status = child
            .try_wait()
            .unwrap_or_else(|e| panic!("cannot wait for {shown}: {e}"));
        // Done once it exited and closed its output (as `Command::output` has it).
        if let Some(status) = status.filter(|_| stdout.done() && stderr.done()) {
            return Output {
                status,
                stdout: stdout.finish(),
                stderr: stderr.finish(),
            };
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{shown} did not finish within {timeout:?} and was killed\n\
                 --- stdout so far ---\n{}\n--- stderr so far ---\n{}",
                text(&stdout.so_far()),
                text(&stderr.so_far())
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reads a pipe on its own thread, so what was printed is visible before EOF.
struct Collector {
    bytes: Arc<Mutex<Vec<u8>>>,
    thread: JoinHandle<()>,
}

impl Collector {
    fn start(mut pipe: impl Read + Send + 'static) -> Collector {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let sink = bytes.clone();
        let thread = std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match pipe.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => sink.lock().unwrap().extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        });
        Collector { bytes, thread }
    }

    fn done(&self) -> bool {
        self.thread.is_finished()
    }

    fn so_far(&self) -> Vec<u8> {
        self.bytes.lock().unwrap().clone()
    }

    fn finish(self) -> Vec<u8> {
        let _ = self.thread.join();
        std::mem::take(&mut *self.bytes.lock().unwrap())
    }
}

/// The command line, quoted, for messages.
fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sends SIGTERM to `pid`, as a service manager does to stop a process.
pub fn terminate(pid: u32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    // SAFETY: kill(2) takes plain integers and touches none of our memory.
    if unsafe { libc::kill(pid, libc::SIGTERM) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Output bytes as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The capability names in a `capabilities --json` document, in order.
pub fn capability_names(report: &Value) -> Vec<String> {
    report["capabilities"]
        .as_array()
        .expect("a capabilities array")
        .iter()
        .map(|c| c["name"].as_str().expect("a name").to_string())
        .collect()
}

/// The value of the environment variable naming a test service (as
/// `.ci/services.sh` exports it), or else `return` from the test after
/// printing `SKIPPED <test>: … is not set` to stderr. With
/// `HAKIRI_TEST_REQUIRE_SERVICES=1` (CI) a missing variable fails the test
/// instead, so CI skips nothing.
///
/// ```no_run
/// fn round_trips_through_postgres() {
///     let url = hakiri_testkit::skip_unless_configured!("HAKIRI_TEST_POSTGRES_URL");
///     // … connect to `url` …
/// }
/// ```
#[macro_export]
macro_rules! skip_unless_configured {
    ($var:expr) => {
        match $crate::configured_or_skip($var, module_path!()) {
            Some(value) => value,
            None => return,
        }
    };
}

/// What [`skip_unless_configured!`] calls.
#[doc(hidden)]
pub fn configured_or_skip(var: &str, module: &str) -> Option<String> {
    if let Some(value) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
        return Some(value);
    }
    let test = test_name(module);
    if std::env::var("HAKIRI_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("{test}: {var} is not set, and HAKIRI_TEST_REQUIRE_SERVICES=1 requires every service test to run");
    }
    // Straight to stderr: libtest would capture `eprintln!` and hide the skip.
    let _ = writeln!(
        io::stderr(),
        "SKIPPED {test}: {var} is not set; run under .ci/test (which starts PostgreSQL and an S3/DynamoDB server) to include it"
    );
    None
}

/// `crate::path::to::test`: libtest names each test's thread after the test's
/// path within its crate.
fn test_name(module: &str) -> String {
    let krate = module.split("::").next().unwrap_or(module);
    match std::thread::current().name() {
        Some(test) if test != "main" => format!("{krate}::{test}"),
        _ => module.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn output_feeds_stdin_and_collects_both_streams() {
        let out = output(&mut sh("cat; echo oops >&2; exit 3"), b"hello", TIMEOUT);
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(text(&out.stdout), "hello");
        assert_eq!(text(&out.stderr), "oops\n");
    }

    #[test]
    fn output_kills_what_overruns_its_timeout() {
        let start = Instant::now();
        let failed = catch_unwind(AssertUnwindSafe(|| {
            output(
                &mut sh("echo started; exec sleep 30"),
                &[],
                Duration::from_millis(500),
            )
        }))
        .expect_err("a 30 s sleep cannot finish in 0.5 s");
        assert!(start.elapsed() < Duration::from_secs(10));
        let message = failed.downcast_ref::<String>().expect("a formatted panic");
        assert!(
            message.contains("did not finish within 500ms and was killed"),
            "{message}"
        );
        assert!(message.contains("\"sh\" \"-c\""), "{message}");
        assert!(
            message.contains("--- stdout so far ---\nstarted\n"),
            "{message}"
        );
    }

    #[test]
    fn command_cleans_the_environment() {
        let home = Home::new();
        let out = output(
            command("sh", home.path())
                .args(["-c", "env | grep -E '^(HAKIRI|AWS)_' | sort"])
                .env("AWS_REGION", "set by the test"),
            &[],
            TIMEOUT,
        );
        assert_eq!(
            text(&out.stdout),
            format!(
                "AWS_REGION=set by the test\nHAKIRI_COORD_API__LISTEN=127.0.0.1:0\nHAKIRI_HOME={}\nHAKIRI_MCP__LISTEN=127.0.0.1:0\nHAKIRI_RAFT__LISTEN=127.0.0.1:0\n",
                home.path().display()
            )
        );
    }

    fn needs_service(var: &str, ran: &mut bool) {
        let _value = skip_unless_configured!(var);
        *ran = true;
    }

    #[test]
    fn tests_without_their_service_skip_or_fail_as_ci_asks() {
        let mut ran = false;
        needs_service("PATH", &mut ran);
        assert!(ran, "a configured service runs the test");

        let mut ran = false;
        let result = catch_unwind(AssertUnwindSafe(|| {
            needs_service("HAKIRI_TEST_NOT_A_SERVICE", &mut ran)
        }));
        let required = std::env::var("HAKIRI_TEST_REQUIRE_SERVICES").as_deref() == Ok("1");
        assert_eq!(result.is_err(), required, "fails only when required");
        assert!(!ran, "the rest of the test is skipped");
        assert_eq!(
            test_name(module_path!()),
            "hakiri_testkit::tests::tests_without_their_service_skip_or_fail_as_ci_asks"
        );
    }
}
