//! A small blocking HTTP/1.1 client for talking to `serve` and test servers:
//! one request per connection, `http://` only, Content-Length and chunked
//! bodies (an MCP answer arrives as a chunked SSE stream).

use serde_json::Value;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// How long [`get`] and [`post_json`] allow, from connect to last byte.
pub const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// As received: names in their original case, in order.
    pub headers: Vec<(String, String)>,
    /// The body as text (invalid UTF-8 replaced).
    pub body: String,
}

impl Response {
    /// The first header named `name`, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics, showing it, if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {}", self.body))
    }
}

/// `GET url`; panics if the request fails or takes longer than [`TIMEOUT`].
pub fn get(url: &str) -> Response {
    request("GET", url, &[], b"", TIMEOUT).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// `POST url` with a JSON `body` and extra `headers`; panics if the request
/// fails or takes longer than [`TIMEOUT`].
pub fn post_json(url: &str, headers: &[(&str, &str)], body: &str) -> Response {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    request("POST", url, &all, body.as_bytes(), TIMEOUT)
        .unwrap_or_else(|e| panic!("POST {url}: {e}"))
}

/// One request over a fresh connection, all of it within `timeout`.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> io::Result<Response> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid(format!("{url}: only http:// URLs are supported")))?;
    let (host, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
    let addr = host
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| invalid(format!("{host} resolves to no address")))?;
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    let mut stream = Deadline {
        stream,
        deadline: Instant::now() + timeout,
        timeout,
    };
    // A `Host` among `headers` replaces the URL's (a DNS-rebinding test).
    let own_host = !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host"));
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\n{}Connection: close\r\nContent-Length: {}\r\n",
        if own_host {
            format!("Host: {host}\r\n")
        } else {
            String::new()
        },
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    // Head and body in one write, as clients do for small bodies. A server
    // may answer (a 401, a 413) and close without reading the body; the
    // write then fails, and the answer is still there to read, as curl
    // reads it.
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    if let Err(e) = stream.write_all(&request) {
        if !matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ) {
            return Err(e);
        }
    }

    let mut r = BufReader::new(stream);
    let status_line = line(&mut r)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(format!("not an HTTP status line: {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let l = line(&mut r)?;
        if l.is_empty() {
            break;
        }
        if let Some((name, value)) = l.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    let mut response = Response {
        status,
        headers,
        body: String::new(),
    };
    let mut body = Vec::new();
    if method == "HEAD" || status == 204 || status == 304 {
        // No body, whatever the headers say.
    } else if response
        .header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
    {
        read_chunked(&mut r, &mut body)?;
    } else if let Some(length) = response.header("content-length") {
        let length = length
            .parse()
            .map_err(|_| invalid(format!("bad Content-Length {length:?}")))?;
        body.resize(length, 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
    }
    response.body = String::from_utf8_lossy(&body).into_owned();
    Ok(response)
}

fn read_chunked(r: &mut impl BufRead, body: &mut Vec<u8>) -> io::Result<()> {
    loop {
        let size_line = line(r)?;
        let hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(hex, 16)
            .map_err(|_| invalid(format!("bad chunk size {size_line:?}")))?;
        if size == 0 {
            // Trailers, up to the empty line.
            while !line(r)?.is_empty() {}
            return Ok(());
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        if !line(r)?.is_empty() {
            return Err(invalid("a chunk runs past its size".into()));
        }
    }
}

/// One line without its CRLF; EOF before it is an error.
fn line(r: &mut impl BufRead) -> io::Result<String> {
    let mut l = String::new();
    if r.read_line(&mut l)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(l.trim_end_matches(['\r', '\n']).to_string())
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// A connection whose reads and writes fail once `deadline` passes, so a
/// server that trickles bytes cannot stretch the request past its timeout.
struct Deadline {
    stream: TcpStream,
    deadline: Instant,
    timeout: Duration,
}

impl Deadline {
    fn left(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(self.timed_out())
        } else {
            Ok(left)
        }
    }

    fn timed_out(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no complete response within {:?}", self.timeout),
        )
    }

    /// Socket timeouts surface as WouldBlock on Unix.
    fn check(&self, e: io::Error) -> io::Error {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => self.timed_out(),
            _ => e,
        }
    }
}

impl Read for Deadline {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.set_read_timeout(Some(self.left()?))?;
        self.stream.read(buf).map_err(|e| self.check(e))
    }
}

impl Write for Deadline {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.set_write_timeout(Some(self.left()?))?;
        self.stream.write(buf).map_err(|e| self.check(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::mpsc;

    /// Serves `response` to one connection; yields the request it read.
    fn server(response: &'static str) -> (String, mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut request = String::new();
            let mut length = 0;
            loop {
                let l = line(&mut r).unwrap();
                if let Some(v) = l.strip_prefix("Content-Length: ") {
                    length = v.parse().unwrap();
                }
                request.push_str(&l);
                request.push('\n');
                if l.is_empty() {
                    break;
                }
            }
            let mut body = vec![0; length];
            r.read_exact(&mut body).unwrap();
            request.push_str(&String::from_utf8(body).unwrap());
            (&conn).write_all(response.as_bytes()).unwrap();
            tx.send(request).unwrap();
        });
        (url, rx)
    }

    #[test]
    fn posts_json_and_reads_a_chunked_answer() {
        let (url, seen) = server(
            "HTTP/1.1 200 OK\r\nmcp-session-id: abc\r\nTransfer-Encoding: chunked\r\n\r\n\
             6\r\ndata: \r\nb;ext=1\r\n{\"ok\":true}\r\n0\r\nX-Trailer: t\r\n\r\n",
        );
        let r = post_json(
            &format!("{url}/mcp"),
            &[("Accept", "text/event-stream")],
            "{}",
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Mcp-Session-Id"), Some("abc"));
        assert_eq!(r.body, "data: {\"ok\":true}");
        let request = seen.recv().unwrap();
        assert!(
            request.starts_with("POST /mcp HTTP/1.1\nHost: 127.0.0.1:"),
            "{request}"
        );
        assert!(
            request.contains("\nContent-Type: application/json\nAccept: text/event-stream\n"),
            "{request}"
        );
        assert!(request.ends_with("\n\n{}"), "{request}");
    }

    #[test]
    fn gets_a_content_length_body_as_json() {
        let (url, seen) = server(
            "HTTP/1.1 404 Not Found\r\nContent-Length: 17\r\n\r\n{\"state\":\"gone\"}\ntrailing bytes are not read",
        );
        let r = get(&url);
        assert_eq!(r.status, 404);
        assert_eq!(r.json(), serde_json::json!({"state": "gone"}));
        assert!(seen.recv().unwrap().starts_with("GET / HTTP/1.1\n"));
    }

    #[test]
    fn a_silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let start = Instant::now();
        let e = request("GET", &url, &[], b"", Duration::from_millis(300)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(start.elapsed() < Duration::from_secs(5));
        drop(listener);
    }
}
