//! Configuration: file, environment overrides, and clear errors.

use hakiri_kernel::{Capability, Config, KernelError, Profile, Registrar, Registry};
use std::path::Path;

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct EngineConfig {
    threads: Option<u32>,
}

fn engine(r: &mut Registrar) -> Result<(), KernelError> {
    r.config::<EngineConfig>()
}

static ENGINE: Capability = Capability {
    name: "engine",
    crate_name: "hakiri-cap-engine",
    version: "0.0.0",
    summary: "test",
    libraries: &[],
    register: engine,
};

static CORE: Profile = Profile {
    elsewhere: &[hakiri_kernel::Elsewhere {
        kind: "config",
        name: "search",
        capability: "search",
        profiles: &["hakiri-full"],
    }],
    ..Profile::embedded("hakiri-core")
};

#[test]
fn malformed_toml_names_file_and_line() {
    let err = Config::parse(
        "[engine]\nthreads = 4\nbroken = \n",
        Some(Path::new("/etc/hakiri.toml")),
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("/etc/hakiri.toml:3: invalid TOML"), "{err}");
}

#[test]
fn check_reports_bad_values_foreign_and_unknown_sections() {
    let text = "data_dir = \"/tmp/h\"\n\n[engine]\nthreads = \"many\"\n\n[search]\nx = 1\n\n[nosuch]\ny = 2\n";
    let cfg = Config::parse(text, Some(Path::new("h.toml"))).unwrap();
    let reg = Registry::from_capabilities(vec![&ENGINE]).unwrap();
    let report = cfg.check(&reg, &CORE);
    assert_eq!(report.errors.len(), 2, "{:?}", report.errors);
    assert!(
        report.errors[0].starts_with("h.toml:4: [engine] threads: invalid type"),
        "{:?}",
        report.errors
    );
    assert!(
        report.errors[1].contains("unknown section [nosuch]")
            && report.errors[1].starts_with("h.toml:9"),
        "{:?}",
        report.errors
    );
    assert_eq!(report.notes.len(), 1);
    assert!(
        report.notes[0].contains("part of hakiri-full; this binary is hakiri-core"),
        "{:?}",
        report.notes
    );
    assert_eq!(cfg.data_dir, Path::new("/tmp/h"));
}

#[test]
fn environment_overrides_the_file() {
    let mut cfg = Config::parse("[engine]\nthreads = 2\n", None).unwrap();
    cfg.apply_env(vec![
        ("HAKIRI_ENGINE__THREADS".to_string(), "8".to_string()),
        (
            "HAKIRI_CATALOG_SQLITE__PATH".to_string(),
            "/x/y.db".to_string(),
        ),
        ("HAKIRI_DATA_DIR".to_string(), "/srv/hakiri".to_string()),
        ("HAKIRI_CONFIG".to_string(), "ignored".to_string()),
        ("OTHER".to_string(), "1".to_string()),
        ("HAKIRI_TEST_SERVER".to_string(), "not config".to_string()),
    ])
    .unwrap();
    assert_eq!(
        cfg.raw_section("engine").unwrap()["threads"].as_integer(),
        Some(8)
    );
    assert_eq!(
        cfg.raw_section("catalog-sqlite").unwrap()["path"].as_str(),
        Some("/x/y.db")
    );
    assert_eq!(cfg.data_dir, Path::new("/srv/hakiri"));
    assert!(
        cfg.raw_section("test_server").is_none(),
        "plain HAKIRI_* variables are not config"
    );
    let bad = cfg
        .apply_env(vec![("HAKIRI_ENGINE__".to_string(), "1".to_string())])
        .unwrap_err();
    assert!(bad.to_string().contains("HAKIRI_<SECTION>__<KEY>"), "{bad}");
}

#[test]
fn bad_env_value_is_attributed_to_the_variable() {
    let mut cfg = Config::parse("", None).unwrap();
    cfg.apply_env(vec![(
        "HAKIRI_ENGINE__THREADS".to_string(),
        "lots".to_string(),
    )])
    .unwrap();
    let reg = Registry::from_capabilities(vec![&ENGINE]).unwrap();
    let report = cfg.check(&reg, &CORE);
    assert_eq!(report.errors.len(), 1);
    assert!(
        report.errors[0].contains("HAKIRI_ENGINE__THREADS"),
        "{:?}",
        report.errors
    );
}
