//! `cargo gates soak`: drives a mix of calls against a running daemon (MCP
//! tool listing, SQL, vector and full-text search, scheduler status, an
//! agent's ingest every 300 calls, and a refresh job re-ingesting a
//! dataset every 5 s), samples RSS into a state file, and
//! judges it ([`crate::judge`]): the last seventh within ±5% of the first.

use crate::judge::{judge, Sample, Verdict};
use crate::workspace::Workspace;
use crate::{mb, probe};
use anyhow::{bail, Context, Result};
use hakiri_testkit::http::{request, Response};
use hakiri_testkit::service_addr;
use std::time::{Duration, Instant};

pub const MAX_DRIFT: f64 = 0.05;

/// The kernel's duration syntax (90s, 10m, 2h, 7d), as everywhere else.
pub fn parse_duration(s: &str) -> Result<Duration> {
    hakiri_kernel::clock::parse_duration(s).map_err(anyhow::Error::msg)
}

/// One request over a fresh connection to a loopback server (testkit's client).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Response> {
    let url = format!("http://{addr}{path}");
    request(
        method,
        &url,
        headers,
        body.as_bytes(),
        Duration::from_secs(30),
    )
    .with_context(|| format!("{method} {url}"))
}

/// Makes calls against the daemon.
enum Driver {
    /// A three-node cluster: writes, linearizable reads and status, spread
    /// over every node (followers forward to the leader).
    Coord { apis: Vec<String>, next: u64 },
    Mcp {
        addr: String,
        session: Option<String>,
        next_id: u64,
        bearer: String,
        /// A CSV the agent re-ingests now and then (under `[connectors] allow_paths`).
        agent_csv: String,
    },
}

impl Driver {
    fn new(profile: &str, ready: &str, token: String, home: &std::path::Path) -> Result<Driver> {
        match profile {
            "hakiri-full" => {
                let addr =
                    service_addr(ready, "mcp").context("mcp address not in the ready line")?;
                let mut d = Driver::Mcp {
                    addr,
                    session: None,
                    next_id: 1,
                    bearer: format!("Bearer {token}"),
                    agent_csv: home.join("agent.csv").display().to_string(),
                };
                d.mcp_initialize()?;
                Ok(d)
            }
            other => bail!("no soak driver for {other}; soak full or coord"),
        }
    }

    fn mcp_post(&mut self, body: &str) -> Result<Response> {
        let Driver::Mcp {
            addr,
            session,
            bearer,
            ..
        } = self
        else {
            bail!("MCP request on a driver that does not speak MCP");
        };
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("Authorization", bearer.as_str()),
        ];
        if let Some(s) = session {
            headers.push(("Mcp-Session-Id", s.as_str()));
        }
        http(addr, "POST", "/mcp", &headers, body)
    }

    fn mcp_initialize(&mut self) -> Result<()> {
        let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"hakiri-soak","version":"1"}}}"#;
        let resp = self.mcp_post(init)?;
        if resp.status != 200 {
            bail!("MCP initialize answered {}: {}", resp.status, resp.body);
        }
        let sid = resp.header("mcp-session-id").map(str::to_string);
        if let Driver::Mcp { session, .. } = self {
            *session = sid;
        }
        let resp = self.mcp_post(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)?;
        if !(200..300).contains(&resp.status) {
            bail!(
                "MCP initialized notification answered {}: {}",
                resp.status,
                resp.body
            );
        }
        Ok(())
    }

    fn call(&mut self) -> Result<()> {
        match self {
            Driver::Coord { apis, next } => {
                *next += 1;
                let n = *next;
                let addr = &apis[(n % apis.len() as u64) as usize];
                // 1000 keys rewritten over and over: the state stays the
                // same size, so growth would be the log (snapshots purge it).
                let key = format!("/v1/kv/soak/{}", n % 1000);
                let value = format!(r#"{{"value":"{}"}}"#, "v".repeat(100));
                let json = [("Content-Type", "application/json")];
                let (method, path, body) = match n % 4 {
                    0 | 1 => ("PUT", key.as_str(), value.as_str()),
                    2 => ("GET", key.as_str(), ""),
                    _ => ("GET", "/v1/cluster", ""),
                };
                let resp = http(addr, method, path, &json, body)?;
                anyhow::ensure!(
                    resp.status == 200 || (resp.status == 404 && method == "GET"),
                    "{method} {path} answered {}: {}",
                    resp.status,
                    resp.body
                );
            }
            Driver::Mcp {
                next_id, agent_csv, ..
            } => {
                *next_id += 1;
                let id = *next_id;
                let agent_csv = agent_csv.clone();
                let (method, params) = match id % 6 {
                    0 => ("tools/list", "{}".to_string()),
                    1 => (
                        "tools/call",
                        r#"{"name":"vector.nearest","arguments":{"vectors":[[0,0],[1,1],[2,2],[3,3]],"query":[1.1,1.0],"k":1}}"#.to_string(),
                    ),
                    2 => (
                        "tools/call",
                        r#"{"name":"scheduler.status","arguments":{}}"#.to_string(),
                    ),
                    4 => (
                        "tools/call",
                        r#"{"name":"search.text","arguments":{"documents":["the sales of the eu region","us orders by amount","a whale of a quarter"],"query":"sales AND region","limit":2}}"#.to_string(),
                    ),
                    // An agent re-ingests a dataset now and then (replace: a
                    // new version, the old one retained, then swept).
                    5 if id % 300 == 5 => (
                        "tools/call",
                        format!(
                            r#"{{"name":"datasets.ingest","arguments":{{"sources":[{agent_csv:?}],"name":"agent_soak"}}}}"#
                        ),
                    ),
                    _ => (
                        "tools/call",
                        r#"{"name":"engine.query","arguments":{"sql":"select region, sum(amount) from soak group by 1"}}"#.to_string(),
                    ),
                };
                let body = format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#
                );
                let resp = self.mcp_post(&body)?;
                // A tool that fails still answers with a result, flagged isError.
                anyhow::ensure!(
                    resp.status == 200
                        && resp.body.contains("\"result\"")
                        && !resp.body.contains("\"isError\":true"),
                    "MCP {method} answered {}: {}",
                    resp.status,
                    resp.body
                );
            }
        }
        Ok(())
    }
}

pub fn run(
    ws: &Workspace,
    profile: &str,
    duration: Duration,
    skip_build: bool,
    state: Option<&std::path::Path>,
) -> Result<bool> {
    let package = if profile.starts_with("hakiri-") {
        profile.to_string()
    } else {
        format!("hakiri-{profile}")
    };
    if !skip_build {
        ws.build_all()?;
    }
    let bin = ws.ship(&package)?;
    let home = probe::scratch_home("soak")?;
    // The daemon's own work is part of the mix: a refresh job re-ingests a
    // dataset every few seconds for the whole soak.
    if package == "hakiri-full" {
        std::fs::write(home.join("soak.csv"), "region,amount\neu,1\nus,2\n")?;
        let rows: String = (0..10_000).map(|i| format!("{i},{}\n", i % 97)).collect();
        std::fs::write(home.join("agent.csv"), format!("id,amount\n{rows}"))?;
        std::fs::write(
            home.join("hakiri.toml"),
            format!(
                "[[refresh]]\ndataset = \"soak\"\nsource = \"{}\"\nevery = \"5s\"\n\
                 [connectors]\nallow_paths = [{:?}]\n",
                home.join("soak.csv").display(),
                home.join("agent.csv").display().to_string()
            ),
        )?;
    }
    // The refreshed dataset exists before the first call (the refresh job's
    // first run comes a moment after start-up).
    if package == "hakiri-full" {
        let csv = home.join("soak.csv").display().to_string();
        let out = hakiri_testkit::run(&bin, &home, &["ingest", &csv, "--as", "soak", "-q"]);
        anyhow::ensure!(
            out.status.success(),
            "cannot ingest the soak's dataset: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The daemon is driven as a remote agent would: with a token.
    let token = hakiri_testkit::mint_token(
        &bin,
        &home,
        &["--tool", "*", "--dataset", "*", "--ttl", "30d"],
    );
    let mut state = match state {
        Some(p) => {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir)?;
            }
            Some(
                std::fs::File::create(p)
                    .with_context(|| format!("cannot write {}", p.display()))?,
            )
        }
        None => None,
    };
    // coord is soaked as a cluster of three, sampled at its largest node;
    // the others as one daemon.
    let mut cluster = Vec::new();
    let mut daemon = None;
    let (pids, mut driver): (Vec<u32>, Driver) = if package == "hakiri-coord" {
        cluster = hakiri_testkit::coord::cluster(&bin, 3);
        let pids = cluster
            .iter()
            .filter_map(|n| n.process.as_ref().map(|p| p.pid()))
            .collect();
        let apis = cluster.iter().map(|n| n.api_addr()).collect();
        (pids, Driver::Coord { apis, next: 0 })
    } else {
        let running = probe::start_serve(&bin, &home)?;
        let driver = Driver::new(&package, &running.ready_line, token, &home)?;
        let pid = running.pid();
        daemon = Some(running);
        (vec![pid], driver)
    };
    let warmup = (duration / 10).clamp(Duration::from_secs(5), Duration::from_secs(3600));
    let interval = (duration / 100).clamp(Duration::from_secs(1), Duration::from_secs(300));
    let start = Instant::now();
    let (mut calls, mut errors) = (0u64, 0u64);
    let mut samples: Vec<Sample> = Vec::new();
    let mut next_sample = start + warmup;
    println!(
        "soak {package}: {:?} with {:?} warm-up, sampling every {:?}",
        duration, warmup, interval
    );
    while start.elapsed() < duration {
        match driver.call() {
            Ok(()) => calls += 1,
            Err(e) => {
                errors += 1;
                if errors <= 5 {
                    eprintln!("call failed: {e:#}");
                }
            }
        }
        if Instant::now() >= next_sample {
            let mut rss = 0;
            for pid in &pids {
                rss = rss.max(probe::rss(*pid).context("a daemon died during the soak")?);
            }
            let sample = Sample {
                at_s: start.elapsed().as_secs_f64(),
                rss,
                calls,
                errors,
            };
            if let Some(f) = state.as_mut() {
                use std::io::Write;
                writeln!(f, "{}", serde_json::to_string(&sample)?)?;
                f.flush()?;
            }
            samples.push(sample);
            next_sample += interval;
            if samples.len() % 10 == 1 {
                println!(
                    "{:>8.0}s  RSS {}  calls {calls}  errors {errors}",
                    start.elapsed().as_secs_f64(),
                    mb(rss)
                );
            }
        }
    }
    drop((cluster, daemon));
    let _ = std::fs::remove_dir_all(&home);
    let verdict = judge(&samples, MAX_DRIFT)?;
    report(&package, &verdict);
    Ok(verdict.ok())
}

/// Prints a verdict, one line per failure.
pub fn report(what: &str, v: &Verdict) {
    println!(
        "{what}: RSS {} in the first seventh, {} in the last ({:+.1}%); {} calls, {} errors",
        mb(v.baseline),
        mb(v.last),
        v.drift * 100.0,
        v.calls,
        v.errors
    );
    for f in &v.failures {
        println!("{what} soak failed: {f}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert!(parse_duration("5 weeks").is_err());
    }
}
