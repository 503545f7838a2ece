//! The gates must be able to fail: each test feeds one gate a real broken
//! input and asserts the exact one-line message.
//!
//! The artifact tests need the musl binaries (`cargo gates check` or
//! `.ci/run` builds them first).

use hakiri_gates::check::{
    check_capabilities, cold_start_failure, cold_start_ratio_failure, idle_rss_failure,
    lambda_zip_failure, size_failure,
};
use hakiri_gates::graph::Graph;
use hakiri_gates::workspace::{cargo_metadata, Workspace};
use hakiri_gates::{artifact, probe};
use std::path::PathBuf;

fn workspace() -> Workspace {
    Workspace::locate().expect("inside the workspace")
}

fn built(ws: &Workspace, name: &str) -> PathBuf {
    ws.ship(name)
        .unwrap_or_else(|e| panic!("{e:#}: build the profiles first (.ci/run does)"))
}

#[test]
fn declared_but_unlinked_capability_fails_the_capabilities_gate() {
    let ws = workspace();
    let dir = ws.root.join("gates/fixtures/unlinked-profile");
    let manifest = hakiri_build::read_profile(&dir).unwrap();
    assert_eq!(manifest.capabilities, ["auth"], "the fixture declares auth");
    let bin = built(&ws, "hakiri-fixture-unlinked");
    let home = probe::scratch_home("unlinked").unwrap();
    let json = probe::capabilities(&bin, &home).unwrap();
    let failures = check_capabilities(
        &manifest.package,
        &manifest.capabilities,
        &[],
        &json,
        &ws.root,
        &Graph::new(&ws.metadata),
    );
    assert_eq!(
        failures,
        ["hakiri-fixture-unlinked capability auth is declared in Cargo.toml but not linked (its registration is missing)"]
    );
}

#[test]
fn linked_profiles_pass_the_capabilities_gate() {
    let ws = workspace();
    let graph = Graph::new(&ws.metadata);
    for p in ws.profiles().unwrap() {
        let bin = built(&ws, &p.package);
        let home = probe::scratch_home(&p.package).unwrap();
        let json = probe::capabilities(&bin, &home).unwrap();
        let budget = p.budget.unwrap();
        let failures = check_capabilities(
            &p.package,
            &p.capabilities,
            &budget.forbidden_capabilities,
            &json,
            &ws.root,
            &graph,
        );
        assert!(failures.is_empty(), "{failures:?}");
    }
}

#[test]
fn forbidden_capability_fails_the_capabilities_gate() {
    let ws = workspace();
    let full = ws
        .profiles()
        .unwrap()
        .into_iter()
        .find(|p| p.package == "hakiri-full")
        .unwrap();
    let home = probe::scratch_home("forbidden-cap").unwrap();
    let json = probe::capabilities(&built(&ws, "hakiri-full"), &home).unwrap();
    // Pretend full were held to coord's rule: no engine.
    let failures = check_capabilities(
        "hakiri-full",
        &full.capabilities,
        &["engine".to_string()],
        &json,
        &ws.root,
        &Graph::new(&ws.metadata),
    );
    assert_eq!(
        failures,
        ["hakiri-full contains forbidden capability engine"]
    );
}

#[test]
fn budget_below_the_real_size_fails_the_size_gate() {
    let ws = workspace();
    let bin = built(&ws, "hakiri-core");
    let gz = artifact::gzip_size(&bin).unwrap();
    assert!(
        gz > 1024 * 1024,
        "hakiri-core compresses to {gz} bytes; a real build is larger than 1 MB"
    );
    assert_eq!(
        size_failure("hakiri-core", gz, 1.0),
        Some(format!("hakiri-core compressed {gz} > 1 MB"))
    );
    assert_eq!(size_failure("hakiri-core", gz, 50.0), None);
}

#[test]
fn forbidden_crate_in_coords_graph_fails_the_graph_gate() {
    let ws = workspace();
    let coord = ws
        .profiles()
        .unwrap()
        .into_iter()
        .find(|p| p.package == "hakiri-coord")
        .unwrap();
    let forbidden = coord.budget.unwrap().forbidden_crates;
    assert!(forbidden.iter().any(|c| c == "duckdb"));
    let metadata = cargo_metadata(&ws.root.join("gates/fixtures/forbidden-graph")).unwrap();
    let found = Graph::new(&metadata)
        .forbidden("hakiri-coord", &forbidden)
        .unwrap();
    assert_eq!(
        found,
        [("duckdb".to_string(), "hakiri-coord -> duckdb".to_string())]
    );
    // And the real coord is clean.
    assert_eq!(
        Graph::new(&ws.metadata)
            .forbidden("hakiri-coord", &forbidden)
            .unwrap(),
        []
    );
}

#[test]
fn profile_binaries_are_fully_static() {
    let ws = workspace();
    for p in ws.profiles().unwrap() {
        assert_eq!(
            artifact::static_problems(&built(&ws, &p.package)).unwrap(),
            Vec::<String>::new(),
            "{}",
            p.package
        );
    }
    // A dynamically linked host binary must be caught.
    let problems = artifact::static_problems(std::path::Path::new("/bin/sh")).unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("interpreter") || p.contains("DT_NEEDED")),
        "{problems:?}"
    );
}

/// A copy of a shipped binary no other test reads or runs, on disk (not
/// tmpfs), so evicting it from the page cache cannot race another test.
fn private_copy(ws: &Workspace, name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir_in(&ws.target_dir).unwrap();
    let copy = dir.path().join(name);
    std::fs::copy(built(ws, name), &copy).unwrap();
    (dir, copy)
}

#[test]
fn budget_below_the_real_idle_rss_fails_the_idle_gate() {
    let ws = workspace();
    let bin = built(&ws, "hakiri-coord");
    let home = tempfile::tempdir().unwrap();
    let budget = ws
        .profiles()
        .unwrap()
        .into_iter()
        .find(|p| p.package == "hakiri-coord")
        .and_then(|p| p.budget)
        .unwrap();
    let rss = probe::idle_rss(&bin, &budget.idle_shape, None, home.path()).unwrap();
    assert!(
        rss > 1024 * 1024,
        "a live daemon holds more than 1 MB: {rss}"
    );
    assert_eq!(
        idle_rss_failure("hakiri-coord", rss, 1.0),
        Some(format!("hakiri-coord idle RSS {rss} > 1 MB"))
    );
    assert_eq!(
        idle_rss_failure("hakiri-coord", rss, budget.idle_rss_mb),
        None
    );
}

#[test]
fn budget_below_the_real_cold_start_fails_and_zero_runs_are_refused() {
    let ws = workspace();
    let (_dir, bin) = private_copy(&ws, "hakiri-core");
    let home = tempfile::tempdir().unwrap();
    let t = probe::cold_starts(&bin, 1, home.path()).unwrap();
    let median = probe::median(t).as_secs_f64() * 1000.0;
    assert_eq!(
        cold_start_failure("hakiri-core", median, 0.5),
        Some(format!("hakiri-core cold start {median:.1} ms > 0.5 ms"))
    );
    assert_eq!(cold_start_failure("hakiri-core", median, 10_000.0), None);
    // The ratio to the hello-world baseline, measured in turns.
    let hello = built(&ws, hakiri_gates::check::HELLO_LAMBDA);
    let (ours, theirs) = probe::paired_cold_starts(&bin, &hello, 3, home.path()).unwrap();
    let (ours, theirs) = (
        probe::median(ours).as_secs_f64() * 1000.0,
        probe::median(theirs).as_secs_f64() * 1000.0,
    );
    let failure = cold_start_ratio_failure("hakiri-core", ours, theirs, 1.0).unwrap();
    assert!(failure.contains("cold_start_hello_ratio"), "{failure}");
    assert_eq!(
        cold_start_ratio_failure("hakiri-core", ours, theirs, 1000.0),
        None
    );
    let err = probe::cold_starts(&bin, 0, home.path()).unwrap_err();
    assert!(format!("{err:#}").contains("0 runs"), "{err:#}");
}

#[test]
fn eviction_is_verified_and_a_file_that_stays_cached_is_refused() {
    let ws = workspace();
    let (_dir, bin) = private_copy(&ws, "hakiri-coord");
    artifact::evict_from_page_cache(&bin).unwrap();
    let resident = artifact::resident_fraction(&bin).unwrap();
    assert!(
        resident <= artifact::MAX_RESIDENT_AFTER_EVICTION,
        "{resident}"
    );
    // tmpfs pages are the file itself: they can never be dropped, so the
    // measurement must refuse rather than time a warm start.
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        let f = tempfile::NamedTempFile::new_in(shm).unwrap();
        std::fs::write(f.path(), vec![7u8; 1 << 20]).unwrap();
        let err = artifact::evict_from_page_cache(f.path()).unwrap_err();
        assert!(
            format!("{err:#}").contains("still 100% in the page cache"),
            "{err:#}"
        );
    }
}

#[test]
fn budget_below_the_real_lambda_zip_fails_the_zip_gate() {
    let ws = workspace();
    let bin = built(&ws, "hakiri-core");
    let dir = tempfile::tempdir().unwrap();
    let zip = artifact::lambda_zip(&bin, &dir.path().join("bootstrap.zip")).unwrap();
    assert_eq!(
        lambda_zip_failure("hakiri-core", zip, Some(1.0)),
        Some(format!(
            "hakiri-core Lambda zip {zip} > 1 MB (profile.toml lambda_zip_mb)"
        ))
    );
    assert_eq!(lambda_zip_failure("hakiri-core", zip, Some(250.0)), None);
    // Without a profile budget, AWS's own limit still applies.
    assert_eq!(
        lambda_zip_failure("hakiri-core", 51 << 20, None),
        Some(format!(
            "hakiri-core Lambda zip {} > 50 MB (AWS direct-upload limit)",
            51u64 << 20
        ))
    );
}

#[test]
fn a_profile_without_budgets_is_an_error_not_a_skip() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("profiles/hakiri-edge");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"hakiri-edge\"\n",
    )
    .unwrap();
    let err = hakiri_build::read_profiles(root.path()).unwrap_err();
    assert!(err.contains("hakiri-edge has no profile.toml"), "{err}");
}

#[test]
fn shipped_lambda_binary_is_armed_and_an_unarmed_one_fails_the_prefetch_gate() {
    use hakiri_gates::check::prefetch_unarmed;
    use hakiri_gates::prefetch;
    let ws = workspace();
    let shipped = built(&ws, "hakiri-core");
    let table = prefetch::read_table(&shipped)
        .unwrap()
        .expect("core has a table");
    let size = std::fs::metadata(&shipped).unwrap().len();
    let (start, warm_up) = (
        prefetch::bytes(&table.start),
        prefetch::bytes(&table.warm_up),
    );
    // A recording that covered most of the file would prefetch nothing useful.
    assert!(
        start > 0 && start < size / 8,
        "{start} of {size} bytes at start"
    );
    assert!(
        warm_up > 0 && warm_up < size / 4,
        "{warm_up} of {size} on first query"
    );
    // The cargo-built binary is not armed: shipping it so would fail the gate.
    let unarmed = prefetch::read_table(&ws.built("hakiri-core")).unwrap();
    assert_eq!(unarmed, Some(prefetch::Table::default()));
    assert!(prefetch_unarmed("hakiri-core").starts_with("hakiri-core ships without an armed"));
    // A binary without the kernel has no table at all.
    let hello = built(&ws, "hello-lambda");
    assert_eq!(prefetch::read_table(&hello).unwrap(), None);
}

#[test]
fn recording_a_start_up_arms_a_copy_that_still_runs() {
    use hakiri_gates::prefetch::{self, Workload};
    let ws = workspace();
    let (_dir, bin) = private_copy(&ws, "hakiri-coord");
    let table = prefetch::arm(&bin, &[Workload::Capabilities])
        .unwrap()
        .expect("coord links the kernel, so it has a table");
    assert!(!table.start.is_empty() && table.warm_up.is_empty());
    assert_eq!(prefetch::read_table(&bin).unwrap(), Some(table));
    let home = tempfile::tempdir().unwrap();
    let report = probe::capabilities(&bin, home.path()).unwrap();
    assert_eq!(report.profile, "hakiri-coord");
}

#[test]
fn a_binary_that_cannot_leave_the_page_cache_is_still_armed() {
    use hakiri_gates::prefetch::{self, Workload};
    let shm = std::path::Path::new("/dev/shm");
    if !shm.is_dir() {
        eprintln!("SKIPPED: no /dev/shm (tmpfs) on this machine");
        return;
    }
    let ws = workspace();
    let dir = tempfile::tempdir_in(shm).unwrap();
    let bin = dir.path().join("hakiri-coord");
    std::fs::copy(built(&ws, "hakiri-coord"), &bin).unwrap();
    // A target directory on tmpfs: recorded coarser, but armed, not an error.
    let table = prefetch::arm(&bin, &[Workload::Capabilities])
        .unwrap()
        .expect("coord has a table");
    assert!(!table.start.is_empty());
}
