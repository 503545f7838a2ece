//! `cargo gates release`: one release tree per profile from the gated
//! static binaries, reproducibly (fixed mtimes, owners and order):
//!
//! ```text
//! dist/hakiri-core/hakiri-core-0.1.0-x86_64-unknown-linux-musl.tar.gz   hakiri, LICENSE, README.md, hakiri.toml
//! dist/hakiri-core/hakiri-core-lambda-0.1.0-x86_64.zip                  (core only) the Lambda bootstrap
//! dist/hakiri-core/hakiri-core-0.1.0.cdx.json                           CycloneDX SBOM of exactly this profile
//! dist/hakiri-core/hakiri-core-0.1.0.prefetch.json                      the binary's start-up prefetch table
//! dist/hakiri-core/hakiri-core-0.1.0-SHA256SUMS                         every file above
//! dist/VERSION, dist/install.sh, dist/gates-report.json, dist/RELEASE-NOTES.md
//! dist/homebrew/{hakiri,hakiri-core,hakiri-coord}.rb                     formulae for the tap
//! ```
//!
//! Asset names carry the profile and version, so the three trees can also
//! be uploaded side by side as one flat GitHub release (what `install.sh`
//! downloads from).

use crate::workspace::{Workspace, TARGET};
use crate::{artifact, homebrew, sbom};
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub struct Options {
    /// Must equal the workspace version when given.
    pub version: Option<String>,
    /// A git tag (`v0.1.0`) this release is for; must be `v<version>`.
    pub tag: Option<String>,
    pub out: PathBuf,
    /// The gates report of these binaries (default: the target directory's).
    pub report: Option<PathBuf>,
}

/// Builds every tree; returns the tree directories.
pub fn release(ws: &Workspace, opts: &Options) -> Result<Vec<PathBuf>> {
    let version = workspace_version(ws)?;
    if let Some(v) = &opts.version {
        if v.trim_start_matches('v') != version {
            bail!("release version {v} is not the workspace version {version}; set [workspace.package] version in Cargo.toml first");
        }
    }
    if let Some(tag) = &opts.tag {
        if *tag != format!("v{version}") {
            bail!("tag `{tag}` does not match the workspace version {version}: tag v{version}, or bump the version");
        }
    }
    let report = opts
        .report
        .clone()
        .unwrap_or_else(|| ws.target_dir.join("gates-report.json"));
    let report_text = std::fs::read_to_string(&report).with_context(|| {
        format!(
            "no gates report at {}: run `cargo gates check` first (a release ships its numbers)",
            report.display()
        )
    })?;
    std::fs::create_dir_all(&opts.out)?;
    let mut trees = Vec::new();
    let profiles = ws.profiles()?;
    let all: Vec<String> = profiles.iter().map(|p| p.package.clone()).collect();
    for profile in profiles {
        let name = &profile.package;
        let binary = ws
            .ship(name)
            .context("run `cargo gates check` first (a release ships its numbers)")?;
        let tree = opts.out.join(name);
        if tree.exists() {
            std::fs::remove_dir_all(&tree)?;
        }
        std::fs::create_dir_all(&tree)?;
        let stage = format!("{name}-{version}-{TARGET}");
        let example = profile.dir.join("hakiri.toml");
        let files: Vec<(String, PathBuf, u32)> = vec![
            (format!("{stage}/hakiri"), binary.clone(), 0o755),
            (format!("{stage}/LICENSE"), ws.root.join("LICENSE"), 0o644),
            (
                format!("{stage}/README.md"),
                ws.root.join("README.md"),
                0o644,
            ),
            (format!("{stage}/hakiri.toml"), example, 0o644),
        ];
        let archive = format!("{stage}.tar.gz");
        tarball(&tree.join(&archive), &files)?;
        let sha = sha256_file(&tree.join(&archive))?;
        homebrew::write(&opts.out, name, &version, &archive, &sha, &all)?;
        if name == "hakiri-core" {
            artifact::lambda_zip(
                &binary,
                &tree.join(format!("{name}-lambda-{version}-x86_64.zip")),
            )?;
        }
        let bom = sbom::cyclonedx(&ws.metadata, name)?;
        std::fs::write(
            tree.join(format!("{name}-{version}.cdx.json")),
            serde_json::to_vec_pretty(&bom)?,
        )?;
        // The one run-dependent part of the binary, published so a rebuild
        // can be checked byte for byte (`cargo gates prefetch --apply`).
        if let Some(table) = crate::prefetch::read_table(&binary)? {
            std::fs::write(
                tree.join(format!("{name}-{version}.prefetch.json")),
                serde_json::to_vec_pretty(&table)?,
            )?;
        }
        checksums(&tree, &format!("{name}-{version}-SHA256SUMS"))?;
        trees.push(tree);
    }
    std::fs::write(opts.out.join("VERSION"), format!("{version}\n"))?;
    std::fs::copy(ws.root.join("install.sh"), opts.out.join("install.sh"))?;
    std::fs::write(opts.out.join("gates-report.json"), &report_text)?;
    std::fs::write(
        opts.out.join("RELEASE-NOTES.md"),
        notes(&version, &report_text)?,
    )?;
    Ok(trees)
}

/// The version every workspace crate shares.
pub fn workspace_version(ws: &Workspace) -> Result<String> {
    ws.metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "hakiri-kernel")
        .and_then(|p| p["version"].as_str())
        .map(str::to_string)
        .context("cargo metadata lists no hakiri-kernel")
}

/// A gzip'd tar of `files` (archive path, source, mode), byte for byte the
/// same for the same inputs: entries in order, mtime from SOURCE_DATE_EPOCH
/// (else 0), owner root.
fn tarball(out: &Path, files: &[(String, PathBuf, u32)]) -> Result<()> {
    let mtime = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0u64);
    let file = std::fs::File::create(out)?;
    let gz = flate2::GzBuilder::new()
        .mtime(mtime as u32)
        .write(file, flate2::Compression::best());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    for (path, source, mode) in files {
        let bytes =
            std::fs::read(source).with_context(|| format!("cannot read {}", source.display()))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(*mode);
        header.set_mtime(mtime);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        tar.append_data(&mut header, path, bytes.as_slice())?;
    }
    tar.into_inner()?.finish()?;
    Ok(())
}

/// Writes `name` in `tree`: `sha256  file` for every other file, sorted.
fn checksums(tree: &Path, name: &str) -> Result<()> {
    let mut files: Vec<_> = std::fs::read_dir(tree)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f != name)
        .collect();
    files.sort();
    let mut text = String::new();
    for f in files {
        text.push_str(&format!("{}  {f}\n", sha256_file(&tree.join(&f))?));
    }
    std::fs::write(tree.join(name), text)?;
    Ok(())
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut file = std::fs::File::open(path)?;
    std::io::copy(&mut file, &mut hasher)?;
    Ok(format!("{:x}", hasher.finalize()))
}

/// Release notes with the gates table of these binaries.
fn notes(version: &str, report: &str) -> Result<String> {
    let report: crate::check::Report =
        serde_json::from_str(report).context("the gates report is not valid")?;
    if !report.failures.is_empty() {
        bail!(
            "the gates report has failures; a release ships gated binaries only: {}",
            report.failures.join("; ")
        );
    }
    let mut text = format!(
        "# Hakiri {version}\n\nThree static binaries, one per deployment shape. Install one with\n`curl -fsSL https://github.com/hakiri-dev/hakiri/releases/latest/download/install.sh | sh -s -- --profile=core` (or `full`, `coord`).\n\n## Gates\n\n| profile | stripped | gzip -9 (budget) | idle RSS (budget) | cold start | Lambda zip | capabilities |\n|---|---|---|---|---|---|---|\n"
    );
    for (name, p) in &report.profiles {
        let opt = |v: Option<u64>| v.map_or("-".to_string(), crate::mb);
        text.push_str(&format!(
            "| {name} | {} | {} ({}) | {} ({}) | {} | {} | {} |\n",
            crate::mb(p.stripped_bytes),
            crate::mb(p.compressed_bytes),
            crate::mb(p.compressed_budget_bytes),
            opt(p.idle_rss_bytes),
            crate::mb(p.idle_rss_budget_bytes),
            p.cold_start_ms
                .map_or("-".to_string(), |ms| format!("{ms:.0} ms")),
            opt(p.lambda_zip_bytes),
            p.capabilities.join(", ")
        ));
    }
    Ok(text)
}
