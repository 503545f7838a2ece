//! `cargo gates release` from the built binaries, and `install.sh` against
//! those trees served over loopback HTTP, as a user would run it.
//!
//! Needs the musl binaries and a gates report (`.ci/test` runs
//! `cargo gates check` first).

use hakiri_gates::release::{release, sha256_file, workspace_version, Options};
use hakiri_gates::sbom;
use hakiri_gates::workspace::Workspace;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> Workspace {
    Workspace::locate().expect("inside the workspace")
}

/// One release of the built binaries, shared by the tests of this file.
fn released() -> &'static Path {
    static DIST: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIST.get_or_init(|| {
        let out = tempfile::tempdir().unwrap();
        release(&workspace(), &options(out.path())).unwrap();
        out
    })
    .path()
}

/// A gates report to ship: the tests must not depend on a `cargo gates
/// check` having run before them.
fn report() -> PathBuf {
    static REPORT: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = REPORT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut r = hakiri_gates::check::Report {
            schema_version: 1,
            ..Default::default()
        };
        r.profiles.insert(
            "hakiri-core".into(),
            hakiri_gates::check::ProfileResult {
                capabilities: vec!["engine".into()],
                stripped_bytes: 1 << 20,
                ..Default::default()
            },
        );
        std::fs::write(
            dir.path().join("gates-report.json"),
            serde_json::to_vec(&r).unwrap(),
        )
        .unwrap();
        dir
    });
    dir.path().join("gates-report.json")
}

fn options(out: &Path) -> Options {
    Options {
        version: None,
        tag: None,
        out: out.to_path_buf(),
        report: Some(report()),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Serves the files under `root` (GET only) on loopback; returns the base URL.
fn serve(root: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let root = root.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap_or(0);
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/");
                let file = root.join(path.trim_start_matches('/'));
                let mut out = conn;
                match (path.contains(".."), std::fs::read(&file)) {
                    (false, Ok(body)) => {
                        let _ = write!(
                            out,
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = out.write_all(&body);
                    }
                    _ => {
                        let _ = write!(out, "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                    }
                }
            });
        }
    });
    url
}

#[test]
fn release_trees_hold_checksummed_tarballs_and_their_own_sboms() {
    let ws = workspace();
    let version = workspace_version(&ws).unwrap();
    let out = released();
    let trees: Vec<PathBuf> = ["hakiri-coord", "hakiri-core", "hakiri-full"]
        .iter()
        .map(|t| out.join(t))
        .collect();
    let names: Vec<String> = trees
        .iter()
        .map(|t| t.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["hakiri-coord", "hakiri-core", "hakiri-full"]);
    for tree in &trees {
        let profile = tree.file_name().unwrap().to_string_lossy().into_owned();
        let sums = tree.join(format!("{profile}-{version}-SHA256SUMS"));
        let listed = std::fs::read_to_string(&sums).unwrap();
        let mut files: Vec<String> = std::fs::read_dir(tree)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|f| !f.ends_with("-SHA256SUMS"))
            .collect();
        files.sort();
        let mut checked = Vec::new();
        for line in listed.lines() {
            let (hash, file) = line.split_once("  ").unwrap();
            assert_eq!(sha256_file(&tree.join(file)).unwrap(), hash, "{file}");
            checked.push(file.to_string());
        }
        assert_eq!(checked, files, "SHA256SUMS covers every file of {profile}");
        let tarball = tree.join(format!(
            "{profile}-{version}-x86_64-unknown-linux-musl.tar.gz"
        ));
        let listing = Command::new("tar")
            .arg("-tzvf")
            .arg(&tarball)
            .output()
            .unwrap();
        let listing = text(&listing.stdout);
        for f in ["hakiri", "LICENSE", "README.md", "hakiri.toml"] {
            assert!(
                listing.contains(&format!(
                    "{profile}-{version}-x86_64-unknown-linux-musl/{f}"
                )),
                "{listing}"
            );
        }
        assert!(listing.contains("-rwxr-xr-x 0/0"), "{listing}");
        let bom: serde_json::Value = serde_json::from_slice(
            &std::fs::read(tree.join(format!("{profile}-{version}.cdx.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(bom["metadata"]["component"]["name"], profile.as_str());
        let crates = sbom::names(&bom);
        let heavy = ["duckdb", "polars", "wasmtime", "tantivy", "rmcp"];
        match profile.as_str() {
            "hakiri-coord" => {
                for h in heavy {
                    assert!(!crates.contains(h), "coord's SBOM lists {h}");
                }
                assert!(crates.contains("openraft"), "{crates:?}");
            }
            "hakiri-core" => {
                assert!(crates.contains("duckdb") && crates.contains("polars"));
                assert!(!crates.contains("wasmtime") && !crates.contains("rmcp"));
                assert!(tree
                    .join(format!("hakiri-core-lambda-{version}-x86_64.zip"))
                    .exists());
            }
            _ => {
                for h in heavy {
                    assert!(crates.contains(h), "full's SBOM lacks {h}");
                }
            }
        }
        // Build tools never reach the binary, so they are not in the SBOM.
        assert!(
            !crates.contains("cc") && !crates.contains("hakiri-build"),
            "{crates:?}"
        );
    }
    // Reproducible: a second release is byte for byte the same.
    let again = tempfile::tempdir().unwrap();
    release(&ws, &options(again.path())).unwrap();
    for profile in ["hakiri-core", "hakiri-coord"] {
        let sums = format!("{profile}/{profile}-{version}-SHA256SUMS");
        assert_eq!(
            std::fs::read(out.join(&sums)).unwrap(),
            std::fs::read(again.path().join(&sums)).unwrap()
        );
    }
    let notes = std::fs::read_to_string(out.join("RELEASE-NOTES.md")).unwrap();
    assert!(notes.contains("| hakiri-core |"), "{notes}");
}

#[test]
fn a_release_for_another_version_or_tag_is_refused() {
    let ws = workspace();
    let version = workspace_version(&ws).unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut opts = options(out.path());
    opts.version = Some("9.9.9".into());
    let err = release(&ws, &opts).unwrap_err().to_string();
    assert_eq!(err, format!("release version 9.9.9 is not the workspace version {version}; set [workspace.package] version in Cargo.toml first"));
    let mut opts = options(out.path());
    opts.tag = Some("v9.9.9".into());
    let err = release(&ws, &opts).unwrap_err().to_string();
    assert!(
        err.starts_with("tag `v9.9.9` does not match the workspace version"),
        "{err}"
    );
}

/// `install.sh` as a user runs it, against the trees laid out as a GitHub
/// release (`download/v<version>/<asset>`, `latest/download/VERSION`).
#[test]
fn install_sh_installs_each_profile_and_refuses_what_it_must() {
    let ws = workspace();
    let version = workspace_version(&ws).unwrap();
    let out = released();
    let site = tempfile::tempdir().unwrap();
    let assets = site.path().join(format!("download/v{version}"));
    std::fs::create_dir_all(&assets).unwrap();
    std::fs::create_dir_all(site.path().join("latest/download")).unwrap();
    for tree in ["hakiri-core", "hakiri-full", "hakiri-coord"] {
        for f in std::fs::read_dir(out.join(tree)).unwrap().flatten() {
            std::fs::copy(f.path(), assets.join(f.file_name())).unwrap();
        }
    }
    std::fs::copy(
        out.join("VERSION"),
        site.path().join("latest/download/VERSION"),
    )
    .unwrap();
    let base = serve(site.path().to_path_buf());
    let script = ws.root.join("install.sh");
    let install = |args: &[&str], base: &str| {
        Command::new("sh")
            .arg(&script)
            .args(args)
            .env("HAKIRI_INSTALL_BASE_URL", base)
            .output()
            .unwrap()
    };
    let prefix = tempfile::tempdir().unwrap();
    let prefix_arg = format!("--prefix={}", prefix.path().display());
    let installed = prefix.path().join("hakiri");
    let profile_of = |bin: &Path| {
        let out = Command::new(bin)
            .args(["capabilities", "--json"])
            .env("HAKIRI_HOME", prefix.path().join("home"))
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["profile"].as_str().unwrap_or_default().to_string()
    };
    for (args, expected) in [
        (vec!["--profile=core".to_string()], "hakiri-core"),
        (
            vec![
                "--profile=coord".to_string(),
                format!("--version={version}"),
            ],
            "hakiri-coord",
        ),
        (vec![], "hakiri-full"), // the default, at the latest version
        (vec![], "hakiri-full"), // again: idempotent
    ] {
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.push(&prefix_arg);
        let out = install(&all, &base);
        assert!(out.status.success(), "{all:?}: {}", text(&out.stderr));
        let said = text(&out.stderr);
        assert!(
            said.contains(&format!("installed {expected} {version}")),
            "{said}"
        );
        assert_eq!(profile_of(&installed), expected);
    }

    // A tampered tarball is refused and nothing is installed.
    let evil = tempfile::tempdir().unwrap();
    let evil_assets = evil.path().join(format!("download/v{version}"));
    std::fs::create_dir_all(&evil_assets).unwrap();
    for f in std::fs::read_dir(&assets).unwrap().flatten() {
        std::fs::copy(f.path(), evil_assets.join(f.file_name())).unwrap();
    }
    let tarball = evil_assets.join(format!(
        "hakiri-core-{version}-x86_64-unknown-linux-musl.tar.gz"
    ));
    let mut bytes = std::fs::read(&tarball).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&tarball, bytes).unwrap();
    let evil_base = serve(evil.path().to_path_buf());
    let clean = tempfile::tempdir().unwrap();
    let out = install(
        &[
            "--profile=core",
            &format!("--version={version}"),
            &format!("--prefix={}", clean.path().display()),
        ],
        &evil_base,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("checksum mismatch for hakiri-core-"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        std::fs::read_dir(clean.path()).unwrap().next().is_none(),
        "nothing installed"
    );

    let out = install(&["--profile=huge", &prefix_arg], &base);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unknown profile `huge`"),
        "{}",
        text(&out.stderr)
    );
    let out = install(&["--version=0.0.1", &prefix_arg], &base);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is 0.0.1 a released version?"),
        "{}",
        text(&out.stderr)
    );

    // Unsupported platforms are refused by name, before any download: a
    // `uname` shim first on PATH plays macOS, then an ARM Linux.
    let shim = tempfile::tempdir().unwrap();
    for (os, arch, refusal) in [
        ("Darwin", "arm64", "no build for Darwin yet"),
        ("Linux", "aarch64", "no build for aarch64 yet"),
    ] {
        let uname = shim.path().join("uname");
        std::fs::write(
            &uname,
            format!("#!/bin/sh\ncase \"$1\" in -s) echo {os} ;; -m) echo {arch} ;; *) echo {os} ;; esac\n"),
        )
        .unwrap();
        let mut perms = std::fs::metadata(&uname).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&uname, perms).unwrap();
        let path = format!(
            "{}:{}",
            shim.path().display(),
            std::env::var("PATH").unwrap()
        );
        let out = Command::new("sh")
            .arg(&script)
            .arg(format!("--prefix={}", clean.path().display()))
            .env("HAKIRI_INSTALL_BASE_URL", &base)
            .env("PATH", path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{os} {arch}");
        assert!(text(&out.stderr).contains(refusal), "{}", text(&out.stderr));
    }
    assert!(std::fs::read_dir(clean.path()).unwrap().next().is_none());

    // Without --prefix, a user installs into ~/.local/bin (as root, the
    // test runs the script as `nobody`: root's /usr/local/bin stays untouched).
    let home = tempfile::tempdir().unwrap();
    let mut perms = std::fs::metadata(home.path()).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o777);
    std::fs::set_permissions(home.path(), perms).unwrap();
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| text(&o.stdout).trim() == "0");
    let mut user = if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "sh"]);
        c
    } else {
        Command::new("sh")
    };
    let out = user
        .arg(&script)
        .arg("--profile=coord")
        .env("HAKIRI_INSTALL_BASE_URL", &base)
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        profile_of(&home.path().join(".local/bin/hakiri")),
        "hakiri-coord"
    );

    let out = install(&["--uninstall", &prefix_arg], &base);
    assert!(out.status.success());
    assert!(!installed.exists());
}

/// The formulae parse, point at the trees' tarballs with their checksums,
/// and install the way brew does (unpack, `bin.install "hakiri"`), after
/// which the formula's own test command passes.
#[test]
fn homebrew_formulae_parse_and_install_as_brew_would() {
    let ruby = hakiri_testkit::skip_unless_configured!("HAKIRI_TEST_RUBY");
    let ws = workspace();
    let version = workspace_version(&ws).unwrap();
    let out = released();
    for (formula, profile) in [
        ("hakiri", "hakiri-full"),
        ("hakiri-core", "hakiri-core"),
        ("hakiri-coord", "hakiri-coord"),
    ] {
        let path = out.join(format!("homebrew/{formula}.rb"));
        let rb = std::fs::read_to_string(&path).unwrap();
        let syntax = Command::new(&ruby).arg("-c").arg(&path).output().unwrap();
        assert!(
            syntax.status.success(),
            "{formula}: {}",
            text(&syntax.stderr)
        );
        let quoted = |key: &str| {
            let line = rb
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{key} \"")))
                .unwrap();
            line.split('"').nth(1).unwrap().to_string()
        };
        let (url, sha) = (quoted("url"), quoted("sha256"));
        let asset = url.rsplit('/').next().unwrap();
        assert!(url.ends_with(&format!("/v{version}/{asset}")), "{url}");
        let tarball = out.join(profile).join(asset);
        assert_eq!(sha256_file(&tarball).unwrap(), sha, "{formula}'s sha256");
        for other in ["hakiri", "hakiri-core", "hakiri-coord"]
            .iter()
            .filter(|o| **o != formula)
        {
            assert!(
                rb.contains(&format!("conflicts_with \"{other}\"")),
                "{formula} vs {other}"
            );
        }
        // brew: unpack into a staging directory, enter its single top-level
        // directory, run `install`, then the formula's `test do`.
        let stage = tempfile::tempdir().unwrap();
        let unpacked = Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(stage.path())
            .output()
            .unwrap();
        assert!(unpacked.status.success());
        let top: Vec<_> = std::fs::read_dir(stage.path()).unwrap().flatten().collect();
        assert_eq!(top.len(), 1, "one top-level directory");
        let cellar = tempfile::tempdir().unwrap();
        let bin = cellar.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy(top[0].path().join("hakiri"), bin.join("hakiri")).unwrap();
        assert!(
            top[0].path().join("hakiri.toml").exists(),
            "pkgshare.install finds hakiri.toml"
        );
        let test_line = rb.lines().find(|l| l.contains("shell_output(")).unwrap();
        let command = test_line
            .split("shell_output(\"")
            .nth(1)
            .unwrap()
            .split("\")")
            .next()
            .unwrap();
        let command = command.replace("#{bin}", &bin.display().to_string());
        let expected = test_line
            .split("assert_match \"")
            .nth(1)
            .unwrap()
            .split("\", shell_output")
            .next()
            .unwrap()
            .replace("\\\"", "\"");
        let ran = Command::new("sh")
            .args(["-c", &command])
            .env("HAKIRI_HOME", cellar.path().join("home"))
            .output()
            .unwrap();
        assert!(ran.status.success(), "{command}: {}", text(&ran.stderr));
        assert!(
            text(&ran.stdout).contains(&expected),
            "{formula}: `{expected}` not in {}",
            text(&ran.stdout)
        );
    }
}

/// `name@version` of each entry (embedded deps and SBOM components alike).
fn name_at_version(items: &[serde_json::Value]) -> std::collections::BTreeSet<String> {
    items
        .iter()
        .map(|d| {
            format!(
                "{}@{}",
                d["name"].as_str().unwrap(),
                d["version"].as_str().unwrap()
            )
        })
        .collect()
}

/// `hakiri version --deps` (what scanners read from the binary) lists the
/// same crates as the profile's SBOM.
#[test]
fn each_binary_embeds_the_crates_its_sbom_lists() {
    let ws = workspace();
    for profile in ["hakiri-core", "hakiri-full", "hakiri-coord"] {
        let out = Command::new(ws.ship(profile).unwrap())
            .args(["version", "--deps", "--json"])
            .env("HAKIRI_HOME", std::env::temp_dir().join("hakiri-deps-home"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{profile}: {}", text(&out.stderr));
        let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        let embedded = name_at_version(&listed);
        let bom = sbom::cyclonedx(&ws.metadata, profile).unwrap();
        let in_bom = name_at_version(bom["components"].as_array().unwrap());
        assert_eq!(embedded, in_bom, "{profile}");
        assert_eq!(
            embedded.iter().any(|d| d.starts_with("duckdb@")),
            profile != "hakiri-coord",
            "{profile}"
        );
    }
}

/// The SBOM checked against what the linker put in, not only against the
/// metadata it is made from: every crate whose code the binary holds (its
/// symbols, looked up in every rlib of the build) is listed, and no
/// proc-macro crate is (it runs inside the compiler and never ships).
#[test]
fn each_sbom_lists_every_crate_whose_code_the_binary_holds() {
    let ws = workspace();
    let lock = std::fs::read_to_string(ws.root.join("Cargo.lock")).unwrap();
    for profile in ["hakiri-core", "hakiri-full", "hakiri-coord"] {
        let unlisted = hakiri_gates::size::unlisted_code(&ws, profile).unwrap();
        assert!(
            unlisted.is_empty(),
            "{profile}'s binary holds code of crates its SBOM omits: {unlisted:?}"
        );
        let listed = sbom::names(&sbom::cyclonedx(&ws.metadata, profile).unwrap());
        for macro_crate in ["thiserror-impl", "serde_derive", "clap_derive"] {
            assert!(lock.contains(&format!("name = \"{macro_crate}\"")));
            assert!(
                !listed.contains(macro_crate),
                "{profile}'s SBOM lists the proc-macro {macro_crate}"
            );
        }
    }
}

/// The prefetch table is the one part of a shipped binary that depends on
/// the recording run; each tree publishes it, and writing it into a build
/// without one (`cargo gates prefetch --apply`) gives back the released
/// binary byte for byte.
#[test]
fn the_published_prefetch_table_turns_a_rebuild_into_the_released_binary() {
    let version = workspace_version(&workspace()).unwrap();
    let out = released();
    for profile in ["hakiri-coord", "hakiri-core", "hakiri-full"] {
        let tree = out.join(profile);
        let table = tree.join(format!("{profile}-{version}.prefetch.json"));
        let published: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&table).expect("a published table")).unwrap();
        assert!(
            published["start"].as_array().is_some_and(|s| !s.is_empty()),
            "{profile}: {published}"
        );
        let unpacked = tempfile::tempdir().unwrap();
        let tarball = tree.join(format!(
            "{profile}-{version}-x86_64-unknown-linux-musl.tar.gz"
        ));
        let status = Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(unpacked.path())
            .status()
            .unwrap();
        assert!(status.success());
        let shipped = std::fs::read(unpacked.path().join(format!(
            "{profile}-{version}-x86_64-unknown-linux-musl/hakiri"
        )))
        .unwrap();
        // A rebuild's stripped binary: the same bytes with an empty table.
        let rebuild = unpacked.path().join("rebuild");
        std::fs::write(&rebuild, &shipped).unwrap();
        hakiri_gates::prefetch::write_table(&rebuild, &Default::default()).unwrap();
        assert_ne!(
            std::fs::read(&rebuild).unwrap(),
            shipped,
            "{profile}: the table was blanked"
        );
        let applied = Command::new(env!("CARGO_BIN_EXE_hakiri-gates"))
            .arg("prefetch")
            .arg(&rebuild)
            .arg("--apply")
            .arg(&table)
            .output()
            .unwrap();
        assert!(applied.status.success(), "{}", text(&applied.stderr));
        assert!(
            std::fs::read(&rebuild).unwrap() == shipped,
            "{profile}: the rebuild with the published table differs from the released binary"
        );
    }
}
