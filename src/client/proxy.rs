//! HTTP `CONNECT` proxies: which one a URL goes through (explicit setting or the environment,
//! with `NO_PROXY`), and the tunnel request.

use std::net::IpAddr;

use super::url::{Url, basic_auth};
use crate::error::UrlError;

/// Where a client's proxy setting comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum ProxySetting {
    /// `HTTPS_PROXY` for `wss`, `HTTP_PROXY` for `ws`, then `ALL_PROXY` (lowercase names first),
    /// skipped for hosts in `NO_PROXY`.
    #[default]
    Environment,
    /// Always this proxy URL.
    Explicit(String),
    /// Never a proxy.
    Direct,
}

/// A parsed proxy: where to connect and what credentials to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proxy {
    pub host: String,
    pub port: u16,
    pub auth: Option<String>,
}

impl Proxy {
    /// `http://[user:password@]host[:port][/]`; without a scheme `http` is assumed, without a
    /// port 80. Only HTTP proxies (the tunnel itself carries TLS for `wss`).
    pub fn parse(raw: &str) -> Result<Proxy, UrlError> {
        let raw = raw.trim();
        let with_scheme = if raw.contains("://") {
            raw.to_owned()
        } else {
            format!("http://{raw}")
        };
        let url = Url::parse_with(&with_scheme, &[("http", 80)])?;
        Ok(Proxy {
            host: url.host,
            port: url.port,
            auth: url.userinfo.as_deref().map(basic_auth),
        })
    }

    /// The proxy for `url` under `setting`, reading the environment through `env`.
    pub fn choose(
        setting: &ProxySetting,
        url: &Url,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Proxy>, UrlError> {
        let raw = match setting {
            ProxySetting::Direct => return Ok(None),
            ProxySetting::Explicit(raw) => raw.clone(),
            ProxySetting::Environment => {
                let names: &[&str] = if url.is_tls() {
                    &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
                } else {
                    &["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]
                };
                let found = names
                    .iter()
                    .filter_map(|name| env(name))
                    .find(|v| !v.trim().is_empty());
                let Some(raw) = found else { return Ok(None) };
                let no_proxy = env("no_proxy").or_else(|| env("NO_PROXY"));
                if no_proxy.is_some_and(|list| bypasses(&list, &url.host, url.port)) {
                    return Ok(None);
                }
                raw
            }
        };
        Proxy::parse(&raw).map(Some)
    }

    /// The `CONNECT` request for a tunnel to `url`'s host and port.
    pub fn connect_request(&self, url: &Url) -> Vec<u8> {
        let target = url.authority();
        let mut out = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(auth) = &self.auth {
            out.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

/// Whether `NO_PROXY` (comma- or space-separated) exempts `host`: `*` exempts every host; a name
/// exempts itself and its subdomains (a leading dot is optional); an IP address or CIDR block
/// exempts matching addresses; an entry may end in `:port` to exempt that port only.
pub(crate) fn bypasses(list: &str, host: &str, port: u16) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: Option<IpAddr> = host.parse().ok();
    list.split([',', ' '])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let (name, entry_port) = split_port(entry);
            if entry_port.is_some_and(|p| p != port) {
                return false;
            }
            let name = name.trim_start_matches('[').trim_end_matches(']');
            if let Some(ip) = ip {
                return ip_matches(name, ip);
            }
            let name = name.trim_start_matches("*.").trim_start_matches('.');
            let host = host.trim_end_matches('.');
            host.eq_ignore_ascii_case(name)
                || (host.len() > name.len()
                    && host.as_bytes()[host.len() - name.len() - 1] == b'.'
                    && host[host.len() - name.len()..].eq_ignore_ascii_case(name))
        })
}

/// `name:port` to (`name`, `port`); bare IPv6 addresses have colons but no port.
fn split_port(entry: &str) -> (&str, Option<u16>) {
    // A bare IPv6 address splits at its first colon into a "port" that does not parse.
    match crate::proto::head::split_host_port(entry) {
        Some((name, Some(port))) => match port.parse() {
            Ok(port) => (name, Some(port)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

/// `entry` is an address equal to `ip`, or a CIDR block containing it.
fn ip_matches(entry: &str, ip: IpAddr) -> bool {
    let (addr, bits) = match entry.split_once('/') {
        Some((addr, bits)) => match bits.parse::<u32>() {
            Ok(bits) => (addr, Some(bits)),
            Err(_) => return false,
        },
        None => (entry, None),
    };
    let Ok(net) = addr.parse::<IpAddr>() else {
        return false;
    };
    let (a, b, width) = match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => (u32::from(n) as u128, u32::from(i) as u128, 32),
        (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), 128),
        _ => return false,
    };
    let bits = bits.unwrap_or(width).min(width);
    if bits == 0 {
        return true;
    }
    let shift = width - bits;
    (a >> shift) == (b >> shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_rules() {
        let rows = [
            ("*", "anything.example", 80, true),
            ("example.com", "example.com", 80, true),
            ("example.com", "api.example.com", 80, true),
            (".example.com", "api.example.com", 80, true),
            ("example.com", "notexample.com", 80, false),
            ("example.com", "EXAMPLE.COM", 80, true),
            ("a.com, b.com", "b.com", 80, true),
            ("a.com b.com", "b.com", 80, true),
            ("example.com:8080", "example.com", 8080, true),
            ("example.com:8080", "example.com", 80, false),
            ("localhost,127.0.0.1", "127.0.0.1", 9001, true),
            ("127.0.0.0/8", "127.1.2.3", 1, true),
            ("10.0.0.0/8", "127.0.0.1", 1, false),
            ("::1", "::1", 1, true),
            ("[::1]:9001", "::1", 9001, true),
            ("fe80::/10", "fe80::1", 1, true),
            ("127.0.0.1", "localhost", 1, false),
            ("", "example.com", 80, false),
        ];
        for (list, host, port, want) in rows {
            assert_eq!(bypasses(list, host, port), want, "{list:?} {host}:{port}");
        }
    }

    #[test]
    fn proxy_from_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let ws = Url::parse("ws://h.example:9001/").unwrap();
        let wss = Url::parse("wss://h.example/").unwrap();
        let set = ProxySetting::Environment;
        let vars = env(&[
            ("HTTP_PROXY", "p1:3128"),
            ("HTTPS_PROXY", "http://u:p@p2:8080"),
        ]);
        let p = Proxy::choose(&set, &ws, &vars).unwrap().unwrap();
        assert_eq!((p.host.as_str(), p.port, p.auth), ("p1", 3128, None));
        let p = Proxy::choose(&set, &wss, &vars).unwrap().unwrap();
        assert_eq!((p.host.as_str(), p.port), ("p2", 8080));
        assert_eq!(p.auth.as_deref(), Some("Basic dTpw"));
        let vars = env(&[("ALL_PROXY", "p3:1"), ("NO_PROXY", ".example")]);
        assert_eq!(Proxy::choose(&set, &ws, &vars).unwrap(), None);
        let vars = env(&[("ALL_PROXY", "p3:1"), ("no_proxy", "other")]);
        assert_eq!(Proxy::choose(&set, &ws, &vars).unwrap().unwrap().host, "p3");
        let vars = env(&[("http_proxy", "p4:1"), ("HTTP_PROXY", "p5:1")]);
        assert_eq!(Proxy::choose(&set, &ws, &vars).unwrap().unwrap().host, "p4");
        assert_eq!(Proxy::choose(&set, &ws, &env(&[])).unwrap(), None);
        let explicit = ProxySetting::Explicit("http://p6:7".into());
        assert_eq!(
            Proxy::choose(&explicit, &ws, &vars).unwrap().unwrap().host,
            "p6"
        );
        assert_eq!(
            Proxy::choose(&ProxySetting::Direct, &ws, &vars).unwrap(),
            None
        );
        let bad = ProxySetting::Explicit("socks5://p:1".into());
        assert!(Proxy::choose(&bad, &ws, &vars).is_err());
    }

    #[test]
    fn connect_request_names_the_target() {
        let proxy = Proxy::parse("http://user:pw@127.0.0.1:3128").unwrap();
        let url = Url::parse("wss://[::1]:9443/x").unwrap();
        let req = String::from_utf8(proxy.connect_request(&url)).unwrap();
        assert!(req.starts_with("CONNECT [::1]:9443 HTTP/1.1\r\nHost: [::1]:9443\r\n"));
        assert!(req.contains("Proxy-Authorization: Basic dXNlcjpwdw==\r\n"));
        assert!(req.ends_with("\r\n\r\n"));
    }
}
