//! Two hakiri-full daemons sharing one catalog (`dynamodb://`, `coord://`),
//! each asked over MCP to publish the same dataset at once: exactly one
//! wins, the other's agent is told to retry, and both daemons keep serving
//! and see the winner's dataset.

use hakiri_testkit::mcp::Mcp;
use hakiri_testkit::{mint_token, run_with, skip_unless_configured, start_serve, text, Home};

const BIN: &str = env!("CARGO_BIN_EXE_hakiri-full");

#[test]
fn two_daemons_racing_on_a_dynamodb_catalog_one_wins() {
    let aws = skip_unless_configured!("HAKIRI_TEST_AWS_ENDPOINT");
    let table = format!("hakiri-daemons-{}", std::process::id());
    let catalog = format!(
        "[catalog]\nurl = \"dynamodb://{table}\"\n\
         [catalog-dynamo]\nregion = \"us-east-1\"\nendpoint = \"{aws}\"\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\n"
    );
    let init = ["catalog", "init", &format!("dynamodb://{table}")];
    race(
        &catalog,
        &init,
        "dataset `sales` changed while this version was written",
    );
}

/// The same race on a three-node coordinator cluster.
#[test]
fn two_daemons_racing_on_a_coord_catalog_one_wins() {
    let nodes = hakiri_testkit::coord::cluster(&hakiri_testkit::coord::binary(), 3);
    let catalog = format!(
        "[catalog]\nurl = {:?}\n",
        hakiri_testkit::coord::catalog_url(&nodes)
    );
    // The loser is refused up front: the winner holds the dataset's lease.
    race(&catalog, &[], "dataset `sales` is busy");
}

/// Two daemons over `catalog` (config lines), after `init` (if any) ran in
/// the first one's home; the loser is told `refusal`, and to retry.
fn race(catalog: &str, init: &[&str], refusal: &str) {
    let (a, b) = (Home::new(), Home::new());
    // Big enough that both daemons read the catalog before either publishes.
    let rows: String = (0..400_000).map(|i| format!("{i},{}\n", i % 7)).collect();
    for home in [&a, &b] {
        home.write_config(&format!(
            "{catalog}[connectors]\nallow_paths = [{:?}]\n",
            home.path().display().to_string()
        ));
        std::fs::write(home.path().join("s.csv"), format!("id,amount\n{rows}")).unwrap();
    }
    if !init.is_empty() {
        let init = run_with(BIN, a.path(), init, &[], &[]);
        assert!(init.status.success(), "{}", text(&init.stderr));
    }

    let daemons: Vec<_> = [&a, &b]
        .iter()
        .map(|home| {
            let token = mint_token(
                BIN,
                home.path(),
                &["--tool", "datasets.*", "--dataset", "sales"],
            );
            let serve = start_serve(BIN, home.path());
            let url = format!("http://{}/mcp", serve.addr("mcp"));
            (serve, url, token, home.path().join("s.csv"))
        })
        .collect();
    let calls: Vec<_> = daemons
        .iter()
        .map(|(_, url, token, csv)| {
            let mcp = Mcp::open(url, token).expect("a session");
            let args = serde_json::json!({"sources": [csv], "name": "sales"}).to_string();
            std::thread::spawn(move || mcp.call("datasets.ingest", &args))
        })
        .collect();
    let outcomes: Vec<_> = calls.into_iter().map(|c| c.join().unwrap()).collect();
    let won = outcomes.iter().filter(|(failed, _)| !failed).count();
    let lost: Vec<String> = outcomes
        .iter()
        .filter(|(failed, _)| *failed)
        .map(|(_, result)| result.to_string())
        .collect();
    assert_eq!(won, 1, "{outcomes:?}");
    assert!(
        lost[0].contains(refusal) && lost[0].contains("retry"),
        "{}",
        lost[0]
    );

    // Both still serve, and both see the winner's version 1.
    for (_, url, token, _) in &daemons {
        let mcp = Mcp::open(url, token).expect("a session after the race");
        let (failed, listed) = mcp.call("datasets.list", "{}");
        assert!(!failed, "{listed}");
        let sales = listed["structuredContent"]["datasets"]
            .as_array()
            .and_then(|all| all.iter().find(|d| d["name"] == "sales"))
            .unwrap_or_else(|| panic!("sales listed: {listed}"));
        assert_eq!(sales["version"], 1, "{listed}");
    }
    for (mut serve, ..) in daemons {
        assert!(serve.stop().success(), "each daemon survived the race");
    }
}

/// Publishing is one compare-and-swap on the coordinators: a leader killed
/// while a new version is ingested and published leaves the dataset at the
/// old version or the new one, never in between; an acknowledged ingest is
/// never lost.
#[test]
fn a_leader_killed_mid_publish_leaves_the_old_or_the_new_version() {
    use hakiri_testkit::coord;
    let mut nodes = coord::cluster(&coord::binary(), 3);
    let home = Home::new();
    home.write_config(&format!(
        "[catalog]\nurl = {:?}\n[connectors]\nallow_paths = [{:?}]\n",
        coord::catalog_url(&nodes),
        home.path().display().to_string()
    ));
    let csv = |rows: usize| {
        let path = home.path().join(format!("s{rows}.csv"));
        let body: String = (0..rows).map(|i| format!("{i},{}\n", i % 7)).collect();
        std::fs::write(&path, format!("id,amount\n{body}")).unwrap();
        path.display().to_string()
    };
    let count = || {
        let out = run_with(
            BIN,
            home.path(),
            &["sql", "--format", "csv", "select count(*) from sales"],
            &[],
            &[],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse::<usize>()
            .unwrap()
    };
    let first = run_with(
        BIN,
        home.path(),
        &["ingest", &csv(10), "--as", "sales"],
        &[],
        &[],
    );
    assert!(first.status.success(), "{}", text(&first.stderr));
    let mut rows = 10;
    // Kill at different points of the ingest: early, mid-way, near its publish.
    for (round, delay_ms) in [50u64, 300, 700].into_iter().enumerate() {
        let next_rows = 300_000 + round;
        let source = csv(next_rows);
        let ingest = {
            let home = home.path().to_path_buf();
            std::thread::spawn(move || {
                run_with(BIN, &home, &["ingest", &source, "--as", "sales"], &[], &[])
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let leader = coord::leader(&nodes, None, std::time::Duration::from_secs(10));
        let killed = nodes.iter_mut().find(|n| n.id == leader).unwrap();
        killed.kill9();
        let out = ingest.join().unwrap();
        let now = count();
        eprintln!(
            "round {round}: leader {leader} killed after {delay_ms} ms; ingest {}; {now} rows",
            if out.status.success() {
                "acknowledged".to_string()
            } else {
                format!("failed: {}", text(&out.stderr).trim())
            }
        );
        if out.status.success() {
            assert_eq!(
                now,
                next_rows,
                "an acknowledged ingest was lost: {}",
                text(&out.stderr)
            );
        } else {
            assert!(
                now == rows || now == next_rows,
                "{now} rows: neither {rows} nor {next_rows}"
            );
        }
        rows = now;
        killed.start(None);
    }
}
