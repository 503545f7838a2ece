//! `cargo gates diff`: per-profile deltas between two reports, as a PR comment shows them.

use crate::check::Report;
use crate::mb;
use anyhow::{Context, Result};
use std::path::Path;

pub fn load(path: &Path) -> Result<Report> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a gates report (cargo gates check --report)",
            path.display()
        )
    })
}

fn delta_bytes(old: u64, new: u64) -> String {
    let d = new as i64 - old as i64;
    let pct = if old > 0 {
        d as f64 * 100.0 / old as f64
    } else {
        0.0
    };
    format!(
        "{} → {} ({}{}, {pct:+.1}%)",
        mb(old),
        mb(new),
        if d >= 0 { "+" } else { "-" },
        mb(d.unsigned_abs())
    )
}

/// Lines whose bytes changed by at least this much are shown by name.
const NOTABLE_BYTES: u64 = 64 * 1024;

/// Which capabilities a change made heavier or lighter, by name: the PR
/// that makes `vector` 4 MB heavier says so next to the budget delta.
fn capability_deltas(profile: &str, old: &[(String, u64)], new: &[(String, u64)]) -> String {
    let old: std::collections::BTreeMap<&str, u64> =
        old.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let newm: std::collections::BTreeMap<&str, u64> =
        new.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let mut lines: Vec<(&str, u64, u64)> = old
        .keys()
        .chain(newm.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|k| {
            (
                *k,
                old.get(k).copied().unwrap_or(0),
                newm.get(k).copied().unwrap_or(0),
            )
        })
        .filter(|(_, a, b)| a.abs_diff(*b) >= NOTABLE_BYTES)
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    lines.sort_by_key(|(_, a, b)| std::cmp::Reverse(a.abs_diff(*b)));
    let mut out = format!(
        "\n{profile}, stripped bytes by capability:\n\n| capability | stripped |\n|---|---|\n"
    );
    for (k, a, b) in lines {
        out.push_str(&format!("| {k} | {} |\n", delta_bytes(a, b)));
    }
    out
}

/// A Markdown table of what changed.
pub fn render(old: &Report, new: &Report) -> String {
    let mut out = String::from(
        "| profile | gzip -9 | stripped | idle RSS | cold start |\n|---|---|---|---|---|\n",
    );
    for (name, n) in &new.profiles {
        let Some(o) = old.profiles.get(name) else {
            out.push_str(&format!(
                "| {name} | new: {} | {} | | |\n",
                mb(n.compressed_bytes),
                mb(n.stripped_bytes)
            ));
            continue;
        };
        let rss = match (o.idle_rss_bytes, n.idle_rss_bytes) {
            (Some(a), Some(b)) => delta_bytes(a, b),
            _ => "-".into(),
        };
        let cold = match (o.cold_start_ms, n.cold_start_ms) {
            (Some(a), Some(b)) => format!("{a:.1} → {b:.1} ms ({:+.1} ms)", b - a),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "| {name} | {} | {} | {rss} | {cold} |\n",
            delta_bytes(o.compressed_bytes, n.compressed_bytes),
            delta_bytes(o.stripped_bytes, n.stripped_bytes)
        ));
    }
    for name in old
        .profiles
        .keys()
        .filter(|k| !new.profiles.contains_key(*k))
    {
        out.push_str(&format!("| {name} | removed | | | |\n"));
    }
    for (name, n) in &new.profiles {
        let (Some(o), Some(n)) = (
            old.profiles.get(name).and_then(|o| o.attribution.as_ref()),
            n.attribution.as_ref(),
        ) else {
            continue;
        };
        out.push_str(&capability_deltas(name, &o.capabilities, &n.capabilities));
    }
    if !new.failures.is_empty() {
        out.push_str(&format!("\n{} failing gate(s):\n", new.failures.len()));
        for f in &new.failures {
            out.push_str(&format!("- {f}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::ProfileResult;

    #[test]
    fn shows_growth_new_and_removed_profiles() {
        let mut old = Report::default();
        old.profiles.insert(
            "hakiri-core".into(),
            ProfileResult {
                compressed_bytes: 40 << 20,
                stripped_bytes: 100 << 20,
                ..ProfileResult::default()
            },
        );
        old.profiles
            .insert("hakiri-gone".into(), ProfileResult::default());
        let mut new = old.clone();
        new.profiles.remove("hakiri-gone");
        new.profiles
            .get_mut("hakiri-core")
            .unwrap()
            .compressed_bytes = 42 << 20;
        new.profiles
            .insert("hakiri-new".into(), ProfileResult::default());
        new.failures
            .push("hakiri-core compressed 44040192 > 1 MB".into());
        let table = render(&old, &new);
        assert!(
            table.contains("| hakiri-core | 40.0 MB → 42.0 MB (+2.0 MB, +5.0%)"),
            "{table}"
        );
        assert!(table.contains("| hakiri-new | new: 0.0 MB"), "{table}");
        assert!(table.contains("| hakiri-gone | removed"), "{table}");
        assert!(
            table.contains("- hakiri-core compressed 44040192 > 1 MB"),
            "{table}"
        );
    }

    #[test]
    fn names_the_capabilities_that_grew_or_shrank() {
        let with = |lines: &[(&str, u64)]| {
            let mut r = Report::default();
            r.profiles.insert(
                "hakiri-full".into(),
                ProfileResult {
                    attribution: Some(crate::size::Attribution {
                        capabilities: lines.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
                        ..Default::default()
                    }),
                    ..ProfileResult::default()
                },
            );
            r
        };
        let old = with(&[("vector", 1 << 20), ("kernel", 2 << 20), ("auth", 3 << 20)]);
        let new = with(&[
            ("vector", 5 << 20),
            ("kernel", (2 << 20) + 100),
            ("mcp", 1 << 20),
        ]);
        let table = render(&old, &new);
        assert!(
            table.contains("| vector | 1.0 MB → 5.0 MB (+4.0 MB, +400.0%) |"),
            "{table}"
        );
        assert!(
            table.contains("| auth | 3.0 MB → 0.0 MB (-3.0 MB, -100.0%) |"),
            "{table}"
        );
        assert!(table.contains("| mcp | 0.0 MB → 1.0 MB"), "{table}");
        // A 100-byte wobble is not news.
        assert!(!table.contains("| kernel |"), "{table}");
        // Largest change first.
        assert!(
            table.find("| vector").unwrap() < table.find("| auth").unwrap(),
            "{table}"
        );
    }
}
