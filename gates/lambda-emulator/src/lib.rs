//! A local AWS Lambda Runtime API, enough to run a real bootstrap:
//! `GET /2018-06-01/runtime/invocation/next`, `POST …/{id}/response`,
//! `POST …/{id}/error` and `POST /2018-06-01/runtime/init/error`.
//! Std only (threads), so the gates can use it without an async runtime.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How an invocation ended, as the bootstrap reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Response,
    Error,
    InitError,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    /// Request id (empty for init errors).
    pub id: String,
    pub kind: Kind,
    pub body: String,
    pub at: Instant,
}

#[derive(Default)]
struct State {
    queue: VecDeque<(String, String)>,
    outcomes: Vec<Outcome>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
    next_calls: AtomicUsize,
    counter: AtomicUsize,
}

/// A running emulator; stops when dropped.
pub struct Emulator {
    addr: String,
    shared: Arc<Shared>,
}

impl Emulator {
    /// Listens on an ephemeral loopback port.
    pub fn start() -> std::io::Result<Emulator> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            next_calls: AtomicUsize::new(0),
            counter: AtomicUsize::new(0),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let s = s.clone();
                    std::thread::spawn(move || {
                        let _ = serve(conn, &s);
                    });
                }
            }
        });
        Ok(Emulator { addr, shared })
    }

    /// `host:port`, the value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> &str {
        &self.addr
    }

    /// Environment a bootstrap needs to find this emulator.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_LAMBDA_RUNTIME_API", self.addr.clone()),
            ("AWS_LAMBDA_FUNCTION_NAME", "hakiri-local".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "local".into()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "local".into()),
        ]
    }

    /// Queues an invocation with this JSON payload; returns its request id.
    pub fn invoke(&self, payload: &str) -> String {
        let id = format!(
            "req-{}",
            self.shared.counter.fetch_add(1, Ordering::SeqCst) + 1
        );
        let mut st = self.shared.state.lock().expect("emulator state");
        st.queue.push_back((id.clone(), payload.to_string()));
        self.shared.changed.notify_all();
        id
    }

    /// Waits for the bootstrap to answer request `id` (or report an init error).
    pub fn wait(&self, id: &str, timeout: Duration) -> Option<Outcome> {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.state.lock().expect("emulator state");
        loop {
            if let Some(o) = st
                .outcomes
                .iter()
                .find(|o| o.id == id || o.kind == Kind::InitError)
            {
                return Some(o.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            st = self
                .shared
                .changed
                .wait_timeout(st, left)
                .expect("emulator state")
                .0;
        }
    }

    /// How many times the bootstrap has asked for its next invocation.
    pub fn next_calls(&self) -> usize {
        self.shared.next_calls.load(Ordering::SeqCst)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        // Wake the accept loop so it sees the stop flag.
        let _ = TcpStream::connect(&self.addr);
    }
}

fn serve(conn: TcpStream, s: &Shared) -> std::io::Result<()> {
    // Heads and bodies go out in separate writes: without this, Nagle and
    // the client's delayed ACK add 40 ms to every invocation.
    conn.set_nodelay(true)?;
    let mut out = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        let body = String::from_utf8_lossy(&body).into_owned();
        const BASE: &str = "/2018-06-01/runtime/";
        let route = path.strip_prefix(BASE).unwrap_or("");
        match (method.as_str(), route) {
            ("GET", "invocation/next") => {
                s.next_calls.fetch_add(1, Ordering::SeqCst);
                let Some((id, payload)) = next_invocation(s) else {
                    return Ok(());
                };
                let deadline = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis()
                    + 60_000;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: {id}\r\nLambda-Runtime-Deadline-Ms: {deadline}\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:local:000000000000:function:hakiri-local\r\nLambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000\r\nContent-Length: {}\r\n\r\n",
                    payload.len()
                );
                out.write_all(head.as_bytes())?;
                out.write_all(payload.as_bytes())?;
            }
            ("POST", "init/error") => {
                record(s, String::new(), Kind::InitError, body);
                accepted(&mut out)?;
            }
            ("POST", r)
                if r.starts_with("invocation/")
                    && (r.ends_with("/response") || r.ends_with("/error")) =>
            {
                let rest = &r["invocation/".len()..];
                let (id, tail) = rest.split_once('/').unwrap_or((rest, ""));
                let kind = if tail == "response" {
                    Kind::Response
                } else {
                    Kind::Error
                };
                record(s, id.to_string(), kind, body);
                accepted(&mut out)?;
            }
            _ => {
                out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?;
            }
        }
        out.flush()?;
    }
}

fn next_invocation(s: &Shared) -> Option<(String, String)> {
    let mut st = s.state.lock().ok()?;
    loop {
        if s.stop.load(Ordering::SeqCst) {
            return None;
        }
        if let Some(item) = st.queue.pop_front() {
            return Some(item);
        }
        st = s
            .changed
            .wait_timeout(st, Duration::from_millis(200))
            .ok()?
            .0;
    }
}

fn record(s: &Shared, id: String, kind: Kind, body: String) {
    let at = Instant::now();
    if let Ok(mut st) = s.state.lock() {
        st.outcomes.push(Outcome { id, kind, body, at });
        s.changed.notify_all();
    }
}

fn accepted(out: &mut TcpStream) -> std::io::Result<()> {
    out.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}\n")
}
