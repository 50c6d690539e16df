//! The SOCKS5 exchange over the socket to the proxy: greeting, username/password when the proxy
//! asks for it, CONNECT. The bytes are built and parsed in [`crate::proto::socks`]; this file
//! reads exactly what each reply needs, under the one deadline of the whole exchange.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
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
    open_addrs(proxy, url, &addrs, deadline, connect)
}

/// [`open`] for `socks5://`: each of `addrs` in turn.
fn open_addrs<S: Transport>(
    proxy: &Proxy,
    url: &Url,
    addrs: &[SocketAddr],
    deadline: Instant,
    mut connect: impl FnMut() -> Result<S>,
) -> Result<S> {
    let mut last = None;
    for &addr in addrs {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Read, Write};
    use std::time::Duration;

    /// A proxy's side played from a script: reads come from `replies`, writes are kept.
    #[derive(Debug)]
    struct Scripted {
        replies: Cursor<Vec<u8>>,
        sent: Vec<u8>,
        /// Setting a read timeout fails (as `setsockopt` on a broken socket would).
        timeouts_fail: bool,
        /// Errors that reads return once, each when the replies are read up to its offset.
        faults: Vec<(u64, io::ErrorKind)>,
    }

    impl Scripted {
        fn new(replies: &[&[u8]]) -> Scripted {
            Scripted {
                replies: Cursor::new(replies.concat()),
                sent: Vec::new(),
                timeouts_fail: false,
                faults: Vec::new(),
            }
        }
    }

    impl Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if let Some(&(at, kind)) = self.faults.first()
                && at == self.replies.position()
            {
                self.faults.remove(0);
                return Err(kind.into());
            }
            self.replies.read(buf)
        }
    }

    impl Write for Scripted {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.sent.write(buf)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Transport for Scripted {
        fn set_read_timeout(&mut self, _: Option<Duration>) -> io::Result<()> {
            if self.timeouts_fail {
                return Err(io::Error::other("setsockopt failed"));
            }
            Ok(())
        }
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    const OK_V4: &[u8] = &[5, 0, 0, 1, 127, 0, 0, 1, 0, 80];

    #[test]
    fn an_exchange_reads_no_byte_of_the_tunnel() {
        let proxy = Proxy::parse("socks5h://user:pw@p").unwrap();
        let url = Url::parse("ws://example.test:9001/").unwrap();
        let tunnel: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\n";
        let mut stream = Scripted::new(&[&[5, 2], &[1, 0], OK_V4, tunnel]);
        let target = Target::Name(&url.host, url.port);
        exchange(&mut stream, &proxy, &target, soon()).unwrap();
        let want = [
            &[5, 2, 0, 2][..],
            &[1, 4],
            b"user",
            &[2],
            b"pw",
            &[5, 1, 0, 3, 12],
            b"example.test",
            &[0x23, 0x29],
        ]
        .concat();
        assert_eq!(stream.sent, want);
        let mut rest = Vec::new();
        stream.replies.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, tunnel);
    }

    /// A read timeout that cannot be set is reported as the error it is, not as the proxy
    /// being too slow.
    #[test]
    fn a_read_timeout_that_cannot_be_set_is_an_io_error_not_a_timeout() {
        let proxy = Proxy::parse("socks5://p").unwrap();
        let mut stream = Scripted::new(&[&[5, 0], OK_V4]);
        stream.timeouts_fail = true;
        let target = Target::Addr("10.0.0.1:80".parse().unwrap());
        match exchange(&mut stream, &proxy, &target, soon()) {
            Err(Error::Io(e)) => assert_eq!(e.to_string(), "setsockopt failed"),
            other => panic!("expected the I/O error, got {other:?}"),
        }
    }

    /// A read cut short by a signal is tried again; a reset is the error it is, at once (not
    /// read past, which would end as the proxy closing early or as a timeout).
    #[test]
    fn an_interrupted_read_is_retried_and_a_reset_is_an_io_error() {
        let proxy = Proxy::parse("socks5://p").unwrap();
        let target = Target::Addr("10.0.0.1:80".parse().unwrap());
        let mut stream = Scripted::new(&[&[5, 0], OK_V4]);
        stream.faults = vec![
            (0, io::ErrorKind::Interrupted),
            (2, io::ErrorKind::Interrupted),
        ];
        exchange(&mut stream, &proxy, &target, soon()).unwrap();
        assert!(stream.faults.is_empty(), "{:?}", stream.faults);
        let mut stream = Scripted::new(&[&[5, 0], OK_V4]);
        stream.faults = vec![(2, io::ErrorKind::ConnectionReset)];
        match exchange(&mut stream, &proxy, &target, soon()) {
            Err(Error::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
            other => panic!("expected the reset, got {other:?}"),
        }
    }

    #[test]
    fn a_proxy_without_auth_gets_no_credentials() {
        let proxy = Proxy::parse("socks5://user:pw@p").unwrap();
        let mut stream = Scripted::new(&[&[5, 0], OK_V4]);
        let target = Target::Addr("10.0.0.1:80".parse().unwrap());
        exchange(&mut stream, &proxy, &target, soon()).unwrap();
        assert_eq!(stream.sent, [5, 2, 0, 2, 5, 1, 0, 1, 10, 0, 0, 1, 0, 80]);
    }

    #[test]
    fn each_address_in_turn_while_unreachable() {
        let proxy = Proxy::parse("socks5://p").unwrap();
        let url = Url::parse("ws://dual.test/").unwrap();
        let addrs: Vec<SocketAddr> = ["[::1]:80", "10.0.0.2:80", "127.0.0.1:80"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        /// The proxy's answers to the first requests (success after them), how many
        /// connections the client opens, the error it ends with.
        type Case<'a> = (&'a [[u8; 10]], usize, Option<HandshakeError>);
        let refused = |code: u8| [5, code, 0, 1, 0, 0, 0, 0, 0, 0];
        let cases: &[Case<'_>] = &[
            // Refused (5), host unreachable (4), then connected on the third address.
            (&[refused(5), refused(4)], 3, None),
            // Not allowed by the rules (2) is the proxy's word for every address: no retry.
            (&[refused(2)], 1, Some(HandshakeError::SocksRefused(2))),
            // All three unreachable: the last refusal is the error.
            (
                &[refused(3), refused(3), refused(5)],
                3,
                Some(HandshakeError::SocksRefused(5)),
            ),
        ];
        for (answers, conns, want) in cases {
            let mut opened = Vec::new();
            let result = open_addrs(&proxy, &url, &addrs, soon(), || {
                let n = opened.len();
                let reply: &[u8] = answers.get(n).map_or(OK_V4, |r| &r[..]);
                opened.push(n);
                Ok(Scripted::new(&[&[5, 0], reply]))
            });
            assert_eq!(opened.len(), *conns, "{answers:?}");
            match (result, want) {
                (Ok(stream), None) => assert!(stream.sent.ends_with(&[1, 127, 0, 0, 1, 0, 80])),
                (Err(Error::Handshake(got)), Some(want)) => assert_eq!(got, *want),
                (other, _) => panic!("{answers:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_short_reply_is_eof_not_a_hang() {
        let proxy = Proxy::parse("socks5h://p").unwrap();
        let mut stream = Scripted::new(&[&[5, 0], &[5, 0, 0, 3, 200, b'a']]);
        let err = exchange(&mut stream, &proxy, &Target::Name("h", 1), soon()).unwrap_err();
        assert!(
            matches!(err, Error::Handshake(HandshakeError::Eof)),
            "{err:?}"
        );
    }
}
