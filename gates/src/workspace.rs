//! Where the workspace, its profiles and its built binaries are, and how to build them.

use anyhow::{bail, Context, Result};
use hakiri_build::ProfileManifest;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The one target every artifact is built for (ADR-0012).
pub const TARGET: &str = "x86_64-unknown-linux-musl";

pub struct Workspace {
    pub root: PathBuf,
    pub target_dir: PathBuf,
    /// `cargo metadata` for the musl target, used by the graph and library checks.
    pub metadata: serde_json::Value,
}

impl Workspace {
    pub fn locate() -> Result<Workspace> {
        let cwd = std::env::current_dir()?;
        let root = hakiri_build::workspace_root(&cwd)
            .or_else(|| hakiri_build::workspace_root(Path::new(env!("CARGO_MANIFEST_DIR"))))
            .context("run `cargo gates` inside the Hakiri workspace")?;
        let metadata = cargo_metadata(&root)?;
        let target_dir = PathBuf::from(
            metadata["target_directory"]
                .as_str()
                .context("cargo metadata: no target_directory")?,
        );
        Ok(Workspace {
            root,
            target_dir,
            metadata,
        })
    }

    pub fn profiles(&self) -> Result<Vec<ProfileManifest>> {
        hakiri_build::read_profiles(&self.root).map_err(anyhow::Error::msg)
    }

    /// A release binary as cargo built it for the musl target (the profiles
    /// keep their symbol table there, for `cargo gates size`).
    pub fn built(&self, name: &str) -> PathBuf {
        self.target_dir.join(TARGET).join("release").join(name)
    }

    /// The stripped copy of a built binary: what the gates measure and
    /// releases ship. Made by [`Workspace::ship`].
    pub fn binary(&self, name: &str) -> PathBuf {
        self.target_dir
            .join(TARGET)
            .join("release/shipped")
            .join(name)
    }

    /// Strips the built binary into [`Workspace::binary`] and arms its
    /// start-up prefetch ([`crate::prefetch`]) unless the copy is already
    /// newer, and returns its path.
    pub fn ship(&self, name: &str) -> Result<PathBuf> {
        let (built, shipped) = (self.built(name), self.binary(name));
        let built_at = std::fs::metadata(&built)
            .and_then(|m| m.modified())
            .with_context(|| format!("{} is not built", built.display()))?;
        if std::fs::metadata(&shipped)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= built_at)
        {
            return Ok(shipped);
        }
        std::fs::create_dir_all(shipped.parent().context("no parent")?)?;
        let partial = shipped.with_extension("partial");
        // binutils' strip: present wherever cargo links host code (`cc`);
        // zig's objcopy cannot strip these binaries ("unimplemented").
        let out = Command::new("strip")
            .arg("--strip-all")
            .arg("-o")
            .arg(&partial)
            .arg(&built)
            .output()
            .context("cannot run `strip` (Debian: apt-get install binutils)")?;
        if !out.status.success() {
            bail!(
                "strip --strip-all {} failed: {}",
                built.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let workloads = self.startup_workloads(name)?;
        crate::prefetch::arm(&partial, &workloads)
            .with_context(|| format!("cannot arm the start-up prefetch of {name}"))?;
        std::fs::rename(&partial, &shipped)?;
        Ok(shipped)
    }

    /// The start-ups a binary's prefetch table covers, in the order the
    /// table asks for them: every command's common start, plus, for profiles
    /// that run as Lambda (those with a cold-start budget), the bootstrap and
    /// then the first query, which a Lambda user's first request waits for.
    fn startup_workloads(&self, name: &str) -> Result<Vec<crate::prefetch::Workload>> {
        use crate::prefetch::Workload;
        let lambda = self.profiles()?.iter().any(|p| {
            p.package == name && p.budget.as_ref().is_some_and(|b| b.cold_start_ms.is_some())
        });
        let mut workloads = vec![Workload::Capabilities];
        if lambda {
            workloads.extend([Workload::LambdaBootstrap, Workload::FirstQuery]);
        }
        Ok(workloads)
    }

    /// Builds every binary in one cargo invocation (feature unification
    /// otherwise recompiles shared crates), with the same flags as the tests.
    pub fn build_all(&self) -> Result<()> {
        let status = Command::new("cargo")
            .current_dir(&self.root)
            .args(["zigbuild", "--release", "--target", TARGET, "--workspace", "--exclude", "hakiri-gates", "--bins"])
            .status()
            .context("cannot run `cargo zigbuild`; install it with `pip install cargo-zigbuild ziglang` (.ci/setup does)")?;
        if !status.success() {
            bail!("building the profiles failed ({status})");
        }
        Ok(())
    }
}

pub fn cargo_metadata(root: &Path) -> Result<serde_json::Value> {
    let out = Command::new("cargo")
        .current_dir(root)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--filter-platform",
            TARGET,
        ])
        .output()
        .context("cannot run cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}
