//! The stable JSON documents the binaries print (`capabilities --json`,
//! `version --json`). The gates deserialize the same types, so the shape is
//! declared once.

use crate::capability::CheckOutcome;
use crate::profile::Profile;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `capabilities --json` schema this kernel prints.
pub const SCHEMA_VERSION: u32 = 2;

/// What one capability contributed, by kind.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Contributions {
    pub commands: Vec<String>,
    pub tools: Vec<String>,
    pub services: Vec<String>,
    /// Extension point name → names provided (`{"codec": ["gzip"]}`).
    pub provides: BTreeMap<String, Vec<String>>,
    /// Config sections it reads.
    pub config: Vec<String>,
}

/// Build information of the running binary.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BuildInfo {
    pub target: String,
    pub git_revision: String,
    pub kernel_version: String,
}

impl BuildInfo {
    pub fn of(p: &Profile) -> BuildInfo {
        BuildInfo {
            target: p.target.to_string(),
            git_revision: p.git_revision.to_string(),
            kernel_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LibraryReport {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CapabilityReport {
    pub name: String,
    #[serde(rename = "crate")]
    pub crate_name: String,
    pub version: String,
    pub summary: String,
    pub libraries: Vec<LibraryReport>,
    pub contributes: Contributions,
    /// What it installed at run time (plugins under the home), if it installs any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckOutcome>,
}

/// The `capabilities --json` document.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CapabilitiesReport {
    pub schema_version: u32,
    pub profile: String,
    pub version: String,
    pub build: BuildInfo,
    pub capabilities: Vec<CapabilityReport>,
    /// Declared by the profile's manifest but not linked (a broken build).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

impl CapabilitiesReport {
    /// Capability names, in report order.
    pub fn names(&self) -> Vec<&str> {
        self.capabilities.iter().map(|c| c.name.as_str()).collect()
    }

    pub fn capability(&self, name: &str) -> Option<&CapabilityReport> {
        self.capabilities.iter().find(|c| c.name == name)
    }
}
