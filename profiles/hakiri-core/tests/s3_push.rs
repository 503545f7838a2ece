//! `push` and `pull` through a real S3-compatible server: a laptop home
//! pushes, another home pulls and queries; pushes are incremental.

use hakiri_testkit::s3::Bucket;
use hakiri_testkit::{http, run_with, skip_unless_configured, text, Home};
use std::io::Write;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hakiri-core");

#[test]
fn a_pushed_dataset_is_pulled_and_queried_elsewhere() {
    let aws = skip_unless_configured!("HAKIRI_TEST_AWS_ENDPOINT");
    let bucket = Bucket::create(&aws, "hakiri-push");
    let env = bucket.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let target = bucket.url("team");
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

/// A push killed with SIGKILL in the middle of a multipart upload leaves
/// the previous version whole and visible; the next push completes.
#[test]
fn a_push_killed_midway_leaves_the_previous_version_served() {
    let aws = skip_unless_configured!("HAKIRI_TEST_AWS_ENDPOINT");
    let bucket = Bucket::create(&aws, "hakiri-kill");
    let env = bucket.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let target = bucket.url("t");
    let (laptop, reader) = (Home::new(), Home::new());
    let ok = |home: &Home, args: &[&str], extra: &[(&str, &str)]| {
        let all: Vec<(&str, &str)> = env.iter().chain(extra).copied().collect();
        let out = run_with(BIN, home.path(), args, &all, &[]);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let small = laptop.path().join("small.csv");
    std::fs::write(&small, "id,blob\n1,a\n2,b\n").unwrap();
    ok(
        &laptop,
        &["ingest", small.to_str().unwrap(), "--as", "big", "-q"],
        &[],
    );
    ok(&laptop, &["push", "--to", &target], &[]);

    // v2: about 50 MB of incompressible Parquet, so the upload is multipart and slow enough to kill.
    let big = laptop.path().join("big.csv");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
    writeln!(w, "id,blob").unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..1_500_000u32 {
        let mut words = [0u64; 4];
        for word in &mut words {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *word = x;
        }
        writeln!(
            w,
            "{i},{:016x}{:016x}{:016x}{:016x}",
            words[0], words[1], words[2], words[3]
        )
        .unwrap();
    }
    drop(w);
    ok(
        &laptop,
        &["ingest", big.to_str().unwrap(), "--as", "big", "-q"],
        &[],
    );
    let mut push = hakiri_testkit::command(BIN, laptop.path());
    push.args(["push", "--to", &target])
        .envs(env.iter().copied());
    let mut child = push.spawn().unwrap();
    let uploads = format!("{aws}/{}?uploads", bucket.name);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = http::get(&uploads).body;
        if listed.contains("<Upload>") {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the push finished before a multipart upload was seen; make v2 bigger"
        );
        assert!(
            Instant::now() < deadline,
            "no multipart upload started: {listed}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let latest = bucket
        .get("t/datasets/big/latest.json")
        .expect("latest.json");
    let latest: serde_json::Value = serde_json::from_slice(&latest).unwrap();
    assert_eq!(latest["entry"]["version"], 1, "{latest}");
    let catalog = [("HAKIRI_CATALOG__URL", target.as_str())];
    let count = |home: &Home| {
        ok(
            home,
            &["sql", "--format", "csv", "select count(*) n from big"],
            &catalog,
        )
    };
    assert_eq!(count(&reader), "n\n2\n");

    let again = ok(&laptop, &["push", "--to", &target], &[]);
    assert!(again.contains("big: pushed v2"), "{again}");
    assert_eq!(count(&reader), "n\n1500000\n");
}
