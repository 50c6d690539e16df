//! The small part of URL parsing a WebSocket client needs (RFC 6455 3): scheme, host, port,
//! path and query; no fragment.

use crate::error::UrlError;

/// A parsed `ws://` URL.
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
}

impl Url {
    /// Parses `url`, refusing fragments, other schemes and malformed hosts or ports.
    pub fn parse(url: &str) -> Result<Url, UrlError> {
        if url.bytes().any(|b| b <= b' ' || b == 0x7F) {
            return Err(UrlError::BadCharacter);
        }
        // RFC 6455 3: "Fragment identifiers are meaningless ... and MUST NOT be used".
        if url.contains('#') {
            return Err(UrlError::Fragment);
        }
        let (scheme, rest) = url.split_once("://").ok_or(UrlError::UnsupportedScheme)?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "ws" => 80,
            "wss" => 443,
            _ => return Err(UrlError::UnsupportedScheme),
        };
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
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or(UrlError::BadHost)?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(UrlError::BadHost);
            }
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(after.strip_prefix(':').ok_or(UrlError::BadHost)?),
                ),
            }
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
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
        })
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

    #[test]
    fn refused_urls() {
        let rows = [
            ("http://h/", UrlError::UnsupportedScheme),
            ("h:80/", UrlError::UnsupportedScheme),
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
}
