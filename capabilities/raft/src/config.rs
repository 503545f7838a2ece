//! `[raft]` in hakiri.toml: who this node is, where it listens for its peers,
//! where it keeps its log, and how it finds its cluster.

use hakiri_kernel::Section;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `[raft]` in hakiri.toml.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftConfig {
    /// This node's id in the cluster; unique, never reused for another node.
    pub node_id: u64,
    /// Where peers reach this node (Raft RPCs, forwarded client requests), `host:port`.
    pub listen: String,
    /// The URL other nodes use for this one; default `http://<listen>`.
    pub advertise: Option<String>,
    /// The log, vote and snapshots; default `<home>/raft`.
    pub data_dir: Option<PathBuf>,
    /// The cluster's name: peers of another cluster are refused, and a data
    /// directory of another cluster does not start.
    pub cluster: String,
    /// The environment variable holding the shared cluster secret every peer
    /// request carries. Unset: the secret `cluster init` generated into
    /// `cluster.secret` in the raft directory (a joining node must be given it).
    pub secret_env: String,
    /// Host names peers may reach this node by, besides IP addresses,
    /// loopback names and the advertised host (DNS-rebinding protection).
    pub allowed_hosts: Vec<String>,
    /// A member's peer URL to join through, on first start; unset: a fresh
    /// node starts a new one-node cluster.
    pub join: Option<String>,
    /// How often a leader sends heartbeats, in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// Election timeout range, in milliseconds; must exceed the heartbeat interval.
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// A snapshot is taken after this many applied entries, and the log
    /// before it purged (keeping `keep_logs` for slow followers).
    pub snapshot_every: u64,
    pub keep_logs: u64,
}

impl Section for RaftConfig {
    const NAME: &'static str = "raft";
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            node_id: 1,
            listen: "127.0.0.1:7980".into(),
            advertise: None,
            data_dir: None,
            cluster: "hakiri".into(),
            secret_env: "HAKIRI_CLUSTER_SECRET".into(),
            allowed_hosts: Vec::new(),
            join: None,
            heartbeat_interval_ms: 50,
            election_timeout_min_ms: 150,
            election_timeout_max_ms: 300,
            snapshot_every: 10_000,
            keep_logs: 1_000,
        }
    }
}

impl RaftConfig {
    pub(crate) fn openraft(&self) -> Result<Arc<openraft::Config>, String> {
        if self.node_id == 0 {
            return Err("[raft] node_id must be 1 or more".into());
        }
        let config = openraft::Config {
            cluster_name: self.cluster.clone(),
            heartbeat_interval: self.heartbeat_interval_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every.max(1)),
            max_in_snapshot_log_to_keep: self.keep_logs,
            purge_batch_size: 256,
            ..Default::default()
        };
        config.validate().map(Arc::new).map_err(|e| {
            format!(
                "invalid [raft] timing: {e}; set heartbeat_interval_ms < election_timeout_min_ms < election_timeout_max_ms"
            )
        })
    }

    /// The URL peers use to reach this node.
    pub fn advertised(&self) -> String {
        self.advertise
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }

    /// The shared secret from `secret_env`, if set and not empty.
    pub fn secret(&self) -> Option<String> {
        std::env::var(&self.secret_env)
            .ok()
            .filter(|s| !s.is_empty())
    }

    /// The secret every peer request must carry: `secret_env`'s, else the one
    /// kept in `<dir>/cluster.secret`, else (a node starting a new cluster) a
    /// fresh one written there, readable by this user only. A node joining
    /// without one is refused: it could never be admitted.
    pub fn cluster_secret(&self, dir: &Path) -> anyhow::Result<String> {
        if let Some(secret) = self.secret() {
            return Ok(secret);
        }
        let path = dir.join(SECRET_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_string()),
            Ok(_) => anyhow::bail!(
                "{} is empty; delete it to generate a new secret, or set {}",
                path.display(),
                self.secret_env
            ),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                anyhow::bail!("cannot read the cluster secret {}: {e}", path.display())
            }
            Err(_) => {}
        }
        if let Some(join) = &self.join {
            anyhow::bail!(
                "joining the cluster at {join} needs its secret: set {} to the contents of {SECRET_FILE} in the first node's raft directory",
                self.secret_env
            );
        }
        let mut bytes = [0u8; 32];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)
            .map_err(|e| anyhow::anyhow!("cannot generate a cluster secret: {e}"))?;
        let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::create_dir_all(dir)?;
        let mut file = std::fs::OpenOptions::new();
        file.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
        let mut file = file.open(&path).map_err(|e| {
            anyhow::anyhow!("cannot write the cluster secret {}: {e}", path.display())
        })?;
        std::io::Write::write_all(&mut file, format!("{secret}\n").as_bytes())?;
        file.sync_all()?;
        eprintln!(
            "hakiri: generated this cluster's secret in {}; give every joining node its contents in {}",
            path.display(),
            self.secret_env
        );
        Ok(secret)
    }

    /// The names peers may reach this node by (besides IP addresses).
    pub(crate) fn peer_hosts(&self, advertised: &str) -> Vec<String> {
        let mut hosts = hakiri_kernel::hosts::loopback_hosts();
        hosts.push(hakiri_kernel::hosts::url_host(advertised));
        hosts.push(hakiri_kernel::hosts::host_of(&self.listen));
        hosts.extend(self.allowed_hosts.iter().cloned());
        hosts
    }
}

/// Where a node keeps the cluster secret it generated or was given.
pub const SECRET_FILE: &str = "cluster.secret";
