//! `push` and `pull` through a real S3-compatible server: a laptop home
//! pushes, another home pulls and queries; pushes are incremental, parts
//! are named by content, the part cache keeps its bound, and throttling is
//! waited out.

use hakiri_testkit::s3::{Bucket, Throttled};
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

    // An append, pushed, then pulled by the other home: what the push said, and the new sum.
    let more = laptop.path().join("more.csv");
    std::fs::write(&more, "region,amount\neu,30\nus,40\n").unwrap();
    let append_push_pull = || {
        let csv = more.to_str().unwrap();
        ok(
            &laptop,
            &["ingest", csv, "--as", "sales", "--mode", "append", "-q"],
        );
        let pushed = ok(&laptop, &["push", "--to", &target]);
        ok(&lambda, &["pull", "--from", &target, "sales"]);
        let sql = ["sql", "--format", "csv", "select sum(amount) s from sales"];
        (pushed, ok(&lambda, &sql))
    };
    // It pushes only its new part; the other home catches up.
    let (again, sum) = append_push_pull();
    assert!(
        again.contains("sales: pushed v2") && again.contains("1 new part(s)"),
        "{again}"
    );
    assert_eq!(sum, "s\n77\n");
    // The same rows appended again make a part of the same bytes: nothing
    // new to upload, and the rows still count twice.
    let (same, sum) = append_push_pull();
    assert!(
        same.contains("sales: pushed v3") && same.contains("0 new part(s)"),
        "{same}"
    );
    assert_eq!(sum, "s\n147\n");

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

/// A dataset dropped and ingested again starts over at v1 with a part of
/// the same size: parts are named by their content, so the push uploads
/// it and a reader whose part cache holds the old bytes reads the new ones.
#[test]
fn a_reingested_dataset_of_the_same_size_is_pushed_and_read_anew() {
    let aws = skip_unless_configured!("HAKIRI_TEST_AWS_ENDPOINT");
    let bucket = Bucket::create(&aws, "hakiri-reingest");
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
    let catalog = [("HAKIRI_CATALOG__URL", target.as_str())];
    let sum = || {
        ok(
            &reader,
            &["sql", "--format", "csv", "select sum(amount) s from sales"],
            &catalog,
        )
    };
    let part_size = || {
        let listed = ok(&laptop, &["datasets", "--json"], &[]);
        let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
        let dir = listed[0]["location"].as_str().unwrap().to_string();
        let part = std::fs::read_dir(dir).unwrap().flatten().next().unwrap();
        part.metadata().unwrap().len()
    };
    let csv = laptop.path().join("s.csv");
    std::fs::write(&csv, "region,amount\neu,3\nus,4\n").unwrap();
    ok(
        &laptop,
        &["ingest", csv.to_str().unwrap(), "--as", "sales", "-q"],
        &[],
    );
    let first_size = part_size();
    ok(&laptop, &["push", "--to", &target], &[]);
    assert_eq!(sum(), "s\n7\n");

    ok(&laptop, &["drop", "sales"], &[]);
    std::fs::write(&csv, "region,amount\neu,5\nus,6\n").unwrap();
    ok(
        &laptop,
        &["ingest", csv.to_str().unwrap(), "--as", "sales", "-q"],
        &[],
    );
    assert_eq!(
        part_size(),
        first_size,
        "the case under test: same version, same part size"
    );
    let pushed = ok(&laptop, &["push", "--to", &target], &[]);
    assert!(
        pushed.contains("sales: pushed v1") && pushed.contains("1 new part(s)"),
        "{pushed}"
    );
    assert_eq!(sum(), "s\n11\n");
}

/// The part cache of a reader over an `s3://` catalog stays within
/// `cache_max_bytes`: the least recently used dataset's parts go first,
/// and a version larger than the whole cache is refused with the setting
/// to raise.
#[test]
fn the_part_cache_stays_within_its_bound() {
    let aws = skip_unless_configured!("HAKIRI_TEST_AWS_ENDPOINT");
    let bucket = Bucket::create(&aws, "hakiri-cache");
    let env = bucket.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let target = bucket.url("t");
    let (laptop, reader) = (Home::new(), Home::new());
    let run = |home: &Home, args: &[&str], extra: &[(&str, &str)]| {
        let all: Vec<(&str, &str)> = env.iter().chain(extra).copied().collect();
        run_with(BIN, home.path(), args, &all, &[])
    };
    let ok = |home: &Home, args: &[&str], extra: &[(&str, &str)]| {
        let out = run(home, args, extra);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let ingest = |name: &str, rows: usize| {
        let csv = laptop.path().join(format!("{name}.csv"));
        let body: String = (0..rows)
            .map(|i| format!("{i},{}\n", i * 7919 % 10007))
            .collect();
        std::fs::write(&csv, format!("id,amount\n{body}")).unwrap();
        ok(
            &laptop,
            &["ingest", csv.to_str().unwrap(), "--as", name, "-q"],
            &[],
        );
    };
    ingest("a", 3);
    ingest("b", 3);
    ingest("big", 5000);
    ok(&laptop, &["push", "--to", &target], &[]);
    let size = |name: &str| -> u64 {
        let m: serde_json::Value =
            serde_json::from_slice(&bucket.get(&format!("t/datasets/{name}/v1.json")).unwrap())
                .unwrap();
        m["parts"][0]["size"].as_u64().unwrap()
    };
    let (a, b, big) = (size("a"), size("b"), size("big"));
    let cap = (a + b - 1).to_string();
    assert!(big > a + b, "big must outgrow the cache: {big} vs {cap}");
    let reading = [
        ("HAKIRI_CATALOG__URL", target.as_str()),
        ("HAKIRI_S3_SYNC__CACHE_MAX_BYTES", cap.as_str()),
    ];
    let count = |name: &str| {
        ok(
            &reader,
            &[
                "sql",
                "--format",
                "csv",
                &format!("select count(*) n from {name}"),
            ],
            &reading,
        )
    };
    let cached = || {
        let mut out = Vec::new();
        let mut dirs = vec![reader.path().join("cache/s3")];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    dirs.push(e.path());
                } else if e.path().extension().is_some_and(|x| x == "parquet") {
                    out.push(e.path().display().to_string());
                }
            }
        }
        out
    };
    assert_eq!(count("a"), "n\n3\n");
    std::thread::sleep(Duration::from_millis(20)); // distinct last-use times
    assert_eq!(count("b"), "n\n3\n");
    let after = cached();
    assert!(
        after.len() == 1 && after[0].contains("/datasets/b/parts/"),
        "a's part is evicted, b's kept: {after:?}"
    );

    let out = run(&reader, &["sql", "select count(*) from big"], &reading);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("`big` v1 is {big} bytes, more than the part cache holds ([s3-sync] cache_max_bytes = {cap})")),
        "{err}"
    );
    assert!(
        cached().iter().all(|p| !p.contains("/datasets/big/")),
        "nothing of big is fetched"
    );
}

/// S3 throttles with `503 SlowDown`: a push and a read through an `s3://`
/// catalog wait and retry (object_store's backoff) instead of failing.
#[test]
fn a_throttling_server_is_waited_out() {
    let aws = skip_unless_configured!("HAKIRI_TEST_AWS_ENDPOINT");
    let bucket = Bucket::create(&aws, "hakiri-throttle");
    let target = bucket.url("t");
    let (laptop, reader) = (Home::new(), Home::new());
    let ok = |home: &Home, args: &[&str], env: &[(&'static str, String)]| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let out = run_with(BIN, home.path(), args, &env, &[]);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let csv = laptop.path().join("s.csv");
    std::fs::write(&csv, "region,amount\neu,3\nus,4\n").unwrap();
    ok(
        &laptop,
        &["ingest", csv.to_str().unwrap(), "--as", "sales", "-q"],
        &[],
    );

    let pushing = Throttled::start(&aws, 3);
    let pushed = ok(
        &laptop,
        &["push", "--to", &target],
        &bucket.env_via(&pushing.endpoint),
    );
    assert!(pushed.contains("sales: pushed v1"), "{pushed}");
    assert_eq!(pushing.throttled(), 3, "the push met the throttling");

    let reading = Throttled::start(&aws, 3);
    let mut env = bucket.env_via(&reading.endpoint);
    env.push(("HAKIRI_CATALOG__URL", target.clone()));
    let sum = ok(
        &reader,
        &["sql", "--format", "csv", "select sum(amount) s from sales"],
        &env,
    );
    assert_eq!(sum, "s\n7\n");
    assert_eq!(reading.throttled(), 3, "the read met the throttling");
}

/// `s3.list` under a token shows the objects of the datasets it grants,
/// not the other datasets' names and parts (issue I10); the local user
/// still sees the whole prefix.
#[test]
fn s3_list_under_a_token_shows_only_its_datasets() {
    let aws = skip_unless_configured!("HAKIRI_TEST_AWS_ENDPOINT");
    let bucket = Bucket::create(&aws, "hakiri-list");
    let mut env = bucket.env();
    env.push(("HAKIRI_S3_SYNC__BUCKET", bucket.name.clone()));
    env.push(("HAKIRI_S3_SYNC__PREFIX", "team".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let home = Home::new();
    let ok = |args: &[&str], extra: &[(&str, &str)]| {
        let mut all = env.clone();
        all.extend_from_slice(extra);
        let out = run_with(BIN, home.path(), args, &all, &[]);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    for name in ["sales", "hr"] {
        let csv = home.path().join(format!("{name}.csv"));
        std::fs::write(&csv, "a,b\n1,2\n").unwrap();
        ok(&["ingest", csv.to_str().unwrap(), "--as", name, "-q"], &[]);
    }
    ok(&["push"], &[]);
    let token = hakiri_testkit::mint_token(
        BIN,
        home.path(),
        &["--tool", "s3.list", "--dataset", "sales"],
    );
    let keys = |extra: &[(&str, &str)]| -> Vec<String> {
        let listed: serde_json::Value =
            serde_json::from_str(&ok(&["call", "s3.list", "{}"], extra)).unwrap();
        listed
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["key"].as_str().unwrap().to_string())
            .collect()
    };
    let all = keys(&[]);
    assert!(
        all.iter().any(|k| k.starts_with("team/datasets/hr/")),
        "{all:?}"
    );
    let scoped = keys(&[("HAKIRI_TOKEN", &token)]);
    assert!(!scoped.is_empty(), "its own dataset's objects are listed");
    assert!(
        scoped.iter().all(|k| k.starts_with("team/datasets/sales/")),
        "{scoped:?}"
    );
}
