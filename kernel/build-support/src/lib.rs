//! Build-script helpers shared by capability crates, profile crates and the gates.
//!
//! * Capability crates call [`capability()`] from `build.rs`: it names the
//!   capability (see [`CapabilityMeta::capability_name`]) and resolves the
//!   versions of the libraries named in `[package.metadata.hakiri] libraries`
//!   from their workspace's Cargo.lock, so the binary reports what it actually
//!   links. This works for capability crates in other repositories too.
//! * Profile crates call [`profile()`]: it links every `hakiri-cap-*`
//!   dependency (an unreferenced crate is not linked and its `inventory`
//!   registration vanishes) and tells the kernel which other profile has what
//!   this one lacks.
//! * The gates read manifests through the same functions, so nothing is kept
//!   twice.
//!
//! Both build-script entry points report failures as `cargo::error=` lines
//! (no panic, no backtrace).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Prefix of a capability crate's package name (unless its metadata names it).
pub const CAPABILITY_PREFIX: &str = "hakiri-cap-";

/// What a capability's manifest declares in `[package.metadata.hakiri]`.
///
/// ```toml
/// [package.metadata.hakiri]
/// name = "widgets"                      # default: the crate name without `hakiri-cap-`
/// libraries = ["rusqlite"]              # wrapped crates, reported with their linked versions
/// commands = ["sql"]
/// tools = ["engine.query"]
/// services = ["mcp"]
/// provides = { catalog = ["sqlite"] }   # extension point -> names provided to it
/// config = ["engine", "catalog"]        # config sections it reads
/// ```
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CapabilityMeta {
    /// The capability's name; by default the crate name without
    /// [`CAPABILITY_PREFIX`] (see [`CapabilityMeta::capability_name`]).
    #[serde(default)]
    pub name: Option<String>,
    /// Crates this capability wraps, reported with their linked versions.
    #[serde(default)]
    pub libraries: Vec<String>,
    #[serde(default)]
    pub commands: Vec<String>,
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default)]
    pub services: Vec<String>,
    /// Extension point name (`catalog`, `connector`, ...) -> the names this
    /// capability provides to it (`sqlite`, `file`, ...).
    #[serde(default)]
    pub provides: BTreeMap<String, Vec<String>>,
    /// The config sections it reads (`[engine]`, a shared `[catalog]`, ...).
    #[serde(default)]
    pub config: Vec<String>,
}

impl CapabilityMeta {
    /// The capability's name: `name` from the metadata, else `package` without
    /// [`CAPABILITY_PREFIX`]; an error when neither gives a valid name.
    pub fn capability_name(&self, package: &str) -> Result<String, String> {
        let name = match (&self.name, package.strip_prefix(CAPABILITY_PREFIX)) {
            (Some(name), _) => name.as_str(),
            (None, Some(stripped)) => stripped,
            (None, None) => {
                return Err(format!(
                    "capability crate `{package}` must be named {CAPABILITY_PREFIX}<capability> \
                     or declare [package.metadata.hakiri] name = \"<capability>\""
                ))
            }
        };
        check_name(name).map_err(|why| {
            format!("capability crate `{package}`: `{name}` is not a valid capability name: {why}")
        })?;
        Ok(name.to_string())
    }

    /// Checks the names the metadata declares: extension point and config
    /// section names have the shape of a capability name, and nothing is empty.
    pub fn validate(&self) -> Result<(), String> {
        for (point, names) in &self.provides {
            check_name(point).map_err(|why| {
                format!("provides: `{point}` is not a valid extension point name: {why}")
            })?;
            if names.is_empty() {
                return Err(format!("provides: `{point}` lists no names"));
            }
            if let Some(n) = names.iter().find(|n| n.trim().is_empty()) {
                return Err(format!("provides: `{point}` lists an empty name {n:?}"));
            }
        }
        for section in &self.config {
            check_name(section)
                .map_err(|why| format!("config: `{section}` is not a valid section name: {why}"))?;
        }
        let lists = [
            ("libraries", &self.libraries),
            ("commands", &self.commands),
            ("tools", &self.tools),
            ("services", &self.services),
        ];
        for (key, list) in lists {
            if let Some(n) = list.iter().find(|n| n.trim().is_empty()) {
                return Err(format!("{key}: empty name {n:?}"));
            }
        }
        Ok(())
    }

    /// What this capability contributes that another binary may lack, as
    /// `(kind, name)`: commands (`command`), tools (`tool`), every provided
    /// name under its extension point's name, and config sections (`config`).
    pub fn contributions(&self) -> Vec<(&str, &str)> {
        let mut items: Vec<(&str, &str)> = Vec::new();
        items.extend(self.commands.iter().map(|c| ("command", c.as_str())));
        items.extend(self.tools.iter().map(|t| ("tool", t.as_str())));
        for (point, names) in &self.provides {
            items.extend(names.iter().map(|n| (point.as_str(), n.as_str())));
        }
        items.extend(self.config.iter().map(|s| ("config", s.as_str())));
        items
    }
}

/// A capability, extension point or config section name: lowercase ASCII
/// letters, digits, `-`, `_` and `.`, starting with a letter.
fn check_name(name: &str) -> Result<(), &'static str> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Err("it is empty"),
        Some(c) if !c.is_ascii_lowercase() => {
            return Err("it must start with a lowercase ASCII letter")
        }
        Some(_) => {}
    }
    if chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')) {
        Ok(())
    } else {
        Err("use only lowercase ASCII letters, digits, '-', '_' and '.'")
    }
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
    /// The cold start's median over the hello-world Lambda's, both measured
    /// in turns in the same run: what the binary's size costs at start, with
    /// the disk's speed divided out.
    #[serde(default)]
    pub cold_start_hello_ratio: Option<f64>,
    /// The Lambda zip (`bootstrap`, deflate -9), in MB; AWS's own limit is 50.
    #[serde(default)]
    pub lambda_zip_mb: Option<f64>,
    /// Capabilities that must never be in this profile.
    #[serde(default)]
    pub forbidden_capabilities: Vec<String>,
    /// Crates that must never be anywhere in this profile's dependency graph.
    #[serde(default)]
    pub forbidden_crates: Vec<String>,
    /// Arguments that start the profile's long-running shape, measured for idle RSS.
    #[serde(default)]
    pub idle_shape: Vec<String>,
    /// hakiri.toml for the idle measurement (`{home}` is the scratch home,
    /// which holds a small `idle.csv`): idle as deployed, e.g. with a refresh
    /// job configured. Measured after the jobs' first runs finish.
    #[serde(default)]
    pub idle_config: Option<String>,
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

/// The package directories under `<workspace>/profiles/`, sorted.
pub fn profile_dirs(workspace: &Path) -> Result<Vec<PathBuf>, String> {
    let dir = workspace.join("profiles");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("Cargo.toml").exists())
        .collect();
    entries.sort();
    Ok(entries)
}

/// Every profile under `<workspace>/profiles/`; one without a
/// `profile.toml` is an error (a profile without budgets is never gated).
pub fn read_profiles(workspace: &Path) -> Result<Vec<ProfileManifest>, String> {
    let mut out = Vec::new();
    for p in profile_dirs(workspace)? {
        if !p.join("profile.toml").exists() {
            return Err(format!(
                "{} has no profile.toml: every profile declares its budgets \
                 (copy profiles/hakiri-coord/profile.toml and set them)",
                p.display()
            ));
        }
        out.push(read_profile(&p)?);
    }
    Ok(out)
}

/// Reads `<workspace>/capabilities/<name>/Cargo.toml`'s `[package.metadata.hakiri]`.
pub fn read_capability(workspace: &Path, name: &str) -> Result<CapabilityMeta, String> {
    read_capability_manifest(&workspace.join("capabilities").join(name).join("Cargo.toml"))
}

/// Reads a capability crate's `[package.metadata.hakiri]` from its Cargo.toml.
pub fn read_capability_manifest(path: &Path) -> Result<CapabilityMeta, String> {
    meta_from_manifest(&read_toml(path)?)
        .map_err(|e| format!("{}: [package.metadata.hakiri]: {e}", path.display()))
}

fn meta_from_manifest(manifest: &toml::Table) -> Result<CapabilityMeta, String> {
    let meta: CapabilityMeta = match manifest
        .get("package")
        .and_then(|p| p.get("metadata"))
        .and_then(|m| m.get("hakiri"))
    {
        None => CapabilityMeta::default(),
        Some(v) => v.clone().try_into().map_err(|e: toml::de::Error| {
            // One line: the message without a source snippet.
            e.message().trim().replace('\n', " ")
        })?,
    };
    meta.validate()?;
    Ok(meta)
}

/// The workspace root: the nearest ancestor of `start` holding Cargo.lock.
///
/// For a capability crate outside this repository that is its own
/// workspace's root (the one whose Cargo.lock resolved it).
pub fn workspace_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|d| d.join("Cargo.lock").exists())
        .map(Path::to_path_buf)
}

/// The Cargo.lock of the workspace that owns `package`: the nearest one
/// above `start` that lists it. For a capability crate in another repository
/// that is its own workspace's, not this one's; a lock of an unrelated
/// workspace further up (one that merely contains the directory) is skipped.
pub fn owning_lock(start: &Path, package: &str) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|d| d.join("Cargo.lock"))
        .filter(|l| l.is_file())
        .find(|l| {
            std::fs::read_to_string(l)
                .ok()
                .and_then(|t| toml::from_str::<Lock>(&t).ok())
                .is_some_and(|lock| lock.package.iter().any(|p| p.name == package))
        })
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
    /// Absent for path crates (workspace members and path dependencies).
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    dependencies: Vec<String>,
}

/// Versions of `package`'s direct dependencies named in `libraries`, as Cargo.lock resolved them.
///
/// `package` is looked up among the lock's path crates first (the workspace's
/// own), so a registry crate of the same name does not shadow it.
pub fn locked_versions(
    lock_path: &Path,
    package: &str,
    libraries: &[String],
) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(lock_path)
        .map_err(|e| format!("cannot read {}: {e}", lock_path.display()))?;
    let lock: Lock = toml::from_str(&text)
        .map_err(|e| format!("{}: {}", lock_path.display(), e.message().trim()))?;
    let me = lock
        .package
        .iter()
        .find(|p| p.name == package && p.source.is_none())
        .or_else(|| lock.package.iter().find(|p| p.name == package))
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

fn env(name: &str) -> Result<String, String> {
    std::env::var(name)
        .map_err(|_| format!("hakiri-build must run from a build script ({name} unset)"))
}

fn write_out(file: &str, contents: &str) -> Result<(), String> {
    let out = PathBuf::from(env("OUT_DIR")?).join(file);
    std::fs::write(&out, contents).map_err(|e| format!("cannot write {}: {e}", out.display()))
}

/// Reports a build-script failure the way cargo shows its own errors: one
/// `cargo::error=` line per line of the message, no panic and no backtrace.
fn report(result: Result<(), String>) {
    if let Err(e) = result {
        for line in e.lines().filter(|l| !l.trim().is_empty()) {
            println!("cargo::error={line}");
        }
    }
}

/// For a capability crate's `build.rs`. Writes `hakiri_capability.rs`, which
/// `hakiri_kernel::capability!` includes: the capability's name and the
/// linked versions of the libraries it wraps.
pub fn capability() {
    report(try_capability());
}

fn try_capability() -> Result<(), String> {
    let dir = PathBuf::from(env("CARGO_MANIFEST_DIR")?);
    let package = env("CARGO_PKG_NAME")?;
    let manifest = dir.join("Cargo.toml");
    println!("cargo::rerun-if-changed={}", manifest.display());
    let meta = read_capability_manifest(&manifest)?;
    let name = meta.capability_name(&package)?;
    let versions = match owning_lock(&dir, &package) {
        Some(lock) => {
            println!("cargo::rerun-if-changed={}", lock.display());
            locked_versions(&lock, &package, &meta.libraries)?
        }
        None => {
            if !meta.libraries.is_empty() {
                println!(
                    "cargo::warning=no Cargo.lock above {} lists {package}; library versions reported as unknown",
                    dir.display()
                );
            }
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
    write_out("hakiri_capability.rs", &src)
}

/// For a profile crate's `build.rs`. Writes `profile.rs`, which the profile's
/// `main.rs` includes: `extern crate` lines for every capability dependency,
/// and `static PROFILE: hakiri_kernel::Profile`.
pub fn profile() {
    report(try_profile());
}

fn try_profile() -> Result<(), String> {
    let dir = PathBuf::from(env("CARGO_MANIFEST_DIR")?);
    println!(
        "cargo::rerun-if-changed={}",
        dir.join("Cargo.toml").display()
    );
    println!(
        "cargo::rerun-if-changed={}",
        dir.join("profile.toml").display()
    );
    println!("cargo::rerun-if-env-changed=HAKIRI_GIT_REVISION");
    // Start at hakiri-prefetch's entry point, next to the rest of start-up
    // at the end of `.text`, rather than crt1's at its start (one readaround
    // window fewer on a cold start; see hakiri-prefetch's `start`).
    if env("CARGO_CFG_TARGET_ARCH")? == "x86_64" && env("CARGO_CFG_TARGET_ENV")? == "musl" {
        println!("cargo::rustc-link-arg-bins=-Wl,--entry=hakiri_entry");
    }
    let me = read_profile(&dir)?;
    let root = workspace_root(&dir)
        .ok_or_else(|| format!("no workspace Cargo.lock above {}", dir.display()))?;
    // A workspace without `profiles/` (one outside this repository) has no
    // other profiles to point at.
    let profiles = if root.join("profiles").is_dir() {
        read_profiles(&root)?
    } else {
        Vec::new()
    };
    for p in &profiles {
        println!(
            "cargo::rerun-if-changed={}",
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
        println!("cargo::rerun-if-changed={}", cap_manifest.display());
        let meta = read_capability_manifest(&cap_manifest)?;
        let name = meta.capability_name(&format!("{CAPABILITY_PREFIX}{cap}"))?;
        for (kind, item) in meta.contributions() {
            let _ = writeln!(
                elsewhere,
                "        ::hakiri_kernel::Elsewhere {{ kind: {kind:?}, name: {item:?}, capability: {name:?}, profiles: &{holders:?} }},"
            );
        }
    }
    let git = std::env::var("HAKIRI_GIT_REVISION")
        .ok()
        .or_else(|| git_revision(&root))
        .unwrap_or_else(|| "unknown".into());
    let deps: String = embedded_deps(&root, &me.package)
        .iter()
        .map(|(n, v)| format!("        ({n:?}, {v:?}),\n"))
        .collect();
    let _ = write!(
        src,
        "pub static PROFILE: ::hakiri_kernel::Profile = ::hakiri_kernel::Profile {{\n    name: {:?},\n    version: {:?},\n    target: {:?},\n    git_revision: {git:?},\n    declared: &{:?},\n    elsewhere: &[\n{elsewhere}    ],\n    deps: &[\n{deps}    ],\n}};\n",
        me.package,
        env("CARGO_PKG_VERSION")?,
        env("TARGET")?,
        me.capabilities,
    );
    write_out("profile.rs", &src)
}

/// The crates a package's binary links: its normal dependencies, followed
/// transitively through `cargo metadata`'s resolve. Build and dev
/// dependencies never reach the binary, and neither do proc-macro crates
/// (nor what only they use): they run inside the compiler. Package ids,
/// and each reached package's normal dependencies.
pub struct LinkGraph {
    pub root: String,
    pub reached: std::collections::BTreeSet<String>,
    pub normal: BTreeMap<String, Vec<String>>,
}

/// Each package id's dependencies in `cargo metadata`'s resolve, keeping
/// those with a kind `keep` accepts (`None`: normal, `Some("build")`,
/// `Some("dev")`).
pub fn dependency_edges(
    metadata: &serde_json::Value,
    keep: impl Fn(Option<&str>) -> bool,
) -> BTreeMap<String, Vec<String>> {
    let mut edges = BTreeMap::new();
    for node in metadata["resolve"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some(id) = node["id"].as_str() else {
            continue;
        };
        let deps = node["deps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|k| keep(k["kind"].as_str()))
            })
            .filter_map(|d| d["pkg"].as_str().map(str::to_string))
            .collect();
        edges.insert(id.to_string(), deps);
    }
    edges
}

pub fn link_graph(metadata: &serde_json::Value, package: &str) -> Result<LinkGraph, String> {
    let root = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == package)
        .and_then(|p| p["id"].as_str())
        .ok_or_else(|| format!("cargo metadata has no package {package}"))?
        .to_string();
    let mut normal = dependency_edges(metadata, |kind| kind.is_none());
    let macros = proc_macros(metadata);
    for deps in normal.values_mut() {
        deps.retain(|d| !macros.contains(d.as_str()));
    }
    let mut reached = std::collections::BTreeSet::from([root.clone()]);
    let mut queue = std::collections::VecDeque::from([root.clone()]);
    while let Some(id) = queue.pop_front() {
        for dep in normal.get(&id).into_iter().flatten() {
            if reached.insert(dep.clone()) {
                queue.push_back(dep.clone());
            }
        }
    }
    Ok(LinkGraph {
        root,
        reached,
        normal,
    })
}

/// Ids of the packages whose library is a proc-macro.
fn proc_macros(metadata: &serde_json::Value) -> std::collections::BTreeSet<&str> {
    metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            p["targets"].as_array().into_iter().flatten().any(|t| {
                t["kind"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|k| k == "proc-macro")
            })
        })
        .filter_map(|p| p["id"].as_str())
        .collect()
}

/// `(name, version)` of every crate `package` links, sorted, itself excluded.
pub fn linked_crates(
    metadata: &serde_json::Value,
    package: &str,
) -> Result<Vec<(String, String)>, String> {
    let graph = link_graph(metadata, package)?;
    let mut out: Vec<(String, String)> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            p["id"]
                .as_str()
                .is_some_and(|id| id != graph.root && graph.reached.contains(id))
        })
        .filter_map(|p| {
            Some((
                p["name"].as_str()?.to_string(),
                p["version"].as_str()?.to_string(),
            ))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The profile's linked crates, from `cargo metadata` for the build's
/// target (what `hakiri version --deps` prints and scanners read). Empty,
/// with a warning, if cargo metadata cannot run.
fn embedded_deps(root: &Path, package: &str) -> Vec<(String, String)> {
    println!(
        "cargo::rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = std::env::var("TARGET").unwrap_or_default();
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
            &target,
        ])
        .current_dir(root)
        .output();
    let listed = out
        .map_err(|e| e.to_string())
        .and_then(|o| {
            if o.status.success() {
                serde_json::from_slice(&o.stdout).map_err(|e| e.to_string())
            } else {
                Err(String::from_utf8_lossy(&o.stderr).into_owned())
            }
        })
        .and_then(|m: serde_json::Value| linked_crates(&m, package));
    match listed {
        Ok(deps) => deps,
        Err(e) => {
            let first = e.lines().next().unwrap_or_default().to_string();
            println!("cargo::warning=dependency list not embedded: cargo metadata failed: {first}");
            Vec::new()
        }
    }
}

fn git_revision(root: &Path) -> Option<String> {
    let git = root.join(".git");
    if git.is_dir() {
        println!("cargo::rerun-if-changed={}", git.join("HEAD").display());
        println!(
            "cargo::rerun-if-changed={}",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(text: &str) -> Result<CapabilityMeta, String> {
        meta_from_manifest(&text.parse::<toml::Table>().unwrap())
    }

    #[test]
    fn capability_name_from_metadata_prefix_or_error() {
        let named = CapabilityMeta {
            name: Some("widgets".into()),
            ..Default::default()
        };
        assert_eq!(named.capability_name("acme-widgets").unwrap(), "widgets");
        // The metadata name wins over the prefix.
        assert_eq!(
            named.capability_name("hakiri-cap-other").unwrap(),
            "widgets"
        );

        let unnamed = CapabilityMeta::default();
        assert_eq!(
            unnamed
                .capability_name("hakiri-cap-catalog-sqlite")
                .unwrap(),
            "catalog-sqlite"
        );
        assert_eq!(
            unnamed.capability_name("badly-named").unwrap_err(),
            "capability crate `badly-named` must be named hakiri-cap-<capability> \
             or declare [package.metadata.hakiri] name = \"<capability>\""
        );
    }

    #[test]
    fn capability_name_shape_is_checked() {
        for bad in ["", "Widgets", "1st", "-x", "wid gets", "wid/gets", "ü"] {
            let m = CapabilityMeta {
                name: Some(bad.into()),
                ..Default::default()
            };
            let err = m.capability_name("acme").unwrap_err();
            assert!(
                err.contains("is not a valid capability name"),
                "{bad:?}: {err}"
            );
        }
        for good in ["w", "s3-sync", "catalog_dynamo", "v2.beta"] {
            let m = CapabilityMeta {
                name: Some(good.into()),
                ..Default::default()
            };
            assert_eq!(m.capability_name("acme").unwrap(), good);
        }
        // A bare prefix leaves an empty name.
        let err = CapabilityMeta::default()
            .capability_name("hakiri-cap-")
            .unwrap_err();
        assert!(err.contains("it is empty"), "{err}");
    }

    #[test]
    fn parses_provides_and_config_sections() {
        let m = meta(
            r#"
            [package]
            name = "hakiri-cap-catalog-postgres"

            [package.metadata.hakiri]
            libraries = ["sqlx"]
            tools = ["pg.tables"]
            provides = { catalog = ["postgres", "postgresql"], connector = ["pg"] }
            config = ["catalog-postgres", "catalog"]
            "#,
        )
        .unwrap();
        assert_eq!(m.name, None);
        assert_eq!(m.libraries, ["sqlx"]);
        assert_eq!(m.provides["catalog"], ["postgres", "postgresql"]);
        assert_eq!(m.provides["connector"], ["pg"]);
        assert_eq!(m.config, ["catalog-postgres", "catalog"]);
        assert_eq!(
            m.contributions(),
            [
                ("tool", "pg.tables"),
                ("catalog", "postgres"),
                ("catalog", "postgresql"),
                ("connector", "pg"),
                ("config", "catalog-postgres"),
                ("config", "catalog"),
            ]
        );
        // No table at all is an empty declaration.
        assert_eq!(
            meta("[package]\nname = \"x\"\n").unwrap(),
            CapabilityMeta::default()
        );
    }

    #[test]
    fn rejects_old_and_malformed_keys() {
        for (text, want) in [
            (
                "catalog_schemes = [\"sqlite\"]",
                "unknown field `catalog_schemes`",
            ),
            (
                "connector_kinds = [\"file\"]",
                "unknown field `connector_kinds`",
            ),
            ("config = true", "invalid type"),
            (
                "provides = { catalog = [] }",
                "provides: `catalog` lists no names",
            ),
            (
                "provides = { Catalog = [\"x\"] }",
                "not a valid extension point name",
            ),
            ("config = [\"Engine\"]", "not a valid section name"),
        ] {
            let err = meta(&format!("[package.metadata.hakiri]\n{text}\n")).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!(
                "hakiri-build-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const LOCK: &str = r#"
version = 4

[[package]]
name = "acme-widgets"
version = "0.1.0"
dependencies = [
 "hakiri-kernel",
 "serde",
 "toml 0.9.8",
]

[[package]]
name = "acme-widgets"
version = "2.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "0000000000000000000000000000000000000000000000000000000000000000"

[[package]]
name = "hakiri-kernel"
version = "0.1.0"

[[package]]
name = "serde"
version = "1.0.228"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "toml"
version = "0.5.11"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "toml"
version = "0.9.8"
source = "registry+https://github.com/rust-lang/crates.io-index"
"#;

    #[test]
    fn locked_versions_reads_a_cargo_lock() {
        let dir = TempDir::new("lock");
        let lock = dir.0.join("Cargo.lock");
        std::fs::write(&lock, LOCK).unwrap();
        let nested = dir.0.join("acme-widgets").join("src");
        std::fs::create_dir_all(&nested).unwrap();
        assert_eq!(workspace_root(&nested).as_deref(), Some(dir.0.as_path()));
        assert_eq!(owning_lock(&nested, "acme-widgets"), Some(lock.clone()));
        // A nearer lock that does not list the package is not its workspace's.
        std::fs::write(
            dir.0.join("acme-widgets").join("Cargo.lock"),
            "version = 4\n\n[[package]]\nname = \"other\"\nversion = \"0.1.0\"\n",
        )
        .unwrap();
        assert_eq!(owning_lock(&nested, "acme-widgets"), Some(lock.clone()));
        assert_eq!(owning_lock(&nested, "nowhere"), None);

        let libs = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Unambiguous names resolve through the package list; ambiguous ones
        // carry their version in the dependency entry. The path crate wins
        // over the registry crate of the same name.
        assert_eq!(
            locked_versions(&lock, "acme-widgets", &libs(&["serde", "toml"])).unwrap(),
            [
                ("serde".to_string(), "1.0.228".to_string()),
                ("toml".to_string(), "0.9.8".to_string())
            ]
        );
        assert_eq!(
            locked_versions(&lock, "acme-widgets", &[]).unwrap(),
            Vec::<(String, String)>::new()
        );
        let err = locked_versions(&lock, "acme-widgets", &libs(&["duckdb"])).unwrap_err();
        assert_eq!(
            err,
            "acme-widgets lists library `duckdb` in [package.metadata.hakiri] but does not depend on it"
        );
        let err = locked_versions(&lock, "nowhere", &[]).unwrap_err();
        assert!(err.starts_with("nowhere is not in "), "{err}");
        let err = locked_versions(&dir.0.join("missing.lock"), "x", &[]).unwrap_err();
        assert!(err.starts_with("cannot read "), "{err}");
    }
}
