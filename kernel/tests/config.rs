//! Configuration: file, environment overrides, and clear errors.

use hakiri_kernel::{
    Capability, Config, Context, KernelError, Profile, Registrar, Registry, Section,
};
use std::path::Path;

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct EngineConfig {
    threads: Option<u32>,
}

impl Section for EngineConfig {
    const NAME: &'static str = "engine";
}

fn engine(r: &mut Registrar) -> Result<(), KernelError> {
    r.config::<EngineConfig>()
}

static ENGINE: Capability = Capability::inline("engine", "hakiri-cap-engine", engine);

static CORE: Profile = Profile {
    elsewhere: &[hakiri_kernel::Elsewhere {
        kind: "config",
        name: "search",
        capability: "search",
        profiles: &["hakiri-full"],
    }],
    ..hakiri_kernel::embedded_profile!("hakiri-core")
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
    let has = |prefix: &str, part: &str| {
        report
            .errors
            .iter()
            .any(|e| e.starts_with(prefix) && e.contains(part))
    };
    assert!(
        has("h.toml:4: [engine]: ", "invalid type"),
        "{:?}",
        report.errors
    );
    assert!(
        has("h.toml:9", "unknown section [nosuch]"),
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

static CAP_ENGINE_TOO: Capability =
    Capability::inline("engine-too", "hakiri-cap-engine-too", engine);

/// A different type claiming `[engine]`.
#[derive(serde::Deserialize, Default)]
struct OtherEngine {}

impl Section for OtherEngine {
    const NAME: &'static str = "engine";
}

static CAP_OTHER_ENGINE: Capability =
    Capability::inline("other-engine", "hakiri-cap-other-engine", |r| {
        r.config::<OtherEngine>()
    });

fn bind(text: &str, caps: Vec<&'static Capability>) -> Result<Context, KernelError> {
    let cfg = Config::parse(text, Some(Path::new("h.toml")))?;
    Context::new(
        std::sync::Arc::new(Registry::from_capabilities(caps)?),
        std::sync::Arc::new(cfg),
        &CORE,
    )
}

#[test]
fn sections_are_parsed_once_and_handed_out_typed() {
    let ctx = bind("[engine]\nthreads = 3\n", vec![&ENGINE]).unwrap();
    assert_eq!(ctx.section::<EngineConfig>().threads, Some(3));
    let absent = bind("", vec![&ENGINE]).unwrap();
    assert_eq!(absent.section::<EngineConfig>().threads, None);
}

#[test]
fn section_errors_point_at_dotted_keys_and_inline_tables() {
    for (text, line) in [
        ("# c\n\nengine.threads = \"x\"\n", 3),
        ("data_dir = \"/d\"\nengine = { threads = \"x\" }\n", 2),
        ("[engine]\n\n\nthreads = -1\n", 4),
        ("[engine]\nthreads = 1\nthreadz = 2\n", 3),
    ] {
        let err = bind(text, vec![&ENGINE])
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.starts_with(&format!("h.toml:{line}: [engine]: ")),
            "{text:?}: {err}"
        );
    }
}

#[test]
fn one_section_type_may_be_shared_but_not_one_name_by_two_types() {
    let reg = Registry::from_capabilities(vec![&ENGINE, &CAP_ENGINE_TOO]).unwrap();
    assert_eq!(reg.contributions["engine"].config, ["engine"]);
    assert_eq!(reg.contributions["engine-too"].config, ["engine"]);
    let err = Registry::from_capabilities(vec![&ENGINE, &CAP_OTHER_ENGINE])
        .err()
        .expect("two types for [engine]")
        .to_string();
    assert!(
        err.contains("config section `engine`")
            && err.contains("hakiri-cap-engine")
            && err.contains("hakiri-cap-other-engine"),
        "{err}"
    );
}

/// `[[job]]`: a section that is an array of tables.
#[derive(serde::Deserialize, Default)]
#[serde(transparent)]
#[allow(dead_code)]
struct Jobs(Vec<Job>);

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Job {
    name: String,
    every: u32,
}

impl Section for Jobs {
    const NAME: &'static str = "job";
}

static JOBS: Capability = Capability::inline("jobs", "hakiri-cap-jobs", |r| r.config::<Jobs>());

#[test]
fn a_section_may_be_an_array_of_tables() {
    let text = "[[job]]\nname = \"a\"\nevery = 1\n\n[[job]]\nname = \"b\"\nevery = \"x\"\n";
    let cfg = Config::parse(text, Some(Path::new("h.toml"))).unwrap();
    let reg = Registry::from_capabilities(vec![&JOBS]).unwrap();
    let report = cfg.check(&reg, &CORE);
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert!(
        report.errors[0].starts_with("h.toml:7: [job]: "),
        "{:?}",
        report.errors
    );
    let good = Config::parse("[[job]]\nname = \"a\"\nevery = 1\n", None).unwrap();
    assert!(good.check(&reg, &CORE).errors.is_empty());
}

static PICKY: Capability = Capability::inline("picky", "hakiri-cap-picky", |r| {
    r.config::<Jobs>()?;
    r.validate::<Jobs>(|ctx| {
        let jobs = ctx.section::<Jobs>();
        match jobs.0.iter().find(|j| j.name == "bad") {
            Some(_) => Err("job `bad` needs something this binary lacks".into()),
            None => Ok(()),
        }
    });
    Ok(())
});

#[test]
fn rules_needing_the_kernel_refuse_to_bind_and_name_the_section_line() {
    let text = "[engine]\nthreads = 1\n\n[[job]]\nname = \"bad\"\nevery = 1\n";
    let cfg = Config::parse(text, Some(Path::new("h.toml"))).unwrap();
    let reg = Registry::from_capabilities(vec![&ENGINE, &PICKY]).unwrap();
    let err = Context::new(std::sync::Arc::new(reg), std::sync::Arc::new(cfg), &CORE)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("h.toml:4: [job]: job `bad` needs something this binary lacks"),
        "{err}"
    );
}
