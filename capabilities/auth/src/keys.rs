//! The root key pair, the `[auth]` section, and the revocation list.
//!
//! The private key signs tokens (`hakiri auth token`); verifiers need only
//! the public key, so a Lambda or a container can carry `[auth] public_key`
//! (or `HAKIRI_AUTH__PUBLIC_KEY`) and no private key at all.

use anyhow::{bail, Context as _};
use biscuit_auth::{Algorithm, KeyPair, PrivateKey, PublicKey};
use hakiri_kernel::{Context, Section};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `[auth]` in hakiri.toml.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The root private key (hex), default `<data_dir>/auth/root.key`.
    pub private_key_file: Option<PathBuf>,
    /// The root public key (`ed25519/<hex>` or hex) for nodes that only
    /// verify tokens; default: derived from the private key.
    pub public_key: Option<String>,
    /// Revoked token ids (hex), on top of `<data_dir>/auth/revoked`.
    pub revoked: Vec<String>,
}

impl Section for AuthConfig {
    const NAME: &'static str = "auth";
}

fn auth_dir(ctx: &Context) -> PathBuf {
    ctx.config.data_dir.join("auth")
}

pub fn private_key_path(ctx: &Context) -> PathBuf {
    ctx.section::<AuthConfig>()
        .private_key_file
        .clone()
        .unwrap_or_else(|| auth_dir(ctx).join("root.key"))
}

fn revocation_path(ctx: &Context) -> PathBuf {
    auth_dir(ctx).join("revoked")
}

/// Creates the root key pair; refuses to replace one unless `force`.
pub fn init(ctx: &Context, force: bool) -> anyhow::Result<(PathBuf, PublicKey)> {
    let path = private_key_path(ctx);
    if path.exists() && !force {
        bail!(
            "a root key already exists at {}; tokens signed by it stop working if it is replaced; pass --force to replace it",
            path.display()
        );
    }
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    let pair = KeyPair::new();
    write_private(&path, pair.private().to_bytes_hex().as_bytes())?;
    let public = pair.public();
    std::fs::write(path.with_extension("pub"), format!("{public}\n"))
        .with_context(|| format!("cannot write the public key next to {}", path.display()))?;
    Ok((path, public))
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// Writes a secret with mode 0600 from the start (never world-readable,
/// not even briefly), replacing the file atomically.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("key.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// The root key pair, for minting.
pub fn key_pair(ctx: &Context) -> anyhow::Result<KeyPair> {
    let path = private_key_path(ctx);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the root private key {}: {e}; run `hakiri auth init` first (or set [auth] private_key_file)",
            path.display()
        )
    })?;
    let private = PrivateKey::from_bytes_hex(text.trim(), Algorithm::Ed25519).map_err(|_| {
        anyhow::anyhow!(
            "{} does not hold a hex ed25519 private key; recreate it with `hakiri auth init --force`",
            path.display()
        )
    })?;
    Ok(KeyPair::from(&private))
}

/// The key tokens must be signed with: `[auth] public_key`, else the one
/// derived from the private key.
pub fn root_public_key(ctx: &Context) -> anyhow::Result<PublicKey> {
    match &ctx.section::<AuthConfig>().public_key {
        Some(text) => parse_public_key(text),
        None => Ok(key_pair(ctx)?.public()),
    }
}

pub fn parse_public_key(text: &str) -> anyhow::Result<PublicKey> {
    let hex = text.trim().strip_prefix("ed25519/").unwrap_or(text.trim());
    PublicKey::from_bytes_hex(hex, Algorithm::Ed25519).map_err(|_| {
        anyhow::anyhow!(
            "[auth] public_key is not an ed25519 public key; copy the line `hakiri auth init` printed (ed25519/<hex>)"
        )
    })
}

/// Every revoked id: the config's and the revocation file's.
pub fn revoked(ctx: &Context) -> anyhow::Result<BTreeSet<String>> {
    let mut ids: BTreeSet<String> = ctx
        .section::<AuthConfig>()
        .revoked
        .iter()
        .map(|id| id.trim().to_ascii_lowercase())
        .collect();
    let path = revocation_path(ctx);
    match std::fs::read_to_string(&path) {
        Ok(text) => ids.extend(
            text.lines()
                .map(|l| l.trim().to_ascii_lowercase())
                .filter(|l| !l.is_empty() && !l.starts_with('#')),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => bail!("cannot read the revocation list {}: {e}", path.display()),
    }
    Ok(ids)
}

/// Adds `id` to the revocation file; every verifier reading this home
/// refuses tokens carrying it from the next call on.
pub fn revoke(ctx: &Context, id: &str) -> anyhow::Result<PathBuf> {
    let id = id.trim().to_ascii_lowercase();
    if id.len() < 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("`{id}` is not a revocation id; `hakiri auth inspect <token>` lists a token's ids (hex)");
    }
    let path = revocation_path(ctx);
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    if revoked(ctx)?.contains(&id) {
        return Ok(path);
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    writeln!(file, "{id}")?;
    file.sync_all()?;
    Ok(path)
}
