//! `[datasets]` in hakiri.toml.

use hakiri_kernel::Section;
use serde::{Deserialize, Deserializer};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatasetsConfig {
    /// How long a replaced version stays readable (`5m`, `1h`): a query that
    /// started on it finishes on it, and `sql --at name=N` can still name it.
    #[serde(deserialize_with = "duration")]
    pub retain_for: Duration,
    /// At most this many replaced versions per dataset are kept, whatever their age.
    pub retain_max_versions: usize,
    /// The most a remote caller's compressed source may expand to, in bytes.
    pub max_decompressed_bytes: u64,
}

impl Default for DatasetsConfig {
    fn default() -> Self {
        DatasetsConfig {
            retain_for: Duration::from_secs(300),
            retain_max_versions: 100,
            max_decompressed_bytes: 8 << 30,
        }
    }
}

impl Section for DatasetsConfig {
    const NAME: &'static str = "datasets";
}

impl DatasetsConfig {
    pub fn retention(&self) -> crate::store::Retention {
        crate::store::Retention {
            keep_for: self.retain_for,
            max_versions: self.retain_max_versions,
        }
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    hakiri_kernel::clock::parse_duration(&text).map_err(serde::de::Error::custom)
}
