//! One connection's thread: HTTP requests until an upgrade, the checks before the `101`, the
//! handler, and the close.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::gate::{self, Accept};
use super::http::{self, BodyError, Response};
use super::limits::PerIp;
use super::{BoxError, ConnectionError, HandlerResult, Options};
use crate::config::Config;
use crate::error::{Error, HandshakeError, Result};
use crate::io::{Stream, Transport, drain_until, read_head};
use crate::message::CloseCode;
use crate::proto::handshake::{self, Request};
use crate::websocket::{Role, WebSocket};

/// Most plain HTTP requests served on one keep-alive connection.
const MAX_REQUESTS: usize = 1000;

#[allow(clippy::too_many_arguments)]
pub(crate) fn run<F>(
    tcp: Arc<TcpStream>,
    socket_peer: SocketAddr,
    id: u64,
    per_ip: &PerIp,
    going_away: Arc<AtomicBool>,
    opts: &Options,
    config: &Config,
    handler: &F,
) where
    F: Fn(&mut WebSocket) -> HandlerResult,
{
    let mut peer = socket_peer;
    // Behind a trusted proxy: the per-IP count of the client the current request came from.
    let mut _counted: Option<Counted<'_>> = None;
    let report = |peer: SocketAddr, error: BoxError| {
        let Some(tx) = &opts.errors else { return };
        if tx
            .try_send(ConnectionError {
                id,
                peer: Some(peer),
                error,
            })
            .is_err()
        {
            log::debug!("conn#{id}: error queue full, error only logged");
        }
    };
    let Some(mut stream) = open_stream(tcp, config, opts, id, socket_peer) else {
        return;
    };
    let mut buf = Vec::new();
    for _ in 0..MAX_REQUESTS {
        let deadline = Instant::now() + config.handshake_timeout;
        let (mut request, used) = match read_request(&mut stream, &mut buf, deadline, config) {
            Ok(head) => head,
            Err(e) => {
                if going_away.load(Ordering::SeqCst) {
                    refuse_shutting_down(&mut stream, config, opts);
                } else if let Error::Handshake(h) = e {
                    // A client that went away between requests is no error worth reporting.
                    if h != HandshakeError::Eof || !buf.is_empty() {
                        reject(&mut stream, config, h);
                        log::debug!("conn#{id} from {peer}: bad request: {h}");
                        report(peer, e.into());
                    }
                } else {
                    log::debug!("conn#{id} from {peer}: {e}");
                }
                return;
            }
        };
        buf.drain(..used);
        if opts.trusted_proxies.contains(&socket_peer.ip()) {
            peer = forwarded_client(&request, &opts.trusted_proxies).unwrap_or(socket_peer);
            _counted = None;
            if let Err(refusal) = per_ip.admit(peer.ip(), opts.max_per_ip, opts.rate_limit) {
                log::debug!("refusing {peer} (via {socket_peer}): {refusal:?}");
                let busy = Response::text(429, "too many connections from your address\n")
                    .header("Retry-After", &opts.retry_after.to_string());
                send_response(&mut stream, config, &busy);
                return;
            }
            _counted = Some(Counted {
                per_ip,
                ip: peer.ip(),
            });
        }
        request.set_peer(Some(peer));
        if going_away.load(Ordering::SeqCst) {
            refuse_shutting_down(&mut stream, config, opts);
            return;
        }
        if !opts.trusted_proxies.contains(&socket_peer.ip())
            && !gate::host_allowed(&request, opts.allowed_hosts.as_deref(), opts.loopback_bound)
        {
            log::debug!(
                "conn#{id} from {peer}: host {:?} refused",
                request.header("host")
            );
            send_response(&mut stream, config, &gate::host_refused(&request));
            return;
        }
        if !handshake::is_upgrade(&request) {
            match &opts.http {
                Some(http) => {
                    if !serve_http(&mut stream, &mut request, &mut buf, deadline, opts, &**http) {
                        return;
                    }
                    continue;
                }
                None => {
                    reject(&mut stream, config, HandshakeError::NotUpgrade);
                    return;
                }
            }
        }
        let leftover = std::mem::take(&mut buf);
        match upgrade(stream, request, &leftover, opts, config, &going_away) {
            Ok(mut ws) => {
                ws.set_peer(Some(peer));
                run_handler(&mut ws, peer, handler, &|e| report(peer, e));
            }
            Err(e) => {
                log::debug!("conn#{id} from {peer}: handshake failed: {e}");
                report(peer, e.into());
            }
        }
        return;
    }
}

/// A client counted per IP on behalf of a trusted proxy, released when the request (or the
/// WebSocket it opened) is done.
struct Counted<'a> {
    per_ip: &'a PerIp,
    ip: IpAddr,
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.per_ip.release(self.ip);
    }
}

/// The client behind a trusted proxy: the last `X-Forwarded-For` address that is not itself a
/// trusted proxy (earlier entries were written by whoever the client is, and prove nothing).
fn forwarded_client(request: &Request, trusted: &[IpAddr]) -> Option<SocketAddr> {
    let mut entries: Vec<&str> = Vec::new();
    for (name, value) in request.headers() {
        if name.eq_ignore_ascii_case("x-forwarded-for") {
            entries.extend(value.split(',').map(str::trim));
        }
    }
    // From the right: trusted proxies wrote these entries, so they must parse; the first one
    // that is not a trusted proxy is the client. Whatever lies to its left is unchecked.
    for entry in entries.into_iter().rev() {
        match parse_forwarded_ip(entry) {
            Some(ip) if trusted.contains(&ip) => continue,
            Some(ip) => return Some(SocketAddr::new(ip, 0)),
            None => return None,
        }
    }
    None
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:5678`.
fn parse_forwarded_ip(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    if let Ok(addr) = entry.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    None
}

/// The connection's byte stream: the socket itself, or a TLS session once its handshake has
/// completed within the handshake timeout.
fn open_stream(
    tcp: Arc<TcpStream>,
    config: &Config,
    opts: &Options,
    id: u64,
    peer: SocketAddr,
) -> Option<Stream> {
    #[cfg(feature = "tls")]
    if let Some(tls) = &opts.tls {
        let deadline = Instant::now() + config.handshake_timeout;
        return match tls.accept(Arc::clone(&tcp), deadline) {
            Ok(session) => Some(Stream::tls(tcp, session)),
            Err(e) => {
                log::debug!("conn#{id} from {peer}: tls handshake failed: {e}");
                let _ = tcp.shutdown(std::net::Shutdown::Both);
                None
            }
        };
    }
    let _ = (config, opts, id, peer);
    Some(Stream::plain(tcp))
}

/// Answers one plain HTTP request with the user's handler; true if the connection stays open.
fn serve_http(
    stream: &mut Stream,
    request: &mut Request,
    buf: &mut Vec<u8>,
    deadline: Instant,
    opts: &Options,
    http: &super::HttpHandler,
) -> bool {
    // A body that was not read leaves the connection out of step: answer, then close.
    let (response, body_read) = match http::read_body(stream, request, buf, deadline, opts.max_body)
    {
        Ok(()) => {
            let answer = catch_unwind(AssertUnwindSafe(|| http(request))).unwrap_or_else(|_| {
                log::error!(
                    "http handler panicked on {} {}",
                    request.method(),
                    request.target()
                );
                Response::text(500, "internal server error\n")
            });
            (answer, true)
        }
        Err(BodyError::Io) => return false,
        Err(BodyError::TooLarge) => (Response::text(413, "request body too large\n"), false),
        Err(BodyError::Unsupported) => (Response::text(501, "chunked bodies unsupported\n"), false),
        Err(BodyError::Malformed) => (Response::text(400, "bad content-length\n"), false),
    };
    let keep_alive = body_read && response.keeps_alive(request);
    let bytes = response.to_bytes(keep_alive, request.method() == "HEAD");
    let written = stream.write_all(&bytes).and_then(|()| stream.flush());
    if written.is_err() {
        return false;
    }
    if !keep_alive {
        linger(stream, Duration::from_millis(500));
    }
    keep_alive
}

/// The checks before the `101`, then the `101` itself.
fn upgrade(
    mut stream: Stream,
    request: Request,
    leftover: &[u8],
    opts: &Options,
    config: &Config,
    going_away: &Arc<AtomicBool>,
) -> Result<WebSocket> {
    let accept_key = match handshake::check_request(&request) {
        Ok(key) => key,
        Err(h) => {
            reject(&mut stream, config, h);
            return Err(h.into());
        }
    };
    if !gate::origin_allowed(&request, opts.allowed_origins.as_deref(), opts.is_tls()) {
        log::debug!("origin {:?} refused", request.origin());
        send_response(&mut stream, config, &Response::forbidden());
        return Err(HandshakeError::OriginRefused.into());
    }
    let accepted = match &opts.gatekeeper {
        None => Accept::new(),
        Some(gatekeeper) => match catch_unwind(AssertUnwindSafe(|| gatekeeper(&request))) {
            Ok(Ok(accepted)) => accepted,
            Ok(Err(response)) => {
                send_response(&mut stream, config, &response);
                return Err(HandshakeError::Refused.into());
            }
            Err(_) => {
                log::error!("gatekeeper panicked");
                send_response(
                    &mut stream,
                    config,
                    &Response::text(500, "internal error\n"),
                );
                return Err(HandshakeError::Refused.into());
            }
        },
    };
    let Accept {
        protocol,
        headers: mut extra,
        data,
    } = accepted;
    let protocol = match (&opts.select_protocol, protocol) {
        (Some(select), None) => {
            let chosen = select(&request.protocols());
            gate::choose_protocol(&request, chosen, &[])
        }
        (_, chosen) => gate::choose_protocol(&request, chosen, &opts.protocols),
    };
    if let Some(p) = &protocol {
        extra.push(("Sec-WebSocket-Protocol".into(), p.clone()));
    }
    let deflate = negotiate_deflate(&request, config, &mut extra);
    stream.set_write_timeout(Some(config.handshake_timeout))?;
    stream.write_all(&handshake::response_101(&accept_key, &extra))?;
    stream.flush()?;
    let mut ws = WebSocket::from_stream(stream, Role::Server, config.clone(), leftover);
    deflate.install(&mut ws, config);
    ws.set_request(request);
    ws.set_server_parts(protocol, data, Arc::clone(going_away));
    Ok(ws)
}

fn run_handler<F, R>(ws: &mut WebSocket, peer: SocketAddr, handler: &F, report: &R)
where
    F: Fn(&mut WebSocket) -> HandlerResult,
    R: Fn(BoxError),
{
    log::debug!(
        "ws#{} open from {peer}, path {:?}",
        ws.id(),
        ws.path().unwrap_or("")
    );
    let outcome = catch_unwind(AssertUnwindSafe(|| handler(ws)));
    let (code, why) = match outcome {
        Ok(Ok(())) => (CloseCode::NORMAL, "handler done".to_owned()),
        Ok(Err(e)) => {
            let why = format!("handler error: {e}");
            report(e);
            (CloseCode::INTERNAL_ERROR, why)
        }
        Err(_) => {
            log::error!("ws#{} handler panicked", ws.id());
            report("handler panicked".into());
            (CloseCode::INTERNAL_ERROR, "handler panicked".to_owned())
        }
    };
    let closed = ws.close(code, "");
    log::debug!(
        "ws#{} from {peer} ended: {why}; closed with {code}: {closed:?}",
        ws.id()
    );
}

/// Performs the server side of the opening handshake on any stream with the default config.
///
/// For servers that accept connections themselves. A bad request is answered (400, 426 or 431)
/// before the error is returned.
pub fn accept<S: Transport>(stream: S) -> Result<WebSocket<S>> {
    accept_with(stream, Config::default())
}

/// Like [`accept`], with a config.
pub fn accept_with<S: Transport>(mut stream: S, config: Config) -> Result<WebSocket<S>> {
    let deadline = Instant::now() + config.handshake_timeout;
    let mut buf = Vec::new();
    let head = read_request(&mut stream, &mut buf, deadline, &config);
    let (request, used) = match head {
        Ok(head) => head,
        Err(e) => {
            if let Error::Handshake(h) = e {
                reject(&mut stream, &config, h);
            }
            return Err(e);
        }
    };
    let accept = match handshake::check_request(&request) {
        Ok(accept) => accept,
        Err(h) => {
            reject(&mut stream, &config, h);
            return Err(h.into());
        }
    };
    let mut extra = Vec::new();
    let deflate = negotiate_deflate(&request, &config, &mut extra);
    stream.set_write_timeout(Some(config.handshake_timeout))?;
    stream.write_all(&handshake::response_101(&accept, &extra))?;
    stream.flush()?;
    let mut ws = WebSocket::from_stream(stream, Role::Server, config.clone(), &buf[used..]);
    deflate.install(&mut ws, &config);
    ws.set_request(request);
    Ok(ws)
}

/// What the server agreed about compression, to install once the socket exists.
struct Agreed(#[cfg(feature = "deflate")] Option<crate::DeflateParams>);

impl Agreed {
    fn install<S: Transport>(self, ws: &mut WebSocket<S>, config: &Config) {
        #[cfg(feature = "deflate")]
        if let (Some(params), Some(deflate)) = (self.0, &config.deflate) {
            ws.set_deflate(params, deflate);
        }
        let _ = (ws, config);
    }
}

/// With compression configured, answers the first acceptable permessage-deflate offer of the
/// request (adding the answer to `extra`); otherwise, or if none is acceptable, declines by
/// saying nothing.
fn negotiate_deflate(
    request: &Request,
    config: &Config,
    extra: &mut Vec<(String, String)>,
) -> Agreed {
    #[cfg(feature = "deflate")]
    if let Some(deflate) = &config.deflate {
        let offers = request
            .headers()
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-extensions"))
            .map(|(_, v)| v.as_str());
        if let Some((params, answer)) = crate::proto::deflate::accept_offer(offers, deflate) {
            extra.push(("Sec-WebSocket-Extensions".into(), answer));
            return Agreed(Some(params));
        }
        return Agreed(None);
    }
    let _ = (request, config, extra);
    Agreed(
        #[cfg(feature = "deflate")]
        None,
    )
}

/// Reads one request head within `deadline` and the header limits of `config`.
fn read_request<S: Transport>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    deadline: Instant,
    config: &Config,
) -> Result<(Request, usize)> {
    let max_headers = config.max_headers;
    read_head(stream, buf, deadline, config.max_header_bytes, |b| {
        handshake::parse_request(b, max_headers)
    })
}

/// Answers a failed handshake with the status RFC 6455 and HTTP ask for, then closes.
fn reject<S: Transport>(stream: &mut S, config: &Config, error: HandshakeError) {
    let response = match error {
        HandshakeError::TooManyHeaders | HandshakeError::HeadersTooLarge => Response::new(431),
        // RFC 6455 4.2.2: a version we do not speak gets 426 and the versions we do.
        HandshakeError::UnsupportedVersion => {
            Response::new(426).header("Sec-WebSocket-Version", "13")
        }
        HandshakeError::NotUpgrade => Response::new(426).header("Upgrade", "websocket"),
        HandshakeError::Timeout => Response::new(408),
        HandshakeError::Eof => return,
        _ => Response::new(400),
    };
    send_response(stream, config, &response.body(format!("{error}\n")));
}

fn refuse_shutting_down(stream: &mut Stream, config: &Config, opts: &Options) {
    let retry = opts.retry_after.to_string();
    let response = Response::text(503, "server shutting down\n").header("Retry-After", &retry);
    send_response(stream, config, &response);
}

/// Sends a final response and closes the connection gracefully.
fn send_response<S: Transport>(stream: &mut S, config: &Config, response: &Response) {
    let _ = stream.set_write_timeout(Some(config.handshake_timeout));
    let _ = stream.write_all(&response.to_bytes(false, false));
    let _ = stream.flush();
    linger(stream, Duration::from_millis(500).min(config.close_timeout));
}

/// Half-closes, then reads and discards briefly so the response is not lost to a reset caused by
/// unread request bytes.
fn linger<S: Transport + ?Sized>(stream: &mut S, time: Duration) {
    let _ = stream.shutdown_write();
    drain_until(stream, Instant::now() + time);
}
