//! Installed connectors: `<data_dir>/connectors/<name>/` holds the component
//! as added (`connector.wasm`), its compiled form for this host
//! (`connector.cwasm`, rebuilt when stale) and `manifest.json`. A connector
//! appears whole or not at all: it is written beside and renamed into place.

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Schemes the built-in connectors own; a guest may not take them over.
pub const RESERVED_SCHEMES: &[&str] = &["file", "http", "https", "s3"];

/// What `connector add` recorded about one connector.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub name: String,
    pub scheme: String,
    pub description: String,
    /// JSON Schema of the settings it reads.
    pub config_schema: serde_json::Value,
    /// The WIT package it was built against (`hakiri:connector@0.1.0`).
    pub wit: String,
    /// SHA-256 of `connector.wasm`.
    pub sha256: String,
    pub bytes: u64,
    /// Hosts (`host` or `host:port`) its `fetch` may reach.
    pub allow_hosts: Vec<String>,
    /// Settings its `host.config` returns.
    pub settings: BTreeMap<String, String>,
    /// Settings read from the environment at each use: key → variable name.
    #[serde(default)]
    pub settings_env: BTreeMap<String, String>,
    /// RFC 3339 time it was added.
    pub added: String,
}

pub fn root(data_dir: &Path) -> PathBuf {
    data_dir.join("connectors")
}

pub fn dir(data_dir: &Path, name: &str) -> PathBuf {
    root(data_dir).join(name)
}

pub fn wasm_path(dir: &Path) -> PathBuf {
    dir.join("connector.wasm")
}

pub fn compiled_path(dir: &Path) -> PathBuf {
    dir.join("connector.cwasm")
}

/// A name or scheme: lowercase ASCII letters, digits and `-`, starting
/// with a letter, at most 40 characters.
pub fn check_name(what: &str, name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!("{what} `{name}` is not valid: use lowercase letters, digits and `-`, starting with a letter (at most 40)");
    }
    Ok(())
}

/// An `--allow-host` entry: a host name or IP address, with an optional port.
pub fn check_host(entry: &str) -> anyhow::Result<()> {
    let url = reqwest::Url::parse(&format!("http://{entry}/"))
        .ok()
        .filter(|u| u.host_str().is_some() && u.path() == "/" && u.username().is_empty());
    match url {
        Some(u) if format!("{}{}", u.host_str().unwrap_or_default(), u.port().map(|p| format!(":{p}")).unwrap_or_default()) == entry.to_ascii_lowercase() => Ok(()),
        _ => bail!("--allow-host `{entry}` is not a host: write a name or address with an optional port, such as `api.example.com` or `127.0.0.1:8080`"),
    }
}

/// Reads every installed connector's manifest, by name. A damaged one is an
/// error naming its file and how to fix it.
pub fn read_all(data_dir: &Path) -> anyhow::Result<Vec<Manifest>> {
    let root = root(data_dir);
    let entries = match std::fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", root.display())),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with('.') || !path.is_dir() {
            continue; // an add in progress, or stray files
        }
        let file = path.join("manifest.json");
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let m: Manifest = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is damaged; remove the connector with `hakiri connector remove {name}` and add it again",
                file.display()
            )
        })?;
        out.push(m);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Moves a fully written connector directory into place under `name`.
pub fn publish(staging: &Path, data_dir: &Path, name: &str) -> anyhow::Result<()> {
    let target = dir(data_dir, name);
    std::fs::rename(staging, &target)
        .with_context(|| format!("cannot move the connector into {}", target.display()))
}

/// Puts a fully written connector directory in place of the installed one
/// `name` in one step (`renameat2` with `RENAME_EXCHANGE`): a daemon reading
/// the directory sees the old connector or the new one, never neither. The
/// old one ends up at `staging`, for the caller to delete.
pub fn exchange(staging: &Path, data_dir: &Path, name: &str) -> anyhow::Result<()> {
    let target = dir(data_dir, name);
    swap(staging, &target)
        .with_context(|| format!("cannot replace the connector in {}", target.display()))
}

#[cfg(target_os = "linux")]
fn swap(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    };
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: two NUL-terminated paths that live across the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Without an atomic exchange: the old one aside first, then the new one in.
#[cfg(not(target_os = "linux"))]
fn swap(a: &Path, b: &Path) -> std::io::Result<()> {
    let name = b.file_name().unwrap_or_default().to_string_lossy();
    let aside = b.with_file_name(format!(".replaced-{name}-{}", std::process::id()));
    std::fs::rename(b, &aside)?;
    std::fs::rename(a, b)?;
    std::fs::rename(&aside, a)
}

/// The installed connectors, re-read when the directory changes (an add or
/// remove renames an entry, which touches it), so a running daemon sees a
/// connector added from the CLI.
#[derive(Default)]
pub struct Installed {
    cache: Mutex<Option<Listing>>,
}

/// One reading of the connectors directory: where, its mtime then, what it held.
type Listing = (PathBuf, Option<SystemTime>, Arc<Vec<Manifest>>);

impl Installed {
    pub fn get(&self, data_dir: &Path) -> anyhow::Result<Arc<Vec<Manifest>>> {
        let root = root(data_dir);
        let stamp = std::fs::metadata(&root).and_then(|m| m.modified()).ok();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((dir, seen, list)) = cache.as_ref() {
            if *dir == root && *seen == stamp && stamp.is_some() {
                return Ok(list.clone());
            }
        }
        let list = Arc::new(read_all(data_dir)?);
        *cache = Some((root, stamp, list.clone()));
        Ok(list)
    }

    /// The connector reading `scheme://…` sources, if one is installed.
    pub fn for_source(&self, data_dir: &Path, source: &str) -> Option<Manifest> {
        let (scheme, _) = source.split_once("://")?;
        let list = self.get(data_dir).ok()?;
        list.iter().find(|m| m.scheme == scheme).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_hosts_are_checked() {
        check_name("name", "jsonfeed").unwrap();
        check_name("name", "my-feed2").unwrap();
        for bad in ["", "Feed", "2feed", "a/b", "a_b", "../x"] {
            assert!(check_name("name", bad).is_err(), "{bad}");
        }
        check_host("api.example.com").unwrap();
        check_host("127.0.0.1:8080").unwrap();
        for bad in ["", "http://x", "x/y", "user@x", "x:notaport", "x y"] {
            assert!(check_host(bad).is_err(), "{bad}");
        }
    }
}
