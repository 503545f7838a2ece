//! The `http` connector against a loopback server: nothing here connects
//! beyond 127.0.0.0/8.

use crate::http::HttpConnector;
use crate::tests::{context, remote};
use hakiri_data_api::Connector;
use hakiri_kernel::Context;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// Opens `url` with the http connector and reads it whole, on a blocking thread.
async fn fetch(ctx: &Context, url: &str) -> anyhow::Result<String> {
    let mut reader = HttpConnector.open(url, ctx).await?;
    tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        reader.read_to_string(&mut text)?;
        anyhow::Ok(text)
    })
    .await?
}

fn fails(result: anyhow::Result<String>) -> String {
    match result {
        Ok(body) => panic!("fetched {body:?} where a refusal was expected"),
        Err(e) => format!("{e:#}"),
    }
}

fn response(body: &str, content_length: bool) -> String {
    let length = if content_length {
        format!("Content-Length: {}\r\n", body.len())
    } else {
        String::new()
    };
    format!("HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\n{length}Connection: close\r\n\r\n{body}")
}

fn redirect(location: &str) -> String {
    format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}

/// Answers one request with a canned response chosen by its path.
fn answer(mut stream: TcpStream, port: u16) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let text = match path {
        "/public/data.csv" => response("a,b\n1,2\n", true),
        "/private/secret.csv" => response("secret\n1\n", true),
        "/public/redirect" => redirect(&format!("http://127.0.0.1:{port}/private/secret.csv")),
        "/public/hop" => redirect(&format!("http://127.0.0.2:{port}/public/data.csv")),
        "/public/loop" => redirect("/public/loop"),
        "/public/big.csv" => response(&"x\n".repeat(5000), true),
        "/public/stream.csv" => response(&"x\n".repeat(5000), false),
        "/public/slow.csv" => {
            std::thread::sleep(Duration::from_secs(6));
            response("a\n1\n", true)
        }
        _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
    };
    stream.write_all(text.as_bytes())?;
    stream.flush()
}

/// Serves `listener` from a thread, one thread per connection, until the
/// test process ends.
fn serve(listener: TcpListener) {
    listener.set_nonblocking(false).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            std::thread::spawn(move || {
                let _ = answer(stream, port);
            });
        }
    });
}

/// Whether a proxy is configured; the local user's requests would go through it.
fn proxied() -> bool {
    ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

#[tokio::test]
async fn remote_fetches_are_held_to_the_allow_lists() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}/public/");
    let named = format!("http://localhost:{port}/public/");
    let hop = format!("http://127.0.0.2:{port}/public/");
    let urls = format!("allow_urls = [\"{base}\", \"{named}\", \"{hop}\"]\n");

    // Listed URLs, but loopback is not in allow_addresses: refused before connecting.
    let agent = remote(&context(&format!("[connectors]\n{urls}")));
    for url in [format!("{base}data.csv"), format!("{named}data.csv")] {
        let e = fails(fetch(&agent, &url).await);
        assert!(
            e.contains("non-public address") && e.contains("[connectors] allow_addresses"),
            "{url}: {e}"
        );
    }
    let e = fails(
        fetch(
            &agent,
            &format!("http://127.0.0.1:{port}/private/secret.csv"),
        )
        .await,
    );
    assert!(e.contains("[connectors] allow_urls"), "{e}");
    let e = fails(
        fetch(
            &agent,
            &format!("http://u:pw@127.0.0.1:{port}/public/data.csv"),
        )
        .await,
    );
    assert!(
        e.contains("user name or password") && !e.contains("pw@"),
        "{e}"
    );
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(e) => panic!("accept failed: {e}"),
        Ok((_, from)) => panic!("a refused fetch connected to the server (from {from})"),
    }

    // With 127.0.0.1 allowed the same fetches work, by address and by name.
    serve(listener);
    let config = format!(
        "[connectors]\n{urls}allow_addresses = [\"127.0.0.1\"]\nmax_bytes = 1000\ntimeout_ms = 2000\n"
    );
    let local = context(&config);
    let agent = remote(&local);
    assert_eq!(
        fetch(&agent, &format!("{base}data.csv")).await.unwrap(),
        "a,b\n1,2\n"
    );
    assert_eq!(
        fetch(&agent, &format!("{named}data.csv")).await.unwrap(),
        "a,b\n1,2\n"
    );

    // A redirect out of allow_urls, to a listed URL on a refused address, in a loop.
    let e = fails(fetch(&agent, &format!("{base}redirect")).await);
    assert!(
        e.contains(&format!(
            "redirect to `http://127.0.0.1:{port}/private/secret.csv` refused"
        )) && e.contains("[connectors] allow_urls"),
        "{e}"
    );
    let e = fails(fetch(&agent, &format!("{base}hop")).await);
    assert!(
        e.contains("redirect to") && e.contains("[connectors] allow_addresses"),
        "{e}"
    );
    let e = fails(fetch(&agent, &format!("{base}loop")).await);
    assert!(e.contains("more than 5 redirects"), "{e}");

    // Bodies over max_bytes fail, announced (Content-Length) or streamed.
    for name in ["big.csv", "stream.csv"] {
        let e = fails(fetch(&agent, &format!("{base}{name}")).await);
        assert!(
            e.contains("more than 1000 bytes") && e.contains("[connectors] max_bytes"),
            "{name}: {e}"
        );
    }

    // Timeouts apply to everyone.
    let e = fails(fetch(&agent, &format!("{base}slow.csv")).await);
    assert!(e.contains("timed out") && e.contains("timeout_ms"), "{e}");
    if !proxied() {
        let e = fails(fetch(&local, &format!("{base}slow.csv")).await);
        assert!(e.contains("timed out"), "{e}");
        // The CLI user has no allow-lists, no address filter and no byte cap.
        let secret = format!("http://127.0.0.1:{port}/private/secret.csv");
        assert_eq!(fetch(&local, &secret).await.unwrap(), "secret\n1\n");
        assert_eq!(
            fetch(&local, &format!("{base}redirect")).await.unwrap(),
            "secret\n1\n"
        );
        assert_eq!(
            fetch(&local, &format!("{base}big.csv"))
                .await
                .unwrap()
                .len(),
            10_000
        );
    }
}

#[tokio::test]
async fn bad_allow_list_entries_are_named() {
    let agent = remote(&context(
        "[connectors]\nallow_urls = [\"https://example.com/\"]\nallow_addresses = [\"10.0.0.1/8\"]\n",
    ));
    let e = fails(fetch(&agent, "https://example.com/a.csv").await);
    assert!(
        e.contains("`10.0.0.1/8`") && e.contains("10.0.0.0/8"),
        "{e}"
    );
    let agent = remote(&context("[connectors]\nallow_urls = [\"example.com\"]\n"));
    let e = fails(fetch(&agent, "https://example.com/a.csv").await);
    assert!(e.contains("allow_urls entry `example.com`"), "{e}");
    // Refused while building the client, before any request.
    let local = context("[connectors]\ntimeout_ms = 0\n");
    let e = fails(fetch(&local, "https://example.com/a.csv").await);
    assert!(e.contains("[connectors] timeout_ms is 0"), "{e}");
}
