//! A CycloneDX 1.5 SBOM of one profile: exactly the crates its binary links
//! ([`hakiri_build::link_graph`], the same list `hakiri version --deps`
//! prints), as Cargo resolved them for the release target.

use anyhow::Result;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

pub fn cyclonedx(metadata: &Value, package: &str) -> Result<Value> {
    let packages: BTreeMap<&str, &Value> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["id"].as_str()?, p)))
        .collect();
    let graph = hakiri_build::link_graph(metadata, package).map_err(anyhow::Error::msg)?;
    let (root, seen, normal) = (graph.root.as_str(), &graph.reached, &graph.normal);
    let purl = |id: &str| {
        let p = packages[id];
        format!(
            "pkg:cargo/{}@{}",
            p["name"].as_str().unwrap_or_default(),
            p["version"].as_str().unwrap_or_default()
        )
    };
    let component = |id: &str, kind: &str| {
        let p = packages[id];
        let mut c = json!({
            "type": kind,
            "bom-ref": purl(id),
            "name": p["name"],
            "version": p["version"],
            "purl": purl(id),
        });
        if let Some(l) = p["license"].as_str() {
            c["licenses"] = json!([{"expression": l}]);
        }
        c
    };
    let mut components: Vec<Value> = seen
        .iter()
        .filter(|id| id.as_str() != root)
        .map(|id| component(id, "library"))
        .collect();
    components.sort_by(|a, b| a["bom-ref"].as_str().cmp(&b["bom-ref"].as_str()));
    let dependencies: Vec<Value> = seen
        .iter()
        .map(|id| {
            let mut on: Vec<String> = normal
                .get(id.as_str())
                .into_iter()
                .flatten()
                .map(|d| purl(d))
                .collect();
            on.sort();
            on.dedup();
            json!({"ref": purl(id), "dependsOn": on})
        })
        .collect();
    // Same graph, same serial number: the SBOM is reproducible.
    let mut hasher = Sha256::new();
    for c in &components {
        hasher.update(c["bom-ref"].as_str().unwrap_or_default());
    }
    hasher.update(purl(root));
    let h = hasher.finalize();
    let serial = format!(
        "{:08x}-{:04x}-5{:03x}-{:04x}-{:012x}",
        u32::from_be_bytes([h[0], h[1], h[2], h[3]]),
        u16::from_be_bytes([h[4], h[5]]),
        u16::from_be_bytes([h[6], h[7]]) & 0x0fff,
        (u16::from_be_bytes([h[8], h[9]]) & 0x3fff) | 0x8000,
        u64::from_be_bytes([0, 0, h[10], h[11], h[12], h[13], h[14], h[15]])
    );
    Ok(json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": format!("urn:uuid:{serial}"),
        "version": 1,
        "metadata": {
            "component": component(root, "application"),
            "tools": {"components": [{"type": "application", "name": "cargo gates release"}]},
        },
        "components": components,
        "dependencies": dependencies,
    }))
}

/// The crate names an SBOM lists.
pub fn names(bom: &Value) -> BTreeSet<String> {
    bom["components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect()
}
