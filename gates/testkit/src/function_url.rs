//! A local Lambda Function URL in front of the Runtime API emulator: plain
//! HTTP requests become payload-2.0 events, and the function's answers
//! (`statusCode`, `headers`, `body`) become HTTP responses, so `curl` works
//! against a bootstrap exactly as against a deployed function.

use crate::lambda::{Emulator, Kind};
use serde_json::{json, Map, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// Starts the front for `emulator`; returns its `http://127.0.0.1:port/`.
pub fn start(emulator: Arc<Emulator>) -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/", listener.local_addr()?);
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let emulator = emulator.clone();
            std::thread::spawn(move || {
                let _ = serve(conn, &emulator);
            });
        }
    });
    Ok(url)
}

fn serve(conn: TcpStream, emulator: &Emulator) -> std::io::Result<()> {
    let mut out = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = Map::new();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let k = k.trim().to_lowercase();
            if k == "content-length" {
                length = v.trim().parse().unwrap_or(0);
            }
            headers.insert(k, json!(v.trim()));
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    let event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
            "requestId": "function-url",
        },
        "body": String::from_utf8_lossy(&body),
        "isBase64Encoded": false,
    });
    let id = emulator.invoke(&event.to_string());
    let (status, content_type, body) = match emulator.wait(&id, Duration::from_secs(60)) {
        Some(o) if o.kind == Kind::Response => {
            let v: Value = serde_json::from_str(&o.body).unwrap_or(Value::Null);
            match v["statusCode"].as_u64() {
                Some(s) => (
                    s,
                    v["headers"]["content-type"]
                        .as_str()
                        .unwrap_or("application/json")
                        .to_string(),
                    v["body"].as_str().unwrap_or("").to_string(),
                ),
                // Like AWS: an answer that is not an HTTP response is the body.
                None => (200, "application/json".into(), o.body),
            }
        }
        Some(o) => (502, "application/json".into(), o.body),
        None => (
            504,
            "text/plain".into(),
            "the function did not answer".into(),
        ),
    };
    write!(
        out,
        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    out.flush()
}
