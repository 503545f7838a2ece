//! One configuration for every profile: `hakiri.toml`, overridden by
//! `HAKIRI_*` environment variables.
//!
//! Where the file is: `--config`, else `$HAKIRI_CONFIG`, else
//! `<home>/hakiri.toml` (optional), where home is `$HAKIRI_HOME` or `~/.hakiri`.
//! Each capability owns the section named after it (`[engine]`, `[mcp]`, …).
//! Environment overrides: `HAKIRI_<SECTION>__<KEY>` (section `-` written as `_`),
//! and `HAKIRI_<KEY>` for the kernel's top-level keys (`HAKIRI_DATA_DIR`);
//! values are read as TOML, else as text.

use crate::profile::Profile;
use crate::registry::Registry;
use crate::KernelError;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Top-level keys the kernel owns.
const KERNEL_KEYS: &[&str] = &["data_dir", "catalog"];
/// The catalog when `catalog` is not set: SQLite under `data_dir`.
pub const DEFAULT_CATALOG: &str = "sqlite://";
/// `HAKIRI_*` variables that select the config rather than override it.
const SELECTOR_VARS: &[&str] = &["HAKIRI_CONFIG", "HAKIRI_HOME"];

#[derive(Debug, Default, Clone)]
pub struct Config {
    /// The file read, if one was.
    pub path: Option<PathBuf>,
    /// Where Hakiri keeps its data and catalog.
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

    /// The catalog URL (`catalog = "postgres://…"`); its scheme picks the backend.
    pub fn catalog_url(&self) -> &str {
        self.table
            .get("catalog")
            .and_then(|v| v.as_str())
            .unwrap_or(DEFAULT_CATALOG)
    }

    /// The raw value of a capability's section, if configured.
    pub fn raw_section(&self, name: &str) -> Option<&toml::Value> {
        self.table.get(name)
    }

    /// A capability's section as `T`; an absent section is `T::default()`.
    pub fn section<T: DeserializeOwned + Default>(&self, name: &str) -> Result<T, KernelError> {
        match self.table.get(name) {
            None => Ok(T::default()),
            Some(v) => v.clone().try_into().map_err(|e: toml::de::Error| {
                KernelError::Config(format!(
                    "{}: {}",
                    self.describe_key(Some(name), ""),
                    e.message()
                ))
            }),
        }
    }

    /// Checks every section against what this binary registered.
    pub fn check(&self, registry: &Registry, profile: &Profile) -> ConfigReport {
        let mut report = ConfigReport::default();
        for (key, value) in &self.table {
            let is_table = value.is_table();
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
            if let Some(validator) = registry.config_sections.get(key) {
                if let Err(e) = (validator.item.value)(value) {
                    report
                        .errors
                        .push(self.locate_section_error(key, &validator.item, e));
                }
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
        report
    }

    /// Places a section's validation error at its file line (and key) when the
    /// file alone is at fault, else at the section.
    fn locate_section_error(
        &self,
        section: &str,
        v: &crate::registry::ConfigValidator,
        message: String,
    ) -> String {
        if let (Some(header), Some(path)) = (self.find_line(Some(section), ""), &self.path) {
            let body: Vec<&str> = self
                .text
                .lines()
                .skip(header)
                .take_while(|l| !l.trim_start().starts_with('['))
                .collect();
            let body = body.join("\n");
            if let Err((msg, Some(span))) = (v.text)(&body) {
                let line = line_of(&body, span.start);
                let key = body
                    .lines()
                    .nth(line - 1)
                    .and_then(|l| l.split('=').next())
                    .unwrap_or("")
                    .trim();
                return format!(
                    "{}:{}: [{section}] {key}: {msg}",
                    path.display(),
                    header + line
                );
            }
        }
        format!(
            "{}: [{section}]: {message}",
            self.describe_key(Some(section), "")
        )
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

    fn find_line(&self, section: Option<&str>, key: &str) -> Option<usize> {
        let mut current: Option<String> = None;
        for (i, line) in self.text.lines().enumerate() {
            let t = line.trim();
            if let Some(h) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
                current = Some(h.trim().trim_matches('"').to_string());
                if key.is_empty() && section == current.as_deref() {
                    return Some(i + 1);
                }
                continue;
            }
            let k = t.split('=').next().unwrap_or("").trim();
            if !key.is_empty() && k == key && current.as_deref() == section {
                return Some(i + 1);
            }
        }
        None
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
