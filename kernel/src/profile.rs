//! What a profile binary tells the kernel about itself. Generated at build
//! time by `hakiri_build::profile()` from the profiles' manifests.

use serde::Serialize;

/// Something this binary lacks that another profile has.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Elsewhere {
    /// `command`, `tool`, `config` or `catalog` (a URL scheme).
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
}

impl Profile {
    /// A profile for programs that embed the kernel without a profile crate.
    pub const fn embedded(name: &'static str) -> Profile {
        Profile {
            name,
            version: env!("CARGO_PKG_VERSION"),
            target: "",
            git_revision: "",
            declared: &[],
            elsewhere: &[],
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
