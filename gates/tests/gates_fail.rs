//! The gates must be able to fail: each test feeds one gate a real broken
//! input and asserts the exact one-line message.
//!
//! The artifact tests need the musl binaries (`cargo gates check` or
//! `.ci/run` builds them first).

use hakiri_gates::check::{check_capabilities, size_failure};
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
