//! What a remote caller may reach: an address classifier, CIDR blocks for
//! `[connectors] allow_addresses`, URL prefixes for `[connectors] allow_urls`,
//! and the policy that combines them.

use crate::config::ConnectorsConfig;
use reqwest::Url;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is a public unicast address: not loopback, private,
/// link-local, unspecified, shared (CGNAT), broadcast, multicast,
/// documentation, benchmarking or reserved. IPv4-mapped IPv6 addresses
/// (`::ffff:a.b.c.d`) and NAT64/6to4 addresses are judged by the IPv4
/// address they embed; IPv4-compatible ones (`::a.b.c.d`, deprecated) are
/// never public.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0                                        // 0.0.0.0/8, "this network"
        || a == 10                                  // 10.0.0.0/8 private
        || (a == 100 && (64..128).contains(&b))     // 100.64.0.0/10 shared (CGNAT)
        || a == 127                                 // 127.0.0.0/8 loopback
        || (a == 169 && b == 254)                   // 169.254.0.0/16 link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))      // 172.16.0.0/12 private
        || (a == 192 && b == 0 && c == 0)           // 192.0.0.0/24 IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)           // 192.0.2.0/24 TEST-NET-1
        || (a == 192 && b == 88 && c == 99)         // 192.88.99.0/24 6to4 relay (deprecated)
        || (a == 192 && b == 168)                   // 192.168.0.0/16 private
        || (a == 198 && (b == 18 || b == 19))       // 198.18.0.0/15 benchmarking
        || (a == 198 && b == 51 && c == 100)        // 198.51.100.0/24 TEST-NET-2
        || (a == 203 && b == 0 && c == 113)         // 203.0.113.0/24 TEST-NET-3
        || a >= 224) // 224.0.0.0/4 multicast, 240.0.0.0/4 reserved, 255.255.255.255 broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if s[..6] == [0; 6] {
        // ::/128 unspecified, ::1 loopback, ::a.b.c.d IPv4-compatible (deprecated).
        return false;
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // 64:ff9b::/96 NAT64: reaches the embedded IPv4 address.
        return is_public_v4(embedded(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        // 2002::/16 6to4: reaches the embedded IPv4 address.
        return is_public_v4(embedded(s[1], s[2]));
    }
    !((s[0] & 0xfe00) == 0xfc00                        // fc00::/7 unique local (private)
        || (s[0] & 0xffc0) == 0xfe80                   // fe80::/10 link-local
        || (s[0] & 0xffc0) == 0xfec0                   // fec0::/10 site-local (deprecated)
        || (s[0] & 0xff00) == 0xff00                   // ff00::/8 multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8)          // 2001:db8::/32 documentation
        || (s[0] == 0x3fff && s[1] < 0x1000)           // 3fff::/20 documentation
        || (s[0] == 0x2001 && s[1] == 0)               // 2001::/32 Teredo
        || (s[0] == 0x2001 && s[1] == 2 && s[2] == 0)  // 2001:2::/48 benchmarking
        || (s[0] == 0x2001 && (s[1] & 0xfff0) == 0x10) // 2001:10::/28 ORCHID
        || (s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 1) // 64:ff9b:1::/48 local NAT64
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0])) // 100::/64 discard-only
}

/// An address, or a block of them, from `[connectors] allow_addresses`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

/// An IPv4-mapped IPv6 address as its IPv4 address; anything else unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn mask_v4(ip: Ipv4Addr, bits: u8) -> u32 {
    let m = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    u32::from(ip) & m
}

fn mask_v6(ip: Ipv6Addr, bits: u8) -> u128 {
    let m = if bits == 0 {
        0
    } else {
        u128::MAX << (128 - bits)
    };
    u128::from(ip) & m
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `fd00::/8` or a single address (`127.0.0.1`,
    /// `::1`). Errors name the entry and say what is wrong.
    pub fn parse(entry: &str) -> Result<Cidr, String> {
        let text = entry.trim();
        let bad = |why: String| {
            format!("[connectors] allow_addresses entry `{entry}` {why}; write an address such as `127.0.0.1` or `::1`, or a CIDR block such as `10.0.0.0/8`")
        };
        let (addr, bits) = match text.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (text, None),
        };
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| bad(format!("has `{addr}`, which is not an IP address")))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => match b.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => {
                    return Err(bad(format!(
                        "has prefix length `/{b}`, which must be 0 to {max}"
                    )))
                }
            },
        };
        // `::ffff:10.0.0.0/104` is the IPv4 block `10.0.0.0/8`.
        let (ip, bits) = match ip {
            IpAddr::V6(v6) if bits >= 96 && v6.to_ipv4_mapped().is_some() => {
                (canonical(ip), bits - 96)
            }
            other => (other, bits),
        };
        let net = match ip {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(mask_v4(v4, bits))),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(mask_v6(v6, bits))),
        };
        if net != ip {
            return Err(bad(format!(
                "has host bits set after the prefix; did you mean `{net}/{bits}`?"
            )));
        }
        Ok(Cidr { net, bits })
    }

    /// Whether `ip` lies in this block (IPv4-mapped IPv6 addresses match as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask_v4(ip, self.bits) == u32::from(net),
            (IpAddr::V6(net), IpAddr::V6(ip)) => mask_v6(ip, self.bits) == u128::from(net),
            _ => false,
        }
    }
}

/// A URL prefix from `[connectors] allow_urls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPrefix {
    scheme: String,
    host: String,
    port: u16,
    path: String,
}

impl UrlPrefix {
    /// Parses an `allow_urls` entry: an `http(s)` URL with a host, without
    /// user info, query or fragment.
    pub fn parse(entry: &str) -> Result<UrlPrefix, String> {
        let bad = |why: &str| {
            format!("[connectors] allow_urls entry `{entry}` {why}; write a prefix such as `https://data.example.com/public/`")
        };
        let url = Url::parse(entry.trim()).map_err(|e| bad(&format!("is not a URL ({e})")))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(bad("is not an http:// or https:// URL"));
        }
        if has_userinfo(&url) {
            return Err(bad("has a user name or password"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("has a query or fragment"));
        }
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Err(bad("has no host"));
        };
        Ok(UrlPrefix {
            scheme: url.scheme().to_string(),
            host: host.to_string(),
            port,
            path: url.path().to_string(),
        })
    }

    /// Whether `url` is under this prefix: same scheme, host and port, and a
    /// path equal to the prefix's or below it (whole segments only).
    pub fn admits(&self, url: &Url) -> bool {
        url.scheme() == self.scheme
            && url.host_str() == Some(self.host.as_str())
            && url.port_or_known_default() == Some(self.port)
            && path_under(url.path(), &self.path)
    }
}

fn path_under(path: &str, prefix: &str) -> bool {
    if prefix.ends_with('/') {
        return path.starts_with(prefix);
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

fn has_userinfo(url: &Url) -> bool {
    !url.username().is_empty() || url.password().is_some()
}

/// The IP address a URL's host names literally (`http://10.0.0.1/`,
/// `http://[::1]/`), if it does; such hosts never reach a resolver.
pub fn literal_ip(url: &Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.parse().ok()
}

/// What a remote caller may fetch, parsed from `[connectors]`.
#[derive(Debug, Clone)]
pub struct RemotePolicy {
    prefixes: Vec<UrlPrefix>,
    addresses: Vec<Cidr>,
}

impl RemotePolicy {
    /// Parses `allow_urls` and `allow_addresses`; the first bad entry is an
    /// error naming it.
    pub fn from_config(cfg: &ConnectorsConfig) -> Result<RemotePolicy, String> {
        Ok(RemotePolicy {
            prefixes: cfg
                .allow_urls
                .iter()
                .map(String::as_str)
                .map(UrlPrefix::parse)
                .collect::<Result<_, _>>()?,
            addresses: cfg
                .allow_addresses
                .iter()
                .map(String::as_str)
                .map(Cidr::parse)
                .collect::<Result<_, _>>()?,
        })
    }

    /// A policy admitting URLs under `prefixes` that reach public addresses
    /// or `addresses` (for clients other than the `http` connector's: a
    /// WASM connector's requests through the host).
    pub fn new(prefixes: Vec<UrlPrefix>, addresses: Vec<Cidr>) -> RemotePolicy {
        RemotePolicy {
            prefixes,
            addresses,
        }
    }

    /// Whether a remote caller may connect to `ip`.
    pub fn address_allowed(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.addresses.iter().any(|c| c.contains(ip))
    }

    /// Checks a URL (the one asked for, or a redirect's target): no user
    /// info, under an `allow_urls` prefix, and a literal IP host must be
    /// allowed. The error says which rule refused it and what to change.
    pub fn check_url(&self, url: &Url) -> Result<(), String> {
        let shown = hakiri_data_api::redact(url.as_str());
        if has_userinfo(url) {
            return Err(format!(
                "`{shown}` carries a user name or password, which remote callers may not send; remove it from the URL"
            ));
        }
        if !self.prefixes.iter().any(|p| p.admits(url)) {
            return Err(format!(
                "`{shown}` is not under any [connectors] allow_urls prefix; to let remote callers fetch it, add its prefix (such as `{}://{}/`) to [connectors] allow_urls",
                url.scheme(),
                url.host_str().unwrap_or("host"),
            ));
        }
        if let Some(ip) = literal_ip(url) {
            if !self.address_allowed(ip) {
                return Err(non_public(&ip.to_string()));
            }
        }
        Ok(())
    }
}

/// The refusal for a host that is (or resolves only to) non-public addresses.
pub fn non_public(host: &str) -> String {
    format!(
        "`{host}` resolves to a non-public address (loopback, private, link-local or unspecified), which remote callers may not connect to; list the address in [connectors] allow_addresses to allow it"
    )
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
