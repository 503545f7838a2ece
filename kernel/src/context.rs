//! The [`Context`] handed to every handler: configuration (typed sections
//! parsed once), the registry (tools, extension points, state), the running
//! profile, and who is calling.

use crate::caller::{Access, Authorizer, CallRequest, Caller};
use crate::capability::CheckOutcome;
use crate::config::Config;
use crate::extension::ExtensionPoint;
use crate::profile::Profile;
use crate::registry::Registry;
use crate::section::{Section, Sections};
use crate::service::{RunningService, Shutdown};
use crate::tool::ToolError;
use crate::KernelError;
use serde_json::Value;
use std::sync::Arc;

#[derive(Clone)]
pub struct Context {
    pub config: Arc<Config>,
    pub registry: Arc<Registry>,
    pub profile: &'static Profile,
    sections: Arc<Sections>,
    caller: Caller,
    /// The tool this context is running, set by [`Context::call`].
    tool: Option<Arc<str>>,
}

impl Context {
    /// Binds a registry to a configuration: every registered section is
    /// parsed here, once; the errors (all of them) name `file:line`. The
    /// caller is the local user until [`Context::with_caller`] says otherwise.
    pub fn new(
        registry: Arc<Registry>,
        config: Arc<Config>,
        profile: &'static Profile,
    ) -> Result<Context, KernelError> {
        let sections = config
            .parse_sections(&registry)
            .map_err(|errors| KernelError::Config(errors.join("\n")))?;
        let ctx = Context {
            config,
            registry,
            profile,
            sections: Arc::new(sections),
            caller: Caller::LOCAL,
            tool: None,
        };
        let broken: Vec<String> = ctx
            .registry
            .validators
            .iter()
            .filter_map(|v| {
                let (section, rule) = &v.item;
                rule(&ctx)
                    .err()
                    .map(|e| format!("{}: [{section}]: {e}", ctx.config.locate(section)))
            })
            .collect();
        if !broken.is_empty() {
            return Err(KernelError::Config(broken.join("\n")));
        }
        Ok(ctx)
    }

    /// A kernel over every capability linked into this program.
    pub fn from_inventory(
        config: Config,
        profile: &'static Profile,
    ) -> Result<Context, KernelError> {
        Context::new(
            Arc::new(Registry::from_inventory()?),
            Arc::new(config),
            profile,
        )
    }

    /// Who this context acts for.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The same kernel acting for `caller`: front ends (MCP, Lambda, the
    /// cluster API) derive one per request.
    pub fn with_caller(&self, caller: Caller) -> Context {
        Context {
            caller,
            ..self.clone()
        }
    }

    /// The same kernel running tool `tool`'s operation for this caller (a CLI
    /// command acting as that tool): resource checks ask about `tool`.
    pub(crate) fn running(&self, tool: &str) -> Context {
        Context {
            tool: Some(Arc::from(tool)),
            ..self.clone()
        }
    }

    /// The parsed section `[T::NAME]`.
    ///
    /// # Panics
    /// If no linked capability registered `T` with `r.config::<T>()`: a bug
    /// in the calling capability, not something input can cause.
    pub fn section<T: Section>(&self) -> Arc<T> {
        self.sections.get::<T>().unwrap_or_else(|| {
            panic!(
                "config section [{}] ({}) is read but was never registered; call r.config::<{}>() in the capability's register function",
                T::NAME,
                std::any::type_name::<T>(),
                std::any::type_name::<T>()
            )
        })
    }

    /// State a capability keeps in this kernel ([`crate::Registrar::state`]).
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.registry.state::<T>()
    }

    /// The implementation of `T` named `name`, if this binary has one.
    pub fn get<T: ExtensionPoint + ?Sized>(&self, name: &str) -> Option<Arc<T>> {
        self.registry.get(name)
    }

    /// Every implementation of `T`, in name order.
    pub fn all<T: ExtensionPoint + ?Sized>(&self) -> Vec<(&str, Arc<T>)> {
        self.registry.all()
    }

    /// Like [`Context::get`], but a missing name is an error that says which
    /// profile has it, or what this binary has instead.
    pub fn require<T: ExtensionPoint + ?Sized>(&self, name: &str) -> Result<Arc<T>, KernelError> {
        if let Some(found) = self.get::<T>(name) {
            return Ok(found);
        }
        if let Some(err) = self.profile.lacks(T::NAME, name) {
            return Err(err);
        }
        let known = self.registry.names::<T>();
        Err(KernelError::Unknown {
            what: T::NAME,
            name: name.to_string(),
            hint: if known.is_empty() {
                format!("; this binary has no {}", T::NAME)
            } else {
                format!("; this binary has: {}", known.join(", "))
            },
        })
    }

    /// Calls a tool by name for this context's caller, the same way for the
    /// CLI, MCP and Lambda: every provided [`Authorizer`] must allow it.
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
        self.authorize(tool, &input).await?;
        let running = self.running(tool);
        let call = std::panic::AssertUnwindSafe((entry.item.handler)(input, running));
        match futures::FutureExt::catch_unwind(call).await {
            Ok(outcome) => outcome,
            Err(panic) => Err(ToolError::Failed(crate::panics::crashed(
                &format!("`{tool}`"),
                &*panic,
            ))),
        }
    }

    /// The tools this caller may call, in name order: every one for a caller
    /// without a token, those its token grants otherwise (`tools/list`,
    /// `hakiri tools`).
    pub async fn callable_tools(&self) -> Vec<&str> {
        let mut names = Vec::new();
        for (name, tool) in &self.registry.tools {
            if self.caller.credential().is_none()
                || (self.authorize(name, &Value::Null).await.is_ok()
                    && (!tool.item.changes || self.ask(name, Access::Change).await.is_ok()))
            {
                names.push(name.as_str());
            }
        }
        names
    }

    /// Asks every authorizer whether this caller may call `tool` with
    /// `input`; the first refusal wins.
    pub async fn authorize(&self, tool: &str, input: &Value) -> Result<(), ToolError> {
        self.ask(tool, Access::Call { input }).await
    }

    /// Asks whether this caller's credential admits it at all (front ends
    /// call this before serving a request that presents one).
    pub async fn authorize_connect(&self) -> Result<(), ToolError> {
        self.ask("", Access::Connect).await
    }

    /// Asks whether the running tool may use the resource `kind`/`name`
    /// (reading it, or changing it when `write`): tools call this for each
    /// named thing a call touches, so a token scoped to some of them holds.
    pub async fn authorize_resource(
        &self,
        kind: &str,
        name: &str,
        write: bool,
    ) -> Result<(), ToolError> {
        let tool = self.tool.clone().unwrap_or_else(|| Arc::from(""));
        self.ask(&tool, Access::Resource { kind, name, write })
            .await
    }

    async fn ask(&self, tool: &str, access: Access<'_>) -> Result<(), ToolError> {
        let authorizers = self.registry.all::<dyn Authorizer>();
        // Fail closed: a token nobody here can verify must not be ignored.
        if authorizers.is_empty() && self.caller.credential().is_some() {
            return Err(ToolError::Denied {
                tool: tool.to_string(),
                caller: self.caller.to_string(),
                reason: format!(
                    "a token was presented, but {} has no authorizer to verify it; call without a token or use a binary with the auth capability",
                    self.profile.name
                ),
                authorizer: "kernel".into(),
            });
        }
        for (name, authorizer) in authorizers {
            let request = CallRequest {
                caller: &self.caller,
                tool,
                access,
                ctx: self,
            };
            if let Err(reason) = authorizer.authorize(&request).await {
                return Err(ToolError::Denied {
                    tool: tool.to_string(),
                    caller: self.caller.to_string(),
                    reason,
                    authorizer: name.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Starts the service `name` (what `serve` does for each): it binds what
    /// it needs and returns the future that runs it until `shutdown`.
    pub async fn start_service(
        &self,
        name: &str,
        shutdown: Shutdown,
    ) -> anyhow::Result<RunningService> {
        let Some(service) = self.registry.services.get(name) else {
            let known: Vec<&str> = self.registry.services.keys().map(String::as_str).collect();
            anyhow::bail!(
                "unknown service `{name}`; services here: {}",
                known.join(", ")
            );
        };
        (service.item)(self.clone(), shutdown).await
    }

    /// Runs one capability's self-check; capabilities without one report so.
    pub async fn check(&self, capability: &str) -> CheckOutcome {
        match self.registry.checks.get(capability) {
            Some(check) => check(self.clone()).await,
            None => CheckOutcome::Failed("capability registered no self-check".into()),
        }
    }
}
