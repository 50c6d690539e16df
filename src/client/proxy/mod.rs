//! Proxies: which one a URL goes through (explicit setting or the environment, with
//! `NO_PROXY`), and opening the tunnel through it.
//!
//! | file | job |
//! |---|---|
//! | `mod.rs` | the proxy URL, the choice from the settings and environment, `NO_PROXY` |
//! | `http.rs` | HTTP `CONNECT`, over plain TCP or inside TLS with an `https://` proxy |
//! | `socks.rs` | the SOCKS5 exchange over the socket (the bytes are in `proto::socks`) |

mod http;
mod socks;

use std::fmt;
use std::net::IpAddr;

use super::url::{Url, basic_auth};
use crate::error::{Error, UrlError};
use crate::proto::head::percent_decode;

pub(crate) use http::tunnel as http_tunnel;
pub(crate) use socks::open as socks_open;

/// The schemes of a proxy URL, with their default ports.
const PROXY_SCHEMES: &[(&str, u16)] = &[
    ("http", 80),
    ("https", 443),
    ("socks5", 1080),
    ("socks5h", 1080),
];

/// Where a client's proxy setting comes from.
#[derive(Clone, Default, PartialEq, Eq)]
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

/// Without the credentials of an explicit proxy URL (`ClientBuilder`'s `Debug` shows this).
impl fmt::Debug for ProxySetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxySetting::Environment => f.write_str("Environment"),
            ProxySetting::Direct => f.write_str("Direct"),
            ProxySetting::Explicit(raw) => {
                let start = raw.find("://").map_or(0, |i| i + 3);
                let hidden = match raw[start..].rfind('@') {
                    Some(at) => format!("{}<hidden>{}", &raw[..start], &raw[start + at..]),
                    None => raw.clone(),
                };
                f.debug_tuple("Explicit").field(&hidden).finish()
            }
        }
    }
}

/// How the client talks to a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProxyKind {
    /// `http://`: HTTP `CONNECT` over plain TCP.
    Http,
    /// `https://`: HTTP `CONNECT` inside a TLS session with the proxy.
    Https,
    /// `socks5://`: SOCKS5, the target's name resolved here.
    Socks5,
    /// `socks5h://`: SOCKS5, the target's name sent for the proxy to resolve.
    Socks5h,
}

/// A parsed proxy: how to talk to it, where it is and what credentials to send.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Proxy {
    pub kind: ProxyKind,
    pub host: String,
    pub port: u16,
    /// `user:password` as written in the URL, still percent-encoded.
    userinfo: Option<String>,
}

/// Without the credentials, which must not reach a log.
impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("credentials", &self.userinfo.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

impl Proxy {
    /// `scheme://[user:password@]host[:port][/]` with the scheme `http` (default port 80),
    /// `https` (443), `socks5` or `socks5h` (both 1080); without a scheme `http` is assumed.
    pub fn parse(raw: &str) -> Result<Proxy, UrlError> {
        let raw = raw.trim();
        let with_scheme = if raw.contains("://") {
            raw.to_owned()
        } else {
            format!("http://{raw}")
        };
        let url = Url::parse_with(&with_scheme, PROXY_SCHEMES)?;
        let kind = match url.scheme.as_str() {
            "http" => ProxyKind::Http,
            "https" => ProxyKind::Https,
            "socks5" => ProxyKind::Socks5,
            _ => ProxyKind::Socks5h,
        };
        Ok(Proxy {
            kind,
            host: url.host,
            port: url.port,
            userinfo: url.userinfo,
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

    /// Whether the client speaks SOCKS5 to this proxy.
    pub fn is_socks(&self) -> bool {
        matches!(self.kind, ProxyKind::Socks5 | ProxyKind::Socks5h)
    }

    /// What can be checked before connecting: SOCKS5 credentials and, for `socks5h`, the target
    /// name fit their one-byte lengths.
    pub fn check(&self, url: &Url) -> Result<(), Error> {
        if self.is_socks() {
            if let Some((user, password)) = self.credentials() {
                crate::proto::socks::check_credentials(&user, &password)?;
            }
            if self.kind == ProxyKind::Socks5h {
                let target = crate::proto::socks::Target::Name(&url.host, url.port);
                crate::proto::socks::check_target(&target)?;
            }
        }
        Ok(())
    }

    /// User name and password, percent-decoded (a missing password is empty).
    fn credentials(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        let userinfo = self.userinfo.as_deref()?;
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        Some((percent_decode(user, false), percent_decode(password, false)))
    }

    /// The `Proxy-Authorization` value for an HTTP proxy.
    fn basic_auth(&self) -> Option<String> {
        self.userinfo.as_deref().map(basic_auth)
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
        assert_eq!(
            (p.host.as_str(), p.port, p.basic_auth()),
            ("p1", 3128, None)
        );
        let p = Proxy::choose(&set, &wss, &vars).unwrap().unwrap();
        assert_eq!((p.host.as_str(), p.port), ("p2", 8080));
        assert_eq!(p.basic_auth().as_deref(), Some("Basic dTpw"));
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
        let bad = ProxySetting::Explicit("socks4://p:1".into());
        assert!(Proxy::choose(&bad, &ws, &vars).is_err());
        // ALL_PROXY may name a SOCKS proxy; NO_PROXY applies to it as to the others.
        let vars = env(&[("ALL_PROXY", "socks5h://u:p@p7")]);
        let p = Proxy::choose(&set, &ws, &vars).unwrap().unwrap();
        assert_eq!(
            (p.kind, p.host.as_str(), p.port),
            (ProxyKind::Socks5h, "p7", 1080)
        );
        let vars = env(&[("all_proxy", "socks5://p8:9"), ("NO_PROXY", "h.example")]);
        assert_eq!(Proxy::choose(&set, &wss, &vars).unwrap(), None);
        let vars = env(&[("all_proxy", "socks5://p8:9"), ("NO_PROXY", "other")]);
        let p = Proxy::choose(&set, &wss, &vars).unwrap().unwrap();
        assert_eq!((p.kind, p.port), (ProxyKind::Socks5, 9));
    }

    #[test]
    fn proxy_urls() {
        let rows = [
            ("p:1", ProxyKind::Http, "p", 1),
            ("http://p", ProxyKind::Http, "p", 80),
            ("HTTPS://p/", ProxyKind::Https, "p", 443),
            ("socks5://[::1]", ProxyKind::Socks5, "::1", 1080),
            ("socks5h://u:p@p:9050", ProxyKind::Socks5h, "p", 9050),
        ];
        for (raw, kind, host, port) in rows {
            let p = Proxy::parse(raw).unwrap();
            assert_eq!(
                (p.kind, p.host.as_str(), p.port),
                (kind, host, port),
                "{raw}"
            );
        }
        for raw in ["socks4://p", "ftp://p", "socks5://", "socks5://p:0"] {
            assert!(Proxy::parse(raw).is_err(), "{raw}");
        }
        match Proxy::parse("socks4://p") {
            Err(UrlError::UnsupportedScheme(e)) => assert_eq!(
                e.to_string(),
                "unsupported scheme \"socks4\", expected http://, https://, socks5:// or socks5h://"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn settings_do_not_show_credentials() {
        let rows = [
            ("socks5://user:secret@p:1080", "socks5://<hidden>@p:1080"),
            ("user:secret@p:3128", "<hidden>@p:3128"),
            ("http://p:3128", "http://p:3128"),
        ];
        for (raw, shown) in rows {
            let debug = format!("{:?}", ProxySetting::Explicit(raw.to_owned()));
            assert_eq!(debug, format!("Explicit({shown:?})"));
        }
        let builder = crate::Client::builder().proxy("https://u:hunter2@p");
        assert!(!format!("{builder:?}").contains("hunter2"));
    }

    #[test]
    fn credentials_are_decoded_checked_and_not_shown() {
        let p = Proxy::parse("socks5://us%3Aer:p%40ss@p").unwrap();
        assert_eq!(p.credentials(), Some((b"us:er".to_vec(), b"p@ss".to_vec())));
        assert!(!format!("{p:?}").contains("ss"), "{p:?}");
        let ws = Url::parse("ws://h.example/").unwrap();
        assert!(p.check(&ws).is_ok());
        let long = "x".repeat(256);
        let rows = [
            format!("socks5://{long}:pw@p"),
            format!("socks5h://user:{long}@p"),
            "socks5://user@p".to_owned(),
            "socks5://:pw@p".to_owned(),
        ];
        for raw in &rows {
            let err = Proxy::parse(raw).unwrap().check(&ws).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidInput(crate::error::InputError::SocksField)
                ),
                "{raw}: {err:?}"
            );
        }
        // Only socks5h sends the name; socks5 resolves it here.
        let long_host = Url::parse(&format!("ws://{}.example/", "a".repeat(250))).unwrap();
        assert!(
            Proxy::parse("socks5h://p")
                .unwrap()
                .check(&long_host)
                .is_err()
        );
        assert!(
            Proxy::parse("socks5://p")
                .unwrap()
                .check(&long_host)
                .is_ok()
        );
        // HTTP proxies take any credentials.
        assert!(
            Proxy::parse(&format!("http://{long}@p"))
                .unwrap()
                .check(&ws)
                .is_ok()
        );
    }
}
