//! Deciding who may open a WebSocket: the gatekeeper's answer, the origin policy and the choice
//! of subprotocol. All of it runs before the `101` goes out.

use crate::error::InputError;
use std::any::Any;
use std::fmt;

use super::http::Response;
use crate::proto::head::Request;

/// A gatekeeper's "yes", with what to add to the handshake.
///
/// ```
/// #[derive(Debug)]
/// struct User(String);
/// let gatekeeper = |req: &syncws::Request| match req.query_param("token").as_deref() {
///     Some("s3cret") => Ok(syncws::Accept::new().data(User("ann".into()))),
///     _ => Err(syncws::Response::forbidden()),
/// };
/// # let _ = gatekeeper;
/// ```
#[derive(Default)]
pub struct Accept {
    pub(crate) protocol: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) data: Option<Box<dyn Any + Send + Sync>>,
}

impl Accept {
    /// Accept with nothing added.
    pub fn new() -> Self {
        Self::default()
    }

    /// Choose this subprotocol; it must be one the client offered
    /// ([`Request::protocols`]), otherwise it is ignored and logged.
    pub fn protocol(mut self, protocol: &str) -> Self {
        self.protocol = Some(protocol.to_owned());
        self
    }

    /// Add a header to the `101` response, e.g. `Set-Cookie`.
    ///
    /// The name must be an HTTP token and the value free of control characters (CR, LF, NUL…);
    /// `Upgrade`, `Connection`, `Content-Length`, `Transfer-Encoding` and the
    /// `Sec-WebSocket-*` answers are the library's (choose a subprotocol with
    /// [`protocol`](Self::protocol)). An `Accept` that breaks these rules is never sent: the
    /// server logs the mistake at error level and answers `500`. Use
    /// [`try_header`](Self::try_header) to learn of it here.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Like [`header`](Self::header), but says at once why a header may not be sent.
    ///
    /// ```
    /// use syncws::{Accept, InputError};
    /// assert!(Accept::new().try_header("Set-Cookie", "s=1").is_ok());
    /// let forged = Accept::new().try_header("X-User", "bob\r\nSet-Cookie: admin=1");
    /// assert_eq!(forged.unwrap_err(), InputError::HeaderValue);
    /// ```
    pub fn try_header(self, name: &str, value: &str) -> Result<Self, InputError> {
        crate::proto::http::check_fields(
            &[(name.to_owned(), value.to_owned())],
            crate::proto::http::UPGRADE_OWNED,
        )?;
        Ok(self.header(name, value))
    }

    /// Attach a value to the connection, read back with
    /// [`WebSocket::data`](crate::WebSocket::data) (e.g. the authenticated user).
    pub fn data<T: Any + Send + Sync>(mut self, value: T) -> Self {
        self.data = Some(Box::new(value));
        self
    }
}

impl fmt::Debug for Accept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accept")
            .field("protocol", &self.protocol)
            .field("headers", &self.headers)
            .field("data", &self.data.is_some())
            .finish()
    }
}

/// Whether a browser's `Origin` may open a socket here.
///
/// Browsers attach `Origin` to every WebSocket request, and a page from any site may try to
/// connect to any server, carrying the user's cookies (cross-site WebSocket hijacking). So an
/// `Origin` must name this very server (scheme, host and port matching `Host`), or be on the
/// configured allow list. Requests without `Origin` do not come from a browser page and pass.
pub(crate) fn origin_allowed(req: &Request, allowed: Option<&[String]>, tls: bool) -> bool {
    let Some(origin) = req.origin() else {
        return true;
    };
    if let Some(list) = allowed {
        return list
            .iter()
            .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin));
    }
    let Some(host) = req.header("host") else {
        return false;
    };
    let scheme = if tls { "https" } else { "http" };
    let default_port = if tls { 443 } else { 80 };
    let Some((o_scheme, o_rest)) = origin.split_once("://") else {
        return false;
    };
    if !o_scheme.eq_ignore_ascii_case(scheme) {
        return false;
    }
    match (
        host_port(o_rest, default_port),
        host_port(host, default_port),
    ) {
        (Some((oh, op)), Some((hh, hp))) => oh.eq_ignore_ascii_case(hh) && op == hp,
        _ => false,
    }
}

/// The answer to a request refused by [`origin_allowed`]: which `Origin` was refused and how to
/// allow it, so the developer whose page failed to connect learns why from the browser's
/// network panel.
pub(crate) fn origin_refused(req: &Request, listed: bool) -> Response {
    let origin = echo(req.origin().unwrap_or(""));
    let why = if listed {
        "it is not in Server::allowed_origins; add it there"
    } else {
        "only pages from this server itself may connect; allow it with Server::allowed_origins"
    };
    Response::text(403, format!("origin {origin} is not allowed: {why}\n"))
}

/// Most characters of a client's value echoed into an answer or a log line: an origin is a
/// scheme, a host name (at most 253) and a port.
const ECHO_MAX: usize = 280;

/// A client's value made safe to repeat in a text body or a log line: control characters
/// (which could end the line and forge what follows) dropped, at most [`ECHO_MAX`] characters
/// kept, a cut marked with `...`.
pub(crate) fn echo(value: &str) -> String {
    let mut kept = value.chars().filter(|c| !c.is_control());
    let mut out: String = kept.by_ref().take(ECHO_MAX).collect();
    if kept.next().is_some() {
        out.push_str("...");
    }
    out
}

/// Whether a request's `Host` names this server (DNS rebinding protection).
///
/// A page on an attacker's name that the attacker then points at 127.0.0.1 is same-origin with
/// itself, so its requests carry matching `Origin` and `Host` and pass the origin policy; only
/// `Host` tells that the browser thinks it is talking to another site. So a server listening on
/// a loopback address answers only loopback names unless told other names (`allowed`), while
/// any other server takes every name unless given a list. Requests without `Host` do not come
/// from a browser and pass.
pub(crate) fn host_allowed(
    req: &Request,
    allowed: Option<&[String]>,
    loopback_bound: bool,
) -> bool {
    let Some(host) = req.header("host") else {
        return true;
    };
    let Some((name, _)) = host_port(host.trim(), 0) else {
        return false;
    };
    match allowed {
        Some(list) => list.iter().any(|a| {
            let a = a.trim();
            let a = host_port(a, 0).map_or(a, |(n, _)| n);
            a.eq_ignore_ascii_case(name)
        }),
        None => !loopback_bound || is_loopback_name(name),
    }
}

/// `localhost`, an IPv4 address in 127.0.0.0/8 or `[::1]`.
fn is_loopback_name(name: &str) -> bool {
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return v6
            .parse::<std::net::Ipv6Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    }
    name.parse::<std::net::Ipv4Addr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// The answer to a request refused by [`host_allowed`].
pub(crate) fn host_refused(req: &Request) -> Response {
    let host = req.header("host").unwrap_or("");
    Response::text(
        403,
        format!(
            "host {host:?} not allowed: this server answers only the names in \
             Server::allowed_hosts (by default, on a loopback address: localhost, 127.0.0.0/8 \
             and [::1]), which stops DNS rebinding\n"
        ),
    )
}

/// Splits `host[:port]` (IPv6 in brackets), filling in the default port.
fn host_port(s: &str, default_port: u16) -> Option<(&str, u16)> {
    let (host, port) = crate::proto::head::split_host_port(s.trim_end_matches('/'))?;
    let port = match port {
        None => default_port,
        Some(p) => p.parse().ok()?,
    };
    (!host.is_empty()).then_some((host, port))
}

/// The subprotocol to answer with: the gatekeeper's choice if the client offered it, else the
/// first of the server's preferences that the client offered.
pub(crate) fn choose_protocol(
    req: &Request,
    chosen: Option<String>,
    preferences: &[String],
) -> Option<String> {
    let offered = req.protocols();
    if let Some(p) = chosen {
        // RFC 6455 4.2.2: the answer MUST be one of the values the client sent.
        if offered.iter().any(|o| *o == p) {
            return Some(p);
        }
        log::error!("gatekeeper chose subprotocol {p:?}, which the client did not offer");
        return None;
    }
    preferences
        .iter()
        .find(|p| offered.contains(&p.as_str()))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::head::parse_request;

    fn req(headers: &str) -> Request {
        let raw = format!("GET / HTTP/1.1\r\n{headers}\r\n");
        parse_request(raw.as_bytes(), 16).unwrap().unwrap().0
    }

    #[test]
    fn origin_matrix() {
        let rows: &[(&str, bool, Option<&[&str]>, bool)] = &[
            ("Host: a.com\r\n", false, None, true),
            ("Host: a.com\r\nOrigin: http://a.com\r\n", false, None, true),
            (
                "Host: a.com:80\r\nOrigin: http://A.com\r\n",
                false,
                None,
                true,
            ),
            (
                "Host: a.com:8000\r\nOrigin: http://a.com:8000\r\n",
                false,
                None,
                true,
            ),
            (
                "Host: a.com:8000\r\nOrigin: http://a.com:8001\r\n",
                false,
                None,
                false,
            ),
            (
                "Host: a.com\r\nOrigin: https://a.com\r\n",
                false,
                None,
                false,
            ),
            ("Host: a.com\r\nOrigin: https://a.com\r\n", true, None, true),
            (
                "Host: a.com\r\nOrigin: http://evil.com\r\n",
                false,
                None,
                false,
            ),
            (
                "Host: [::1]:9\r\nOrigin: http://[::1]:9\r\n",
                false,
                None,
                true,
            ),
            ("Host: a.com\r\nOrigin: null\r\n", false, None, false),
            ("Origin: http://a.com\r\n", false, None, false),
            (
                "Host: a.com\r\nOrigin: http://b.com\r\n",
                false,
                Some(&["http://b.com"]),
                true,
            ),
            (
                "Host: a.com\r\nOrigin: http://a.com\r\n",
                false,
                Some(&["http://b.com"]),
                false,
            ),
        ];
        for (headers, tls, allowed, want) in rows {
            let list: Option<Vec<String>> =
                allowed.map(|l| l.iter().map(|s| s.to_string()).collect());
            let got = origin_allowed(&req(headers), list.as_deref(), *tls);
            assert_eq!(got, *want, "{headers:?} tls={tls} allowed={allowed:?}");
        }
    }

    #[test]
    fn protocol_choice() {
        let r = req("Sec-WebSocket-Protocol: b, a\r\n");
        let prefs = vec!["a".to_string(), "b".to_string()];
        assert_eq!(choose_protocol(&r, None, &prefs).as_deref(), Some("a"));
        assert_eq!(
            choose_protocol(&r, Some("b".into()), &prefs).as_deref(),
            Some("b")
        );
        assert_eq!(choose_protocol(&r, Some("c".into()), &prefs), None);
        assert_eq!(choose_protocol(&req(""), None, &prefs), None);
        assert_eq!(choose_protocol(&r, None, &["z".to_string()]), None);
    }

    #[test]
    fn host_matrix() {
        let app = ["app.example".to_string(), "Other.example:8443".to_string()];
        let rows: &[(&str, Option<&[String]>, bool, bool)] = &[
            ("Host: localhost\r\n", None, true, true),
            ("Host: LOCALHOST:8000\r\n", None, true, true),
            ("Host: 127.0.0.1:9\r\n", None, true, true),
            ("Host: 127.1.2.3\r\n", None, true, true),
            ("Host: [::1]\r\n", None, true, true),
            ("Host: [::1]:9000\r\n", None, true, true),
            ("", None, true, true),
            ("Host: attacker.example\r\n", None, true, false),
            ("Host: attacker.example:9000\r\n", None, true, false),
            ("Host: localhost.attacker.example\r\n", None, true, false),
            ("Host: 127.0.0.1.nip.io\r\n", None, true, false),
            ("Host: 128.0.0.1\r\n", None, true, false),
            ("Host: [::2]\r\n", None, true, false),
            ("Host: \r\n", None, true, false),
            ("Host: attacker.example\r\n", None, false, true),
            ("Host: app.example:9000\r\n", Some(&app), true, true),
            ("Host: APP.example\r\n", Some(&app), false, true),
            ("Host: other.example\r\n", Some(&app), true, true),
            ("Host: localhost\r\n", Some(&app), true, false),
            ("Host: attacker.example\r\n", Some(&app), false, false),
        ];
        for (headers, allowed, loopback, want) in rows {
            let got = host_allowed(&req(headers), *allowed, *loopback);
            assert_eq!(
                got, *want,
                "{headers:?} allowed={allowed:?} loopback={loopback}"
            );
        }
    }
}
