//! `push` and `pull` through a real S3-compatible server: a laptop home
//! pushes, another home pulls and queries; pushes are incremental.

use hakiri_testkit::{http, run_with, skip_unless_configured, text, Home};

const BIN: &str = env!("CARGO_BIN_EXE_hakiri-core");

#[test]
fn a_pushed_dataset_is_pulled_and_queried_elsewhere() {
    let aws = skip_unless_configured!("HAKIRI_TEST_AWS_ENDPOINT");
    let bucket = format!("hakiri-push-{}", std::process::id());
    let resp = http::request("PUT", &format!("{aws}/{bucket}"), &[], b"", http::TIMEOUT).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.body);
    let env = [
        ("HAKIRI_S3_SYNC__ENDPOINT", aws.as_str()),
        ("HAKIRI_S3_SYNC__ALLOW_HTTP", "true"),
        ("HAKIRI_S3_SYNC__REGION", "us-east-1"),
        ("HAKIRI_S3_SYNC__ACCESS_KEY_ID", "test"),
        ("HAKIRI_S3_SYNC__SECRET_ACCESS_KEY", "test"),
    ];
    let target = format!("s3://{bucket}/team");
    let (laptop, lambda) = (Home::new(), Home::new());
    let ok = |home: &Home, args: &[&str]| {
        let out = run_with(BIN, home.path(), args, &env, &[]);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let csv = laptop.path().join("s.csv");
    std::fs::write(&csv, "region,amount\neu,3\nus,4\n").unwrap();
    ok(
        &laptop,
        &["ingest", csv.to_str().unwrap(), "--as", "sales", "-q"],
    );
    let dry = ok(&laptop, &["push", "--to", &target, "--dry-run"]);
    assert!(
        dry.contains("sales: would push v1") && dry.contains("1 new part(s)"),
        "{dry}"
    );
    let pushed = ok(&laptop, &["push", "--to", &target]);
    assert!(
        pushed.contains("sales: pushed v1") && pushed.contains("1 new part(s)"),
        "{pushed}"
    );

    let pulled = ok(&lambda, &["pull", "--from", &target]);
    assert!(pulled.contains("sales: pulled"), "{pulled}");
    let sum = ok(
        &lambda,
        &["sql", "--format", "csv", "select sum(amount) s from sales"],
    );
    assert_eq!(sum, "s\n7\n");
    assert!(ok(&lambda, &["pull", "--from", &target]).contains("sales: already at"));

    // An append pushes only its new part; the other home catches up.
    ok(
        &laptop,
        &[
            "ingest",
            csv.to_str().unwrap(),
            "--as",
            "sales",
            "--mode",
            "append",
            "-q",
        ],
    );
    let again = ok(&laptop, &["push", "--to", &target]);
    assert!(
        again.contains("sales: pushed v2") && again.contains("1 new part(s)"),
        "{again}"
    );
    ok(&lambda, &["pull", "--from", &target, "sales"]);
    let sum = ok(
        &lambda,
        &["sql", "--format", "csv", "select sum(amount) s from sales"],
    );
    assert_eq!(sum, "s\n14\n");

    let out = run_with(
        BIN,
        lambda.path(),
        &["pull", "--from", &target, "nosuch"],
        &env,
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no pushed dataset `nosuch`"),
        "{}",
        text(&out.stderr)
    );
}
