//! `cargo gates size`: the shipped binary's bytes attributed to the crates
//! that define them, and rolled up to the capabilities that pull those
//! crates in.
//!
//! zig's linker writes no map file, so attribution goes by symbols: every
//! sized symbol of the unstripped build is looked up in the object files of
//! the rlibs it was linked from (DuckDB's, SQLite's and mimalloc's C/C++
//! are bundled into their `-sys` crates' rlibs, std's are in the sysroot).
//! What no symbol covers (section padding, unwind tables, headers, string
//! literals merged by the linker) is reported as "unattributed", so the
//! lines add up to the stripped size.

use crate::workspace::{Workspace, TARGET};
use anyhow::{bail, Context, Result};
use object::read::archive::ArchiveFile;
use object::read::elf::ElfFile64;
use object::{Endianness, Object, ObjectSection, ObjectSymbol, SectionKind};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Where bytes without a defining rlib come from: zig's musl and compiler-rt.
pub const LIBC: &str = "libc + compiler-rt (zig)";
pub const STD: &str = "std (Rust runtime)";
pub const UNWIND: &str = "unwind tables (.eh_frame, .gcc_except_table)";
pub const UNATTRIBUTED: &str = "unattributed (merged literals, padding, headers)";

#[derive(Debug, Default, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Attribution {
    /// The stripped binary's size: the lines of each table add up to it.
    pub stripped_bytes: u64,
    /// Crate (package) name -> bytes, largest first.
    pub crates: Vec<(String, u64)>,
    /// Capability (or "kernel", "shared: a+b", std, libc, unattributed) -> bytes.
    pub capabilities: Vec<(String, u64)>,
}

/// Attributes the profile's built binary (`release/<profile>`, unstripped)
/// against the stripped copy the gates measure.
pub fn attribute(ws: &Workspace, profile: &str) -> Result<Attribution> {
    let built = ws.built(profile);
    let stripped = ws.ship(profile)?;
    let stripped_bytes = std::fs::metadata(&stripped)?.len();
    let symbols = sized_symbols(&built)?;
    let wanted: HashSet<&[u8]> = symbols.keys().map(Vec::as_slice).collect();

    let graph = hakiri_build::link_graph(&ws.metadata, profile).map_err(anyhow::Error::msg)?;
    let packages = lib_packages(&ws.metadata, &graph);
    let mut rlibs = rlibs_in(&ws.target_dir.join(TARGET).join("release/deps"))?
        .into_iter()
        .filter(|(krate, _)| packages.contains_key(krate))
        .collect::<Vec<_>>();
    let (sysroot_libs, std_crates) = std_rlibs(ws)?;
    rlibs.extend(sysroot_libs);
    let definer = definers(&rlibs, &wanted)?;

    let mut crates: BTreeMap<String, u64> = BTreeMap::new();
    for (name, bytes) in &symbols {
        let owner = match definer.get(name.as_slice()) {
            Some(k) if std_crates.contains(k) => STD.to_string(),
            Some(k) => packages.get(k).cloned().unwrap_or_else(|| k.clone()),
            None => LIBC.to_string(),
        };
        *crates.entry(owner).or_default() += bytes;
    }
    crates.insert(UNWIND.to_string(), unwind_bytes(&stripped)?);
    let attributed: u64 = crates.values().sum();
    crates.insert(
        UNATTRIBUTED.to_string(),
        stripped_bytes.saturating_sub(attributed),
    );

    let owners = capability_owners(&ws.metadata, &graph);
    let mut capabilities: BTreeMap<String, u64> = BTreeMap::new();
    for (krate, bytes) in &crates {
        let owner = owners.get(krate).cloned().unwrap_or_else(|| krate.clone());
        *capabilities.entry(owner).or_default() += bytes;
    }
    Ok(Attribution {
        stripped_bytes,
        crates: largest_first(crates),
        capabilities: largest_first(capabilities),
    })
}

/// Crates whose object code is in the profile's binary although its link
/// graph (hence its SBOM and `hakiri version --deps`) does not list them.
/// Found from the binary's own symbols and every rlib of the build, not
/// from cargo's metadata, so it checks the SBOM against what the linker
/// actually put in. Listed crates are asked first, then std, so a symbol
/// several rlibs define (bundled C, std's inlined code) counts for those.
pub fn unlisted_code(ws: &Workspace, profile: &str) -> Result<BTreeSet<String>> {
    let symbols = sized_symbols(&ws.built(profile))?;
    let wanted: HashSet<&[u8]> = symbols.keys().map(Vec::as_slice).collect();
    let graph = hakiri_build::link_graph(&ws.metadata, profile).map_err(anyhow::Error::msg)?;
    let listed = lib_packages(&ws.metadata, &graph);
    let (mut rlibs, others): (Vec<_>, Vec<_>) =
        rlibs_in(&ws.target_dir.join(TARGET).join("release/deps"))?
            .into_iter()
            .partition(|(krate, _)| listed.contains_key(krate));
    let (sysroot_libs, std_crates) = std_rlibs(ws)?;
    rlibs.extend(sysroot_libs);
    rlibs.extend(others);
    Ok(definers(&rlibs, &wanted)?
        .into_values()
        .filter(|k| !listed.contains_key(k) && !std_crates.contains(k))
        .collect())
}

fn largest_first(m: BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<_> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// Defined symbols with a size in sections that occupy file bytes, by name;
/// aliases (one address, several names) count once.
fn sized_symbols(path: &Path) -> Result<HashMap<Vec<u8>, u64>> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = ElfFile64::<Endianness>::parse(data.as_slice())
        .with_context(|| format!("{} is not a 64-bit ELF", path.display()))?;
    let mut seen = HashSet::new();
    let mut out = HashMap::new();
    for sym in file.symbols() {
        let (Some(index), true) = (sym.section_index(), sym.size() > 0) else {
            continue;
        };
        let occupies_file = file.section_by_index(index).is_ok_and(|s| {
            !matches!(
                s.kind(),
                SectionKind::UninitializedData | SectionKind::UninitializedTls
            )
        });
        if !occupies_file || !seen.insert(sym.address()) {
            continue;
        }
        if let Ok(name) = sym.name_bytes() {
            *out.entry(name.to_vec()).or_default() += sym.size();
        }
    }
    if out.is_empty() {
        bail!(
            "{} has no symbol table: the profile packages must keep `strip = false` \
             in the workspace Cargo.toml (the gates strip their own copy)",
            path.display()
        );
    }
    Ok(out)
}

/// Bytes of the sections that only serve unwinding (C++ exceptions and
/// Rust panics): no symbol covers them.
fn unwind_bytes(path: &Path) -> Result<u64> {
    let data = std::fs::read(path)?;
    let file = ElfFile64::<Endianness>::parse(data.as_slice())
        .with_context(|| format!("{} is not a 64-bit ELF", path.display()))?;
    Ok(file
        .sections()
        .filter(|s| {
            matches!(
                s.name(),
                Ok(".eh_frame" | ".eh_frame_hdr" | ".gcc_except_table")
            )
        })
        .map(|s| s.size())
        .sum())
}

/// (crate, path) of rlib files.
type Rlibs = Vec<(String, PathBuf)>;

/// `lib<crate>-<hash>.rlib` files of a directory, as (crate, path).
fn rlibs_in(dir: &Path) -> Result<Rlibs> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(stem) = name
            .strip_prefix("lib")
            .and_then(|n| n.strip_suffix(".rlib"))
        {
            let krate = stem.rsplit_once('-').map_or(stem, |(k, _)| k);
            out.push((krate.to_string(), path));
        }
    }
    Ok(out)
}

/// For each wanted symbol, the crate whose rlib defines it.
fn definers(
    rlibs: &[(String, PathBuf)],
    wanted: &HashSet<&[u8]>,
) -> Result<HashMap<Vec<u8>, String>> {
    let mut out = HashMap::new();
    for (krate, path) in rlibs {
        let file = std::fs::File::open(path)?;
        // SAFETY: read-only map of a build artifact nothing writes while the
        // gates run; only symbol tables are touched.
        let map = unsafe { memmap2::Mmap::map(&file) }
            .with_context(|| format!("cannot map {}", path.display()))?;
        let archive = ArchiveFile::parse(&*map)
            .with_context(|| format!("{} is not an archive", path.display()))?;
        for member in archive.members() {
            let Ok(member) = member else { continue };
            let Ok(bytes) = member.data(&*map) else {
                continue;
            };
            let Ok(obj) = ElfFile64::<Endianness>::parse(bytes) else {
                continue; // lib.rmeta and other non-object members
            };
            for sym in obj.symbols() {
                if !sym.is_definition() {
                    continue;
                }
                if let Ok(name) = sym.name_bytes() {
                    if wanted.contains(name) && !out.contains_key(name) {
                        out.insert(name.to_vec(), krate.clone());
                    }
                }
            }
        }
    }
    Ok(out)
}

/// std's rlibs for the target (from the toolchain's sysroot), and their crate names.
fn std_rlibs(ws: &Workspace) -> Result<(Rlibs, HashSet<String>)> {
    let libs = rlibs_in(
        &sysroot(&ws.root)?
            .join("lib/rustlib")
            .join(TARGET)
            .join("lib"),
    )?;
    let names = libs.iter().map(|(k, _)| k.clone()).collect();
    Ok((libs, names))
}

fn sysroot(root: &Path) -> Result<PathBuf> {
    let out = std::process::Command::new("rustc")
        .current_dir(root)
        .args(["--print", "sysroot"])
        .output()
        .context("cannot run rustc --print sysroot")?;
    Ok(PathBuf::from(String::from_utf8(out.stdout)?.trim()))
}

/// Library crate name (as in rlib file names) -> package name, for every
/// package the profile links.
fn lib_packages(
    metadata: &serde_json::Value,
    graph: &hakiri_build::LinkGraph,
) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for p in metadata["packages"].as_array().into_iter().flatten() {
        if !p["id"]
            .as_str()
            .is_some_and(|id| graph.reached.contains(id))
        {
            continue;
        }
        let Some(package) = p["name"].as_str() else {
            continue;
        };
        for t in p["targets"].as_array().into_iter().flatten() {
            let is_lib = t["kind"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k == "lib" || k == "rlib");
            if let (true, Some(name)) = (is_lib, t["name"].as_str()) {
                out.insert(name.replace('-', "_"), package.to_string());
            }
        }
    }
    out
}

/// Package name -> the capability it belongs to: "kernel" if the kernel
/// links it, the one capability that links it, or "shared: a+b" when
/// several do; what only the profile links, "profile".
fn capability_owners(
    metadata: &serde_json::Value,
    graph: &hakiri_build::LinkGraph,
) -> HashMap<String, String> {
    let name_of: HashMap<&str, &str> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
        .collect();
    let closure = |root: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::from([root.to_string()]);
        let mut queue = vec![root.to_string()];
        while let Some(id) = queue.pop() {
            for dep in graph.normal.get(&id).into_iter().flatten() {
                if seen.insert(dep.clone()) {
                    queue.push(dep.clone());
                }
            }
        }
        seen.iter()
            .filter_map(|id| name_of.get(id.as_str()).map(|n| n.to_string()))
            .collect()
    };
    let direct = graph.normal.get(&graph.root).cloned().unwrap_or_default();
    let kernel: BTreeSet<String> = direct
        .iter()
        .filter(|id| name_of.get(id.as_str()) == Some(&"hakiri-kernel"))
        .flat_map(|id| closure(id))
        .collect();
    let mut users: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for id in &direct {
        let Some(cap) = name_of
            .get(id.as_str())
            .and_then(|n| n.strip_prefix("hakiri-cap-"))
        else {
            continue;
        };
        for package in closure(id) {
            users.entry(package).or_default().insert(cap.to_string());
        }
    }
    let mut out: HashMap<String, String> = users
        .into_iter()
        .map(|(package, caps)| {
            let owner = if caps.len() == 1 {
                caps.into_iter().next().unwrap_or_default()
            } else {
                format!("shared: {}", caps.into_iter().collect::<Vec<_>>().join("+"))
            };
            (package, owner)
        })
        .collect();
    for package in kernel {
        out.insert(package, "kernel".to_string());
    }
    // What only the profile itself links (its allocator, its main).
    for id in &graph.reached {
        if let Some(name) = name_of.get(id.as_str()) {
            out.entry(name.to_string())
                .or_insert_with(|| "profile (allocator, main)".to_string());
        }
    }
    out
}

/// The table `cargo gates size` prints: the `top` largest lines, the rest
/// summed, and the total.
pub fn render(title: &str, lines: &[(String, u64)], top: usize) -> String {
    let total: u64 = lines.iter().map(|(_, b)| b).sum();
    let mut s = format!("| {title} | MB | share |\n|---|---:|---:|\n");
    let row = |name: &str, b: u64| {
        format!(
            "| {name} | {:.2} | {:.1}% |\n",
            b as f64 / 1_048_576.0,
            100.0 * b as f64 / total.max(1) as f64
        )
    };
    for (name, b) in lines.iter().take(top) {
        s += &row(name, *b);
    }
    if lines.len() > top {
        let rest: u64 = lines[top..].iter().map(|(_, b)| b).sum();
        s += &row(&format!("{} more", lines.len() - top), rest);
    }
    s += &row("**total (stripped)**", total);
    s
}
