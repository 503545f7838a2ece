//! Agents querying over MCP while the dataset is replaced underneath them:
//! every answer comes from one complete version, never a missing table.

use hakiri_testkit::mcp::Mcp;
use hakiri_testkit::{mint_token, run, text, Home};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hakiri-full");

#[test]
fn mcp_readers_never_see_a_dataset_vanish_while_it_is_replaced() {
    let home = Home::new();
    let dir = home.path().to_path_buf();
    let versions: Vec<u64> = vec![100_000, 110_000, 120_000];
    let files: Vec<_> = versions
        .iter()
        .map(|rows| {
            let path = dir.join(format!("s{rows}.csv"));
            std::fs::write(
                &path,
                format!("region,amount\n{}", "eu,1\n".repeat(*rows as usize)),
            )
            .unwrap();
            path
        })
        .collect();
    let ingest = |dir: &std::path::Path, file: &std::path::Path| {
        let out = run(
            BIN,
            dir,
            &["ingest", file.to_str().unwrap(), "--as", "sales", "-q"],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    ingest(&dir, &files[0]);
    let token = mint_token(BIN, &dir, &["--tool", "engine.query", "--dataset", "sales"]);
    let mut serve = hakiri_testkit::start_serve(BIN, &dir);
    let mcp = Mcp::open(&format!("http://{}/mcp", serve.addr("mcp")), &token).expect("session");

    let writer_dir = dir.clone();
    let writer = std::thread::spawn(move || {
        for f in files.iter().cycle().skip(1).take(12) {
            ingest(&writer_dir, f);
        }
    });
    let (mut queries, start) = (0, Instant::now());
    while !writer.is_finished() || queries < 10 {
        let (failed, result) =
            mcp.call("engine.query", r#"{"sql":"select count(*) n from sales"}"#);
        assert!(!failed, "query {queries} failed: {result}");
        let n = result["structuredContent"]["rows"][0]["n"]
            .as_u64()
            .unwrap();
        assert!(versions.contains(&n), "a query saw {n} rows: {result}");
        queries += 1;
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the writer did not finish"
        );
    }
    writer.join().unwrap();
    assert!(serve.stop().success());
}
