//! What a capability says about itself, and the macro that registers it.

use crate::registry::Registrar;
use crate::KernelError;
use serde::{Deserialize, Serialize};

/// A library a capability wraps, with the version actually linked
/// (resolved from Cargo.lock by `hakiri-build` when the capability compiles).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Library {
    pub name: &'static str,
    pub version: &'static str,
}

/// One capability, described once in its own crate and submitted to
/// `inventory` by [`capability!`](crate::capability!).
pub struct Capability {
    /// Short name: `[package.metadata.hakiri] name`, else the crate name
    /// without its `hakiri-cap-` prefix.
    pub name: &'static str,
    /// The crate that registered it (named in duplicate errors).
    pub crate_name: &'static str,
    pub version: &'static str,
    pub summary: &'static str,
    pub libraries: &'static [Library],
    /// Contributes commands, tools, services and extension points.
    pub register: fn(&mut Registrar) -> Result<(), KernelError>,
}

impl Capability {
    /// A capability described inline rather than by [`capability!`]
    /// (tests, or a program registering its own tools): no libraries,
    /// version `0.0.0`. Pass it to [`crate::Registry::from_capabilities`].
    pub const fn inline(
        name: &'static str,
        crate_name: &'static str,
        register: fn(&mut Registrar) -> Result<(), KernelError>,
    ) -> Capability {
        Capability {
            name,
            crate_name,
            version: "0.0.0",
            summary: "",
            libraries: &[],
            register,
        }
    }
}

inventory::collect!(Capability);

/// Every capability linked into this program, in name order.
pub fn linked() -> Vec<&'static Capability> {
    let mut all: Vec<_> = inventory::iter::<Capability>.into_iter().collect();
    all.sort_by_key(|c| c.name);
    all
}

/// The result of a capability's self-check.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "status", content = "detail", rename_all = "lowercase")]
pub enum CheckOutcome {
    /// Real work was done with the library; the text says what.
    Ok(String),
    /// The check needs something not configured here (a server, credentials).
    Skipped(String),
    Failed(String),
}

/// A check's error is its failure, with the whole chain.
impl From<anyhow::Error> for CheckOutcome {
    fn from(e: anyhow::Error) -> Self {
        CheckOutcome::Failed(format!("{e:#}"))
    }
}

/// Lets a check be written with `?`: `async { …?; Ok(CheckOutcome::Ok(..)) }`.
impl From<anyhow::Result<CheckOutcome>> for CheckOutcome {
    fn from(r: anyhow::Result<CheckOutcome>) -> Self {
        r.unwrap_or_else(Into::into)
    }
}

/// Registers the calling crate as a capability.
///
/// The crate's build script must call `hakiri_build::capability()`, which
/// resolves the wrapped libraries' versions from Cargo.lock. Name, version and
/// summary come from the crate's own Cargo.toml.
///
/// ```ignore
/// hakiri_kernel::capability!(register);
/// fn register(r: &mut hakiri_kernel::Registrar) -> Result<(), hakiri_kernel::KernelError> { Ok(()) }
/// ```
#[macro_export]
macro_rules! capability {
    ($register:path) => {
        include!(concat!(env!("OUT_DIR"), "/hakiri_capability.rs"));
        $crate::inventory::submit! {
            $crate::Capability {
                name: HAKIRI_CAPABILITY_NAME,
                crate_name: env!("CARGO_PKG_NAME"),
                version: env!("CARGO_PKG_VERSION"),
                summary: env!("CARGO_PKG_DESCRIPTION"),
                libraries: HAKIRI_LIBRARIES,
                register: $register,
            }
        }
    };
}
