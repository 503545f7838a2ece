//! Ingest of inputs people actually have, and readers isolated from
//! writers, on the static binary.

use hakiri_testkit::{run, text, Home};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hakiri-core");

fn ok(home: &Path, args: &[&str]) -> String {
    let out = run(BIN, home, args);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

fn fails(home: &Path, args: &[&str]) -> String {
    let out = run(BIN, home, args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?} should fail: {}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

fn count(home: &Path, table: &str) -> String {
    ok(
        home,
        &[
            "sql",
            "--format",
            "csv",
            &format!("select count(*) n, sum(amount) s from {table}"),
        ],
    )
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

const CSV: &str = "region,amount\neu,3\nus,4\n";

#[test]
fn compressed_inputs_ingest_by_their_bytes() {
    let home = Home::new();
    let dir = home.path();
    // .csv.gz — this used to panic ("activate 'decompress' feature").
    std::fs::write(dir.join("a.csv.gz"), gzip(CSV.as_bytes())).unwrap();
    ok(
        dir,
        &[
            "ingest",
            dir.join("a.csv.gz").to_str().unwrap(),
            "--as",
            "a",
            "-q",
        ],
    );
    assert_eq!(count(dir, "a"), "n,s\n2,7\n");
    // .ndjson.gz
    let ndjson = "{\"region\":\"eu\",\"amount\":3}\n{\"region\":\"us\",\"amount\":4}\n";
    std::fs::write(dir.join("b.ndjson.gz"), gzip(ndjson.as_bytes())).unwrap();
    ok(
        dir,
        &[
            "ingest",
            dir.join("b.ndjson.gz").to_str().unwrap(),
            "--as",
            "b",
            "-q",
        ],
    );
    assert_eq!(count(dir, "b"), "n,s\n2,7\n");
    // .csv.zst
    std::fs::write(
        dir.join("c.csv.zst"),
        zstd::encode_all(CSV.as_bytes(), 3).unwrap(),
    )
    .unwrap();
    ok(
        dir,
        &[
            "ingest",
            dir.join("c.csv.zst").to_str().unwrap(),
            "--as",
            "c",
            "-q",
        ],
    );
    assert_eq!(count(dir, "c"), "n,s\n2,7\n");
    // gzip under a plain name: recognized by its bytes.
    std::fs::write(dir.join("d.csv"), gzip(CSV.as_bytes())).unwrap();
    ok(
        dir,
        &[
            "ingest",
            dir.join("d.csv").to_str().unwrap(),
            "--as",
            "d",
            "-q",
        ],
    );
    assert_eq!(count(dir, "d"), "n,s\n2,7\n");
    // Damaged and unsupported compression: clear errors, nothing published.
    let mut damaged = gzip(CSV.repeat(1000).as_bytes());
    damaged.truncate(damaged.len() / 2);
    std::fs::write(dir.join("e.csv.gz"), damaged).unwrap();
    let err = fails(
        dir,
        &[
            "ingest",
            dir.join("e.csv.gz").to_str().unwrap(),
            "--as",
            "e",
            "-q",
        ],
    );
    assert!(
        err.contains("e.csv.gz: the compressed data is damaged"),
        "{err}"
    );
    std::fs::write(dir.join("f.csv.bz2"), b"BZh91AY&SY").unwrap();
    let err = fails(
        dir,
        &[
            "ingest",
            dir.join("f.csv.bz2").to_str().unwrap(),
            "--as",
            "f",
            "-q",
        ],
    );
    assert!(err.contains("bzip2-compressed"), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    let listed = ok(dir, &["datasets", "--json"]);
    assert!(
        !listed.contains("\"e\"") && !listed.contains("\"f\""),
        "{listed}"
    );
}

#[test]
fn replaced_versions_stay_readable_until_collected() {
    let home = Home::new();
    let dir = home.path();
    let csv = dir.join("s.csv");
    for rows in 1..=3u32 {
        let body: String = (1..=rows).map(|i| format!("eu,{i}\n")).collect();
        std::fs::write(&csv, format!("region,amount\n{body}")).unwrap();
        ok(
            dir,
            &["ingest", csv.to_str().unwrap(), "--as", "sales", "-q"],
        );
    }
    assert_eq!(count(dir, "sales"), "n,s\n3,6\n");
    let at = ok(
        dir,
        &[
            "sql",
            "--format",
            "csv",
            "--at",
            "sales=1",
            "select count(*) n from sales",
        ],
    );
    assert_eq!(at, "n\n1\n");
    let kept = ok(dir, &["gc"]);
    assert!(kept.contains("sales: removed 0"), "{kept}");
    let swept = ok(dir, &["gc", "--retain", "0s"]);
    assert!(
        swept.contains("sales: removed 2 replaced version(s) (v1, v2)"),
        "{swept}"
    );
    let err = fails(dir, &["sql", "--at", "sales=1", "select 1"]);
    assert!(
        err.contains("version 1 of `sales` is not available: the latest is 3"),
        "{err}"
    );
    let err = fails(dir, &["sql", "--at", "sales", "select 1"]);
    assert!(err.contains("expected NAME=VERSION"), "{err}");
}

/// One loop replaces the dataset while another queries it: every query
/// sees one complete version, old or new, never a missing table.
#[test]
fn readers_never_see_a_dataset_vanish_while_it_is_replaced() {
    let home = Home::new();
    let dir = home.path().to_path_buf();
    let versions: Vec<u32> = vec![200_000, 210_000, 220_000, 230_000, 240_000, 250_000];
    let files: Vec<_> = versions
        .iter()
        .map(|rows| {
            let path = dir.join(format!("s{rows}.csv"));
            let mut body = String::from("region,amount\n");
            for i in 0..*rows {
                body.push_str(if i % 2 == 0 { "eu,1\n" } else { "us,1\n" });
            }
            std::fs::write(&path, body).unwrap();
            path
        })
        .collect();
    ok(
        &dir,
        &["ingest", files[0].to_str().unwrap(), "--as", "sales", "-q"],
    );
    let writer_dir = dir.clone();
    let writer = std::thread::spawn(move || {
        for f in files[1..].iter().cycle().take(15) {
            ok(
                &writer_dir,
                &[
                    "ingest",
                    f.to_str().unwrap(),
                    "--as",
                    "sales",
                    "--mode",
                    "replace",
                    "-q",
                ],
            );
        }
    });
    let (mut queries, start) = (0, Instant::now());
    while !writer.is_finished() || queries < 10 {
        let out = run(
            BIN,
            &dir,
            &[
                "sql",
                "--format",
                "csv",
                "select count(*) n, sum(amount) s from sales",
            ],
        );
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "query {queries} failed: {}",
            text(&out.stderr)
        );
        assert!(
            !text(&out.stderr).contains("skipped"),
            "{}",
            text(&out.stderr)
        );
        let n: u32 = stdout
            .lines()
            .nth(1)
            .and_then(|l| l.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert!(
            versions.contains(&n),
            "a query saw {n} rows, not one version: {stdout}"
        );
        queries += 1;
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the writer did not finish"
        );
    }
    writer.join().unwrap();
    assert_eq!(count(&dir, "sales"), "n,s\n250000,250000\n");
}

#[test]
fn null_markers_preamble_lines_and_latin1() {
    let home = Home::new();
    let dir = home.path();
    let file = dir.join("report.csv");
    // A title and a blank line above the table; `;` separated; Latin-1 bytes (ü = 0xFC).
    let mut bytes = b"Quarterly report\n\nregion;amount;city\neu;NA;Z".to_vec();
    bytes.push(0xFC);
    bytes.extend_from_slice(b"rich\nus;4;-\n");
    std::fs::write(&file, bytes).unwrap();
    let path = file.to_str().unwrap();
    let err = fails(
        dir,
        &["ingest", path, "--as", "r", "--skip-rows", "2", "-q"],
    );
    assert!(err.contains("--encoding latin1"), "{err}");
    ok(
        dir,
        &[
            "ingest",
            path,
            "--as",
            "r",
            "--skip-rows",
            "2",
            "--null",
            "NA",
            "--null",
            "-",
            "--encoding",
            "latin1",
            "-q",
        ],
    );
    let out = ok(
        dir,
        &[
            "sql",
            "--format",
            "csv",
            "select count(*) n, count(amount) a, count(city) c, max(city) m from r",
        ],
    );
    assert_eq!(out, "n,a,c,m\n2,1,1,Zürich\n");
}

/// `s3://bucket/key` and `s3://bucket/prefix/*.csv` against a real
/// S3-compatible server (moto, started by .ci/services.sh).
#[test]
fn s3_objects_and_patterns_ingest() {
    use hakiri_testkit::http;
    let aws = hakiri_testkit::skip_unless_configured!("HAKIRI_TEST_AWS_ENDPOINT");
    let bucket = format!("hakiri-ingest-{}", std::process::id());
    let put = |path: &str, body: &[u8]| {
        let url = format!("{aws}/{bucket}{path}");
        let resp = http::request("PUT", &url, &[], body, http::TIMEOUT).unwrap();
        assert_eq!(resp.status, 200, "PUT {url}: {}", resp.body);
    };
    put("", b""); // CreateBucket (moto accepts it unsigned)
    put("/one/sales.csv", CSV.as_bytes());
    put("/parts/a.csv", CSV.as_bytes());
    put("/parts/b.csv.gz", &gzip(CSV.as_bytes()));
    put("/parts/notes.txt", b"not part of the pattern");
    let home = Home::new();
    let env = [
        ("HAKIRI_S3_SYNC__ENDPOINT", aws.as_str()),
        ("HAKIRI_S3_SYNC__ALLOW_HTTP", "true"),
        ("HAKIRI_S3_SYNC__REGION", "us-east-1"),
        ("HAKIRI_S3_SYNC__ACCESS_KEY_ID", "test"),
        ("HAKIRI_S3_SYNC__SECRET_ACCESS_KEY", "test"),
    ];
    let with_s3 = |args: &[&str]| hakiri_testkit::run_with(BIN, home.path(), args, &env, &[]);
    let one = format!("s3://{bucket}/one/sales.csv");
    let out = with_s3(&["ingest", &one, "--as", "one", "-q"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(count(home.path(), "one"), "n,s\n2,7\n");
    let pattern = format!("s3://{bucket}/parts/*.csv*");
    let out = with_s3(&["ingest", &pattern, "--as", "parts", "-q"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(count(home.path(), "parts"), "n,s\n4,14\n");
    let missing = format!("s3://{bucket}/nothing/*.csv");
    let out = with_s3(&["ingest", &missing, "--as", "none", "-q"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no objects match"),
        "{}",
        text(&out.stderr)
    );
}

/// A real workbook (written by openpyxl): one sheet chosen, typed by its
/// cells, the title row above the table skipped, error cells and null
/// markers null.
#[test]
fn spreadsheets_ingest_one_sheet_typed() {
    let home = Home::new();
    let dir = home.path();
    let book = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/orders.xlsx");
    ok(
        dir,
        &[
            "ingest",
            book,
            "--as",
            "orders",
            "--skip-rows",
            "1",
            "--null",
            "NA",
            "-q",
        ],
    );
    let types = ok(
        dir,
        &[
            "sql",
            "--format",
            "csv",
            "select typeof(id) i, typeof(region) r, typeof(amount) a, typeof(paid) p, typeof(day) d, typeof(shipped) s, typeof(note) n from orders limit 1",
        ],
    );
    assert_eq!(
        types.trim(),
        "i,r,a,p,d,s,n\nBIGINT,VARCHAR,DOUBLE,BOOLEAN,DATE,TIMESTAMP,VARCHAR",
        "{types}"
    );
    let values = ok(
        dir,
        &[
            "sql",
            "--format",
            "csv",
            "select count(*) n, sum(amount) a, count(note) notes, count(paid) paid, min(day) first, max(shipped) last from orders",
        ],
    );
    assert_eq!(
        values.trim(),
        "n,a,notes,paid,first,last\n4,24.75,2,3,2026-07-01,2026-10-01T00:00:01",
        "{values}"
    );
    ok(
        dir,
        &[
            "ingest", book, "--as", "regions", "--sheet", "regions", "-q",
        ],
    );
    assert!(ok(
        dir,
        &[
            "sql",
            "--format",
            "csv",
            "select name from regions where region = 'us'"
        ]
    )
    .contains("United States"));
    let e = fails(dir, &["ingest", book, "--as", "x", "--sheet", "nope"]);
    assert!(
        e.contains("no sheet `nope`") && e.contains("orders, regions"),
        "{e}"
    );
    std::fs::write(dir.join("broken.xlsx"), b"PK\x03\x04 not really a workbook").unwrap();
    let e = fails(
        dir,
        &[
            "ingest",
            dir.join("broken.xlsx").to_str().unwrap(),
            "--as",
            "x",
        ],
    );
    assert!(e.contains("cannot read as a spreadsheet"), "{e}");
    let e = fails(dir, &["sql", "select * from x"]);
    assert!(e.contains("x"), "nothing was published: {e}");
}
