//! One conformance suite for every catalog backend (object_store's
//! `integration` tests are the model): each backend's tests run it against
//! a real instance. `prefix` keeps concurrent runs on a shared server apart;
//! the suite removes what it published.

use crate::{Catalog, DatasetEntry};
use anyhow::{ensure, Context as _};

fn entry(name: &str, version: u64) -> DatasetEntry {
    DatasetEntry {
        name: name.to_string(),
        version,
        location: format!("s3://bucket/data/datasets/{name}/v{version}"),
        source: format!("{name}.csv"),
        rows: version * 10,
        bytes: version * 1000,
        schema: serde_json::json!([{"name": "région", "type": "str"}, {"name": "amount", "type": "f64"}]),
        updated: "2026-11-28T00:00:00Z".into(),
        // Every backend keeps it, quotes and accents included.
        description: Some(format!("Sales by région, it's \"v{version}\"")),
    }
}

/// Another writer's entry for the same version: its own files and time. (A
/// publisher that repeats its own identical entry, e.g. a retry after a
/// lost answer, may be told it succeeded; a rival is always refused.)
fn rival(name: &str, version: u64) -> DatasetEntry {
    DatasetEntry {
        location: format!("s3://elsewhere/datasets/{name}/v{version}"),
        updated: "2026-11-28T00:00:01Z".into(),
        ..entry(name, version)
    }
}

/// Runs every check; the first failure is the error.
pub async fn check(catalog: &dyn Catalog, prefix: &str) -> anyhow::Result<()> {
    let name = |n: &str| format!("{prefix}{n}");
    let sales = name("sales");

    // publish, get, replace.
    ensure!(
        catalog.get(&sales).await?.is_none(),
        "a fresh name must be absent"
    );
    catalog
        .publish(entry(&sales, 1))
        .await
        .context("first publish")?;
    ensure!(
        catalog.get(&sales).await? == Some(entry(&sales, 1)),
        "get returns what was published (schema JSON included)"
    );
    catalog
        .publish(entry(&sales, 2))
        .await
        .context("replace with the next version")?;
    ensure!(
        catalog.get(&sales).await?.map(|e| e.version) == Some(2),
        "replace takes effect"
    );

    // Optimistic concurrency: a stale publisher loses, with a clear error.
    let stale = catalog.publish(rival(&sales, 2)).await;
    let message = format!(
        "{:#}",
        stale
            .err()
            .context("a second publish of version 2 must conflict")?
    );
    ensure!(
        message.contains("changed while") && message.contains(&sales),
        "conflict message: {message}"
    );
    let skipped = catalog.publish(entry(&sales, 5)).await;
    ensure!(
        skipped.is_err(),
        "publishing version 5 over version 2 must conflict"
    );
    let first_again = catalog.publish(entry(&name("fresh"), 3)).await;
    ensure!(first_again.is_err(), "a first publish must be version 1");
    ensure!(
        catalog.get(&sales).await?.map(|e| e.version) == Some(2),
        "a conflict changes nothing"
    );

    // Two publishers racing for the same next version: exactly one wins.
    let race = name("race");
    catalog.publish(entry(&race, 1)).await?;
    let (a, b) = futures_join(
        catalog.publish(entry(&race, 2)),
        catalog.publish(rival(&race, 2)),
    )
    .await;
    ensure!(
        a.is_ok() != b.is_ok(),
        "exactly one of two racing publishers wins"
    );

    // Names are stored as given, unicode included.
    let unicode = name("données_ü");
    catalog.publish(entry(&unicode, 1)).await?;
    ensure!(
        catalog.get(&unicode).await?.is_some(),
        "unicode names round-trip"
    );

    // Many datasets: list returns all of them (backends paginate inside).
    let many: Vec<String> = (0..1000).map(|i| name(&format!("m{i:04}"))).collect();
    for n in &many {
        catalog.publish(entry(n, 1)).await?;
    }
    let listed: Vec<String> = catalog
        .list()
        .await?
        .into_iter()
        .map(|e| e.name)
        .filter(|n| n.starts_with(prefix))
        .collect();
    ensure!(
        listed.len() == 1003,
        "list returned {} of 1003 datasets",
        listed.len()
    );
    let mut sorted = listed.clone();
    sorted.sort();
    ensure!(sorted == listed, "list is ordered by name");

    // remove, and remove again.
    for n in many.iter().chain([&sales, &race, &unicode]) {
        ensure!(catalog.remove(n).await?, "remove {n} reports it existed");
    }
    ensure!(
        !catalog.remove(&sales).await?,
        "removing an absent name reports false"
    );
    ensure!(
        catalog.get(&sales).await?.is_none(),
        "removed names are gone"
    );
    // A removed name starts again at version 1.
    catalog
        .publish(entry(&sales, 1))
        .await
        .context("publish after remove")?;
    catalog.remove(&sales).await?;
    Ok(())
}

/// Both futures, polled together (no runtime-specific join needed).
async fn futures_join<A: std::future::Future, B: std::future::Future>(
    a: A,
    b: B,
) -> (A::Output, B::Output) {
    let (mut a, mut b) = (Box::pin(a), Box::pin(b));
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none() {
            if let std::task::Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let std::task::Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if ra.is_some() && rb.is_some() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    (
        ra.expect("polled to completion"),
        rb.expect("polled to completion"),
    )
}
