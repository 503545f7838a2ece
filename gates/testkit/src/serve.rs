//! Long-running processes: `serve` waited on until ready, a Lambda bootstrap,
//! each stopped when dropped.

use crate::lambda::Emulator;
use crate::{command, describe, terminate};
use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long `serve` may take to print its ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long [`Running::stop`] waits after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// A running process, stopped (SIGTERM, then SIGKILL after 5 s) when dropped.
pub struct Running {
    pub child: Child,
    /// The stderr line containing ` ready: `; empty if not started by
    /// [`Running::until_ready`].
    pub ready_line: String,
}

impl Running {
    /// Spawns `cmd` with its output discarded, e.g. a Lambda bootstrap.
    pub fn spawn(cmd: &mut Command) -> io::Result<Running> {
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
        Ok(Running {
            child,
            ready_line: String::new(),
        })
    }

    /// Spawns `cmd` and waits up to `timeout` for a stderr line containing
    /// ` ready: `, as `serve` prints once every service listens.
    pub fn until_ready(cmd: &mut Command, timeout: Duration) -> io::Result<Running> {
        let shown = describe(cmd);
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start {shown}: {e}")))?;
        // Owned from here on, so every early return below stops the process.
        let mut running = Running {
            child,
            ready_line: String::new(),
        };
        let stderr = running.child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        // Reads to EOF, past the ready line, so the process never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut said = Vec::new();
        let deadline = Instant::now() + timeout;
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains(" ready: ") => {
                    running.ready_line = line;
                    return Ok(running);
                }
                Ok(line) => said.push(line),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "{shown} was not ready within {timeout:?}; it said: {}",
                            said.join(" | ")
                        ),
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = running.shutdown()?;
                    return Err(io::Error::other(format!(
                        "{shown} exited ({status}) before it was ready; it said: {}",
                        said.join(" | ")
                    )));
                }
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `host:port` of `service` in the ready line; panics if it is not there.
    pub fn addr(&self, service: &str) -> String {
        service_addr(&self.ready_line, service)
            .unwrap_or_else(|| panic!("no `{service} on …` in the ready line: {}", self.ready_line))
    }

    /// Stops the process as a service manager does (SIGTERM, up to 5 s to
    /// exit, then SIGKILL) and returns how it exited.
    pub fn stop(&mut self) -> ExitStatus {
        self.shutdown()
            .unwrap_or_else(|e| panic!("cannot stop process {}: {e}", self.pid()))
    }

    fn shutdown(&mut self) -> io::Result<ExitStatus> {
        // Once reaped, the pid may belong to someone else: never signal it then.
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        terminate(self.child.id())?;
        let deadline = Instant::now() + GRACE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        self.child.wait()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Starts `bin serve` in `home` (see [`command`]: services on port 0) and
/// waits for its ready line; panics if it is not ready within [`READY_TIMEOUT`].
pub fn start_serve(bin: impl AsRef<OsStr>, home: &Path) -> Running {
    Running::until_ready(command(bin, home).arg("serve"), READY_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Starts `bin` in `home` as a Lambda bootstrap against `emulator`.
pub fn start_bootstrap(bin: impl AsRef<OsStr>, home: &Path, emulator: &Emulator) -> Running {
    let bin = bin.as_ref();
    Running::spawn(command(bin, home).envs(emulator.env()))
        .unwrap_or_else(|e| panic!("cannot start {bin:?} as a bootstrap: {e}"))
}

/// `host:port` of `service` in a ready line such as
/// `hakiri-full ready: mcp on http://127.0.0.1:41234/mcp, raft`.
pub fn service_addr(ready: &str, service: &str) -> Option<String> {
    let (_, services) = ready.split_once(" ready: ")?;
    let url = services
        .split(", ")
        .find_map(|s| s.strip_prefix(service)?.strip_prefix(" on "))?;
    let url = url.strip_prefix("http://").unwrap_or(url);
    url.split('/').next().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_service_in_a_ready_line() {
        let full = "hakiri-full ready: mcp on http://127.0.0.1:41234/mcp";
        assert_eq!(
            service_addr(full, "mcp").as_deref(),
            Some("127.0.0.1:41234")
        );
        let coord = "hakiri-coord ready: coord-api on http://127.0.0.1:7000, raft";
        assert_eq!(
            service_addr(coord, "coord-api").as_deref(),
            Some("127.0.0.1:7000")
        );
        assert_eq!(service_addr(coord, "raft"), None);
        assert_eq!(service_addr(coord, "coord"), None);
        assert_eq!(service_addr("starting", "mcp"), None);
    }

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn waits_for_the_ready_line_and_stops_with_sigterm() {
        let mut running = Running::until_ready(
            &mut sh("echo warming up >&2; echo 'x ready: mcp on http://127.0.0.1:9/mcp' >&2; exec sleep 30"),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(running.addr("mcp"), "127.0.0.1:9");
        let start = Instant::now();
        let status = running.stop();
        assert!(start.elapsed() < GRACE, "SIGTERM alone stops it");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGTERM));
    }

    #[test]
    fn says_what_a_process_printed_before_it_died_unready() {
        let e = Running::until_ready(&mut sh("echo boom >&2; exit 3"), Duration::from_secs(10))
            .err()
            .expect("never ready");
        let e = e.to_string();
        assert!(
            e.contains("exited (exit status: 3) before it was ready; it said: boom"),
            "{e}"
        );
        let e = Running::until_ready(&mut sh("exec sleep 30"), Duration::from_millis(300))
            .err()
            .expect("never ready");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
