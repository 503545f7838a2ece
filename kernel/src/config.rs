//! One configuration for every profile: `hakiri.toml`, overridden by
//! `HAKIRI_*` environment variables.
//!
//! Where the file is: `--config`, else `$HAKIRI_CONFIG`, else
//! `<home>/hakiri.toml` (optional), where home is `$HAKIRI_HOME` or `~/.hakiri`.
//! Sections are typed ([`crate::Section`]) and registered by the capabilities
//! that read them; each is parsed once when the [`crate::Context`] is built.
//! Environment overrides: `HAKIRI_<SECTION>__<KEY>` (section `-` written as `_`),
//! and `HAKIRI_<KEY>` for the kernel's top-level keys (`HAKIRI_DATA_DIR`);
//! values are read as TOML, else as text.

use crate::profile::Profile;
use crate::registry::Registry;
use crate::section::{SectionDecl, Sections};
use crate::KernelError;
use std::path::{Path, PathBuf};

/// Top-level keys the kernel owns.
const KERNEL_KEYS: &[&str] = &["data_dir"];
/// `HAKIRI_*` variables that select the config rather than override it.
const SELECTOR_VARS: &[&str] = &["HAKIRI_CONFIG", "HAKIRI_HOME"];

#[derive(Debug, Default, Clone)]
pub struct Config {
    /// The file read, if one was.
    pub path: Option<PathBuf>,
    /// Where Hakiri keeps its data (the home, unless `data_dir` is set).
    pub data_dir: PathBuf,
    table: toml::Table,
    text: String,
    /// Which keys came from the environment, as `section.key -> VAR`.
    from_env: Vec<(String, String)>,
}

/// What `hakiri config check` found.
#[derive(Debug, Default)]
pub struct ConfigReport {
    pub errors: Vec<String>,
    pub notes: Vec<String>,
}

impl Config {
    /// Loads the configuration the way the CLI does.
    pub fn load(explicit: Option<&Path>) -> Result<Config, KernelError> {
        let home = std::env::var_os("HAKIRI_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".hakiri")))
            .unwrap_or_else(|| PathBuf::from(".hakiri"));
        let chosen = explicit
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("HAKIRI_CONFIG").map(PathBuf::from));
        let (path, text) = match chosen {
            Some(p) => {
                let text = std::fs::read_to_string(&p).map_err(|e| {
                    KernelError::Config(format!(
                        "cannot read config file {}: {e}; pass an existing file with --config or HAKIRI_CONFIG",
                        p.display()
                    ))
                })?;
                (Some(p), text)
            }
            None => {
                let p = home.join("hakiri.toml");
                match std::fs::read_to_string(&p) {
                    Ok(text) => (Some(p), text),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, String::new()),
                    Err(e) => {
                        return Err(KernelError::Config(format!(
                            "cannot read config file {}: {e}",
                            p.display()
                        )))
                    }
                }
            }
        };
        let mut config = Config::parse(&text, path.as_deref())?;
        config.apply_env(std::env::vars())?;
        if !config.table.contains_key("data_dir") {
            config.data_dir = home;
        }
        Ok(config)
    }

    /// Parses config text; errors name the file, line and what was expected.
    pub fn parse(text: &str, path: Option<&Path>) -> Result<Config, KernelError> {
        let name = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "<config>".into());
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(0);
            KernelError::Config(format!("{name}:{line}: invalid TOML: {}", e.message()))
        })?;
        let mut config = Config {
            path: path.map(Path::to_path_buf),
            table,
            text: text.to_string(),
            ..Config::default()
        };
        config.refresh_data_dir()?;
        Ok(config)
    }

    fn refresh_data_dir(&mut self) -> Result<(), KernelError> {
        match self.table.get("data_dir") {
            None => {}
            Some(toml::Value::String(s)) => self.data_dir = expand_home(s),
            Some(other) => {
                return Err(KernelError::Config(format!(
                    "{}: `data_dir` must be a string path, found {}",
                    self.describe_key(None, "data_dir"),
                    other.type_str()
                )))
            }
        }
        Ok(())
    }

    /// Applies `HAKIRI_*` overrides from `vars`.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), KernelError> {
        let mut vars: Vec<_> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with("HAKIRI_"))
            .collect();
        vars.sort();
        for (var, raw) in vars {
            if SELECTOR_VARS.contains(&var.as_str()) {
                continue;
            }
            let rest = &var["HAKIRI_".len()..];
            let value = parse_env_value(&raw);
            match rest.split_once("__") {
                Some((section, key)) if !section.is_empty() && !key.is_empty() => {
                    let section = section.to_ascii_lowercase().replace('_', "-");
                    let key = key.to_ascii_lowercase();
                    let entry = self
                        .table
                        .entry(section.clone())
                        .or_insert_with(|| toml::Value::Table(Default::default()));
                    let Some(t) = entry.as_table_mut() else {
                        return Err(KernelError::Config(format!(
                            "{var} sets a key in [{section}], but `{section}` in the config file is not a table"
                        )));
                    };
                    t.insert(key.clone(), value);
                    self.from_env
                        .push((format!("{section}.{key}"), var.clone()));
                }
                Some(_) => {
                    return Err(KernelError::Config(format!(
                        "{var}: expected HAKIRI_<SECTION>__<KEY>, e.g. HAKIRI_ENGINE__THREADS=4"
                    )))
                }
                // Other HAKIRI_* variables (scripts' own) are not configuration.
                None if KERNEL_KEYS.contains(&rest.to_ascii_lowercase().as_str()) => {
                    let key = rest.to_ascii_lowercase();
                    self.table.insert(key.clone(), value);
                    self.from_env.push((key, var.clone()));
                }
                None => {}
            }
        }
        self.refresh_data_dir()
    }

    /// The raw (file + environment) value of a section, if present.
    pub fn raw_section(&self, name: &str) -> Option<&toml::Value> {
        self.table.get(name)
    }

    /// Parses every registered section once; errors name `file:line` (or the
    /// environment variable) and the section.
    pub(crate) fn parse_sections(&self, registry: &Registry) -> Result<Sections, Vec<String>> {
        let mut sections = Sections::default();
        let mut errors = Vec::new();
        for (name, decl) in &registry.config_sections {
            match (decl.item.parse)(self.table.get(name.as_str())) {
                Ok(v) => sections.insert(decl.item.type_id, v),
                Err(e) => errors.push(self.locate_section_error(name, &decl.item, e)),
            }
        }
        if errors.is_empty() {
            Ok(sections)
        } else {
            Err(errors)
        }
    }

    /// Checks every section against what this binary registered.
    pub fn check(&self, registry: &Registry, profile: &Profile) -> ConfigReport {
        let mut report = ConfigReport::default();
        for (key, value) in &self.table {
            // A section is a table, or an array of tables (`[[refresh]]`).
            let is_table = value.is_table()
                || value
                    .as_array()
                    .is_some_and(|a| !a.is_empty() && a.iter().all(toml::Value::is_table));
            if !is_table {
                if !KERNEL_KEYS.contains(&key.as_str()) {
                    report.errors.push(format!(
                        "{}: unknown top-level key `{key}`; top-level keys are: {}",
                        self.describe_key(None, key),
                        KERNEL_KEYS.join(", ")
                    ));
                }
                continue;
            }
            if registry.config_sections.contains_key(key) {
                // Checked below, with every other registered section.
            } else if let Some(elsewhere) = profile.find_elsewhere("config", key) {
                report.notes.push(format!(
                    "{}: [{key}] configures `{}`, which is part of {}; this binary is {} and does not use it",
                    self.describe_key(Some(key), ""),
                    elsewhere.capability,
                    elsewhere.profiles.join(" and "),
                    profile.name
                ));
            } else {
                let known: Vec<&str> = registry
                    .config_sections
                    .keys()
                    .map(String::as_str)
                    .collect();
                report.errors.push(format!(
                    "{}: unknown section [{key}]; sections this binary reads: {}",
                    self.describe_key(Some(key), ""),
                    known.join(", ")
                ));
            }
        }
        if let Err(errors) = self.parse_sections(registry) {
            report.errors.extend(errors);
        }
        report
    }

    /// Places a section's validation error at its file line when the file
    /// alone is at fault (found with the toml deserializer's own spans), else
    /// at the environment variable that set a key in it.
    fn locate_section_error(&self, section: &str, decl: &SectionDecl, message: String) -> String {
        if let Some(path) = &self.path {
            if let Some((msg, span)) = (decl.locate)(&self.text, section) {
                let line = line_of(&self.text, span.start);
                return format!("{}:{line}: [{section}]: {msg}", path.display());
            }
        }
        format!(
            "{}: [{section}]: {message}",
            self.describe_key(Some(section), "")
        )
    }

    /// `file:line` (or the environment variable) where section `[name]` is set.
    pub fn locate(&self, section: &str) -> String {
        self.describe_key(Some(section), "")
    }

    /// `file:line` (or the environment variable) where a key or section is set.
    fn describe_key(&self, section: Option<&str>, key: &str) -> String {
        let dotted = match section {
            Some(s) if key.is_empty() => s.to_string(),
            Some(s) => format!("{s}.{key}"),
            None => key.to_string(),
        };
        if let Some((_, var)) = self
            .from_env
            .iter()
            .find(|(k, _)| *k == dotted || k.starts_with(&format!("{dotted}.")))
        {
            if self.path.is_none() || !self.text_has(section, key) {
                return format!("environment variable {var}");
            }
        }
        let file = self
            .path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "<config>".into());
        match self.find_line(section, key) {
            Some(line) => format!("{file}:{line}"),
            None => file,
        }
    }

    fn text_has(&self, section: Option<&str>, key: &str) -> bool {
        self.find_line(section, key).is_some()
    }

    /// The line of a section header or key in the file, from the parser's spans.
    fn find_line(&self, section: Option<&str>, key: &str) -> Option<usize> {
        let doc = toml::de::DeTable::parse(&self.text).ok()?;
        let doc = doc.get_ref();
        let (k, _) = match section {
            None => doc.get_key_value(key)?,
            Some(s) => {
                let (sk, sv) = doc.get_key_value(s)?;
                if key.is_empty() {
                    (sk, sv)
                } else {
                    match sv.get_ref() {
                        toml::de::DeValue::Table(t) => t.get_key_value(key)?,
                        _ => return None,
                    }
                }
            }
        };
        Some(line_of(&self.text, k.span().start))
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn parse_env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn expand_home(s: &str) -> PathBuf {
    match (s.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(s),
    }
}
