//! Build-script helpers shared by capability crates, profile crates and the gates.
//!
//! * Capability crates call [`capability()`] from `build.rs`: it resolves the
//!   versions of the libraries named in `[package.metadata.hakiri] libraries`
//!   from Cargo.lock, so the binary reports what it actually links.
//! * Profile crates call [`profile()`]: it links every `hakiri-cap-*`
//!   dependency (an unreferenced crate is not linked and its `inventory`
//!   registration vanishes) and tells the kernel which other profile has what
//!   this one lacks.
//! * The gates read manifests through the same functions, so nothing is kept
//!   twice.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Prefix of every capability crate's package name.
pub const CAPABILITY_PREFIX: &str = "hakiri-cap-";

/// What a capability's manifest declares in `[package.metadata.hakiri]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CapabilityMeta {
    /// Crates this capability wraps, reported with their linked versions.
    #[serde(default)]
    pub libraries: Vec<String>,
    #[serde(default)]
    pub commands: Vec<String>,
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default)]
    pub services: Vec<String>,
    #[serde(default)]
    pub catalog_schemes: Vec<String>,
    #[serde(default)]
    pub connector_kinds: Vec<String>,
    /// Whether it reads a `[<name>]` config section.
    #[serde(default)]
    pub config: bool,
}

/// A profile's budgets and forbidden capabilities (`profile.toml` beside its manifest).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProfileBudget {
    /// gzip -9 of the stripped binary, in MB (MiB, see [`MB`]).
    pub compressed_mb: f64,
    pub idle_rss_mb: f64,
    /// Lambda cold start budget; only profiles that run as Lambda have one.
    #[serde(default)]
    pub cold_start_ms: Option<f64>,
    /// Capabilities that must never be in this profile.
    #[serde(default)]
    pub forbidden_capabilities: Vec<String>,
    /// Crates that must never be anywhere in this profile's dependency graph.
    #[serde(default)]
    pub forbidden_crates: Vec<String>,
    /// Arguments that start the profile's long-running shape, measured for idle RSS.
    #[serde(default)]
    pub idle_shape: Vec<String>,
}

/// One MB as the budgets count it (MiB, as `50 MB` in ADR-0012's gate script).
pub const MB: f64 = 1024.0 * 1024.0;

#[derive(Debug, Clone)]
pub struct ProfileManifest {
    pub package: String,
    pub dir: PathBuf,
    /// Capability names (crate names without the prefix), in manifest order.
    pub capabilities: Vec<String>,
    pub budget: Option<ProfileBudget>,
}

fn read_toml(path: &Path) -> Result<toml::Table, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.parse().map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads a profile crate's manifest and, if present, its `profile.toml`.
pub fn read_profile(dir: &Path) -> Result<ProfileManifest, String> {
    let manifest = read_toml(&dir.join("Cargo.toml"))?;
    let package = manifest
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .ok_or_else(|| format!("{}: no package.name", dir.display()))?
        .to_string();
    let capabilities = manifest
        .get("dependencies")
        .and_then(|d| d.as_table())
        .map(|deps| {
            deps.keys()
                .filter_map(|k| k.strip_prefix(CAPABILITY_PREFIX))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let budget_path = dir.join("profile.toml");
    let budget = if budget_path.exists() {
        let text = std::fs::read_to_string(&budget_path)
            .map_err(|e| format!("{}: {e}", budget_path.display()))?;
        Some(toml::from_str(&text).map_err(|e| format!("{}: {e}", budget_path.display()))?)
    } else {
        None
    };
    Ok(ProfileManifest {
        package,
        dir: dir.to_path_buf(),
        capabilities,
        budget,
    })
}

/// Every profile under `<workspace>/profiles/` that has a `profile.toml`.
pub fn read_profiles(workspace: &Path) -> Result<Vec<ProfileManifest>, String> {
    let mut out = Vec::new();
    let dir = workspace.join("profiles");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("profile.toml").exists())
        .collect();
    entries.sort();
    for p in entries {
        out.push(read_profile(&p)?);
    }
    Ok(out)
}

/// Reads `<workspace>/capabilities/<name>/Cargo.toml`'s `[package.metadata.hakiri]`.
pub fn read_capability(workspace: &Path, name: &str) -> Result<CapabilityMeta, String> {
    read_capability_manifest(&workspace.join("capabilities").join(name).join("Cargo.toml"))
}

fn read_capability_manifest(path: &Path) -> Result<CapabilityMeta, String> {
    let manifest = read_toml(path)?;
    match manifest
        .get("package")
        .and_then(|p| p.get("metadata"))
        .and_then(|m| m.get("hakiri"))
    {
        None => Ok(CapabilityMeta::default()),
        Some(v) => v
            .clone()
            .try_into()
            .map_err(|e| format!("{}: [package.metadata.hakiri]: {e}", path.display())),
    }
}

/// The workspace root: the nearest ancestor of `start` holding Cargo.lock.
pub fn workspace_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|d| d.join("Cargo.lock").exists())
        .map(Path::to_path_buf)
}

#[derive(Deserialize)]
struct Lock {
    #[serde(default)]
    package: Vec<LockPackage>,
}

#[derive(Deserialize)]
struct LockPackage {
    name: String,
    version: String,
    #[serde(default)]
    dependencies: Vec<String>,
}

/// Versions of `package`'s direct dependencies named in `libraries`, as Cargo.lock resolved them.
pub fn locked_versions(
    lock_path: &Path,
    package: &str,
    libraries: &[String],
) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(lock_path)
        .map_err(|e| format!("cannot read {}: {e}", lock_path.display()))?;
    let lock: Lock = toml::from_str(&text).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    let me = lock
        .package
        .iter()
        .find(|p| p.name == package)
        .ok_or_else(|| format!("{package} is not in {}", lock_path.display()))?;
    libraries
        .iter()
        .map(|lib| {
            // A lock dependency is "name" when unambiguous, else "name version [(source)]".
            let dep = me
                .dependencies
                .iter()
                .find(|d| d.split(' ').next() == Some(lib.as_str()))
                .ok_or_else(|| format!("{package} lists library `{lib}` in [package.metadata.hakiri] but does not depend on it"))?;
            let version = match dep.split(' ').nth(1) {
                Some(v) => v.to_string(),
                None => lock
                    .package
                    .iter()
                    .find(|p| &p.name == lib)
                    .map(|p| p.version.clone())
                    .ok_or_else(|| format!("`{lib}` missing from {}", lock_path.display()))?,
            };
            Ok((lib.clone(), version))
        })
        .collect()
}

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("hakiri-build must run from a build script ({name} unset)"))
}

fn write_out(file: &str, contents: &str) {
    let out = PathBuf::from(env("OUT_DIR")).join(file);
    std::fs::write(&out, contents)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}

/// For a capability crate's `build.rs`.
pub fn capability() {
    let dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let package = env("CARGO_PKG_NAME");
    let manifest = dir.join("Cargo.toml");
    println!("cargo:rerun-if-changed={}", manifest.display());
    let meta = read_capability_manifest(&manifest).unwrap_or_else(|e| panic!("{e}"));
    let name = package.strip_prefix(CAPABILITY_PREFIX).unwrap_or_else(|| {
        panic!("capability crate `{package}` must be named {CAPABILITY_PREFIX}<capability>")
    });
    let versions = match workspace_root(&dir) {
        Some(root) => {
            let lock = root.join("Cargo.lock");
            println!("cargo:rerun-if-changed={}", lock.display());
            locked_versions(&lock, &package, &meta.libraries).unwrap_or_else(|e| panic!("{e}"))
        }
        None => {
            println!(
                "cargo:warning=no Cargo.lock above {}; library versions reported as unknown",
                dir.display()
            );
            meta.libraries
                .iter()
                .map(|l| (l.clone(), "unknown".to_string()))
                .collect()
        }
    };
    let mut src = format!("const HAKIRI_CAPABILITY_NAME: &str = {name:?};\nconst HAKIRI_LIBRARIES: &[::hakiri_kernel::Library] = &[\n");
    for (lib, version) in versions {
        let _ = writeln!(
            src,
            "    ::hakiri_kernel::Library {{ name: {lib:?}, version: {version:?} }},"
        );
    }
    src.push_str("];\n");
    write_out("hakiri_capability.rs", &src);
}

/// For a profile crate's `build.rs`. Writes `profile.rs`, which the profile's
/// `main.rs` includes: `extern crate` lines for every capability dependency,
/// and `static PROFILE: hakiri_kernel::Profile`.
pub fn profile() {
    let dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    println!(
        "cargo:rerun-if-changed={}",
        dir.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        dir.join("profile.toml").display()
    );
    println!("cargo:rerun-if-env-changed=HAKIRI_GIT_REVISION");
    let me = read_profile(&dir).unwrap_or_else(|e| panic!("{e}"));
    let root = workspace_root(&dir)
        .unwrap_or_else(|| panic!("no workspace Cargo.lock above {}", dir.display()));
    let profiles = read_profiles(&root).unwrap_or_else(|e| panic!("{e}"));
    for p in &profiles {
        println!(
            "cargo:rerun-if-changed={}",
            p.dir.join("Cargo.toml").display()
        );
    }

    let mut src = String::new();
    for cap in &me.capabilities {
        let _ = writeln!(
            src,
            "extern crate {} as _;",
            format!("{CAPABILITY_PREFIX}{cap}").replace('-', "_")
        );
    }
    // capability -> profiles that have it, for what this profile lacks.
    let mut lacking: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for p in &profiles {
        for cap in &p.capabilities {
            if !me.capabilities.contains(cap) {
                lacking.entry(cap).or_default().push(&p.package);
            }
        }
    }
    let mut elsewhere = String::new();
    for (cap, holders) in &lacking {
        let cap_manifest = root.join("capabilities").join(cap).join("Cargo.toml");
        println!("cargo:rerun-if-changed={}", cap_manifest.display());
        let meta = read_capability(&root, cap).unwrap_or_else(|e| panic!("{e}"));
        let mut items: Vec<(&str, &str)> = Vec::new();
        items.extend(meta.commands.iter().map(|c| ("command", c.as_str())));
        items.extend(meta.tools.iter().map(|t| ("tool", t.as_str())));
        items.extend(meta.catalog_schemes.iter().map(|t| ("catalog", t.as_str())));
        if meta.config {
            items.push(("config", cap));
        }
        for (kind, name) in items {
            let _ = writeln!(
                elsewhere,
                "        ::hakiri_kernel::Elsewhere {{ kind: {kind:?}, name: {name:?}, capability: {cap:?}, profiles: &{holders:?} }},"
            );
        }
    }
    let git = std::env::var("HAKIRI_GIT_REVISION")
        .ok()
        .or_else(|| git_revision(&root))
        .unwrap_or_else(|| "unknown".into());
    let _ = write!(
        src,
        "pub static PROFILE: ::hakiri_kernel::Profile = ::hakiri_kernel::Profile {{\n    name: {:?},\n    version: {:?},\n    target: {:?},\n    git_revision: {git:?},\n    declared: &{:?},\n    elsewhere: &[\n{elsewhere}    ],\n}};\n",
        me.package,
        env("CARGO_PKG_VERSION"),
        env("TARGET"),
        me.capabilities,
    );
    write_out("profile.rs", &src);
}

fn git_revision(root: &Path) -> Option<String> {
    let git = root.join(".git");
    if git.is_dir() {
        println!("cargo:rerun-if-changed={}", git.join("HEAD").display());
        println!(
            "cargo:rerun-if-changed={}",
            git.join("refs").join("heads").display()
        );
    }
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
