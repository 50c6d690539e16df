//! HTTP `CONNECT` (RFC 9110 9.3.6): the request for a tunnel to the target and the proxy's
//! answer, over whatever stream reaches the proxy (plain TCP, or TLS with an `https://` proxy).

use std::time::Instant;

use super::Proxy;
use crate::client::url::Url;
use crate::config::Config;
use crate::error::{HandshakeError, Result};
use crate::io::{Transport, read_head, write_all_by};
use crate::proto::head;

/// The `CONNECT` request for a tunnel to `url`'s host and port.
fn connect_request(proxy: &Proxy, url: &Url) -> Vec<u8> {
    let target = url.authority();
    let mut out = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(auth) = proxy.basic_auth() {
        out.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// Asks the proxy for a tunnel to `url`'s host and port, all before `deadline`; on a `2xx`
/// answer `stream` is the tunnel.
pub(crate) fn tunnel<S: Transport + ?Sized>(
    stream: &mut S,
    proxy: &Proxy,
    url: &Url,
    deadline: Instant,
    config: &Config,
) -> Result<()> {
    write_all_by(stream, &connect_request(proxy, url), deadline)?;
    let mut buf = Vec::new();
    let max_headers = config.max_headers;
    let (head, used) = read_head(stream, &mut buf, deadline, config.max_header_bytes, |b| {
        head::parse_proxy_response(b, max_headers)
    })?;
    if !(200..300).contains(&head.status) {
        return Err(HandshakeError::ProxyRefused(head.status).into());
    }
    if used != buf.len() {
        // Nothing may come through the tunnel before we speak.
        return Err(HandshakeError::MalformedHttp.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_request_names_the_target() {
        let proxy = Proxy::parse("http://user:pw@127.0.0.1:3128").unwrap();
        let url = Url::parse("wss://[::1]:9443/x").unwrap();
        let req = String::from_utf8(connect_request(&proxy, &url)).unwrap();
        assert!(req.starts_with("CONNECT [::1]:9443 HTTP/1.1\r\nHost: [::1]:9443\r\n"));
        assert!(req.contains("Proxy-Authorization: Basic dXNlcjpwdw==\r\n"));
        assert!(req.ends_with("\r\n\r\n"));
        let proxy = Proxy::parse("https://127.0.0.1").unwrap();
        let req = String::from_utf8(connect_request(&proxy, &url)).unwrap();
        assert!(!req.contains("Proxy-Authorization"));
    }
}
