//! Retries against a local server that answers with canned responses:
//! throttling and 5xx are retried, a failed condition is not.

use super::*;
use hakiri_data_api::{Catalog, DatasetEntry};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Serves `answers` in order, one per connection; counts requests.
fn server(answers: Vec<(u16, &'static str)>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        for (status, body) in answers {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body_in = vec![0; length];
            reader.read_exact(&mut body_in).unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            let mut stream = reader.into_inner();
            write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
        }
    });
    (url, seen)
}

fn client(endpoint: String) -> Client {
    let settings = hakiri_aws::Settings {
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.clone()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        allow_http: true,
    };
    Client {
        endpoint,
        region: "us-east-1".into(),
        credentials: hakiri_aws::credentials(&settings).unwrap(),
        http: reqwest::Client::new(),
    }
}

const THROTTLE: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate exceeded"}"#;

#[tokio::test]
async fn throttling_and_server_errors_are_retried() {
    let (url, seen) = server(vec![
        (400, THROTTLE),
        (500, "{}"),
        (200, r#"{"TableNames":["a"]}"#),
    ]);
    let v = client(url).call("ListTables", json!({})).await.unwrap();
    assert_eq!(v["TableNames"][0], "a");
    assert_eq!(seen.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_failed_condition_is_answered_at_once() {
    let (url, seen) = server(vec![(
        400,
        r#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed"}"#,
    )]);
    let err = client(url)
        .call("PutItem", json!({}))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "DynamoDB PutItem: ConditionalCheckFailedException: The conditional request failed (HTTP 400)"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn endless_throttling_gives_up_with_the_reason() {
    let (url, seen) = server(vec![(400, THROTTLE); ATTEMPTS as usize]);
    let err = client(url)
        .call("Scan", json!({}))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "DynamoDB Scan failed 6 times, the last with ThrottlingException: Rate exceeded"
        ),
        "{err}"
    );
    assert_eq!(seen.load(Ordering::SeqCst), ATTEMPTS as usize);
}

const CONDITION_FAILED: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed"}"#;

fn entry(version: u64, updated: &str) -> DatasetEntry {
    DatasetEntry {
        name: "sales".into(),
        version,
        location: format!("/data/sales/v{version}"),
        source: "s.csv".into(),
        rows: 2,
        bytes: 10,
        schema: json!([{"name": "a", "type": "i64"}]),
        updated: updated.into(),
        description: None,
    }
}

fn stored(e: &DatasetEntry) -> &'static str {
    Box::leak(
        json!({ "Item": catalog::item(e) })
            .to_string()
            .into_boxed_str(),
    )
}

/// The first PutItem lands but its answer is lost (a 500 here); the retry
/// fails its own condition. Reading the item back shows it is ours: no conflict.
#[tokio::test]
async fn a_retried_publish_that_had_landed_is_not_a_conflict() {
    let mine = entry(3, "2026-11-28T12:00:00Z");
    let (url, seen) = server(vec![
        (500, "{}"),
        (400, CONDITION_FAILED),
        (200, stored(&mine)),
    ]);
    let catalog = catalog::DynamoCatalog {
        client: Arc::new(client(url)),
        table: "t".into(),
    };
    catalog.publish(mine).await.unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 3, "put, retried put, get");
}

/// Someone else's version 3 in place: a conflict naming what was found.
#[tokio::test]
async fn a_publish_beaten_by_another_writer_is_a_conflict() {
    let theirs = entry(3, "2026-11-28T11:59:59Z");
    let (url, _) = server(vec![(400, CONDITION_FAILED), (200, stored(&theirs))]);
    let catalog = catalog::DynamoCatalog {
        client: Arc::new(client(url)),
        table: "t".into(),
    };
    let err = catalog
        .publish(entry(3, "2026-11-28T12:00:00Z"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("expected version 2") && err.contains("found version 3"),
        "{err}"
    );
}
