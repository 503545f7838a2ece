//! A scratch bucket on the S3-compatible server `.ci/services.sh` starts
//! (`HAKIRI_TEST_AWS_ENDPOINT`), and the environment that points a Hakiri
//! binary at it, so tests do not each spell out endpoint and keys.

use crate::http;

pub struct Bucket {
    pub endpoint: String,
    pub name: String,
}

impl Bucket {
    /// Creates bucket `name` (made unique per test process).
    pub fn create(endpoint: &str, name: &str) -> Bucket {
        let name = format!("{name}-{}", std::process::id());
        let url = format!("{endpoint}/{name}");
        let resp = http::request("PUT", &url, &[], b"", http::TIMEOUT)
            .unwrap_or_else(|e| panic!("cannot create bucket {url}: {e}"));
        assert_eq!(resp.status, 200, "creating {url}: {}", resp.body);
        Bucket {
            endpoint: endpoint.to_string(),
            name,
        }
    }

    /// `s3://bucket/prefix`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.name)
    }

    /// `[s3-sync]` and the AWS variables a binary needs to reach the server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        self.env_via(&self.endpoint)
    }

    /// [`Bucket::env`] with the server reached at `endpoint` (a [`Throttled`] one).
    pub fn env_via(&self, endpoint: &str) -> Vec<(&'static str, String)> {
        vec![
            ("HAKIRI_S3_SYNC__ENDPOINT", endpoint.to_string()),
            ("HAKIRI_S3_SYNC__ALLOW_HTTP", "true".into()),
            ("HAKIRI_S3_SYNC__REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ]
    }

    /// Deletes `key`.
    pub fn delete(&self, key: &str) {
        self.boto("c.delete_object(Bucket=b, Key=k)", key)
            .expect("the delete succeeds");
    }

    /// The object at `key`, if there is one.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.boto(
            "sys.stdout.buffer.write(c.get_object(Bucket=b, Key=k)['Body'].read())",
            key,
        )
    }

    /// Runs `statement` with boto3 (installed with moto by `.ci/services.sh`)
    /// as client `c` on bucket `b` and key `k`: the server refuses unsigned
    /// object requests. `None` if it raised.
    fn boto(&self, statement: &str, key: &str) -> Option<Vec<u8>> {
        let script = format!(
            "import boto3,sys\nb, k = sys.argv[2], sys.argv[3]\nc = boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='test', aws_secret_access_key='test', region_name='us-east-1')\n{statement}"
        );
        let out = std::process::Command::new("python3")
            .args(["-c", &script, &self.endpoint, &self.name, key])
            .output()
            .expect("python3 runs");
        out.status.success().then_some(out.stdout)
    }
}

/// An S3 endpoint in front of the real one that answers the first `n`
/// connections with `503 SlowDown`, what S3 says when it throttles, and
/// relays the rest byte for byte (signatures stay valid: the client signed
/// for this endpoint's host, and the server checks the host it was sent).
pub struct Throttled {
    pub endpoint: String,
    throttled: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Throttled {
    pub fn start(upstream: &str, n: usize) -> Throttled {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let throttled = std::sync::Arc::new(AtomicUsize::new(0));
        let (count, seen) = (throttled.clone(), AtomicUsize::new(0));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if seen.fetch_add(1, Ordering::SeqCst) < n {
                    slow_down(stream);
                    count.fetch_add(1, Ordering::SeqCst);
                } else if let Ok(up) = std::net::TcpStream::connect(&upstream) {
                    relay(stream, up);
                }
            }
        });
        Throttled {
            endpoint,
            throttled,
        }
    }

    /// Connections answered with 503 so far.
    pub fn throttled(&self) -> usize {
        self.throttled.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Reads one request (head and `content-length` body), answers 503 SlowDown, closes.
fn slow_down(mut stream: std::net::TcpStream) {
    use std::io::{BufRead, BufReader, Read, Write};
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let mut reader = BufReader::new(stream.try_clone().expect("a socket clone"));
    let mut length = 0u64;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let _ = std::io::copy(&mut reader.take(length), &mut std::io::sink());
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
    let _ = write!(
        stream,
        "HTTP/1.1 503 Slow Down\r\ncontent-type: application/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Copies bytes both ways until either side closes.
fn relay(client: std::net::TcpStream, server: std::net::TcpStream) {
    let pipe = |mut from: std::net::TcpStream, mut to: std::net::TcpStream| {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(std::net::Shutdown::Write);
        });
    };
    match (client.try_clone(), server.try_clone()) {
        (Ok(c), Ok(s)) => {
            pipe(client, s);
            pipe(server, c);
        }
        _ => eprintln!("relay: cannot clone a socket"),
    }
}
