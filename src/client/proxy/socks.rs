//! The SOCKS5 exchange over the socket to the proxy: greeting, username/password when the proxy
//! asks for it, CONNECT. The bytes are built and parsed in [`crate::proto::socks`]; this file
//! reads exactly what each reply needs, under the one deadline of the whole exchange.

use std::io;
use std::net::ToSocketAddrs;
use std::time::Instant;

use super::{Proxy, ProxyKind};
use crate::client::url::Url;
use crate::error::{Error, HandshakeError, Result, is_timeout_kind};
use crate::io::{Deadline, Transport, write_all_by};
use crate::proto::socks::{self, MAX_REPLY, Status, Target};

/// Opens a tunnel to `url`'s host and port through the SOCKS5 `proxy`, all of the exchange
/// before `deadline`; `connect` opens a connection to the proxy.
///
/// For `socks5h://` the name is sent for the proxy to resolve. For `socks5://` it is resolved
/// here and each address asked for in turn, each over a connection of its own, while the proxy
/// answers that the address is unreachable or refuses connections (as a direct connection tries
/// every address).
pub(crate) fn open<S: Transport>(
    proxy: &Proxy,
    url: &Url,
    deadline: Instant,
    mut connect: impl FnMut() -> Result<S>,
) -> Result<S> {
    if proxy.kind == ProxyKind::Socks5h {
        let mut stream = connect()?;
        exchange(
            &mut stream,
            proxy,
            &Target::Name(&url.host, url.port),
            deadline,
        )?;
        return Ok(stream);
    }
    let addrs: Vec<_> = (url.host.as_str(), url.port).to_socket_addrs()?.collect();
    let mut last = None;
    for addr in addrs {
        let mut stream = connect()?;
        match exchange(&mut stream, proxy, &Target::Addr(addr), deadline) {
            Ok(()) => return Ok(stream),
            // RFC 1928 6: 3 network unreachable, 4 host unreachable, 5 connection refused.
            Err(e @ Error::Handshake(HandshakeError::SocksRefused(3..=5))) => {
                log::debug!("socks5 proxy cannot reach {addr}: {e}");
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        let message = format!("{} has no address", url.host);
        io::Error::new(io::ErrorKind::NotFound, message).into()
    }))
}

/// One SOCKS5 exchange on `stream`: greeting, username/password if the proxy chooses it,
/// CONNECT to `target`; on success `stream` is the tunnel.
fn exchange<S: Transport + ?Sized>(
    stream: &mut S,
    proxy: &Proxy,
    target: &Target<'_>,
    deadline: Instant,
) -> Result<()> {
    let credentials = proxy.credentials();
    write_all_by(stream, &socks::greeting(credentials.is_some()), deadline)?;
    let wants_password = read_reply(stream, deadline, |b| {
        socks::parse_choice(b, credentials.is_some())
    })?;
    if wants_password && let Some((user, password)) = &credentials {
        write_all_by(stream, &socks::auth_request(user, password)?, deadline)?;
        read_reply(stream, deadline, socks::parse_auth_reply)?;
    }
    write_all_by(stream, &socks::connect_request(target)?, deadline)?;
    read_reply(stream, deadline, socks::parse_reply)?;
    Ok(())
}

/// Reads one reply, exactly as many bytes as `parse` asks for (never more than
/// [`MAX_REPLY`], and never a byte of what follows), before `deadline`.
fn read_reply<S, T>(
    stream: &mut S,
    deadline: Instant,
    parse: impl Fn(&[u8]) -> std::result::Result<Status<T>, HandshakeError>,
) -> Result<T>
where
    S: Transport + ?Sized,
{
    let mut buf = [0u8; MAX_REPLY];
    let mut have = 0;
    loop {
        let need = match parse(&buf[..have])? {
            Status::Complete(done) => return Ok(done),
            Status::Partial(need) => need,
        };
        debug_assert!(need > have && need <= MAX_REPLY);
        match Deadline::at(deadline).arm_read(stream) {
            Err(e) if is_timeout_kind(e.kind()) => return Err(HandshakeError::Timeout.into()),
            other => other?,
        }
        match stream.read(&mut buf[have..need]) {
            Ok(0) => return Err(HandshakeError::Eof.into()),
            Ok(n) => have += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout_kind(e.kind()) => return Err(HandshakeError::Timeout.into()),
            Err(e) => return Err(Error::Io(e)),
        }
    }
}
