//! Coordinator clusters for tests: `hakiri-coord` processes on loopback
//! ports, started, killed and restarted, with their API reachable without a
//! token (`[coord-api] auth = "none"`, loopback only).

use crate::{command, http, Home, Running};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The secret every test cluster's peers share.
pub const SECRET: &str = "a-test-cluster-secret";
/// Wider than the defaults: a loaded 2-core CI machine must not hold
/// spurious elections.
pub const ELECTION_MAX_MS: u64 = 1000;

/// The `hakiri-coord` built beside the running test: every profile builds
/// into one target directory (`cargo zigbuild --bins`, as `.ci/test` does).
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let release = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = release.join("hakiri-coord");
    assert!(
        bin.exists(),
        "{} is not built; build every profile first (cargo zigbuild --release --target x86_64-unknown-linux-musl --bins)",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// One coordinator: its home, ports and (while running) process.
pub struct Coordinator {
    pub id: u64,
    pub home: Home,
    pub peer: u16,
    pub api: u16,
    pub process: Option<Running>,
    /// Extra environment for its `serve`, e.g. `HAKIRI_RAFT__SNAPSHOT_EVERY`.
    pub env: Vec<(String, String)>,
    bin: PathBuf,
}

impl Coordinator {
    pub fn new(bin: &Path, id: u64) -> Coordinator {
        Coordinator {
            id,
            home: Home::new(),
            peer: free_port(),
            api: free_port(),
            process: None,
            env: Vec::new(),
            bin: bin.to_path_buf(),
        }
    }

    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer)
    }

    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api)
    }

    /// `host:port` of its API, as a `coord://` catalog URL lists it.
    pub fn api_addr(&self) -> String {
        format!("127.0.0.1:{}", self.api)
    }

    /// `serve`, joining through `join` (a peer URL) on first start.
    pub fn command(&self, join: Option<&str>) -> Command {
        let mut cmd = command(&self.bin, self.home.path());
        cmd.env("HAKIRI_RAFT__NODE_ID", self.id.to_string())
            .env("HAKIRI_RAFT__LISTEN", format!("127.0.0.1:{}", self.peer))
            .env("HAKIRI_RAFT__HEARTBEAT_INTERVAL_MS", "100")
            .env("HAKIRI_RAFT__ELECTION_TIMEOUT_MIN_MS", "500")
            .env(
                "HAKIRI_RAFT__ELECTION_TIMEOUT_MAX_MS",
                ELECTION_MAX_MS.to_string(),
            )
            .env(
                "HAKIRI_COORD_API__LISTEN",
                format!("127.0.0.1:{}", self.api),
            )
            .env("HAKIRI_COORD_API__AUTH", "none")
            .env("HAKIRI_CLUSTER_SECRET", SECRET);
        if let Some(url) = join {
            cmd.env("HAKIRI_RAFT__JOIN", url);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.arg("serve");
        cmd
    }

    /// Starts `serve`. On a first start, a port another test took between
    /// [`free_port`] and the bind is traded for fresh ones; a restart keeps
    /// its addresses, since the cluster knows it by them.
    pub fn start(&mut self, join: Option<&str>) {
        let first = !self.home.path().join("raft").exists();
        let mut tries = 0;
        loop {
            match Running::until_ready(&mut self.command(join), Duration::from_secs(60)) {
                Ok(running) => {
                    self.process = Some(running);
                    return;
                }
                Err(e) if first && tries < 5 && e.to_string().contains("Address in use") => {
                    tries += 1;
                    let _ = std::fs::remove_dir_all(self.home.path().join("raft"));
                    self.peer = free_port();
                    self.api = free_port();
                }
                Err(e) => panic!("coordinator {}: {e}", self.id),
            }
        }
    }

    /// SIGKILL, as a crash.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }

    /// `GET /v1/cluster`, if it answers.
    pub fn status(&self) -> Option<Value> {
        let url = format!("{}/v1/cluster", self.api_url());
        let r = http::request("GET", &url, &[], b"", Duration::from_secs(5)).ok()?;
        (r.status == 200).then(|| r.json())
    }
}

/// A cluster of coordinators 1..=n: the first starts it, the others join.
pub fn cluster(bin: &Path, n: u64) -> Vec<Coordinator> {
    cluster_with(bin, n, &[])
}

/// [`cluster`], each node with `env` set too.
pub fn cluster_with(bin: &Path, n: u64, env: &[(&str, &str)]) -> Vec<Coordinator> {
    let mut nodes: Vec<Coordinator> = (1..=n).map(|id| Coordinator::new(bin, id)).collect();
    for node in &mut nodes {
        node.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }
    nodes[0].start(None);
    let first = nodes[0].peer_url();
    for node in nodes.iter_mut().skip(1) {
        node.start(Some(&first));
    }
    nodes
}

/// Waits until a running node other than `not` reports that it leads.
pub fn leader(nodes: &[Coordinator], not: Option<u64>, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        for n in nodes.iter().filter(|n| n.process.is_some()) {
            if n.status().is_some_and(|s| s["state"] == "leader") && Some(n.id) != not {
                return n.id;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no leader (other than {not:?}) within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `coord://` catalog URL naming every node's API.
pub fn catalog_url(nodes: &[Coordinator]) -> String {
    let hosts: Vec<String> = nodes.iter().map(Coordinator::api_addr).collect();
    format!("coord://{}", hosts.join(","))
}
