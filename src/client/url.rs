//! The small part of URL parsing a WebSocket client needs (RFC 6455 3): scheme, host, port,
//! path and query; no fragment. Also Node `ws`'s form for a Unix socket,
//! `ws+unix:///abs/path.sock:/request/path`.

use crate::error::{SchemeError, UrlError};
use crate::proto::head::{percent_decode, split_host_port};

/// A parsed `ws://`, `wss://` or `ws+unix://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `ws` or `wss`, lowercase.
    pub scheme: String,
    /// Host name or IP address; IPv6 without brackets.
    pub host: String,
    /// Port, explicit or the scheme's default.
    pub port: u16,
    /// Path and query as sent in the request line, at least `/`.
    pub target: String,
    /// `user:password` before the host, if present.
    pub userinfo: Option<String>,
    /// The Unix socket to connect to instead of `host` and `port`: set by a
    /// `ws+unix:///run/app.sock:/path` URL (whose `scheme` is then `ws`, `host` `localhost` and
    /// `target` `/path`).
    pub unix_socket: Option<std::path::PathBuf>,
}

/// The schemes of a WebSocket URL, with their default ports.
const WS_SCHEMES: &[(&str, u16)] = &[("ws", 80), ("wss", 443), ("ws+unix", 80)];

/// The schemes a redirect's `Location` may have (the HTTP ones mean their WebSocket twins).
const REDIRECT_SCHEMES: &[(&str, u16)] = &[("ws", 80), ("wss", 443), ("http", 80), ("https", 443)];

impl Url {
    /// Parses `url`, refusing fragments, other schemes and malformed hosts or ports.
    ///
    /// `ws+unix:///run/app.sock:/chat?room=1` (the form of Node's `ws`) names a Unix socket and
    /// the request target after the first `:` (`/` when there is none); the socket path must
    /// be absolute. Its `Host` is `localhost`.
    pub fn parse(url: &str) -> Result<Url, UrlError> {
        let mut url = Self::parse_with(url, WS_SCHEMES)?;
        if url.scheme == "ws+unix" {
            // parse_with read `/run/app.sock:/chat` as the target of an empty authority.
            let (path, target) = url.target.split_once(':').unwrap_or((&url.target, "/"));
            if !path.starts_with('/') || path.len() < 2 || !target.starts_with('/') {
                return Err(UrlError::BadSocketPath);
            }
            url = Url {
                scheme: "ws".to_owned(),
                host: "localhost".to_owned(),
                port: 80,
                target: target.to_owned(),
                userinfo: None,
                unix_socket: Some(path.into()),
            };
        }
        Ok(url)
    }

    /// Parses a URL with one of `schemes` (name and default port).
    pub(crate) fn parse_with(
        url: &str,
        schemes: &'static [(&'static str, u16)],
    ) -> Result<Url, UrlError> {
        if url.bytes().any(|b| b <= b' ' || b == 0x7F) {
            return Err(UrlError::BadCharacter);
        }
        // RFC 6455 3: "Fragment identifiers are meaningless ... and MUST NOT be used".
        if url.contains('#') {
            return Err(UrlError::Fragment);
        }
        let unsupported =
            |got: &str| UrlError::UnsupportedScheme(Box::new(SchemeError::new(got, schemes)));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| unsupported(""))?;
        let written = scheme;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = schemes
            .iter()
            .find(|(name, _)| *name == scheme)
            .map(|(_, port)| *port)
            .ok_or_else(|| unsupported(written))?;
        if scheme == "ws+unix" {
            // No authority: the socket path and the target follow.
            if !rest.starts_with('/') {
                return Err(UrlError::BadSocketPath);
            }
            return Ok(Url {
                scheme,
                host: String::new(),
                port: default_port,
                target: rest.to_owned(),
                userinfo: None,
                unix_socket: None,
            });
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        let target = match target.chars().next() {
            None => "/".to_owned(),
            Some('?') => format!("/{target}"),
            Some(_) => target.to_owned(),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_owned()), h),
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport).ok_or(UrlError::BadHost)?;
        let host = match host.strip_prefix('[') {
            Some(v6) => {
                let v6 = v6.strip_suffix(']').ok_or(UrlError::BadHost)?;
                if v6.parse::<std::net::Ipv6Addr>().is_err() {
                    return Err(UrlError::BadHost);
                }
                v6
            }
            None => host,
        };
        if host.is_empty() || host.contains(['[', ']']) {
            return Err(UrlError::BadHost);
        }
        let port = match port {
            None => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(UrlError::BadPort),
            },
        };
        Ok(Url {
            scheme,
            host: host.to_owned(),
            port,
            target,
            userinfo,
            unix_socket: None,
        })
    }

    /// Resolves a redirect's `Location` against this URL: absolute (`ws`, `wss`, `http`, `https`;
    /// the HTTP schemes map to their WebSocket twins), scheme-relative (`//host/path`),
    /// absolute-path (`/path`) or relative (`path`, `?query`). A fragment is dropped.
    pub fn join(&self, location: &str) -> Result<Url, UrlError> {
        let location = location.split('#').next().unwrap_or("");
        if location.is_empty() {
            return Err(UrlError::BadHost);
        }
        if let Some((scheme, rest)) = location.split_once("://")
            && !scheme.contains(['/', '?'])
        {
            let scheme = match scheme.to_ascii_lowercase().as_str() {
                "http" | "ws" => "ws",
                "https" | "wss" => "wss",
                _ => {
                    let e = SchemeError::new(scheme, REDIRECT_SCHEMES);
                    return Err(UrlError::UnsupportedScheme(Box::new(e)));
                }
            };
            return Url::parse(&format!("{scheme}://{rest}"));
        }
        if let Some(rest) = location.strip_prefix("//") {
            return Url::parse(&format!("{}://{rest}", self.scheme));
        }
        let target = if location.starts_with('/') {
            location.to_owned()
        } else {
            let path = self.target.split('?').next().unwrap_or("/");
            if location.starts_with('?') {
                format!("{path}{location}")
            } else {
                let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
                format!("{dir}{location}")
            }
        };
        if target.bytes().any(|b| b <= b' ' || b == 0x7F) {
            return Err(UrlError::BadCharacter);
        }
        Ok(Url {
            target: if target.starts_with('/') {
                target
            } else {
                format!("/{target}")
            },
            ..self.clone()
        })
    }

    /// Scheme, host and port: two URLs with the same origin reach the same server, so
    /// credentials may go to both.
    pub fn same_origin(&self, other: &Url) -> bool {
        self.scheme == other.scheme
            && self.host.eq_ignore_ascii_case(&other.host)
            && self.port == other.port
            && self.unix_socket == other.unix_socket
    }

    /// The `user:password` of the URL, percent-decoded, as an `Authorization: Basic` value.
    pub fn basic_auth(&self) -> Option<String> {
        self.userinfo.as_deref().map(basic_auth)
    }

    /// `host:port` as a `CONNECT` target (IPv6 in brackets).
    pub(crate) fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// True for `wss`.
    pub fn is_tls(&self) -> bool {
        self.scheme == "wss"
    }

    /// The `Host` header value: the port only when it is not the default, IPv6 in brackets.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.is_tls() { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// `Basic` credentials from `user:password` with percent-escapes.
pub(crate) fn basic_auth(userinfo: &str) -> String {
    use base64::Engine;
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let plain = [
        percent_decode(user, false),
        b":".to_vec(),
        percent_decode(password, false),
    ]
    .concat();
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(plain)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_urls() {
        let rows = [
            ("ws://example.com", "example.com", 80, "/", "example.com"),
            (
                "WS://Example.com:8080/chat?x=1",
                "Example.com",
                8080,
                "/chat?x=1",
                "Example.com:8080",
            ),
            (
                "ws://127.0.0.1:9001?case=1",
                "127.0.0.1",
                9001,
                "/?case=1",
                "127.0.0.1:9001",
            ),
            ("ws://[::1]:9001/a", "::1", 9001, "/a", "[::1]:9001"),
            ("ws://[::1]/", "::1", 80, "/", "[::1]"),
            ("wss://h/p", "h", 443, "/p", "h"),
            ("ws://h:80/", "h", 80, "/", "h"),
        ];
        for (raw, host, port, target, host_header) in rows {
            let u = Url::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(
                (u.host.as_str(), u.port, u.target.as_str()),
                (host, port, target),
                "{raw}"
            );
            assert_eq!(u.host_header(), host_header, "{raw}");
        }
        let u = Url::parse("ws://user:pw@h:1/").unwrap();
        assert_eq!(u.userinfo.as_deref(), Some("user:pw"));
    }

    fn unsupported(got: &str) -> UrlError {
        UrlError::UnsupportedScheme(Box::new(SchemeError::new(got, WS_SCHEMES)))
    }

    #[test]
    fn refused_urls() {
        let rows = [
            ("http://h/", unsupported("http")),
            ("HTTPS://h/", unsupported("HTTPS")),
            ("h:80/", unsupported("")),
            ("ws://h/#frag", UrlError::Fragment),
            ("ws:///path", UrlError::BadHost),
            ("ws://:80/", UrlError::BadHost),
            ("ws://[::1/", UrlError::BadHost),
            ("ws://[nothost]:1/", UrlError::BadHost),
            ("ws://h:0/", UrlError::BadPort),
            ("ws://h:99999/", UrlError::BadPort),
            ("ws://h:abc/", UrlError::BadPort),
            ("ws://h:/", UrlError::BadPort),
            ("ws://h:+80/", UrlError::BadPort),
            ("ws://h/a b", UrlError::BadCharacter),
            ("ws://::1/", UrlError::BadHost),
        ];
        for (raw, err) in rows {
            assert_eq!(Url::parse(raw), Err(err), "{raw}");
        }
    }

    #[test]
    fn unix_socket_urls() {
        let rows = [
            (
                "ws+unix:///tmp/a.sock:/chat?x=1",
                "/tmp/a.sock",
                "/chat?x=1",
            ),
            ("WS+UNIX:///run/app/ws.sock", "/run/app/ws.sock", "/"),
            ("ws+unix:///s:/", "/s", "/"),
        ];
        for (raw, path, target) in rows {
            let u = Url::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(u.unix_socket.as_deref(), Some(std::path::Path::new(path)));
            assert_eq!((u.scheme.as_str(), u.target.as_str()), ("ws", target));
            assert_eq!(u.host_header(), "localhost", "{raw}");
        }
        for raw in [
            "ws+unix://",
            "ws+unix://rel.sock:/p",
            "ws+unix:///:/p",
            "ws+unix:///a.sock:p",
        ] {
            assert_eq!(Url::parse(raw), Err(UrlError::BadSocketPath), "{raw}");
        }
        // A relative redirect stays on the socket; an absolute one leaves it.
        let base = Url::parse("ws+unix:///tmp/a.sock:/a/b").unwrap();
        assert_eq!(base.join("c").unwrap().unix_socket, base.unix_socket);
        assert_eq!(base.join("ws://h/").unwrap().unix_socket, None);
        assert!(!base.same_origin(&Url::parse("ws://localhost/").unwrap()));
    }

    #[test]
    fn redirect_locations() {
        let base = Url::parse("wss://a.example:8443/dir/page?q=1").unwrap();
        let rows = [
            ("wss://b.example/x", "wss", "b.example", 443, "/x"),
            ("https://b.example/x#frag", "wss", "b.example", 443, "/x"),
            ("http://b.example:81", "ws", "b.example", 81, "/"),
            ("//c.example/y", "wss", "c.example", 443, "/y"),
            ("/abs?z=2", "wss", "a.example", 8443, "/abs?z=2"),
            ("rel", "wss", "a.example", 8443, "/dir/rel"),
            (
                "?only=query",
                "wss",
                "a.example",
                8443,
                "/dir/page?only=query",
            ),
        ];
        for (loc, scheme, host, port, target) in rows {
            let u = base.join(loc).unwrap_or_else(|e| panic!("{loc}: {e}"));
            assert_eq!(
                (
                    u.scheme.as_str(),
                    u.host.as_str(),
                    u.port,
                    u.target.as_str()
                ),
                (scheme, host, port, target),
                "{loc}"
            );
        }
        assert!(base.join("").is_err());
        assert!(base.join("ftp://x/").is_err());
        assert!(base.join("/a b").is_err());
        assert!(base.same_origin(&base.join("/other").unwrap()));
        assert!(!base.same_origin(&base.join("wss://a.example/").unwrap()));
        assert!(base.same_origin(&Url::parse("wss://A.EXAMPLE:8443/").unwrap()));
    }

    #[test]
    fn userinfo_becomes_basic_auth() {
        // RFC 7617's example: Aladdin / open sesame.
        let u = Url::parse("ws://Aladdin:open%20sesame@h/").unwrap();
        assert_eq!(
            u.basic_auth().as_deref(),
            Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
        );
        assert_eq!(basic_auth("user"), basic_auth("user:"));
        assert_eq!(Url::parse("ws://h/").unwrap().basic_auth(), None);
    }
}
