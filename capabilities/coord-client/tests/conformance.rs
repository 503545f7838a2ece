//! The catalog conformance suite against a real three-node coordinator
//! cluster, then the same with its leader killed: any node answers.

use hakiri_kernel::{Config, Context, Profile};
use hakiri_testkit::coord;
use std::time::Duration;

use hakiri_cap_coord_client as _;

static PROFILE: Profile = hakiri_kernel::embedded_profile!("coord-client-test");

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

fn entry(name: &str, version: u64) -> hakiri_data_api::DatasetEntry {
    hakiri_data_api::DatasetEntry {
        name: name.into(),
        version,
        location: format!("/shared/datasets/{name}/v{version}"),
        source: "s.csv".into(),
        rows: 1,
        bytes: 1,
        schema: serde_json::json!([]),
        updated: "2026-11-28T00:00:00Z".into(),
        description: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_writer_per_dataset_and_a_writer_that_lost_its_lease_cannot_publish() {
    let bin = coord::binary();
    let nodes = tokio::task::spawn_blocking(move || coord::cluster(&bin, 3))
        .await
        .unwrap();
    let ctx = ctx(&coord::catalog_url(&nodes));
    let a = hakiri_data_api::open_catalog(&ctx).await.unwrap();
    let b = hakiri_data_api::open_catalog(&ctx).await.unwrap();

    let held = a.lock("sales").await.unwrap().expect("coord catalogs lock");
    let busy = b
        .lock("sales")
        .await
        .err()
        .expect("a second writer is refused");
    assert!(
        format!("{busy:#}").contains("dataset `sales` is busy"),
        "{busy:#}"
    );

    // a's lease goes away behind its back (as when it expires while a is
    // paused or cut off), and b takes the dataset over.
    let api = nodes[1].api_url();
    let token = tokio::task::spawn_blocking(move || {
        let url = format!("{api}/v1/leases/dataset.sales");
        let lease = hakiri_testkit::http::get(&url).json();
        let token = lease["lease"]["token"].as_u64().unwrap();
        let body = serde_json::json!({ "token": token }).to_string();
        let gone = hakiri_testkit::http::request(
            "DELETE",
            &url,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(gone.status, 200, "{}", gone.body);
        token
    })
    .await
    .unwrap();
    let taken = b.lock("sales").await.unwrap().expect("b takes it over");

    let lost = a
        .publish(entry("sales", 1))
        .await
        .expect_err("a's publish is fenced off");
    let lost = format!("{lost:#}");
    assert!(
        lost.contains("lost its lease on dataset `sales`")
            && lost.contains("nothing was published"),
        "{lost} (a held token {token})"
    );
    assert!(a.get("sales").await.unwrap().is_none());
    b.publish(entry("sales", 1))
        .await
        .expect("the lease holder publishes");

    taken.release().await;
    drop(held);
    let again = a.lock("sales").await.unwrap().expect("free once released");
    again.release().await;
}
