//! Mint → attenuate → decide, the way a verifier sees tokens.

use crate::keys;
use crate::mint::{self, Grants};
use crate::policy::decide;
use hakiri_kernel::{Access, Config, Context, Profile};
use serde_json::Value;
use std::time::Duration;

static PROFILE: Profile = hakiri_kernel::embedded_profile!("test");

fn home() -> (tempfile::TempDir, Context) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::parse(
        &format!("data_dir = {:?}\n", dir.path().display().to_string()),
        None,
    )
    .unwrap();
    let ctx = Context::from_inventory(config, &PROFILE).unwrap();
    keys::init(&ctx, false).unwrap();
    (dir, ctx)
}

fn token(ctx: &Context, tools: &[&str], datasets: &[&str], read_only: bool) -> String {
    let grants = Grants {
        tools: tools.iter().map(|s| s.to_string()).collect(),
        datasets: datasets.iter().map(|s| s.to_string()).collect(),
        read_only,
        ttl: Some(Duration::from_secs(3600)),
    };
    mint::mint(&keys::key_pair(ctx).unwrap(), &grants)
        .unwrap()
        .to_base64()
        .unwrap()
}

const NULL: Value = Value::Null;
fn call() -> Access<'static> {
    Access::Call { input: &NULL }
}
fn dataset(name: &str, write: bool) -> Access<'_> {
    Access::Resource {
        kind: "dataset",
        name,
        write,
    }
}

#[test]
fn grants_tools_by_name_and_namespace() {
    let (_d, ctx) = home();
    let t = token(&ctx, &["engine.query", "search.*"], &[], false);
    assert!(decide(&ctx, &t, "engine.query", call()).is_ok());
    assert!(decide(&ctx, &t, "search.text", call()).is_ok());
    assert_eq!(
        decide(&ctx, &t, "datasets.ingest", call()).unwrap_err(),
        "token does not grant tool `datasets.ingest`"
    );
    // `search.` is a namespace, not a string prefix of `searchx`.
    assert!(decide(&ctx, &t, "searchx.text", call()).is_err());
}

#[test]
fn grants_datasets_and_read_only() {
    let (_d, ctx) = home();
    let t = token(&ctx, &["*"], &["sales"], true);
    assert!(decide(&ctx, &t, "engine.query", dataset("sales", false)).is_ok());
    assert_eq!(
        decide(&ctx, &t, "engine.query", dataset("hr", false)).unwrap_err(),
        "token does not grant dataset `hr`"
    );
    assert_eq!(
        decide(&ctx, &t, "datasets.ingest", dataset("sales", true)).unwrap_err(),
        "token does not grant writing dataset `sales` (read-only)"
    );
    let all = token(&ctx, &["*"], &["*"], false);
    assert!(decide(&ctx, &all, "datasets.ingest", dataset("hr", true)).is_ok());
}

#[test]
fn attenuation_only_narrows() {
    let (_d, ctx) = home();
    let wide = token(&ctx, &["*"], &["sales", "docs"], false);
    let narrow = mint::attenuate(
        &wide,
        &Grants {
            tools: vec!["engine.query".into()],
            datasets: vec!["sales".into()],
            read_only: true,
            ttl: None,
        },
    )
    .unwrap();
    assert!(decide(&ctx, &narrow, "engine.query", dataset("sales", false)).is_ok());
    assert_eq!(
        decide(&ctx, &narrow, "engine.query", dataset("docs", false)).unwrap_err(),
        "token does not grant dataset `docs`"
    );
    assert_eq!(
        decide(&ctx, &narrow, "search.text", call()).unwrap_err(),
        "token does not grant tool `search.text`"
    );
    assert!(decide(&ctx, &narrow, "engine.query", dataset("sales", true)).is_err());
    // Narrowing to a dataset the token never had grants nothing.
    let other = mint::attenuate(
        &wide,
        &Grants {
            datasets: vec!["hr".into()],
            ..Grants::default()
        },
    )
    .unwrap();
    assert!(decide(&ctx, &other, "engine.query", dataset("hr", false)).is_err());
    assert!(decide(&ctx, &other, "engine.query", dataset("sales", false)).is_err());
}

#[test]
fn expired_revoked_garbage_and_foreign_tokens_are_refused() {
    let (_d, ctx) = home();
    let t = token(&ctx, &["*"], &[], false);
    let past = mint::attenuate(
        &t,
        &Grants {
            ttl: Some(Duration::from_secs(1)),
            ..Grants::default()
        },
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(
        decide(&ctx, &past, "x.y", call()).unwrap_err(),
        "the token has expired"
    );

    assert_eq!(
        decide(&ctx, "garbage", "x.y", call()).unwrap_err(),
        "the token is not valid for this server (damaged, or signed by another key)"
    );
    let (_d2, other_home) = home();
    let foreign = token(&other_home, &["*"], &[], false);
    assert!(decide(&ctx, &foreign, "x.y", call())
        .unwrap_err()
        .contains("not valid"));

    let ids = mint::inspect(&t, None).unwrap().revocation_ids;
    assert!(decide(&ctx, &t, "x.y", call()).is_ok());
    keys::revoke(&ctx, &ids[0]).unwrap();
    assert_eq!(
        decide(&ctx, &t, "x.y", call()).unwrap_err(),
        "the token has been revoked"
    );
}

#[test]
fn keys_are_private_and_not_replaced_silently() {
    use std::os::unix::fs::PermissionsExt;
    let (_d, ctx) = home();
    let path = keys::private_key_path(&ctx);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let again = keys::init(&ctx, false).unwrap_err().to_string();
    assert!(again.contains("--force"), "{again}");
    assert!(keys::init(&ctx, true).is_ok());
}

#[test]
fn inspect_shows_grants_and_expiry_and_ttl_parses() {
    let (_d, ctx) = home();
    let t = token(&ctx, &["engine.query"], &["sales"], true);
    let report = mint::inspect(&t, keys::root_public_key(&ctx).ok()).unwrap();
    assert!(
        report.blocks[0].contains("grant_tool(\"engine.query\")"),
        "{:?}",
        report.blocks
    );
    assert!(report.expires.is_some());
    assert_eq!(report.signed_by_root_key, Some(true));
    assert_eq!(mint::parse_ttl("24h").unwrap(), Duration::from_secs(86400));
    assert!(mint::parse_ttl("0h").is_err());
    assert!(mint::parse_ttl("5y")
        .unwrap_err()
        .to_string()
        .contains("--ttl `5y` is not a duration"));
    assert!(mint::mint(&keys::key_pair(&ctx).unwrap(), &Grants::default()).is_err());
}

#[test]
fn user_text_cannot_inject_datalog() {
    let (_d, ctx) = home();
    let hostile = "sales\"); grant(\"dataset\", \"*\", \"write";
    let t = token(&ctx, &["*"], &[hostile], false);
    assert!(decide(&ctx, &t, "x.y", dataset("hr", false)).is_err());
    assert!(decide(&ctx, &t, "x.y", dataset(hostile, false)).is_ok());
}
