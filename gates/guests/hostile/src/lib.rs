//! A connector for the host's refusal tests: `hostile://<what>` misbehaves as
//! `<what>` says; `hostile://probe` reports what the sandbox let it see.
use hakiri_connector::{host, Entry, Guest, GuestRecords, Info, Records, Request};
use std::cell::Cell;

struct Hostile;

struct Misbehaving {
    what: String,
    calls: Cell<u32>,
}

fn fetch(url: &str) -> String {
    let req = Request {
        method: "GET".into(),
        url: url.into(),
        headers: vec![],
        body: None,
    };
    match host::fetch(&req) {
        Ok(r) => format!("status {}", r.status),
        Err(e) => format!("refused: {e}"),
    }
}

fn record(key: &str, value: &str) -> String {
    let escaped: String = value
        .chars()
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c if c.is_control() => vec![' '],
            c => vec![c],
        })
        .collect();
    format!("{{\"probe\":\"{key}\",\"outcome\":\"{escaped}\"}}\n")
}

impl Guest for Hostile {
    type Records = Misbehaving;

    fn describe() -> Info {
        Info {
            name: "hostile".into(),
            scheme: "hostile".into(),
            description: "Misbehaves on purpose".into(),
            config_schema: "{}".into(),
        }
    }

    fn discover(source: String) -> Result<Vec<Entry>, String> {
        Ok(vec![Entry {
            source,
            description: "trouble".into(),
        }])
    }

    fn open(source: String) -> Result<Records, String> {
        let what = source.trim_start_matches("hostile://").to_string();
        if what == "refuse" {
            return Err("this source does not exist".into());
        }
        Ok(Records::new(Misbehaving {
            what,
            calls: Cell::new(0),
        }))
    }
}

impl GuestRecords for Misbehaving {
    fn next(&self) -> Result<Option<Vec<u8>>, String> {
        let n = self.calls.get();
        self.calls.set(n + 1);
        let (what, target) = self.what.split_once('/').unwrap_or((&self.what, ""));
        match what {
            "loop" => loop {
                std::hint::black_box(n);
            },
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "trap" => panic!("the guest gave up"),
            "malformed" if n == 0 => Ok(Some(b"{\"ok\":1}\n{\"ok\":2\nnot json\n".to_vec())),
            "flood" => Ok(Some(record("flood", &"x".repeat(1 << 20)).into_bytes())),
            "slow" if n < 1000 => {
                // Each call is quick; together they outlast the ingest's time limit.
                let t = std::time::Instant::now();
                while t.elapsed() < std::time::Duration::from_millis(50) {}
                Ok(Some(record("slow", &n.to_string()).into_bytes()))
            }
            "fetch" if n == 0 => Ok(Some(
                record("fetch", &fetch(&format!("http://{target}"))).into_bytes(),
            )),
            "probe" if n == 0 => {
                let mut out = String::new();
                let file = std::fs::read_to_string("/etc/passwd");
                out += &record("file", &format!("{:?}", file.map(|s| s.len())));
                out += &record("env", &format!("{}", std::env::vars().count()));
                let tcp = std::net::TcpStream::connect("127.0.0.1:22");
                out += &record("tcp", &format!("{:?}", tcp.map(|_| "connected")));
                Ok(Some(out.into_bytes()))
            }
            _ => Ok(None),
        }
    }
}

hakiri_connector::export!(Hostile);
