//! Tests of the address classifier, CIDR blocks, URL prefixes and the remote policy.

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn classifies_addresses() {
    let refused = [
        "127.0.0.1",
        "127.255.255.254",
        "::1",
        "10.0.0.1",
        "10.255.255.255",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "fc00::1",
        "fd12:3456::1",
        "169.254.0.1",
        "169.254.169.254",
        "fe80::1",
        "febf::1",
        "0.0.0.0",
        "::",
        "0.1.2.3",
        "100.64.0.1",
        "100.127.255.255",
        "255.255.255.255",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "ff02::1",
        "192.0.2.1",
        "198.51.100.7",
        "203.0.113.9",
        "2001:db8::1",
        "198.18.0.1",
        "192.0.0.8",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "::8.8.8.8",
        "64:ff9b::a00:1",
        "2002:a00:1::1",
        "2001::1",
        "fec0::1",
    ];
    for a in refused {
        assert!(!is_public(ip(a)), "{a} classified as public");
    }
    let public = [
        "8.8.8.8",
        "1.1.1.1",
        "172.15.255.255",
        "172.32.0.1",
        "100.63.255.255",
        "100.128.0.1",
        "169.253.1.1",
        "192.169.0.1",
        "223.255.255.254",
        "2606:4700::1111",
        "2a00:1450:4001::200e",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ];
    for a in public {
        assert!(is_public(ip(a)), "{a} classified as non-public");
    }
}

#[test]
fn cidr_blocks_match_and_bad_entries_are_named() {
    let c = Cidr::parse("10.0.0.0/8").unwrap();
    assert!(c.contains(ip("10.1.2.3")));
    assert!(c.contains(ip("::ffff:10.9.9.9")));
    assert!(!c.contains(ip("11.0.0.1")));
    assert!(!c.contains(ip("::1")));
    let one = Cidr::parse("127.0.0.1").unwrap();
    assert!(one.contains(ip("127.0.0.1")));
    assert!(!one.contains(ip("127.0.0.2")));
    let v6 = Cidr::parse("::1").unwrap();
    assert!(v6.contains(ip("::1")));
    assert!(!v6.contains(ip("127.0.0.1")));
    let ula = Cidr::parse("fd00::/8").unwrap();
    assert!(ula.contains(ip("fd12::5")));
    assert!(!ula.contains(ip("fe80::1")));
    assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("1.2.3.4")));
    assert!(Cidr::parse("::ffff:10.0.0.0/104")
        .unwrap()
        .contains(ip("10.3.2.1")));
    for (entry, says) in [
        ("10.0.0.1/8", "did you mean `10.0.0.0/8`"),
        ("10.0.0.0/33", "0 to 32"),
        ("::/129", "0 to 128"),
        ("example.com", "not an IP address"),
        ("10.0.0.0/x", "prefix length"),
    ] {
        let e = Cidr::parse(entry).unwrap_err();
        assert!(e.contains(&format!("`{entry}`")) && e.contains(says), "{e}");
        assert!(e.contains("[connectors] allow_addresses"), "{e}");
    }
}

fn admits(prefix: &str, url: &str) -> bool {
    UrlPrefix::parse(prefix)
        .unwrap()
        .admits(&Url::parse(url).unwrap())
}

#[test]
fn url_prefixes_match_whole_hosts_ports_and_segments() {
    let p = "https://data.example.com/public/";
    assert!(admits(p, "https://data.example.com/public/a.csv"));
    assert!(admits(p, "https://DATA.example.com:443/public/x/y.csv"));
    assert!(admits(p, "https://data.example.com/public/"));
    assert!(!admits(p, "https://data.example.com.evil.io/public/a.csv"));
    assert!(!admits(p, "https://data.example.com/publicity"));
    assert!(!admits(p, "https://data.example.com/public"));
    assert!(!admits(p, "https://data.example.com/public/../secret"));
    assert!(!admits(p, "https://data.example.com/public/%2e%2e/secret"));
    assert!(!admits(p, "http://data.example.com/public/a.csv"));
    assert!(!admits(p, "https://data.example.com:8443/public/a.csv"));
    assert!(!admits(
        p,
        "https://evil.io/https://data.example.com/public/"
    ));
    assert!(!admits(p, "https://sub.data.example.com/public/a.csv"));
    let no_slash = "https://data.example.com/public";
    assert!(admits(no_slash, "https://data.example.com/public"));
    assert!(admits(no_slash, "https://data.example.com/public/a.csv"));
    assert!(!admits(no_slash, "https://data.example.com/publicity"));
    assert!(admits(
        "https://data.example.com",
        "https://data.example.com/any/thing"
    ));
    assert!(admits(
        "http://127.0.0.1:8080/d/",
        "http://127.0.0.1:8080/d/x"
    ));
    assert!(!admits(
        "http://127.0.0.1:8080/d/",
        "http://127.0.0.1:8081/d/x"
    ));
    assert!(admits("http://h/d/", "http://h:80/d/x"));
    for (entry, says) in [
        ("data.example.com/public/", "is not a URL"),
        ("ftp://data.example.com/", "http:// or https://"),
        ("https://u:p@data.example.com/", "user name or password"),
        ("https://data.example.com/?q=1", "query or fragment"),
    ] {
        let e = UrlPrefix::parse(entry).unwrap_err();
        assert!(e.contains(&format!("`{entry}`")) && e.contains(says), "{e}");
    }
}

#[test]
fn remote_policy_refuses_userinfo_unlisted_urls_and_private_literals() {
    let cfg = ConnectorsConfig {
        allow_urls: vec![
            "http://127.0.0.1:9/".into(),
            "https://example.com/d/".into(),
        ],
        ..ConnectorsConfig::default()
    };
    let p = RemotePolicy::from_config(&cfg).unwrap();
    let check = |u: &str| p.check_url(&Url::parse(u).unwrap());
    assert!(check("https://example.com/d/a.csv").is_ok());
    let e = check("https://u:secret@example.com/d/a.csv").unwrap_err();
    assert!(
        e.contains("user name or password") && !e.contains("secret"),
        "{e}"
    );
    let e = check("https://example.com/other").unwrap_err();
    assert!(e.contains("[connectors] allow_urls"), "{e}");
    let e = check("http://127.0.0.1:9/x").unwrap_err();
    assert!(e.contains("[connectors] allow_addresses"), "{e}");
    let cfg = ConnectorsConfig {
        allow_addresses: vec!["127.0.0.0/8".into()],
        ..cfg
    };
    let p = RemotePolicy::from_config(&cfg).unwrap();
    assert!(p
        .check_url(&Url::parse("http://127.0.0.1:9/x").unwrap())
        .is_ok());
    let bad = ConnectorsConfig {
        allow_addresses: vec!["nope".into()],
        ..ConnectorsConfig::default()
    };
    assert!(RemotePolicy::from_config(&bad)
        .unwrap_err()
        .contains("`nope`"));
}

#[test]
fn literal_hosts_are_found_in_every_spelling() {
    let lit = |u: &str| literal_ip(&Url::parse(u).unwrap());
    assert_eq!(lit("http://127.0.0.1/"), Some(ip("127.0.0.1")));
    assert_eq!(lit("http://[::1]:8080/"), Some(ip("::1")));
    assert_eq!(lit("http://2130706433/"), Some(ip("127.0.0.1")));
    assert_eq!(lit("http://0x7f.1/"), Some(ip("127.0.0.1")));
    assert_eq!(lit("http://[::ffff:7f00:1]/"), Some(ip("::ffff:127.0.0.1")));
    assert_eq!(lit("http://example.com/"), None);
}
