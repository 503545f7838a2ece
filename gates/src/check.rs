//! `cargo gates check`: every gate, every profile, one table and one JSON report.

use crate::graph::Graph;
use crate::size::Attribution;
use crate::workspace::Workspace;
use crate::{artifact, mb, prefetch, probe, size};
use anyhow::Result;
use hakiri_build::CapabilityMeta;
use hakiri_build::{ProfileManifest, MB};
use hakiri_kernel::report::{CapabilitiesReport, Contributions};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// AWS Lambda's limits for a zip uploaded directly.
pub const LAMBDA_ZIP_LIMIT: u64 = 50 * 1024 * 1024;
pub const LAMBDA_UNZIPPED_LIMIT: u64 = 250 * 1024 * 1024;
/// The reference bootstrap cold start is compared against.
pub const HELLO_LAMBDA: &str = "hello-lambda";

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub profiles: BTreeMap<String, ProfileResult>,
    pub failures: Vec<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ProfileResult {
    pub capabilities: Vec<String>,
    pub stripped_bytes: u64,
    pub compressed_bytes: u64,
    pub compressed_budget_bytes: u64,
    pub idle_rss_bytes: Option<u64>,
    pub idle_rss_budget_bytes: u64,
    pub cold_start_ms: Option<f64>,
    pub cold_start_budget_ms: Option<f64>,
    pub hello_cold_start_ms: Option<f64>,
    /// exec -> exit of `sql "select 42"`, binary evicted / cached (medians).
    #[serde(default)]
    pub first_query_ms: Option<f64>,
    #[serde(default)]
    pub first_query_warm_ms: Option<f64>,
    /// Bytes the armed start-up prefetch asks for (`hakiri-prefetch`).
    #[serde(default)]
    pub prefetch_bytes: Option<u64>,
    /// Bytes it asks for on the first query (`hakiri_prefetch::warm_up`).
    #[serde(default)]
    pub prefetch_warm_up_bytes: Option<u64>,
    /// The cold start with the prefetch off (`HAKIRI_PREFETCH=off`), median.
    #[serde(default)]
    pub cold_start_unprefetched_ms: Option<f64>,
    pub lambda_zip_bytes: Option<u64>,
    /// The profile's own Lambda zip budget (ADR-0012), below AWS's 50 MB.
    #[serde(default)]
    pub lambda_zip_budget_bytes: Option<u64>,
    pub static_binary: bool,
    /// The stripped bytes by crate and by capability (`cargo gates size`).
    #[serde(default)]
    pub attribution: Option<Attribution>,
    pub failures: Vec<String>,
}

pub fn run(ws: &Workspace, report_path: &Path, skip_build: bool, runs: usize) -> Result<bool> {
    anyhow::ensure!(
        runs > 0,
        "--runs 0 would measure no cold start; give at least 1 (the median counts)"
    );
    if !skip_build {
        ws.build_all()?;
    }
    let graph = Graph::new(&ws.metadata);
    let mut report = Report {
        schema_version: 1,
        ..Report::default()
    };
    for profile in ws.profiles()? {
        let result = check_profile(ws, &graph, &profile, runs);
        report.failures.extend(result.failures.iter().cloned());
        report.profiles.insert(profile.package.clone(), result);
    }
    // Every profile directory was checked: none skipped for lack of a
    // profile.toml (read_profiles refuses those) or a failed probe.
    let on_disk = hakiri_build::profile_dirs(&ws.root).map_err(anyhow::Error::msg)?;
    let checked: BTreeSet<String> = report.profiles.keys().cloned().collect();
    let expected: BTreeSet<String> = on_disk
        .iter()
        .filter_map(|d| d.file_name().and_then(|n| n.to_str()).map(str::to_string))
        .collect();
    if checked != expected {
        report.failures.push(format!(
            "checked profiles {checked:?} but profiles/ holds {expected:?}"
        ));
    }
    print!("{}", render_table(&report));
    std::fs::write(report_path, serde_json::to_string_pretty(&report)?)?;
    println!("report: {}", report_path.display());
    for f in &report.failures {
        println!("{f}");
    }
    Ok(report.failures.is_empty())
}

fn check_profile(ws: &Workspace, graph: &Graph, p: &ProfileManifest, runs: usize) -> ProfileResult {
    let name = p.package.as_str();
    let budget = p
        .budget
        .clone()
        .expect("read_profiles only returns profiles with profile.toml");
    let mut r = ProfileResult {
        compressed_budget_bytes: (budget.compressed_mb * MB) as u64,
        idle_rss_budget_bytes: (budget.idle_rss_mb * MB) as u64,
        cold_start_budget_ms: budget.cold_start_ms,
        ..ProfileResult::default()
    };
    let bin = match ws.ship(name) {
        Ok(bin) => bin,
        Err(e) => {
            r.failures.push(format!("{name} binary: {e:#}"));
            return r;
        }
    };
    let home = match probe::scratch_home(name) {
        Ok(h) => h,
        Err(e) => {
            r.failures
                .push(format!("{name} cannot create a scratch home: {e}"));
            return r;
        }
    };

    // 1. capabilities, as the binary reports them.
    match probe::capabilities(&bin, &home) {
        Ok(json) => {
            r.capabilities = json.names().into_iter().map(str::to_string).collect();
            for f in check_capabilities(
                name,
                &p.capabilities,
                &budget.forbidden_capabilities,
                &json,
                &ws.root,
                graph,
            ) {
                r.failures.push(f);
            }
        }
        Err(e) => r.failures.push(format!("{name} capabilities: {e:#}")),
    }
    // 2. dependency graph.
    match graph.forbidden(name, &budget.forbidden_crates) {
        Ok(found) => {
            for (krate, path) in found {
                r.failures.push(format!(
                    "{name} depends on forbidden crate {krate} ({path})"
                ));
            }
        }
        Err(e) => r.failures.push(format!("{name} dependency graph: {e}")),
    }
    // 3. size.
    match (std::fs::metadata(&bin), artifact::gzip_size(&bin)) {
        (Ok(m), Ok(gz)) => {
            r.stripped_bytes = m.len();
            r.compressed_bytes = gz;
            if let Some(f) = size_failure(name, gz, budget.compressed_mb) {
                r.failures.push(f);
            }
        }
        (Err(e), _) => r
            .failures
            .push(format!("{name} binary {}: {e}", bin.display())),
        (_, Err(e)) => r.failures.push(format!("{name} gzip: {e:#}")),
    }
    match size::attribute(ws, name) {
        Ok(a) => r.attribution = Some(a),
        Err(e) => r.failures.push(format!("{name} size attribution: {e:#}")),
    }
    // 4. static.
    match artifact::static_problems(&bin) {
        Ok(problems) if problems.is_empty() => r.static_binary = true,
        Ok(problems) => r
            .failures
            .push(format!("{name} is not static: {}", problems.join(", "))),
        Err(e) => r.failures.push(format!("{name} static check: {e:#}")),
    }
    // 5. idle RSS.
    match probe::idle_rss(
        &bin,
        &budget.idle_shape,
        budget.idle_config.as_deref(),
        &home,
    ) {
        Ok(rss) => {
            r.idle_rss_bytes = Some(rss);
            r.failures
                .extend(idle_rss_failure(name, rss, budget.idle_rss_mb));
        }
        Err(e) => r.failures.push(format!("{name} idle RSS: {e:#}")),
    }
    // 6. cold start, for profiles that run as a Lambda bootstrap.
    if let Some(limit) = budget.cold_start_ms {
        let zip = ws.target_dir.join(format!("{name}-lambda.zip"));
        match artifact::lambda_zip(&bin, &zip) {
            Ok(size) => {
                r.lambda_zip_bytes = Some(size);
                r.lambda_zip_budget_bytes = budget.lambda_zip_mb.map(|b| (b * MB) as u64);
                r.failures
                    .extend(lambda_zip_failure(name, size, budget.lambda_zip_mb));
                if r.stripped_bytes > LAMBDA_UNZIPPED_LIMIT {
                    let unzipped = r.stripped_bytes;
                    r.failures
                        .push(format!("{name} unzipped {unzipped} > 250 MB (AWS limit)"));
                }
            }
            Err(e) => r.failures.push(format!("{name} Lambda zip: {e:#}")),
        }
        // The hello-world baseline runs in turns with this profile.
        let paired = ws
            .ship(HELLO_LAMBDA)
            .and_then(|hello| probe::paired_cold_starts(&bin, &hello, runs, &home));
        match paired {
            Ok((ours, hello)) => {
                let (median, hello) = (ms(probe::median(ours)), ms(probe::median(hello)));
                r.hello_cold_start_ms = Some(hello);
                r.cold_start_ms = Some(median);
                r.failures.extend(cold_start_failure(name, median, limit));
                if let Some(max) = budget.cold_start_hello_ratio {
                    r.failures
                        .extend(cold_start_ratio_failure(name, median, hello, max));
                }
            }
            Err(e) => r.failures.push(format!("{name} cold start: {e:#}")),
        }
        // A Lambda profile ships with its start-up prefetch armed; without
        // it a cold start faults the binary in one readaround at a time.
        match prefetch::read_table(&bin) {
            Ok(Some(table)) if !table.start.is_empty() => {
                r.prefetch_bytes = Some(prefetch::bytes(&table.start));
                r.prefetch_warm_up_bytes = Some(prefetch::bytes(&table.warm_up));
            }
            Ok(_) => r.failures.push(prefetch_unarmed(name)),
            Err(e) => r.failures.push(format!("{name} prefetch table: {e:#}")),
        }
        match probe::cold_starts_with(&bin, runs, &home, &[("HAKIRI_PREFETCH", "off")]) {
            Ok(t) => r.cold_start_unprefetched_ms = Some(ms(probe::median(t))),
            Err(e) => r
                .failures
                .push(format!("{name} cold start without prefetch: {e:#}")),
        }
        // Reported, not gated: what the Lambda user waits for.
        let first = |evict| -> Result<f64> {
            let mut t = Vec::new();
            for _ in 0..runs {
                t.push(probe::first_query(&bin, &home, evict, &[])?);
            }
            Ok(ms(probe::median(t)))
        };
        match (first(true), first(false)) {
            (Ok(cold), Ok(warm)) => {
                (r.first_query_ms, r.first_query_warm_ms) = (Some(cold), Some(warm));
            }
            (Err(e), _) | (_, Err(e)) => r.failures.push(format!("{name} first query: {e:#}")),
        }
    }
    let _ = std::fs::remove_dir_all(&home);
    r
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The ADR's one-line failure for a size over budget.
pub fn size_failure(profile: &str, compressed: u64, budget_mb: f64) -> Option<String> {
    (compressed as f64 > budget_mb * MB)
        .then(|| format!("{profile} compressed {compressed} > {budget_mb} MB"))
}

pub fn idle_rss_failure(profile: &str, rss: u64, budget_mb: f64) -> Option<String> {
    (rss as f64 > budget_mb * MB).then(|| format!("{profile} idle RSS {rss} > {budget_mb} MB"))
}

pub fn cold_start_failure(profile: &str, median_ms: f64, limit_ms: f64) -> Option<String> {
    (median_ms > limit_ms)
        .then(|| format!("{profile} cold start {median_ms:.1} ms > {limit_ms} ms"))
}

/// A cold start more than `max` times the hello-world Lambda's of the same run.
pub fn cold_start_ratio_failure(
    profile: &str,
    median_ms: f64,
    hello_ms: f64,
    max: f64,
) -> Option<String> {
    (median_ms > max * hello_ms).then(|| {
        format!(
            "{profile} cold start {median_ms:.1} ms is {:.1}x the hello-world Lambda's {hello_ms:.1} ms, over {max}x (profile.toml cold_start_hello_ratio)",
            median_ms / hello_ms.max(f64::MIN_POSITIVE)
        )
    })
}

/// A Lambda profile whose shipped binary has no armed prefetch table.
pub fn prefetch_unarmed(profile: &str) -> String {
    format!(
        "{profile} ships without an armed start-up prefetch table (is hakiri-prefetch linked \
         through the kernel, and did `cargo gates` ship the binary?)"
    )
}

/// A Lambda zip over the profile's own budget or over AWS's direct-upload limit.
pub fn lambda_zip_failure(profile: &str, zip: u64, budget_mb: Option<f64>) -> Option<String> {
    if let Some(b) = budget_mb.filter(|b| zip as f64 > b * MB) {
        return Some(format!(
            "{profile} Lambda zip {zip} > {b} MB (profile.toml lambda_zip_mb)"
        ));
    }
    (zip > LAMBDA_ZIP_LIMIT)
        .then(|| format!("{profile} Lambda zip {zip} > 50 MB (AWS direct-upload limit)"))
}

/// Compares a binary's own `capabilities --json` with its manifest: the same
/// capabilities, none forbidden, each contributing what its manifest declares
/// and reporting the library versions Cargo resolved.
pub fn check_capabilities(
    profile: &str,
    declared: &[String],
    forbidden: &[String],
    report: &CapabilitiesReport,
    root: &Path,
    graph: &Graph,
) -> Vec<String> {
    let mut failures = Vec::new();
    if report.profile != profile {
        failures.push(format!(
            "{profile} reports itself as profile {}",
            report.profile
        ));
    }
    let reported = report.names();
    for d in declared.iter().filter(|d| !reported.contains(&d.as_str())) {
        failures.push(format!("{profile} capability {d} is declared in Cargo.toml but not linked (its registration is missing)"));
    }
    for x in reported
        .iter()
        .filter(|x| !declared.iter().any(|d| d == *x))
    {
        failures.push(format!(
            "{profile} reports capability {x} that its Cargo.toml does not declare"
        ));
    }
    for x in reported
        .iter()
        .filter(|x| forbidden.iter().any(|f| f == *x))
    {
        failures.push(format!("{profile} contains forbidden capability {x}"));
    }
    for cap in &report.capabilities {
        let name = cap.name.as_str();
        let meta = match hakiri_build::read_capability(root, name) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{profile} capability {name}: {e}"));
                continue;
            }
        };
        failures.extend(
            contribution_mismatches(&cap.contributes, &meta)
                .into_iter()
                .map(|m| format!("{profile} capability {name} {m}")),
        );
        let crate_name = format!("{}{name}", hakiri_build::CAPABILITY_PREFIX);
        if cap.libraries.len() != meta.libraries.len() {
            failures.push(format!(
                "{profile} capability {name} reports {} libraries, its manifest names {}",
                cap.libraries.len(),
                meta.libraries.len()
            ));
        }
        for lib in &cap.libraries {
            let (lname, version) = (lib.name.as_str(), lib.version.as_str());
            match graph.dependency_version(&crate_name, lname) {
                Some(v) if v == version => {}
                Some(v) => failures.push(format!("{profile} capability {name} reports {lname} {version} but links {lname} {v}")),
                None => failures.push(format!("{profile} capability {name} reports library {lname}, which {crate_name} does not depend on")),
            }
        }
    }
    failures
}

/// Where what a capability registered differs from what its manifest says
/// (the manifest feeds the "part of another profile" hints, so it must be exact).
fn contribution_mismatches(got: &Contributions, meta: &CapabilityMeta) -> Vec<String> {
    fn set(v: &[String]) -> BTreeSet<&str> {
        v.iter().map(String::as_str).collect()
    }
    let mut out = Vec::new();
    let lists: [(&str, &Vec<String>, &Vec<String>); 4] = [
        ("commands", &got.commands, &meta.commands),
        ("tools", &got.tools, &meta.tools),
        ("services", &got.services, &meta.services),
        ("config", &got.config, &meta.config),
    ];
    for (kind, got, want) in lists {
        if set(got) != set(want) {
            out.push(format!(
                "contributes {kind} {:?} but its manifest declares {:?}",
                set(got),
                set(want)
            ));
        }
    }
    let empty = Vec::new();
    let points: BTreeSet<&String> = got.provides.keys().chain(meta.provides.keys()).collect();
    for point in points {
        let g = got.provides.get(point).unwrap_or(&empty);
        let w = meta.provides.get(point).unwrap_or(&empty);
        if set(g) != set(w) {
            out.push(format!(
                "provides {point} {:?} but its manifest declares {:?}",
                set(g),
                set(w)
            ));
        }
    }
    out
}

pub fn render_table(report: &Report) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:14} {:>9} {:>9} {:>8} {:>9} {:>8} {:>22} {:>7}  capabilities\n",
        "profile",
        "stripped",
        "gzip -9",
        "budget",
        "idle RSS",
        "budget",
        "cold start (hello)",
        "static"
    ));
    for (name, r) in &report.profiles {
        let rss = r.idle_rss_bytes.map(mb).unwrap_or_else(|| "-".into());
        let cold = match (r.cold_start_ms, r.hello_cold_start_ms) {
            (Some(c), Some(h)) if h > 0.0 => format!("{c:.1} ms ({h:.1} ms, {:.2}x)", c / h),
            (Some(c), _) => format!("{c:.1} ms"),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "{:14} {:>9} {:>9} {:>8} {:>9} {:>8} {:>22} {:>7}  {}\n",
            name,
            mb(r.stripped_bytes),
            mb(r.compressed_bytes),
            mb(r.compressed_budget_bytes),
            rss,
            mb(r.idle_rss_budget_bytes),
            cold,
            if r.static_binary { "yes" } else { "NO" },
            r.capabilities.join(", ")
        ));
        if let (Some(p), Some(off)) = (r.prefetch_bytes, r.cold_start_unprefetched_ms) {
            out.push_str(&format!(
                "{:14} prefetch: {} at start, {} on first query; cold start without it {off:.1} ms\n",
                "",
                mb(p),
                mb(r.prefetch_warm_up_bytes.unwrap_or(0))
            ));
        }
        if let (Some(c), Some(w)) = (r.first_query_ms, r.first_query_warm_ms) {
            out.push_str(&format!(
                "{:14} first query (sql \"select 42\", exec to exit): {c:.1} ms evicted, {w:.1} ms cached\n",
                ""
            ));
        }
        if let Some(z) = r.lambda_zip_bytes {
            let budget = r.lambda_zip_budget_bytes.unwrap_or(LAMBDA_ZIP_LIMIT);
            out.push_str(&format!(
                "{:14} Lambda zip (bootstrap): {} of {}\n",
                "",
                mb(z),
                mb(budget)
            ));
        }
    }
    out.push_str(&format!("{} failure(s)\n", report.failures.len()));
    out
}
