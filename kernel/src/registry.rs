//! The registry: everything the linked capabilities contributed, checked for
//! duplicates. One registry per kernel instance: two kernels in one process
//! share nothing, state included.

use crate::capability::{self, Capability, CheckOutcome};
use crate::context::Context;
use crate::extension::{ExtensionPoint, Provisions, Refused};
use crate::report::Contributions;
use crate::section::{Section, SectionDecl};
use crate::service::{RunningService, Shutdown};
use crate::tool::Tool;
use crate::{BoxFuture, KernelError};
use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
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
/// A configuration rule that needs the bound kernel (e.g. "a connector in
/// this binary reads that source"), reported by `config check` at the
/// section it names.
pub type ValidateFn = Arc<dyn Fn(&Context) -> Result<(), String> + Send + Sync>;
/// What a capability installed at run time (plugins under the home), for
/// `capabilities --json`.
pub type InstalledFn = Arc<dyn Fn(&Context) -> serde_json::Value + Send + Sync>;
pub type LaunchRun =
    Arc<dyn Fn(Context) -> BoxFuture<'static, anyhow::Result<ExitCode>> + Send + Sync>;

/// What a command does under the token its user gave (`--token`,
/// `--token-file`, `$HAKIRI_TOKEN`). Every command declares it when it is
/// registered, so none can run a token holder's request with the local
/// user's rights by forgetting to check; the kernel decides before the
/// command runs.
#[derive(Clone, Copy)]
pub enum Acts {
    /// It performs tool `name`'s operation: the token must grant that tool,
    /// and the operation's own checks (the datasets it touches) are asked
    /// for it, exactly as when an agent calls the tool.
    As(&'static str),
    /// Every call it makes carries the token and is checked where it lands:
    /// an MCP session's tool calls, requests to a coordinator's API.
    Delegates,
    /// An operator's command on this machine (keys, servers, cluster nodes,
    /// maintenance): it never runs under a token.
    Operator,
    /// Decided by the subcommand given.
    By(fn(&clap::ArgMatches) -> Acts),
}

/// A capability's CLI command: its arguments, how it acts under a token,
/// and what runs it.
pub struct CommandEntry {
    pub command: clap::Command,
    pub acts: Acts,
    pub handler: CommandHandler,
}

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

#[derive(Default)]
pub struct Registry {
    pub capabilities: Vec<&'static Capability>,
    pub contributions: BTreeMap<&'static str, Contributions>,
    pub commands: BTreeMap<String, Owned<CommandEntry>>,
    pub tools: BTreeMap<String, Owned<Tool>>,
    pub services: BTreeMap<String, Owned<ServiceStart>>,
    pub(crate) provisions: Provisions,
    pub checks: BTreeMap<&'static str, CheckFn>,
    /// Capability name → what it has installed at run time.
    pub installed: BTreeMap<&'static str, InstalledFn>,
    /// Section name → rules over it that need the bound kernel.
    pub validators: Vec<Owned<(&'static str, ValidateFn)>>,
    /// Section name → how to parse it; the owner is the first registrant.
    pub config_sections: BTreeMap<String, Owned<SectionDecl>>,
    pub launchers: Vec<Owned<Launcher>>,
    state: HashMap<TypeId, Owned<Arc<dyn Any + Send + Sync>>>,
}

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

    /// The implementation of extension point `T` provided under `name`.
    pub fn get<T: ExtensionPoint + ?Sized>(&self, name: &str) -> Option<Arc<T>> {
        self.provisions.get(name)
    }

    /// Every implementation of `T`, in name order.
    pub fn all<T: ExtensionPoint + ?Sized>(&self) -> Vec<(&str, Arc<T>)> {
        self.provisions.all()
    }

    /// The names provided for `T`, in order.
    pub fn names<T: ExtensionPoint + ?Sized>(&self) -> Vec<&str> {
        self.provisions.names::<T>()
    }

    /// The capability that provided `name` for `T`.
    pub fn provider<T: ExtensionPoint + ?Sized>(&self, name: &str) -> Option<&'static Capability> {
        self.provisions.owner::<T>(name)
    }

    /// State a capability keeps in this registry ([`Registrar::state`]).
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        let item = self.state.get(&TypeId::of::<T>())?.item.clone();
        item.downcast().ok()
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

    /// A CLI subcommand, and how it [`Acts`] under a token. The handler gets
    /// the subcommand's matches.
    pub fn command<F, Fut>(
        &mut self,
        command: clap::Command,
        acts: Acts,
        handler: F,
    ) -> Result<(), KernelError>
    where
        F: Fn(clap::ArgMatches, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<ExitCode>> + Send + 'static,
    {
        let name = command.get_name().to_string();
        if crate::cli::is_kernel_command(&name) {
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
            CommandEntry {
                command,
                acts,
                handler,
            },
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

    /// Provides `item` as the implementation of extension point `T` named
    /// `name`: `r.provide::<dyn Codec>("gzip", Arc::new(Gzip))`.
    pub fn provide<T: ExtensionPoint + ?Sized>(
        &mut self,
        name: &str,
        item: Arc<T>,
    ) -> Result<(), KernelError> {
        validate_name(self.owner, T::NAME, name)?;
        match self.reg.provisions.insert(name, self.owner, item) {
            Ok(()) => {}
            Err(Refused::Duplicate { first }) => {
                return Err(duplicate(T::NAME, name, first, self.owner))
            }
            Err(Refused::PointName { existing }) => {
                return Err(KernelError::ExtensionPointClash {
                    point: T::NAME,
                    existing,
                    new: std::any::type_name::<T>(),
                    crate_name: self.owner.crate_name.to_string(),
                })
            }
        }
        self.contributions()
            .provides
            .entry(T::NAME.to_string())
            .or_default()
            .push(name.to_string());
        Ok(())
    }

    /// Registers the config section `[T::NAME]` this capability reads; it is
    /// parsed once at start-up and read with `ctx.section::<T>()`. Several
    /// capabilities may register the same type.
    pub fn config<T: Section>(&mut self) -> Result<(), KernelError> {
        let decl = SectionDecl::of::<T>();
        validate_name(self.owner, "config section", T::NAME)?;
        match self.reg.config_sections.get(T::NAME) {
            Some(first) if first.item.type_id != decl.type_id => {
                return Err(duplicate(
                    "config section",
                    T::NAME,
                    first.owner,
                    self.owner,
                ))
            }
            Some(_) => {}
            None => {
                self.reg.config_sections.insert(
                    T::NAME.to_string(),
                    Owned {
                        owner: self.owner,
                        item: decl,
                    },
                );
            }
        }
        self.contributions().config.push(T::NAME.to_string());
        Ok(())
    }

    /// Keeps `value` in this registry, readable as `ctx.state::<T>()`: state
    /// lives with one kernel instance, never in a process-wide static.
    pub fn state<T: Send + Sync + 'static>(&mut self, value: T) -> Result<(), KernelError> {
        let id = TypeId::of::<T>();
        if let Some(first) = self.reg.state.get(&id) {
            return Err(duplicate(
                "state",
                std::any::type_name::<T>(),
                first.owner,
                self.owner,
            ));
        }
        self.reg.state.insert(
            id,
            Owned {
                owner: self.owner,
                item: Arc::new(value),
            },
        );
        Ok(())
    }

    /// The self-check run by `hakiri capabilities --check`: real work with the
    /// wrapped library, or `Skipped` when it needs something not configured.
    /// The future may yield a [`CheckOutcome`] or an
    /// `anyhow::Result<CheckOutcome>` (an error is the failure).
    pub fn check<F, Fut>(&mut self, check: F)
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: Into<CheckOutcome>,
    {
        let check = Arc::new(check);
        self.reg.checks.insert(
            self.owner.name,
            Arc::new(move |ctx| {
                let fut = check(ctx);
                Box::pin(async move { fut.await.into() })
            }),
        );
    }

    /// What this capability installed at run time (WASM connectors under
    /// the home, say), reported under its name by `capabilities --json`
    /// as `installed`. The kernel never looks inside.
    pub fn installed<F>(&mut self, list: F)
    where
        F: Fn(&Context) -> serde_json::Value + Send + Sync + 'static,
    {
        self.reg.installed.insert(self.owner.name, Arc::new(list));
    }

    /// A rule over section `T` that needs the bound kernel (the linked
    /// connectors, say): `hakiri config check` reports its error at the
    /// section's line, and commands refuse to start on it as on any other
    /// configuration error.
    pub fn validate<T: Section>(
        &mut self,
        rule: impl Fn(&Context) -> Result<(), String> + Send + Sync + 'static,
    ) {
        self.reg.validators.push(Owned {
            owner: self.owner,
            item: (T::NAME, Arc::new(rule)),
        });
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
