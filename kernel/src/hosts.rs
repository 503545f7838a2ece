//! DNS-rebinding protection for every HTTP listener: a request's `Host`
//! must name this server as its operator configured it, so a web page whose
//! name was rebound to a loopback or private address cannot reach it.

/// The names a listener answers to unless its section lists others.
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// [`LOOPBACK_HOSTS`] as a section's default `allowed_hosts`.
pub fn loopback_hosts() -> Vec<String> {
    LOOPBACK_HOSTS.map(String::from).to_vec()
}

/// The host of a `Host` header value or URL authority, without port or
/// brackets, lowercase (`[::1]:80` -> `::1`, `Example.COM.:7979` -> `example.com`).
pub fn host_of(authority: &str) -> String {
    let a = authority.trim();
    let host = if let Some(rest) = a.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if a.matches(':').count() == 1 {
        a.split(':').next().unwrap_or(a)
    } else {
        a
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// The host of `url` (`http://10.0.0.1:7980/x` -> `10.0.0.1`).
pub fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    host_of(authority.rsplit('@').next().unwrap_or(authority))
}

/// Admits a request whose `Host` is in `allowed` (`"*"` admits any), or is
/// an IP address when `ip_literals` (a rebinding page always sends a name).
/// The refusal says which section's `allowed_hosts` to extend.
pub fn check_host(
    host: Option<&str>,
    allowed: &[String],
    ip_literals: bool,
    section: &str,
) -> Result<(), String> {
    let Some(given) = host.map(host_of).filter(|h| !h.is_empty()) else {
        return Err("the request has no Host header".into());
    };
    if ip_literals && given.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    if allowed.iter().any(|a| a == "*" || host_of(a) == given) {
        return Ok(());
    }
    Err(format!(
        "Host `{given}` is not one this server answers to (DNS-rebinding protection); \
         add it to [{section}] allowed_hosts if clients reach the server by that name"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_compared_without_port_case_or_brackets() {
        let allowed = loopback_hosts();
        for ok in ["localhost:7979", "127.0.0.1", "[::1]:80", "LOCALHOST."] {
            assert!(check_host(Some(ok), &allowed, false, "x").is_ok(), "{ok}");
        }
        for bad in [
            "attacker.example",
            "attacker.example:7979",
            "localhost.attacker.example",
        ] {
            let e = check_host(Some(bad), &allowed, false, "coord-api").unwrap_err();
            assert!(e.contains("[coord-api] allowed_hosts"), "{e}");
        }
        assert!(check_host(None, &allowed, true, "x").is_err());
        assert!(check_host(Some("10.1.2.3:7980"), &allowed, true, "x").is_ok());
        assert!(check_host(Some("10.1.2.3:7980"), &allowed, false, "x").is_err());
        assert!(check_host(Some("any.name"), &["*".into()], false, "x").is_ok());
        assert_eq!(
            url_host("https://u:p@Coord-1.internal:7980/raft"),
            "coord-1.internal"
        );
    }
}
