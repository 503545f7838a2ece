//! Runs a built binary the way users do and measures it.

use anyhow::{bail, Context, Result};
use hakiri_kernel::report::{CapabilitiesReport, SCHEMA_VERSION};
use hakiri_testkit::command;
use hakiri_testkit::lambda::{Emulator, Kind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use hakiri_testkit::Running;

/// A scratch home so no user config or data leaks into a measurement.
pub fn scratch_home(tag: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("hakiri-gates-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// `bin capabilities --json`.
pub fn capabilities(bin: &Path, home: &Path) -> Result<CapabilitiesReport> {
    capabilities_with(bin, home, &[])
}

/// [`capabilities`] with extra environment variables.
pub fn capabilities_with(
    bin: &Path,
    home: &Path,
    env: &[(&str, &str)],
) -> Result<CapabilitiesReport> {
    let out = command(bin, home)
        .envs(env.iter().copied())
        .args(["capabilities", "--json"])
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "{} capabilities --json failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let version: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{} capabilities --json printed invalid JSON", bin.display()))?;
    if version["schema_version"] != SCHEMA_VERSION {
        bail!(
            "{} prints capabilities schema_version {}; these gates read {SCHEMA_VERSION}",
            bin.display(),
            version["schema_version"]
        );
    }
    serde_json::from_value(version).with_context(|| {
        format!(
            "{} capabilities --json does not match the report schema",
            bin.display()
        )
    })
}

/// Resident set size of a live process, in bytes.
pub fn rss(pid: u32) -> Result<u64> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).context("process is gone")?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc status")?;
    Ok(kb * 1024)
}

/// Starts `bin serve` and waits for its ready line.
pub fn start_serve(bin: &Path, home: &Path) -> Result<Running> {
    Ok(Running::until_ready(
        command(bin, home).arg("serve"),
        Duration::from_secs(60),
    )?)
}

/// Starts `bin` as a Lambda bootstrap, serves one invocation, and leaves it
/// waiting for the next.
pub fn start_lambda(bin: &Path, home: &Path) -> Result<(Running, Emulator)> {
    let emu = Emulator::start()?;
    let id = emu.invoke("{}");
    let running = Running::spawn(command(bin, home).envs(emu.env()))
        .with_context(|| format!("cannot start {} as a bootstrap", bin.display()))?;
    match emu.wait(&id, Duration::from_secs(30)) {
        Some(o) if o.kind == Kind::Response => {}
        Some(o) => bail!(
            "{} answered the invocation with {:?}: {}",
            bin.display(),
            o.kind,
            o.body
        ),
        None => bail!("{} did not answer an invocation within 30 s", bin.display()),
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while emu.next_calls() < 2 {
        if Instant::now() > deadline {
            bail!("{} did not ask for its next invocation", bin.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok((running, emu))
}

/// Idle RSS of the profile's long-running shape, after it settles (and,
/// with an `idle_config`, after its refresh jobs' first runs).
pub fn idle_rss(bin: &Path, shape: &[String], config: Option<&str>, home: &Path) -> Result<u64> {
    let settle = || std::thread::sleep(Duration::from_secs(3));
    if let Some(config) = config {
        std::fs::write(home.join("idle.csv"), "region,amount\neu,1\nus,2\n")?;
        let text = config.replace("{home}", &home.display().to_string());
        std::fs::write(home.join("hakiri.toml"), text)?;
    }
    match shape.first().map(String::as_str) {
        Some("serve") => {
            let running = start_serve(bin, home)?;
            if config.is_some_and(|c| c.contains("[[refresh]]")) {
                first_refreshes_done(home)?;
            }
            settle();
            max_rss(running.pid())
        }
        Some("lambda") => {
            let (running, _emu) = start_lambda(bin, home)?;
            settle();
            max_rss(running.pid())
        }
        other => {
            bail!("unknown idle_shape {other:?} in profile.toml; use [\"serve\"] or [\"lambda\"]")
        }
    }
}

/// Waits until a refresh job recorded a finished run under `home/scheduler`.
fn first_refreshes_done(home: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let finished = std::fs::read_dir(home.join("scheduler"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .any(|t| {
                ["\"ok\"", "\"unchanged\"", "\"failed\""]
                    .iter()
                    .any(|o| t.contains(o))
            });
        if finished {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the idle_config's refresh job did not finish a run within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn max_rss(pid: u32) -> Result<u64> {
    let mut max = 0;
    for _ in 0..3 {
        max = max.max(rss(pid)?);
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(max)
}

/// Time from exec (binary evicted from the page cache) to the first response
/// posted to the Runtime API, for each of `runs` runs.
pub fn cold_starts(bin: &Path, runs: usize, home: &Path) -> Result<Vec<Duration>> {
    cold_starts_with(bin, runs, home, &[])
}

/// [`cold_starts`] with extra environment variables.
pub fn cold_starts_with(
    bin: &Path,
    runs: usize,
    home: &Path,
    env: &[(&str, &str)],
) -> Result<Vec<Duration>> {
    anyhow::ensure!(runs > 0, "cold start: 0 runs measure nothing");
    (0..runs)
        .map(|_| {
            crate::artifact::evict_from_page_cache(bin)?;
            cold_start(bin, home, env)
        })
        .collect()
}

/// Cold starts of `bin` and of `baseline`, taken in turns (baseline, bin,
/// baseline, …) so both see the same disk and the same neighbours: the
/// ratio of their medians is what a run can be judged by.
pub fn paired_cold_starts(
    bin: &Path,
    baseline: &Path,
    runs: usize,
    home: &Path,
) -> Result<(Vec<Duration>, Vec<Duration>)> {
    anyhow::ensure!(runs > 0, "cold start: 0 runs measure nothing");
    let (mut ours, mut theirs) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        theirs.extend(cold_starts(baseline, 1, home)?);
        ours.extend(cold_starts(bin, 1, home)?);
    }
    Ok((ours, theirs))
}

/// One start of `bin` as a Lambda bootstrap: exec to its first response.
pub fn cold_start(bin: &Path, home: &Path, env: &[(&str, &str)]) -> Result<Duration> {
    let emu = Emulator::start()?;
    let id = emu.invoke("{}");
    let start = Instant::now();
    let _running = Running::spawn(command(bin, home).envs(emu.env()).envs(env.iter().copied()))
        .with_context(|| format!("cannot start {}", bin.display()))?;
    match emu.wait(&id, Duration::from_secs(30)) {
        Some(o) if o.kind == Kind::Response => Ok(o.at.duration_since(start)),
        Some(o) => bail!("{} answered with {:?}: {}", bin.display(), o.kind, o.body),
        None => bail!("{} did not answer within 30 s", bin.display()),
    }
}

/// Wall time from exec to exit of `bin sql "select 42"`, what a user of a
/// freshly started process waits for its first answer; with `evict`, the
/// binary is read from disk first, as after a Lambda cold start.
pub fn first_query(bin: &Path, home: &Path, evict: bool, env: &[(&str, &str)]) -> Result<Duration> {
    if evict {
        crate::artifact::evict_from_page_cache(bin)?;
    }
    let start = Instant::now();
    let out = command(bin, home)
        .envs(env.iter().copied())
        .args(["sql", "select 42 as answer"])
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !stdout.contains("42") {
        bail!(
            "{} sql \"select 42\" failed: {}{}",
            bin.display(),
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(took)
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}
