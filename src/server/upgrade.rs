//! The server side of the upgrade: the checks before the `101` (RFC 6455 rules, origin,
//! gatekeeper, subprotocol, compression), the `101` itself, and the socket built whole from what
//! was agreed. Shared by the server's connections and by [`accept_with`] for servers that
//! accept connections themselves.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use super::Options;
use super::connection::{read_request, reject, send_response};
use super::gate::{self, Accept};
use super::http::Response;
use crate::config::Config;
use crate::error::{Error, HandshakeError, Result};
use crate::io::{Stream, Transport, write_all_by};
use crate::proto::handshake;
use crate::proto::head::Request;
use crate::websocket::{CloseRequest, Opening, Role, WebSocket};

/// Logs a refused origin at `warn` (the server's own pages are misconfigured, or someone is
/// probing), at most once per [`ORIGIN_WARN_EVERY`](super::options::ORIGIN_WARN_EVERY); each
/// refusal is logged at `debug` as well.
fn warn_origin_refused(request: &Request, opts: &Options) {
    let origin = gate::echo(request.origin().unwrap_or(""));
    let peer = request
        .peer_addr()
        .map_or_else(|| "a client".to_owned(), |p| p.to_string());
    log::debug!("{peer}: origin {origin} refused");
    if let Some(left_out) = opts.origin_warnings.allow() {
        let more = match left_out {
            0 => String::new(),
            n => format!(" ({n} more refused since the last warning)"),
        };
        log::warn!(
            "{peer}: refused origin {origin}: allow it with Server::allowed_origins if it is \
             yours{more}"
        );
    }
}

/// The checks before the `101`, then the `101` itself.
pub(super) fn upgrade(
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
        warn_origin_refused(&request, opts);
        let refusal = gate::origin_refused(&request, opts.allowed_origins.is_some());
        send_response(&mut stream, deadline, config, &refusal);
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
