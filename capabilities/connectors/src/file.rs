//! The `file` connector: local paths, and `-` for stdin. Remote callers read
//! only files under `[connectors] allow_paths`, and never stdin.

use crate::config::ConnectorsConfig;
use anyhow::{bail, Context as _};
use hakiri_data_api::{Connector, SourceReader};
use hakiri_kernel::{BoxFuture, Context};
use std::path::{Path, PathBuf};

/// Local paths, and `-` for stdin.
pub(crate) struct FileConnector;

impl Connector for FileConnector {
    fn accepts(&self, source: &str, _ctx: &Context) -> bool {
        !source.contains("://")
    }

    fn open<'a>(
        &'a self,
        source: &'a str,
        ctx: &'a Context,
    ) -> BoxFuture<'a, anyhow::Result<SourceReader>> {
        Box::pin(async move {
            let path = if ctx.caller().is_local() {
                if source == "-" {
                    return Ok(Box::new(std::io::stdin()) as SourceReader);
                }
                PathBuf::from(source)
            } else {
                let cfg = ctx.section::<ConnectorsConfig>();
                let allowed = cfg.allow_paths_expanded();
                let source = source.to_string();
                tokio::task::spawn_blocking(move || guard_path(&source, &allowed)).await??
            };
            let file = std::fs::File::open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
                bail!("{} is a directory; name a file", path.display());
            }
            Ok(Box::new(file) as SourceReader)
        })
    }
}

/// The canonical path of `source` if it lies under one of `allowed` (each
/// canonicalized; entries that do not exist admit nothing). Refuses `-`.
/// The refusal is the same whether or not the file exists, so a remote
/// caller learns nothing about files it may not read.
pub(crate) fn guard_path(source: &str, allowed: &[PathBuf]) -> anyhow::Result<PathBuf> {
    if source == "-" {
        bail!("`-` (stdin) is a CLI-only source; remote callers name a file under [connectors] allow_paths");
    }
    let refused = || {
        anyhow::anyhow!(
            "`{source}` is not under a path remote callers may read; to allow it, add its directory to [connectors] allow_paths"
        )
    };
    if source.is_empty() {
        return Err(refused());
    }
    let Ok(canonical) = std::fs::canonicalize(source) else {
        return Err(refused());
    };
    let admitted = allowed
        .iter()
        .filter_map(|dir| std::fs::canonicalize(dir).ok())
        .any(|dir| under(&canonical, &dir));
    if admitted {
        Ok(canonical)
    } else {
        Err(refused())
    }
}

/// Component-wise: `/data/public` is under `/data`, `/database` is not.
fn under(path: &Path, dir: &Path) -> bool {
    path.starts_with(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{context, remote};
    use std::io::Read;

    fn refusal_shape(e: &anyhow::Error, source: &str) {
        let e = e.to_string();
        assert!(
            e.starts_with(&format!(
                "`{source}` is not under a path remote callers may read"
            )) && e.contains("[connectors] allow_paths"),
            "{e}"
        );
    }

    #[test]
    fn guard_admits_only_files_under_allowed_paths() {
        let root = tempfile::tempdir().unwrap();
        let allowed = root.path().join("allowed");
        let outside = root.path().join("outside");
        std::fs::create_dir_all(allowed.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(allowed.join("a.csv"), "x\n1\n").unwrap();
        std::fs::write(allowed.join("sub/b.csv"), "x\n2\n").unwrap();
        std::fs::write(outside.join("secret.csv"), "x\n3\n").unwrap();
        let list = [allowed.clone()];

        let ok = guard_path(allowed.join("a.csv").to_str().unwrap(), &list).unwrap();
        assert_eq!(ok, std::fs::canonicalize(allowed.join("a.csv")).unwrap());
        assert!(guard_path(allowed.join("sub/b.csv").to_str().unwrap(), &list).is_ok());

        let cases = [
            outside.join("secret.csv"),
            allowed.join("../outside/secret.csv"),
            allowed.join("sub/../../outside/secret.csv"),
            allowed.join("missing.csv"),
            outside.join("missing.csv"),
            root.path().join("allowedx/a.csv"),
        ];
        for path in cases {
            let source = path.to_str().unwrap();
            refusal_shape(&guard_path(source, &list).unwrap_err(), source);
        }

        // A sibling whose name extends the allowed directory's is not under it.
        let sibling = root.path().join("allowed2");
        std::fs::create_dir_all(&sibling).unwrap();
        std::fs::write(sibling.join("c.csv"), "x\n4\n").unwrap();
        let source = sibling.join("c.csv");
        refusal_shape(
            &guard_path(source.to_str().unwrap(), &list).unwrap_err(),
            source.to_str().unwrap(),
        );

        // Nothing allowed: nothing admitted. A single file may be allowed.
        let a = allowed.join("a.csv");
        refusal_shape(
            &guard_path(a.to_str().unwrap(), &[]).unwrap_err(),
            a.to_str().unwrap(),
        );
        assert!(guard_path(a.to_str().unwrap(), std::slice::from_ref(&a)).is_ok());

        let e = guard_path("-", &list).unwrap_err().to_string();
        assert!(e.contains("`-` (stdin) is a CLI-only source"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn guard_refuses_symlinks_that_leave_the_allowed_path() {
        let root = tempfile::tempdir().unwrap();
        let allowed = root.path().join("allowed");
        std::fs::create_dir_all(&allowed).unwrap();
        std::fs::write(root.path().join("secret.csv"), "x\n1\n").unwrap();
        std::fs::write(allowed.join("ok.csv"), "x\n2\n").unwrap();
        std::os::unix::fs::symlink(root.path().join("secret.csv"), allowed.join("link.csv"))
            .unwrap();
        std::os::unix::fs::symlink(root.path(), allowed.join("up")).unwrap();
        std::os::unix::fs::symlink(allowed.join("ok.csv"), allowed.join("inner.csv")).unwrap();
        let list = [allowed.clone()];
        for name in ["link.csv", "up/secret.csv"] {
            let source = allowed.join(name);
            let source = source.to_str().unwrap();
            refusal_shape(&guard_path(source, &list).unwrap_err(), source);
        }
        // A link that stays inside is fine, and opens its target.
        let p = guard_path(allowed.join("inner.csv").to_str().unwrap(), &list).unwrap();
        assert_eq!(p, std::fs::canonicalize(allowed.join("ok.csv")).unwrap());
    }

    #[tokio::test]
    async fn remote_callers_are_guarded_and_the_local_user_is_not() {
        let root = tempfile::tempdir().unwrap();
        let allowed = root.path().join("allowed");
        std::fs::create_dir_all(&allowed).unwrap();
        std::fs::write(allowed.join("a.csv"), "x\n1\n").unwrap();
        std::fs::write(root.path().join("secret.csv"), "x\n2\n").unwrap();
        let ctx = context(&format!(
            "[connectors]\nallow_paths = [{:?}]\n",
            allowed.to_str().unwrap()
        ));
        let agent = remote(&ctx);
        let read = |r: SourceReader| {
            let mut s = String::new();
            r.take(1 << 10).read_to_string(&mut s).unwrap();
            s
        };

        let inside = allowed.join("a.csv");
        let r = FileConnector
            .open(inside.to_str().unwrap(), &agent)
            .await
            .unwrap();
        assert_eq!(read(r), "x\n1\n");

        let secret = root.path().join("secret.csv");
        let secret = secret.to_str().unwrap();
        let e = FileConnector
            .open(secret, &agent)
            .await
            .err()
            .expect("refused");
        refusal_shape(&e, secret);
        let e = FileConnector
            .open("-", &agent)
            .await
            .err()
            .expect("stdin refused");
        assert!(e.to_string().contains("CLI-only"), "{e}");

        // The CLI user reads their own files wherever they are.
        let r = FileConnector.open(secret, &ctx).await.unwrap();
        assert_eq!(read(r), "x\n2\n");
    }
}
