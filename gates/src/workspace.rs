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

    /// A built release binary for the musl target.
    pub fn binary(&self, name: &str) -> PathBuf {
        self.target_dir.join(TARGET).join("release").join(name)
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
