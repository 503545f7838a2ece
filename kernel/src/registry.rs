//! The registry: everything the linked capabilities contributed, checked for
//! duplicates, plus the [`Context`] handed to every handler.

use crate::capability::{self, Capability, CheckOutcome};
use crate::config::Config;
use crate::extension::{CatalogBackend, Connector};
use crate::profile::Profile;
use crate::service::{RunningService, Shutdown};
use crate::tool::{Tool, ToolError};
use crate::{BoxFuture, KernelError};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;

pub type CommandHandler = Arc<
    dyn Fn(clap::ArgMatches, Context) -> BoxFuture<'static, anyhow::Result<ExitCode>> + Send + Sync,
>;
pub type ServiceStart = Arc<
    dyn Fn(Context, Shutdown) -> BoxFuture<'static, anyhow::Result<RunningService>> + Send + Sync,
>;
pub type CheckFn = Arc<dyn Fn(Context) -> BoxFuture<'static, CheckOutcome> + Send + Sync>;
/// Validates a config section; the error carries the byte span (within the
/// section's text) of what was wrong when the section came from a file.
#[derive(Clone, Copy)]
pub struct ConfigValidator {
    pub value: fn(&toml::Value) -> Result<(), String>,
    pub text: fn(&str) -> Result<(), SpannedError>,
}

/// An error message and the byte span it refers to, if known.
pub type SpannedError = (String, Option<std::ops::Range<usize>>);
pub type LaunchRun =
    Arc<dyn Fn(Context) -> BoxFuture<'static, anyhow::Result<ExitCode>> + Send + Sync>;

/// Something registered by one capability.
pub struct Owned<T> {
    pub owner: &'static Capability,
    pub item: T,
}

/// An implicit entry point, used when the binary runs with no subcommand and
/// `applies()` holds (the Lambda bootstrap, for example).
pub struct Launcher {
    pub applies: fn() -> bool,
    pub run: LaunchRun,
}

/// What each capability contributed, by kind; reported by `capabilities --json`.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Contributions {
    pub commands: Vec<String>,
    pub tools: Vec<String>,
    pub services: Vec<String>,
    pub catalog_schemes: Vec<String>,
    pub connector_kinds: Vec<String>,
    pub config_section: Option<String>,
}

#[derive(Default)]
pub struct Registry {
    pub capabilities: Vec<&'static Capability>,
    pub contributions: BTreeMap<&'static str, Contributions>,
    pub commands: BTreeMap<String, Owned<(clap::Command, CommandHandler)>>,
    pub tools: BTreeMap<String, Owned<Tool>>,
    pub services: BTreeMap<String, Owned<ServiceStart>>,
    pub catalogs: BTreeMap<String, Owned<Arc<dyn CatalogBackend>>>,
    pub connectors: BTreeMap<String, Owned<Arc<dyn Connector>>>,
    pub checks: BTreeMap<&'static str, CheckFn>,
    pub config_sections: BTreeMap<String, Owned<ConfigValidator>>,
    pub launchers: Vec<Owned<Launcher>>,
}

/// Commands the kernel itself owns; a capability may not take these names.
pub const KERNEL_COMMANDS: &[&str] = &[
    "capabilities",
    "version",
    "tools",
    "call",
    "config",
    "serve",
    "help",
];

impl Registry {
    /// Collects every capability linked into this program.
    pub fn from_inventory() -> Result<Registry, KernelError> {
        Self::from_capabilities(capability::linked())
    }

    pub fn from_capabilities(caps: Vec<&'static Capability>) -> Result<Registry, KernelError> {
        let mut reg = Registry::default();
        let mut names: BTreeMap<&str, &Capability> = BTreeMap::new();
        for cap in caps {
            validate_name(cap, "capability name", cap.name)?;
            if let Some(first) = names.insert(cap.name, cap) {
                return Err(duplicate("capability", cap.name, first, cap));
            }
            reg.contributions.insert(cap.name, Contributions::default());
            (cap.register)(&mut Registrar {
                owner: cap,
                reg: &mut reg,
            })?;
            reg.capabilities.push(cap);
        }
        Ok(reg)
    }

    pub fn capability(&self, name: &str) -> Option<&'static Capability> {
        self.capabilities.iter().copied().find(|c| c.name == name)
    }
}

fn duplicate(
    what: &'static str,
    name: &str,
    first: &Capability,
    second: &Capability,
) -> KernelError {
    KernelError::Duplicate {
        what,
        name: name.to_string(),
        first: first.crate_name.to_string(),
        second: second.crate_name.to_string(),
    }
}

fn validate_name(cap: &Capability, what: &'static str, name: &str) -> Result<(), KernelError> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(KernelError::InvalidName {
            crate_name: cap.crate_name.to_string(),
            what,
            name: name.to_string(),
            why: "use lowercase ASCII letters, digits, '-', '_' or '.', starting with a letter",
        })
    }
}

fn insert_unique<T>(
    map: &mut BTreeMap<String, Owned<T>>,
    what: &'static str,
    name: &str,
    owner: &'static Capability,
    item: T,
) -> Result<(), KernelError> {
    validate_name(owner, what, name)?;
    if let Some(first) = map.get(name) {
        return Err(duplicate(what, name, first.owner, owner));
    }
    map.insert(name.to_string(), Owned { owner, item });
    Ok(())
}

/// Handed to each capability's `register` function: the only way a capability
/// adds anything to the program.
pub struct Registrar<'a> {
    owner: &'static Capability,
    reg: &'a mut Registry,
}

impl Registrar<'_> {
    fn contributions(&mut self) -> &mut Contributions {
        self.reg.contributions.entry(self.owner.name).or_default()
    }

    /// A CLI subcommand. The handler gets the subcommand's matches.
    pub fn command<F, Fut>(&mut self, command: clap::Command, handler: F) -> Result<(), KernelError>
    where
        F: Fn(clap::ArgMatches, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<ExitCode>> + Send + 'static,
    {
        let name = command.get_name().to_string();
        if KERNEL_COMMANDS.contains(&name.as_str()) {
            return Err(KernelError::InvalidName {
                crate_name: self.owner.crate_name.to_string(),
                what: "command",
                name,
                why: "the kernel owns this command",
            });
        }
        let handler: CommandHandler = Arc::new(move |m, ctx| Box::pin(handler(m, ctx)));
        insert_unique(
            &mut self.reg.commands,
            "command",
            &name,
            self.owner,
            (command, handler),
        )?;
        self.contributions().commands.push(name);
        Ok(())
    }

    /// A tool, callable from the CLI, MCP and Lambda.
    pub fn tool(&mut self, tool: Tool) -> Result<(), KernelError> {
        let name = tool.name.clone();
        insert_unique(&mut self.reg.tools, "tool", &name, self.owner, tool)?;
        self.contributions().tools.push(name);
        Ok(())
    }

    /// A long-running service for `hakiri serve`: `start` binds what it needs
    /// and returns the future that runs it until shutdown.
    pub fn service<F, Fut>(&mut self, name: &str, start: F) -> Result<(), KernelError>
    where
        F: Fn(Context, Shutdown) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<RunningService>> + Send + 'static,
    {
        let start: ServiceStart = Arc::new(move |ctx, sd| Box::pin(start(ctx, sd)));
        insert_unique(&mut self.reg.services, "service", name, self.owner, start)?;
        self.contributions().services.push(name.to_string());
        Ok(())
    }

    /// A catalog backend for URLs with this scheme.
    pub fn catalog(
        &mut self,
        scheme: &str,
        backend: impl CatalogBackend + 'static,
    ) -> Result<(), KernelError> {
        insert_unique(
            &mut self.reg.catalogs,
            "catalog scheme",
            scheme,
            self.owner,
            Arc::new(backend),
        )?;
        self.contributions()
            .catalog_schemes
            .push(scheme.to_string());
        Ok(())
    }

    /// A connector for a source kind.
    pub fn connector(
        &mut self,
        kind: &str,
        connector: impl Connector + 'static,
    ) -> Result<(), KernelError> {
        insert_unique(
            &mut self.reg.connectors,
            "connector kind",
            kind,
            self.owner,
            Arc::new(connector),
        )?;
        self.contributions().connector_kinds.push(kind.to_string());
        Ok(())
    }

    /// The capability's config section, `[<capability name>]`, validated by
    /// deserializing into `T` (use `#[serde(deny_unknown_fields)]`).
    pub fn config<T: serde::de::DeserializeOwned>(&mut self) -> Result<(), KernelError> {
        fn value<T: serde::de::DeserializeOwned>(v: &toml::Value) -> Result<(), String> {
            v.clone()
                .try_into::<T>()
                .map(|_| ())
                .map_err(|e| e.message().to_string())
        }
        fn text<T: serde::de::DeserializeOwned>(t: &str) -> Result<(), SpannedError> {
            toml::from_str::<T>(t)
                .map(|_| ())
                .map_err(|e| (e.message().to_string(), e.span()))
        }
        let validator = ConfigValidator {
            value: value::<T>,
            text: text::<T>,
        };
        let name = self.owner.name.to_string();
        insert_unique(
            &mut self.reg.config_sections,
            "config section",
            &name,
            self.owner,
            validator,
        )?;
        self.contributions().config_section = Some(name);
        Ok(())
    }

    /// The self-check run by `hakiri capabilities --check`: real work with the
    /// wrapped library, or `Skipped` when it needs something not configured.
    pub fn check<F, Fut>(&mut self, check: F)
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = CheckOutcome> + Send + 'static,
    {
        self.reg
            .checks
            .insert(self.owner.name, Arc::new(move |ctx| Box::pin(check(ctx))));
    }

    /// An implicit entry point for a bare invocation in an environment where
    /// `applies()` holds.
    pub fn launcher<F, Fut>(&mut self, applies: fn() -> bool, run: F)
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<ExitCode>> + Send + 'static,
    {
        let run: LaunchRun = Arc::new(move |ctx| Box::pin(run(ctx)));
        self.reg.launchers.push(Owned {
            owner: self.owner,
            item: Launcher { applies, run },
        });
    }
}

/// Shared by every handler: configuration, the registry (to call other tools)
/// and the running profile.
#[derive(Clone)]
pub struct Context {
    pub config: Arc<Config>,
    pub registry: Arc<Registry>,
    pub profile: &'static Profile,
}

impl Context {
    pub fn new(registry: Arc<Registry>, config: Arc<Config>, profile: &'static Profile) -> Context {
        Context {
            config,
            registry,
            profile,
        }
    }

    /// Calls a tool by name, the same way for the CLI, MCP and Lambda.
    pub async fn call(&self, tool: &str, input: Value) -> Result<Value, ToolError> {
        let Some(entry) = self.registry.tools.get(tool) else {
            if let Some(err) = self.profile.lacks("tool", tool) {
                return Err(err.into());
            }
            let known: Vec<&str> = self.registry.tools.keys().map(String::as_str).collect();
            return Err(KernelError::Unknown {
                what: "tool",
                name: tool.to_string(),
                hint: format!("; tools in this binary: {}", known.join(", ")),
            }
            .into());
        };
        (entry.item.handler)(input, self.clone()).await
    }

    /// Opens the configured catalog through the backend registered for its URL scheme.
    pub async fn catalog(&self) -> anyhow::Result<Box<dyn crate::Catalog>> {
        let url = self.config.catalog_url();
        let scheme = url.split(':').next().unwrap_or_default();
        let Some(backend) = self.registry.catalogs.get(scheme) else {
            if let Some(err) = self.profile.lacks("catalog", scheme) {
                anyhow::bail!("catalog `{url}`: {err}");
            }
            let known: Vec<&str> = self.registry.catalogs.keys().map(String::as_str).collect();
            anyhow::bail!(
                "catalog `{url}`: no backend for scheme `{scheme}`; this binary has: {}",
                known.join(", ")
            );
        };
        backend.item.open(url, self).await
    }

    /// Opens `source` with the first registered connector that accepts it;
    /// returns the connector's kind and the reader.
    pub async fn open_source(&self, source: &str) -> anyhow::Result<(String, crate::SourceReader)> {
        let Some((kind, connector)) = self
            .registry
            .connectors
            .iter()
            .find(|(_, c)| c.item.accepts(source))
        else {
            let kinds: Vec<&str> = self
                .registry
                .connectors
                .keys()
                .map(String::as_str)
                .collect();
            anyhow::bail!(
                "no connector reads `{source}`; connectors in this binary: {}",
                kinds.join(", ")
            );
        };
        Ok((kind.clone(), connector.item.open(source, self).await?))
    }

    /// Runs one capability's self-check; capabilities without one report so.
    pub async fn check(&self, capability: &str) -> CheckOutcome {
        match self.registry.checks.get(capability) {
            Some(check) => check(self.clone()).await,
            None => CheckOutcome::Failed("capability registered no self-check".into()),
        }
    }
}
