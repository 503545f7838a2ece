//! `[connectors]`: what remote callers may read, and the limits every HTTP
//! request runs under.

use anyhow::bail;
use hakiri_kernel::Section;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `[connectors]` in hakiri.toml.
///
/// The CLI user (the local caller) reads any file and fetches any URL; remote
/// callers (agents over MCP, Lambda requests, cluster peers) read only what
/// these allow-lists name. Timeouts apply to everyone.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectorsConfig {
    /// Directories (or single files) remote callers may read, e.g.
    /// `["/srv/data"]`. A source is admitted when its canonical path (`..` and
    /// symlinks resolved) lies under one of these. Relative entries resolve
    /// against the working directory; `~/` is the home directory. Default
    /// empty: remote callers read no local file (and never stdin).
    pub allow_paths: Vec<PathBuf>,
    /// URL prefixes remote callers may fetch, e.g.
    /// `["https://data.example.com/public/"]`: scheme, host and port must
    /// match exactly and the path must lie under the prefix's path. Redirects
    /// are checked against the same list. Default empty: remote callers fetch
    /// no URL.
    pub allow_urls: Vec<String>,
    /// Addresses or CIDR blocks (`127.0.0.1`, `10.0.0.0/8`, `::1`) remote
    /// callers may connect to although they are loopback, private,
    /// link-local or otherwise non-public; every other non-public address is
    /// refused whatever the URL. Default empty.
    pub allow_addresses: Vec<String>,
    /// Most milliseconds to establish a connection (default 5000).
    pub connect_timeout_ms: u64,
    /// Most milliseconds for a whole HTTP request, body included; applies to
    /// every caller, the CLI user too (default 60000).
    pub timeout_ms: u64,
    /// Most bytes an HTTP source read by a remote caller may deliver; a
    /// larger body fails the read (default 268435456, 256 MiB).
    pub max_bytes: u64,
}

/// Default `[connectors] connect_timeout_ms`.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Default `[connectors] timeout_ms`.
pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;
/// Default `[connectors] max_bytes`: 256 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;

impl Default for ConnectorsConfig {
    fn default() -> Self {
        ConnectorsConfig {
            allow_paths: Vec::new(),
            allow_urls: Vec::new(),
            allow_addresses: Vec::new(),
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

impl Section for ConnectorsConfig {
    const NAME: &'static str = "connectors";
}

impl ConnectorsConfig {
    /// `connect_timeout_ms` as a duration; zero is a config error.
    pub fn connect_timeout(&self) -> anyhow::Result<Duration> {
        if self.connect_timeout_ms == 0 {
            bail!("[connectors] connect_timeout_ms is 0; set it to at least 1 (default {DEFAULT_CONNECT_TIMEOUT_MS})");
        }
        Ok(Duration::from_millis(self.connect_timeout_ms))
    }

    /// `timeout_ms` as a duration; zero is a config error.
    pub fn timeout(&self) -> anyhow::Result<Duration> {
        if self.timeout_ms == 0 {
            bail!(
                "[connectors] timeout_ms is 0; set it to at least 1 (default {DEFAULT_TIMEOUT_MS})"
            );
        }
        Ok(Duration::from_millis(self.timeout_ms))
    }

    /// `allow_paths` with a leading `~/` replaced by the home directory.
    pub fn allow_paths_expanded(&self) -> Vec<PathBuf> {
        self.allow_paths
            .iter()
            .map(PathBuf::as_path)
            .map(expand_home)
            .collect()
    }
}

fn expand_home(p: &std::path::Path) -> PathBuf {
    match (p.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => p.to_path_buf(),
    }
}
