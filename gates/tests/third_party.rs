//! A capability written outside this repository works like one of ours.
//!
//! `gates/fixtures/third-party` is its own cargo workspace, as a third
//! party's would be: `acme-widgets` (a capability crate not named
//! `hakiri-cap-*`, naming itself `widgets` in its metadata), `acme-app` (a
//! binary embedding the kernel with it) and `badly-named` (a capability crate
//! that names itself nowhere, whose build must fail with a clear message).
//! It is built in release mode, with its committed Cargo.lock, into its own
//! target directory (`<target>/fixtures/third-party`), so reruns are
//! incremental and the workspace's own build is never disturbed.

use hakiri_gates::workspace::Workspace;
use hakiri_testkit::{run, text, Home};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Duration;

/// A cold build compiles the kernel and its dependencies.
const BUILD_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// One cargo at a time on the fixture's target directory; holds the built
/// `acme-app` once there is one.
static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);

struct Fixture {
    dir: PathBuf,
    target_dir: PathBuf,
}

fn fixture() -> Fixture {
    let ws = Workspace::locate().expect("inside the workspace");
    Fixture {
        dir: ws.root.join("gates/fixtures/third-party"),
        target_dir: ws.target_dir.join("fixtures").join("third-party"),
    }
}

/// `cargo build --release --locked -p <package>` in the fixture's workspace.
fn cargo_build(f: &Fixture, package: &str) -> Output {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&f.dir)
        // Built for the host, where the test runs it.
        .env_remove("CARGO_BUILD_TARGET")
        .args(["build", "--release", "--locked", "-p", package])
        .arg("--target-dir")
        .arg(&f.target_dir);
    hakiri_testkit::output(&mut cmd, &[], BUILD_TIMEOUT)
}

/// The fixture's `acme-app`, built on first use.
fn acme_app() -> PathBuf {
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(bin) = built.as_ref() {
        return bin.clone();
    }
    let f = fixture();
    let out = cargo_build(&f, "acme-app");
    assert!(
        out.status.success(),
        "building gates/fixtures/third-party failed (if Cargo.lock is stale, see the comment in its Cargo.toml):\n{}",
        text(&out.stderr)
    );
    let bin = f.target_dir.join("release").join("acme-app");
    assert!(bin.exists(), "{} was not built", bin.display());
    *built = Some(bin.clone());
    bin
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn third_party_capability_is_linked_under_its_metadata_name() {
    let app = acme_app();
    let home = Home::new();
    let report: serde_json::Value = serde_json::from_str(&ok(
        run(&app, home.path(), &["capabilities", "--json"]),
        "acme-app capabilities --json",
    ))
    .expect("capabilities --json prints JSON");
    assert_eq!(report["profile"], "acme", "{report:#}");
    let widgets = report["capabilities"]
        .as_array()
        .expect("a capabilities array")
        .iter()
        .find(|c| c["name"] == "widgets")
        .unwrap_or_else(|| panic!("no capability `widgets` in {report:#}"));
    assert_eq!(widgets["crate"], "acme-widgets", "{widgets:#}");
    assert_eq!(widgets["version"], "0.2.0", "{widgets:#}");
    assert_eq!(
        widgets["contributes"]["tools"],
        serde_json::json!(["widgets.count"]),
        "{widgets:#}"
    );
    // The wrapped library's version comes from the fixture's own Cargo.lock.
    let lock = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/third-party/Cargo.lock");
    let locked =
        hakiri_build::locked_versions(&lock, "acme-widgets", &["schemars".to_string()]).unwrap();
    let want: Vec<serde_json::Value> = locked
        .iter()
        .map(|(name, version)| serde_json::json!({"name": name, "version": version}))
        .collect();
    assert_eq!(widgets["libraries"], serde_json::json!(want), "{widgets:#}");
}

#[test]
fn third_party_tool_can_be_called() {
    let app = acme_app();
    let home = Home::new();
    let out = ok(
        run(
            &app,
            home.path(),
            &[
                "call",
                "widgets.count",
                r#"{"widgets": ["red", "blue", "red"], "colour": "red"}"#,
            ],
        ),
        "acme-app call widgets.count",
    );
    let got: serde_json::Value = serde_json::from_str(&out).expect("call prints JSON");
    assert_eq!(got, serde_json::json!({"count": 2}));

    // Its input is checked like any tool's.
    let out = run(
        &app,
        home.path(),
        &["call", "widgets.count", r#"{"gadgets": []}"#],
    );
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("unknown field `gadgets`"), "{err}");
}

#[test]
fn embedded_profile_reports_the_embedding_programs_version() {
    let app = acme_app();
    let home = Home::new();
    let out = ok(run(&app, home.path(), &["version"]), "acme-app version");
    let first = out.lines().next().unwrap_or_default();
    assert!(first.starts_with("acme 0.3.0"), "{out}");
    // No empty build fields, as in `acme 0.3.0 (, )`.
    assert!(!out.contains("(, )"), "{out}");
}

#[test]
fn capability_crate_without_a_name_fails_its_build_clearly() {
    // Holds the lock: cargo would otherwise wait for the acme-app build.
    let _serial = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let out = cargo_build(&fixture(), "badly-named");
    let err = text(&out.stderr);
    assert!(!out.status.success(), "badly-named built:\n{err}");
    assert!(
        err.contains(
            "capability crate `badly-named` must be named hakiri-cap-<capability> \
             or declare [package.metadata.hakiri] name = \"<capability>\""
        ),
        "{err}"
    );
    assert!(!err.contains("panicked"), "a panic, not an error:\n{err}");
}
