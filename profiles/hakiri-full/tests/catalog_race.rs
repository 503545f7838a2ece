//! Two hakiri-full daemons sharing one `dynamodb://` catalog, each asked
//! over MCP to publish the same dataset at once: exactly one wins, the
//! other's agent is told to retry, and both daemons keep serving.

use hakiri_testkit::mcp::Mcp;
use hakiri_testkit::{mint_token, run_with, skip_unless_configured, start_serve, text, Home};

const BIN: &str = env!("CARGO_BIN_EXE_hakiri-full");

#[test]
fn two_daemons_racing_on_a_dynamodb_catalog_one_wins() {
    let aws = skip_unless_configured!("HAKIRI_TEST_AWS_ENDPOINT");
    let table = format!("hakiri-daemons-{}", std::process::id());
    let (a, b) = (Home::new(), Home::new());
    // Big enough that both daemons read the catalog before either publishes.
    let rows: String = (0..400_000).map(|i| format!("{i},{}\n", i % 7)).collect();
    for home in [&a, &b] {
        home.write_config(&format!(
            "[catalog]\nurl = \"dynamodb://{table}\"\n\
             [catalog-dynamo]\nregion = \"us-east-1\"\nendpoint = \"{aws}\"\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\n\
             [connectors]\nallow_paths = [{:?}]\n",
            home.path().display().to_string()
        ));
        std::fs::write(home.path().join("s.csv"), format!("id,amount\n{rows}")).unwrap();
    }
    let init = run_with(
        BIN,
        a.path(),
        &["catalog", "init", &format!("dynamodb://{table}")],
        &[],
        &[],
    );
    assert!(init.status.success(), "{}", text(&init.stderr));

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
        lost[0].contains("dataset `sales` changed while this version was written")
            && lost[0].contains("retry"),
        "{}",
        lost[0]
    );

    // Both still serve, and both see the winner's version 1.
    for (_, url, token, _) in &daemons {
        let mcp = Mcp::open(url, token).expect("a session after the race");
        let (failed, listed) = mcp.call("datasets.list", "{}");
        assert!(!failed, "{listed}");
        // A list comes back as JSON text (structured content is an object).
        let all: serde_json::Value =
            serde_json::from_str(listed["content"][0]["text"].as_str().unwrap_or("null")).unwrap();
        let sales = all
            .as_array()
            .and_then(|all| all.iter().find(|d| d["name"] == "sales"))
            .unwrap_or_else(|| panic!("sales listed: {listed}"));
        assert_eq!(sales["version"], 1, "{listed}");
    }
    for (mut serve, ..) in daemons {
        assert!(serve.stop().success(), "each daemon survived the race");
    }
}
