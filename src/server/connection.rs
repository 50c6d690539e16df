//! One connection's thread: HTTP requests until an upgrade, the checks before the `101`, the
//! handler, and the close.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::gate::{self, Accept};
use super::http::{self, BodyError, Response};
use super::limits::PerIp;
use super::{BoxError, ConnectionError, HandlerResult, Options};
use crate::config::Config;
use crate::error::{Error, HandshakeError, Result};
use crate::io::{Stream, Transport, drain_until, read_head, write_all_by};
use crate::message::CloseCode;
use crate::proto::handshake;
use crate::proto::head::{self, Request};
use crate::proto::http::{self as rules, Framing, Persist};
use crate::websocket::{CloseRequest, Opening, Role, WebSocket};

/// Most plain HTTP requests served on one keep-alive connection.
const MAX_REQUESTS: usize = 1000;

/// How long past its deadline a refused or timed-out client may take to receive our answer
/// (a 408 is written after the deadline by definition).
const ANSWER_GRACE: Duration = Duration::from_secs(1);

#[allow(clippy::too_many_arguments)]
pub(crate) fn run<F>(
    tcp: Arc<TcpStream>,
    socket_peer: SocketAddr,
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
    // TLS and the first request share one handshake deadline; each later request of a
    // keep-alive connection gets its own.
    let first_deadline = Instant::now() + config.handshake_timeout;
    let Some(mut stream) = open_stream(tcp, first_deadline, opts, id, socket_peer) else {
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
        if opts.trusted_proxies.contains(&socket_peer.ip()) {
            peer = forwarded_client(&request, &opts.trusted_proxies).unwrap_or(socket_peer);
            _counted = None;
            if let Err(refusal) = per_ip.admit(peer.ip(), opts.max_per_ip, opts.rate_limit) {
                log::debug!("refusing {peer} (via {socket_peer}): {refusal:?}");
                let why = "too many connections from your address";
                let busy = Response::busy(429, why, opts.retry_after);
                send_response(&mut stream, deadline, config, &busy);
                return;
            }
            _counted = Some(Counted {
                per_ip,
                ip: peer.ip(),
            });
        }
        request.set_peer(Some(peer));
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
        if !opts.trusted_proxies.contains(&socket_peer.ip())
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
        match upgrade(
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
    tcp: Arc<TcpStream>,
    deadline: Instant,
    opts: &Options,
    id: u64,
    peer: SocketAddr,
) -> Option<Stream> {
    #[cfg(feature = "tls")]
    if let Some(tls) = &opts.tls {
        return match tls.accept(Arc::clone(&tcp), deadline) {
            Ok(stream) => Some(stream),
            Err(e) => {
                log::debug!("conn#{id} from {peer}: tls handshake failed: {e}");
                let _ = tcp.shutdown(std::net::Shutdown::Both);
                None
            }
        };
    }
    let _ = (deadline, opts, id, peer);
    Some(Stream::plain(tcp))
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

/// The checks before the `101`, then the `101` itself.
fn upgrade(
    mut stream: Stream,
    request: Request,
    leftover: &[u8],
    deadline: Instant,
    opts: &Options,
    config: &Config,
    close_request: &CloseRequest,
) -> Result<WebSocket> {
    let accept_key = match handshake::check_request(&request) {
        Ok(key) => key,
        Err(h) => {
            reject(&mut stream, deadline, config, h);
            return Err(h.into());
        }
    };
    if !gate::origin_allowed(&request, opts.allowed_origins.as_deref(), opts.is_tls()) {
        log::debug!("origin {:?} refused", request.origin());
        send_response(&mut stream, deadline, config, &Response::forbidden());
        return Err(HandshakeError::OriginRefused.into());
    }
    let accepted = match &opts.gatekeeper {
        None => Accept::new(),
        Some(gatekeeper) => match catch_unwind(AssertUnwindSafe(|| gatekeeper(&request))) {
            Ok(Ok(accepted)) => accepted,
            Ok(Err(response)) => {
                send_response(&mut stream, deadline, config, &response);
                return Err(HandshakeError::Refused.into());
            }
            Err(_) => {
                log::error!("gatekeeper panicked");
                let error = Response::text(500, "internal error\n");
                send_response(&mut stream, deadline, config, &error);
                return Err(HandshakeError::Refused.into());
            }
        },
    };
    let Accept {
        protocol,
        headers: extra,
        data,
    } = accepted;
    let protocol = match (&opts.select_protocol, protocol) {
        (Some(select), None) => {
            let chosen = select(&request.protocols());
            gate::choose_protocol(&request, chosen, &[])
        }
        (_, chosen) => gate::choose_protocol(&request, chosen, &opts.protocols),
    };
    let mut opening = Opening::new(Role::Server);
    opening.peer = request.peer_addr();
    opening.request = Some(request);
    opening.protocol = protocol;
    opening.data = data;
    opening.close_request = Some(close_request.clone());
    open_socket(
        stream,
        opening,
        &accept_key,
        &extra,
        leftover,
        deadline,
        config,
    )
}

/// The last step of every server handshake (the server's and [`accept_with`]'s): agree on
/// compression, write the `101`, and build the socket whole from what was agreed.
fn open_socket<S: Transport>(
    mut stream: S,
    #[allow(unused_mut)] mut opening: Opening,
    accept: &str,
    extra: &[(String, String)],
    leftover: &[u8],
    deadline: Instant,
    config: &Config,
) -> Result<WebSocket<S>> {
    let request = opening
        .request
        .as_ref()
        .expect("a server socket has its request");
    let (deflate, answer) = negotiate_deflate(request, config);
    let agreed = (opening.protocol.as_deref(), answer.as_deref());
    answer_101(&mut stream, accept, agreed, extra, deadline, config)?;
    stream.set_deadline(None);
    #[cfg(feature = "deflate")]
    {
        opening.deflate = deflate;
    }
    #[cfg(not(feature = "deflate"))]
    let () = deflate;
    Ok(WebSocket::open(stream, opening, config.clone(), leftover))
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
    stream.set_deadline(Some(deadline));
    let mut buf = Vec::new();
    let head = read_request(&mut stream, &mut buf, deadline, &config);
    let (request, used) = match head {
        Ok(head) => head,
        Err(e) => {
            if let Error::Handshake(h) = e {
                reject(&mut stream, deadline, &config, h);
            }
            return Err(e);
        }
    };
    let accept = match handshake::check_request(&request) {
        Ok(accept) => accept,
        Err(h) => {
            reject(&mut stream, deadline, &config, h);
            return Err(h.into());
        }
    };
    let mut opening = Opening::new(Role::Server);
    opening.request = Some(request);
    open_socket(
        stream,
        opening,
        &accept,
        &[],
        &buf[used..],
        deadline,
        &config,
    )
}

/// What the server agreed about compression.
#[cfg(feature = "deflate")]
type Agreed = Option<crate::DeflateParams>;
#[cfg(not(feature = "deflate"))]
type Agreed = ();

/// Writes the `101` with what was agreed (subprotocol, extension answer) and the gatekeeper's
/// `extra` fields, before `deadline`. A field that may not be sent fails the handshake with a
/// 500 (the mistake is the server's code, logged at error level), never reaching the wire.
fn answer_101<S: Transport>(
    stream: &mut S,
    accept: &str,
    (protocol, extensions): (Option<&str>, Option<&str>),
    extra: &[(String, String)],
    deadline: Instant,
    config: &Config,
) -> Result<()> {
    match handshake::response_101(accept, protocol, extensions, extra) {
        Ok(bytes) => Ok(write_all_by(stream, &bytes, deadline)?),
        Err(e) => {
            log::error!("the gatekeeper's 101 was not sent, 500 instead: {e}");
            let error = Response::text(500, "internal server error\n");
            send_response(stream, deadline, config, &error);
            Err(e.into())
        }
    }
}

/// With compression configured, answers the first acceptable permessage-deflate offer of the
/// request (what was agreed, and the answer for the `101`); otherwise, or if none is
/// acceptable, declines by saying nothing.
fn negotiate_deflate(request: &Request, config: &Config) -> (Agreed, Option<String>) {
    #[cfg(feature = "deflate")]
    if let Some(deflate) = &config.deflate {
        let offers = request
            .headers()
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-extensions"))
            .map(|(_, v)| v.as_str());
        if let Some((params, answer)) = crate::proto::deflate::accept_offer(offers, deflate) {
            return (Some(params), Some(answer));
        }
        return (None, None);
    }
    let _ = (request, config);
    (Agreed::default(), None)
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
        head::parse_request(b, max_headers)
    })
}

/// Answers a failed handshake with the status RFC 6455 and HTTP ask for, then closes.
fn reject<S: Transport>(stream: &mut S, deadline: Instant, config: &Config, error: HandshakeError) {
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
fn send_response<S: Transport>(
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
