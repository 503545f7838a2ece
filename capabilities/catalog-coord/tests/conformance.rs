//! The catalog conformance suite against a real three-node coordinator
//! cluster, then the same with its leader killed: any node answers.

use hakiri_kernel::{Config, Context, Profile};
use hakiri_testkit::coord;
use std::time::Duration;

use hakiri_cap_catalog_coord as _;

static PROFILE: Profile = hakiri_kernel::embedded_profile!("catalog-coord-test");

fn ctx(url: &str) -> Context {
    let toml = format!("[catalog]\nurl = {url:?}\n");
    Context::from_inventory(Config::parse(&toml, None).unwrap(), &PROFILE).expect("context")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coord_catalog_passes_the_conformance_suite_and_outlives_its_leader() {
    let bin = coord::binary();
    let mut nodes = tokio::task::spawn_blocking(move || coord::cluster(&bin, 3))
        .await
        .unwrap();
    let ctx = ctx(&coord::catalog_url(&nodes));
    let catalog = hakiri_data_api::open_catalog(&ctx).await.expect("opens");
    hakiri_data_api::conformance::check(catalog.as_ref(), "conf-")
        .await
        .expect("conformance");

    // Kill the leader: the catalog goes on through the others.
    let leader = coord::leader(&nodes, None, Duration::from_secs(10));
    nodes.iter_mut().find(|n| n.id == leader).unwrap().kill9();
    hakiri_data_api::conformance::check(catalog.as_ref(), "after-")
        .await
        .expect("conformance without the old leader");
}

#[tokio::test]
async fn bad_urls_and_unreachable_coordinators_are_named() {
    let open = |url: &str| {
        let ctx = ctx(url);
        async move {
            hakiri_data_api::open_catalog(&ctx)
                .await
                .err()
                .map(|e| format!("{e:#}"))
        }
    };
    let err = open("coord://").await.expect("refused");
    assert!(err.contains("names no coordinator"), "{err}");
    let err = open("coord://just-a-host").await.expect("refused");
    assert!(err.contains("is not host:port"), "{err}");
    // Nothing listens on these: the error says what was tried.
    let ctx = ctx("coord://127.0.0.1:9,127.0.0.1:10");
    let catalog = hakiri_data_api::open_catalog(&ctx)
        .await
        .expect("opens lazily");
    let err = format!("{:#}", catalog.list().await.unwrap_err());
    assert!(
        err.contains("no coordinator answered") && err.contains("127.0.0.1:10"),
        "{err}"
    );
}
