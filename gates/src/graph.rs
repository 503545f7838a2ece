//! The dependency graph as Cargo resolves it (`cargo metadata`).

use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};

pub struct Graph<'a> {
    /// package id -> (name, version)
    packages: BTreeMap<&'a str, (&'a str, &'a str)>,
    /// package id -> linked (non-dev) dependency ids
    edges: BTreeMap<String, Vec<String>>,
}

impl<'a> Graph<'a> {
    pub fn new(metadata: &'a Value) -> Graph<'a> {
        let mut packages = BTreeMap::new();
        for p in metadata["packages"].as_array().into_iter().flatten() {
            if let (Some(id), Some(name), Some(v)) =
                (p["id"].as_str(), p["name"].as_str(), p["version"].as_str())
            {
                packages.insert(id, (name, v));
            }
        }
        // Linked dependencies: normal and build (a build script links too).
        let edges = hakiri_build::dependency_edges(metadata, |kind| kind != Some("dev"));
        Graph { packages, edges }
    }

    fn id_of(&self, name: &str) -> Option<&'a str> {
        self.packages
            .iter()
            .find(|(_, (n, _))| *n == name)
            .map(|(id, _)| *id)
    }

    /// Forbidden crates reachable from `root`, each with the path that reaches it.
    pub fn forbidden(
        &self,
        root: &str,
        forbidden: &[String],
    ) -> Result<Vec<(String, String)>, String> {
        let start = self
            .id_of(root)
            .ok_or_else(|| format!("package {root} is not in the workspace"))?;
        let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        let mut seen = std::collections::BTreeSet::from([start]);
        let mut found = Vec::new();
        while let Some(id) = queue.pop_front() {
            let (name, _) = self.packages[id];
            if forbidden.iter().any(|f| f == name) {
                let mut path = vec![name];
                let mut at = id;
                while let Some(p) = parent.get(at) {
                    path.push(self.packages[p].0);
                    at = p;
                }
                path.reverse();
                found.push((name.to_string(), path.join(" -> ")));
            }
            for dep in self.edges.get(id).into_iter().flatten() {
                let dep = dep.as_str();
                if seen.insert(dep) {
                    parent.insert(dep, id);
                    queue.push_back(dep);
                }
            }
        }
        Ok(found)
    }

    /// The version of `dep` that package `from` links.
    pub fn dependency_version(&self, from: &str, dep: &str) -> Option<&'a str> {
        let id = self.id_of(from)?;
        self.edges
            .get(id)?
            .iter()
            .map(|d| self.packages[d.as_str()])
            .find(|(n, _)| *n == dep)
            .map(|(_, v)| v)
    }
}
