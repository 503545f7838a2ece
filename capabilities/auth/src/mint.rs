//! Minting, attenuating and inspecting tokens.
//!
//! A token's authority block holds grants: `grant_tool(name)`,
//! `grant_tool_prefix(prefix)` (for `search.*`), `grant(kind, name, op)` with
//! op `read` or `write` (name `*` for every one), and an expiry check.
//! Attenuation appends a block of `reject if` / `check if` lines that only
//! narrow it. User text only ever enters as datalog parameters, never spliced.

use anyhow::bail;
use biscuit_auth::builder::{date, fact, set, string, Term};
use biscuit_auth::{Biscuit, BlockBuilder, KeyPair, PublicKey, UnverifiedBiscuit};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

/// What `auth token` grants, or what `auth attenuate` narrows to.
#[derive(Debug, Default, Clone)]
pub struct Grants {
    /// Tool names, `prefix.*`, or `*`.
    pub tools: Vec<String>,
    /// Dataset names or `*`.
    pub datasets: Vec<String>,
    pub read_only: bool,
    pub ttl: Option<Duration>,
}

/// The resource kind `--dataset` grants.
pub const DATASET: &str = "dataset";

/// `24h`, `30m`, `7d`, `90s` (positive; at most ten years).
pub fn parse_ttl(text: &str) -> anyhow::Result<Duration> {
    let d = hakiri_kernel::clock::parse_duration(text).map_err(|e| anyhow::anyhow!("--ttl {e}"))?;
    if d.is_zero() {
        bail!("--ttl `{}` must be positive", text.trim());
    }
    Ok(d.min(Duration::from_secs(10 * 365 * 86_400)))
}

/// A tool pattern split into an exact name or a prefix (`search.*` → `search.`).
enum ToolPattern {
    Exact(String),
    Prefix(String),
}

fn tool_pattern(p: &str) -> anyhow::Result<ToolPattern> {
    let valid = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    if p == "*" {
        return Ok(ToolPattern::Prefix(String::new()));
    }
    if let Some(prefix) = p.strip_suffix(".*") {
        if valid(prefix) {
            return Ok(ToolPattern::Prefix(format!("{prefix}.")));
        }
    } else if valid(p) {
        return Ok(ToolPattern::Exact(p.to_string()));
    }
    bail!("--tool `{p}`: expected a tool name (engine.query), a namespace (search.*) or *")
}

fn check_dataset(d: &str) -> anyhow::Result<()> {
    if d == "*" || (!d.is_empty() && d.len() <= 128 && !d.contains(['/', '\\', '\0'])) {
        return Ok(());
    }
    bail!("--dataset `{d}`: expected a dataset name or *")
}

fn expiry_check(block: BlockBuilder, ttl: Duration) -> anyhow::Result<BlockBuilder> {
    let expires = SystemTime::now() + ttl;
    let params = HashMap::from([("expires".to_string(), date(&expires))]);
    Ok(block.code_with_params(
        "check if time($time), $time <= {expires};",
        params,
        HashMap::new(),
    )?)
}

/// Signs a new token with the root key.
pub fn mint(root: &KeyPair, grants: &Grants) -> anyhow::Result<Biscuit> {
    if grants.tools.is_empty() {
        bail!(
            "name at least one --tool (a name, a namespace such as search.*, or * for every tool)"
        );
    }
    let mut block = BlockBuilder::new();
    for t in &grants.tools {
        block = match tool_pattern(t)? {
            ToolPattern::Exact(name) => block.fact(fact("grant_tool", &[string(&name)]))?,
            ToolPattern::Prefix(p) => block.fact(fact("grant_tool_prefix", &[string(&p)]))?,
        };
    }
    for d in &grants.datasets {
        check_dataset(d)?;
        let ops: &[&str] = if grants.read_only {
            &["read"]
        } else {
            &["read", "write"]
        };
        for op in ops {
            block = block.fact(fact("grant", &[string(DATASET), string(d), string(op)]))?;
        }
    }
    if let Some(ttl) = grants.ttl {
        block = expiry_check(block, ttl)?;
    }
    Ok(Biscuit::builder().merge(block).build(root)?)
}

/// Appends a narrowing block; needs no key. Returns the new token.
pub fn attenuate(token: &str, narrow: &Grants) -> anyhow::Result<String> {
    let parsed = UnverifiedBiscuit::from_base64(token.trim())
        .map_err(|_| anyhow::anyhow!("the token is damaged (not a biscuit token)"))?;
    let mut block = BlockBuilder::new();
    let mut params: HashMap<String, Term> = HashMap::new();
    if !narrow.tools.is_empty() {
        let mut exact = BTreeSet::new();
        let mut conditions = vec!["!{exact}.contains($t)".to_string()];
        for (i, t) in narrow.tools.iter().enumerate() {
            match tool_pattern(t)? {
                ToolPattern::Exact(name) => {
                    exact.insert(string(&name));
                }
                ToolPattern::Prefix(p) => {
                    conditions.push(format!("!$t.starts_with({{prefix{i}}})"));
                    params.insert(format!("prefix{i}"), string(&p));
                }
            }
        }
        params.insert("exact".into(), set(exact));
        block = block.code_with_params(
            format!("reject if tool($t), {};", conditions.join(", ")),
            std::mem::take(&mut params),
            HashMap::new(),
        )?;
    }
    if !narrow.datasets.is_empty() && !narrow.datasets.iter().any(|d| d == "*") {
        let mut names = BTreeSet::new();
        for d in &narrow.datasets {
            check_dataset(d)?;
            names.insert(string(d));
        }
        let params = HashMap::from([
            ("kind".to_string(), string(DATASET)),
            ("names".to_string(), set(names)),
        ]);
        block = block.code_with_params(
            "reject if resource({kind}, $d), !{names}.contains($d);",
            params,
            HashMap::new(),
        )?;
    }
    if narrow.read_only {
        block = block.code("reject if operation(\"write\");")?;
    }
    if let Some(ttl) = narrow.ttl {
        block = expiry_check(block, ttl)?;
    }
    if narrow.tools.is_empty()
        && narrow.datasets.is_empty()
        && !narrow.read_only
        && narrow.ttl.is_none()
    {
        bail!("nothing to narrow: pass --tool, --dataset, --read-only or --ttl");
    }
    Ok(parsed.append(block)?.to_base64()?)
}

/// What `auth inspect` shows.
#[derive(Debug, Serialize)]
pub struct Inspection {
    /// Each block's datalog, authority first.
    pub blocks: Vec<String>,
    pub revocation_ids: Vec<String>,
    /// The earliest expiry any block sets (RFC 3339), if any.
    pub expires: Option<String>,
    /// Whether it verifies under this home's root key, when one is known.
    pub signed_by_root_key: Option<bool>,
}

pub fn inspect(token: &str, root: Option<PublicKey>) -> anyhow::Result<Inspection> {
    let parsed = UnverifiedBiscuit::from_base64(token.trim())
        .map_err(|_| anyhow::anyhow!("the token is damaged (not a biscuit token)"))?;
    let blocks = (0..parsed.block_count())
        .map(|i| parsed.print_block_source(i))
        .collect::<Result<Vec<_>, _>>()?;
    let expires = blocks
        .iter()
        .flat_map(|b| b.lines())
        .filter(|l| l.contains("time($time)"))
        .filter_map(|l| l.split("<=").nth(1))
        .map(|d| d.trim().trim_end_matches(';').to_string())
        .min();
    Ok(Inspection {
        revocation_ids: parsed
            .revocation_identifiers()
            .iter()
            .map(hex::encode)
            .collect(),
        signed_by_root_key: root.map(|key| Biscuit::from_base64(token.trim(), key).is_ok()),
        blocks,
        expires,
    })
}
