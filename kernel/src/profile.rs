//! What a profile binary tells the kernel about itself. Generated at build
//! time by `hakiri_build::profile()` from the profiles' manifests.

use serde::Serialize;

/// Something this binary lacks that another profile has.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Elsewhere {
    /// `command`, `tool`, `config` or an extension point's name.
    pub kind: &'static str,
    pub name: &'static str,
    pub capability: &'static str,
    pub profiles: &'static [&'static str],
}

#[derive(Debug, Clone, Copy)]
pub struct Profile {
    pub name: &'static str,
    pub version: &'static str,
    pub target: &'static str,
    pub git_revision: &'static str,
    /// Capabilities the profile's manifest lists.
    pub declared: &'static [&'static str],
    pub elsewhere: &'static [Elsewhere],
    /// `(name, version)` of every crate the binary links, from the build's
    /// `cargo metadata` (empty when it could not be recorded).
    pub deps: &'static [(&'static str, &'static str)],
}

impl Profile {
    /// A profile for programs that embed the kernel without a profile crate;
    /// prefer [`embedded_profile!`](crate::embedded_profile!), which fills in
    /// the embedding program's own version.
    pub const fn embedded(name: &'static str, version: &'static str) -> Profile {
        Profile {
            name,
            version,
            target: "",
            git_revision: "",
            declared: &[],
            elsewhere: &[],
            deps: &[],
        }
    }

    /// `name version (target, revision)`, leaving out what is unknown.
    pub fn describe(&self) -> String {
        let build: Vec<&str> = [self.target, self.git_revision]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        if build.is_empty() {
            format!("{} {}", self.name, self.version)
        } else {
            format!("{} {} ({})", self.name, self.version, build.join(", "))
        }
    }

    pub fn find_elsewhere(&self, kind: &str, name: &str) -> Option<&Elsewhere> {
        self.elsewhere
            .iter()
            .find(|e| e.kind == kind && e.name == name)
    }

    /// The error for a command, tool or config section this binary lacks.
    pub fn lacks(&self, kind: &str, name: &str) -> Option<crate::KernelError> {
        self.find_elsewhere(kind, name)
            .map(|e| crate::KernelError::ElsewhereProfile {
                name: name.to_string(),
                profiles: e.profiles.join(" and "),
                this: self.name.to_string(),
            })
    }
}

/// The [`Profile`] of a program that embeds the kernel: its name, and the
/// version of the crate that invokes the macro (not the kernel's).
///
/// ```
/// static PROFILE: hakiri_kernel::Profile = hakiri_kernel::embedded_profile!("acme");
/// assert_eq!(PROFILE.describe(), format!("acme {}", env!("CARGO_PKG_VERSION")));
/// ```
#[macro_export]
macro_rules! embedded_profile {
    ($name:expr) => {
        $crate::Profile::embedded($name, env!("CARGO_PKG_VERSION"))
    };
}
