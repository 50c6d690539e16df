//! One connection's thread: TLS, HTTP requests until an upgrade (`upgrade.rs` does the checks
//! before the `101` and the `101`), the handler, and the close.

use std::net::{IpAddr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use super::gate;
use super::http::{self, BodyError, Response};
use super::limits::PerIp;
use super::listen::Peer;
use super::{BoxError, ConnectionError, HandlerResult, Options};
use crate::config::Config;
use crate::error::{Error, HandshakeError, Result};
use crate::io::{Socket, Stream, Transport, drain_until, read_head, write_all_by};
use crate::message::CloseCode;
use crate::proto::handshake;
use crate::proto::head::{self, Request};
use crate::proto::http::{self as rules, Framing, Persist};
use crate::websocket::{CloseRequest, WebSocket};

/// Most plain HTTP requests served on one keep-alive connection.
const MAX_REQUESTS: usize = 1000;

/// How long past its deadline a refused or timed-out client may take to receive our answer
/// (a 408 is written after the deadline by definition).
const ANSWER_GRACE: Duration = Duration::from_secs(1);

#[allow(clippy::too_many_arguments)]
pub(crate) fn run<F>(
    socket: Socket,
    socket_peer: Peer,
    id: u64,
    per_ip: &PerIp,
    close_request: CloseRequest,
    opts: &Options,
    config: &Config,
    handler: &F,
) where
    F: Fn(&mut WebSocket) -> HandlerResult,
{
    let mut peer = socket_peer;
    // Behind a trusted proxy: the per-IP count of the client the current request came from.
    let mut _counted: Option<Counted<'_>> = None;
    let report = |peer: Peer, error: BoxError| {
        let Some(tx) = &opts.errors else { return };
        if tx
            .try_send(ConnectionError {
                id,
                peer: peer.addr(),
                error,
            })
            .is_err()
        {
            log::debug!("conn#{id}: error queue full, error only logged");
        }
    };
    // TLS and the first request share one handshake deadline; each later request of a
    // keep-alive connection gets its own.
    let first_deadline = Instant::now() + config.handshake_timeout;
    let Some(mut stream) = open_stream(socket, first_deadline, opts, id, socket_peer) else {
        return;
    };
    let mut buf = Vec::new();
    for n in 0..MAX_REQUESTS {
        let deadline = match n {
            0 => first_deadline,
            _ => Instant::now() + config.handshake_timeout,
        };
        stream.set_deadline(Some(deadline));
        let (mut request, used) = match read_request(&mut stream, &mut buf, deadline, config) {
            Ok(head) => head,
            Err(e) => {
                if close_request.is_requested() {
                    refuse_shutting_down(&mut stream, deadline, config, opts);
                } else if let Error::Handshake(h) = e {
                    // A client that went away between requests is no error worth reporting.
                    if h != HandshakeError::Eof || !buf.is_empty() {
                        reject(&mut stream, deadline, config, h);
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
        let trusted = opts.is_trusted(socket_peer);
        if trusted {
            peer = forwarded_client(&request, &opts.trusted_proxies).map_or(socket_peer, Peer::Ip);
            _counted = None;
            // A Unix proxy's request that names no client has no IP to count.
            if let Some(ip) = peer.ip() {
                if let Err(refusal) = per_ip.admit(ip, opts.max_per_ip, opts.rate_limit) {
                    log::debug!("refusing {peer} (via {socket_peer}): {refusal:?}");
                    let busy = refusal.response(opts.retry_after);
                    send_response(&mut stream, deadline, config, &busy);
                    return;
                }
                _counted = Some(Counted { per_ip, ip });
            }
        }
        request.set_peer(peer.addr());
        if close_request.is_requested() {
            refuse_shutting_down(&mut stream, deadline, config, opts);
            return;
        }
        // One request, one meaning: whatever could be read two ways is refused before anyone
        // acts on it.
        let framing = match rules::check_request(&request) {
            Ok(framing) => framing,
            Err(h) => {
                log::debug!("conn#{id} from {peer}: bad request: {h}");
                reject(&mut stream, deadline, config, h);
                report(peer, Error::from(h).into());
                return;
            }
        };
        if !trusted
            && !gate::host_allowed(&request, opts.allowed_hosts.as_deref(), opts.loopback_bound)
        {
            log::debug!(
                "conn#{id} from {peer}: host {:?} refused",
                request.header("host")
            );
            send_response(&mut stream, deadline, config, &gate::host_refused(&request));
            return;
        }
        if !handshake::is_upgrade(&request) {
            match &opts.http {
                Some(http) => {
                    let exchange = Exchange {
                        framing,
                        deadline,
                        opts,
                        config,
                    };
                    if !serve_http(&mut stream, &mut request, &mut buf, &exchange, &**http) {
                        return;
                    }
                    continue;
                }
                None => {
                    reject(&mut stream, deadline, config, HandshakeError::NotUpgrade);
                    return;
                }
            }
        }
        let leftover = std::mem::take(&mut buf);
        match super::upgrade::upgrade(
            stream,
            request,
            &leftover,
            deadline,
            opts,
            config,
            &close_request,
        ) {
            Ok(mut ws) => {
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
    socket: Socket,
    deadline: Instant,
    opts: &Options,
    id: u64,
    peer: Peer,
) -> Option<Stream> {
    #[cfg(any(feature = "tls", feature = "rustls"))]
    if let Some(tls) = &opts.tls {
        // `serve` refuses TLS on a Unix socket, so a TLS server's sockets are TCP.
        let tcp = socket.as_tcp()?;
        return match tls.accept(std::sync::Arc::clone(tcp), deadline) {
            Ok(stream) => Some(stream),
            Err(e) => {
                log::debug!("conn#{id} from {peer}: tls handshake failed: {e}");
                let _ = tcp.shutdown(std::net::Shutdown::Both);
                None
            }
        };
    }
    let _ = (deadline, opts, id, peer);
    Some(Stream::plain(socket))
}

/// What one plain HTTP exchange needs besides the request.
struct Exchange<'a> {
    framing: Framing,
    /// The request's deadline: head and body.
    deadline: Instant,
    opts: &'a Options,
    config: &'a Config,
}

/// Answers one plain HTTP request with the user's handler; true if the connection stays open.
fn serve_http(
    stream: &mut Stream,
    request: &mut Request,
    buf: &mut Vec<u8>,
    exchange: &Exchange<'_>,
    http: &super::HttpHandler,
) -> bool {
    let Exchange {
        framing,
        deadline,
        opts,
        config,
    } = *exchange;
    // A body that was not read leaves the connection out of step: answer, then close.
    let body = http::read_body(stream, request, framing, buf, deadline, opts.max_body);
    let (response, body_read) = match body {
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
        Err(BodyError::Expectation) => (Response::text(417, "unsupported expectation\n"), false),
    };
    let persist = match body_read {
        true => response.persist(request),
        false => Persist::Close,
    };
    let (bytes, persist) = response.to_bytes_or_500(persist, request.method() == "HEAD");
    // Every response is written under a deadline: a client that pipelines requests and never
    // reads would otherwise hold this thread forever.
    let write_by = Instant::now() + config.write_timeout.unwrap_or(config.handshake_timeout);
    stream.set_deadline(Some(write_by));
    if write_all_by(stream, &bytes, write_by).is_err() {
        return false;
    }
    if persist == Persist::Close {
        linger(stream, Duration::from_millis(500));
        return false;
    }
    true
}

fn run_handler<F, R>(ws: &mut WebSocket, peer: Peer, handler: &F, report: &R)
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
        // The peer's own word, passed on by the handler's `?`: not a failure of ours, but the
        // error callback still hears it (it can tell by `ConnectionError::peer_close`).
        Ok(Err(e)) if peer_close_of(&*e).is_some() => {
            let frame = peer_close_of(&*e).expect("checked above");
            let why = format!("peer closed with {} {:?}", frame.code, frame.reason);
            report(e);
            (CloseCode::NORMAL, why)
        }
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
    // The code that went out, which may be an earlier one (a shutdown's 1001, a violation's).
    let code = ws.sent_close().unwrap_or(code);
    log::debug!(
        "ws#{} from {peer} ended: {why}; closed with {code}: {closed:?}",
        ws.id()
    );
}

/// The peer's close frame, if `e` is a syncws error saying the peer closed with an error code.
pub(super) fn peer_close_of<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a crate::CloseFrame> {
    e.downcast_ref::<crate::Error>()?.peer_close()
}

/// Reads one request head within `deadline` and the header limits of `config`.
pub(super) fn read_request<S: Transport>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    deadline: Instant,
    config: &Config,
) -> Result<(Request, usize)> {
    let max_headers = config.max_headers;
    read_head(stream, buf, deadline, config.max_header_bytes, |b| {
        head::parse_request(b, max_headers)
    })
}

/// Answers a failed handshake with the status RFC 6455 and HTTP ask for, then closes.
pub(super) fn reject<S: Transport>(
    stream: &mut S,
    deadline: Instant,
    config: &Config,
    error: HandshakeError,
) {
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
    send_response(
        stream,
        deadline,
        config,
        &response.body(format!("{error}\n")),
    );
}

fn refuse_shutting_down(stream: &mut Stream, deadline: Instant, config: &Config, opts: &Options) {
    let response = Response::busy(503, "server shutting down", opts.retry_after);
    send_response(stream, deadline, config, &response);
}

/// Sends a final response within the request's deadline (at least [`ANSWER_GRACE`] from now,
/// so a 408 can still be said) and closes the connection gracefully.
pub(super) fn send_response<S: Transport>(
    stream: &mut S,
    deadline: Instant,
    config: &Config,
    response: &Response,
) {
    let by = deadline.max(Instant::now() + ANSWER_GRACE);
    stream.set_deadline(Some(by));
    let _ = write_all_by(
        stream,
        &response.to_bytes_or_500(Persist::Close, false).0,
        by,
    );
    linger(stream, Duration::from_millis(500).min(config.close_timeout));
}

/// Half-closes, then reads and discards briefly so the response is not lost to a reset caused by
/// unread request bytes.
fn linger<S: Transport + ?Sized>(stream: &mut S, time: Duration) {
    let _ = stream.shutdown_write();
    drain_until(stream, Instant::now() + time);
}
