//! Hakiri's kernel.
//!
//! The kernel never names a capability. Capability crates describe themselves
//! with [`capability!`], which submits a [`Capability`] to an `inventory`
//! registry; at start-up the kernel collects every linked capability, lets each
//! contribute through a [`Registrar`], and dispatches the CLI, tool calls and
//! services over what was contributed.
//!
//! An embedding program depends on `hakiri-kernel` plus the capability crates it
//! wants, references them (`use hakiri_cap_x as _;`) so they are linked, and
//! calls [`Registry::from_inventory`].
//!
//! One registration mechanism: `inventory`. A `linkme` distributed slice would
//! do the same job for the one purpose we have (collecting [`Capability`]
//! descriptors), so it would be a second mechanism without a second purpose;
//! everything finer-grained (tools, commands, services, implementations of
//! extension points, config sections, state) is contributed at start-up
//! through the [`Registrar`], where duplicates can be reported with both
//! crates' names.

pub mod caller;
pub mod capability;
pub mod cli;
pub mod clock;
pub mod config;
pub mod context;
pub mod error;
pub mod extension;
pub mod hosts;
pub mod panics;
pub mod profile;
pub mod registry;
pub mod report;
pub mod section;
pub mod service;
pub mod tool;

pub use caller::{Access, Authorizer, CallRequest, Caller, Credential, FrontDoor};
pub use capability::{Capability, CheckOutcome, Library};
pub use config::Config;
pub use context::Context;
pub use error::KernelError;
pub use extension::ExtensionPoint;
pub use panics::blocking;
pub use profile::{Elsewhere, Profile};
pub use registry::{Acts, Registrar, Registry};
pub use section::Section;
pub use service::{RunningService, Shutdown};
pub use tool::{Tool, ToolError};

#[doc(hidden)]
pub use futures;
#[doc(hidden)]
pub use inventory;

/// A boxed, sendable future: the return type of every async contribution.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
