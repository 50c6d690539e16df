//! The client's side of SOCKS5 (RFC 1928) with username/password authentication (RFC 1929), as
//! bytes: the messages to send, and parsers for the proxy's replies. No I/O; the client's proxy
//! code reads and writes.
//!
//! ```text
//!  send greeting ──> read choice ──(no auth)─────────────────┐
//!                        │                                   v
//!                        └─(user/pass)─> send auth_request   send connect_request
//!                                        read auth_reply ──> read reply ──> tunnel open
//! ```
//!
//! Every parser takes what has arrived so far and answers [`Status::Partial`] with the total it
//! needs, so the caller reads exactly that much and never past a reply: whatever follows the
//! last reply belongs to the tunnel. Replies are at most [`MAX_REPLY`] bytes.

use std::net::{IpAddr, SocketAddr};

use crate::error::{HandshakeError, InputError};

/// The protocol version, first byte of every RFC 1928 message.
const VERSION: u8 = 5;
/// RFC 1929 2: "The VER field contains the current version of the subnegotiation, which is
/// X'01'".
const AUTH_VERSION: u8 = 1;
/// Method: no authentication required.
const NO_AUTH: u8 = 0x00;
/// Method: username/password (RFC 1929).
const USER_PASSWORD: u8 = 0x02;
/// Method answer: none of the offered methods is acceptable.
const NO_ACCEPTABLE: u8 = 0xFF;
/// Command: CONNECT.
const CONNECT: u8 = 0x01;
/// Address types.
const ATYP_IPV4: u8 = 0x01;
const ATYP_DOMAIN: u8 = 0x03;
const ATYP_IPV6: u8 = 0x04;

/// The longest reply to a request: version, reply code, reserved, type, a 255-byte domain name
/// with its length, and the port.
pub const MAX_REPLY: usize = 4 + 1 + 255 + 2;

/// A parse that may need more bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    /// The message is complete.
    Complete(T),
    /// More bytes are needed: at least this many in all.
    Partial(usize),
}

/// Where the proxy should connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// An address the client resolved (`socks5://`).
    Addr(SocketAddr),
    /// A host name the proxy resolves (`socks5h://`).
    Name(&'a str, u16),
}

/// The first message: the methods the client accepts (username/password only when it has
/// credentials).
pub fn greeting(with_credentials: bool) -> Vec<u8> {
    if with_credentials {
        vec![VERSION, 2, NO_AUTH, USER_PASSWORD]
    } else {
        vec![VERSION, 1, NO_AUTH]
    }
}

/// The proxy's choice of method (`VER METHOD`): `true` when it wants username/password.
pub fn parse_choice(buf: &[u8], with_credentials: bool) -> Result<Status<bool>, HandshakeError> {
    let [version, method, ..] = *buf else {
        return Ok(Status::Partial(2));
    };
    if version != VERSION {
        return Err(HandshakeError::MalformedSocks);
    }
    match method {
        NO_AUTH => Ok(Status::Complete(false)),
        USER_PASSWORD if with_credentials => Ok(Status::Complete(true)),
        NO_ACCEPTABLE => Err(HandshakeError::SocksNoMethod),
        // RFC 1928 3: the server selects "from among the methods given"; anything else is not
        // an answer to our greeting.
        _ => Err(HandshakeError::MalformedSocks),
    }
}

/// Checks user name and password against RFC 1929 before anything is sent: each 1 to 255
/// bytes.
pub fn check_credentials(user: &[u8], password: &[u8]) -> Result<(), InputError> {
    // RFC 1929 2: ULEN and PLEN are one byte each, "UNAME ... 1 to 255 octets".
    let fits = |field: &[u8]| (1..=255).contains(&field.len());
    if fits(user) && fits(password) {
        Ok(())
    } else {
        Err(InputError::SocksField)
    }
}

/// The username/password request (`VER ULEN UNAME PLEN PASSWD`).
pub fn auth_request(user: &[u8], password: &[u8]) -> Result<Vec<u8>, InputError> {
    check_credentials(user, password)?;
    let mut out = Vec::with_capacity(3 + user.len() + password.len());
    out.extend([AUTH_VERSION, user.len() as u8]);
    out.extend_from_slice(user);
    out.push(password.len() as u8);
    out.extend_from_slice(password);
    Ok(out)
}

/// The answer to the username/password request (`VER STATUS`).
pub fn parse_auth_reply(buf: &[u8]) -> Result<Status<()>, HandshakeError> {
    let [version, status, ..] = *buf else {
        return Ok(Status::Partial(2));
    };
    // Some servers echo the SOCKS version (5) here instead of the subnegotiation's (1); the
    // status byte is what counts.
    if version != AUTH_VERSION && version != VERSION {
        return Err(HandshakeError::MalformedSocks);
    }
    // RFC 1929 2: "A STATUS field of X'00' indicates success."
    match status {
        0 => Ok(Status::Complete(())),
        _ => Err(HandshakeError::SocksAuthFailed),
    }
}

/// Checks that `target` can be written into a request: a host name is at most 255 bytes.
pub fn check_target(target: &Target<'_>) -> Result<(), InputError> {
    match target {
        Target::Name(name, _) if name.is_empty() || name.len() > 255 => Err(InputError::SocksField),
        _ => Ok(()),
    }
}

/// The CONNECT request (`VER CMD RSV ATYP DST.ADDR DST.PORT`). A name that is an IP address is
/// sent as that address.
pub fn connect_request(target: &Target<'_>) -> Result<Vec<u8>, InputError> {
    check_target(target)?;
    let mut out = vec![VERSION, CONNECT, 0];
    let port = match *target {
        Target::Name(name, port) => match name.parse::<IpAddr>() {
            Ok(ip) => {
                push_ip(&mut out, ip);
                port
            }
            Err(_) => {
                out.extend([ATYP_DOMAIN, name.len() as u8]);
                out.extend_from_slice(name.as_bytes());
                port
            }
        },
        Target::Addr(addr) => {
            push_ip(&mut out, addr.ip());
            addr.port()
        }
    };
    out.extend(port.to_be_bytes());
    Ok(out)
}

fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            out.push(ATYP_IPV4);
            out.extend(v4.octets());
        }
        IpAddr::V6(v6) => {
            out.push(ATYP_IPV6);
            out.extend(v6.octets());
        }
    }
}

/// The reply to CONNECT (`VER REP RSV ATYP BND.ADDR BND.PORT`); complete with its length. A
/// reply code other than success fails as soon as it has arrived.
pub fn parse_reply(buf: &[u8]) -> Result<Status<usize>, HandshakeError> {
    let [version, reply, ..] = *buf else {
        return Ok(Status::Partial(2));
    };
    if version != VERSION {
        return Err(HandshakeError::MalformedSocks);
    }
    // RFC 1928 6: "X'00' succeeded"; every other code refuses.
    if reply != 0 {
        return Err(HandshakeError::SocksRefused(reply));
    }
    let Some(&atyp) = buf.get(3) else {
        return Ok(Status::Partial(4));
    };
    let len = match atyp {
        ATYP_IPV4 => 4 + 4 + 2,
        ATYP_IPV6 => 4 + 16 + 2,
        ATYP_DOMAIN => match buf.get(4) {
            Some(&n) => 5 + n as usize + 2,
            None => return Ok(Status::Partial(5)),
        },
        _ => return Err(HandshakeError::MalformedSocks),
    };
    if buf.len() < len {
        return Ok(Status::Partial(len));
    }
    Ok(Status::Complete(len))
}

/// What an RFC 1928 reply code means, for error messages.
pub fn reply_meaning(code: u8) -> &'static str {
    match code {
        1 => "general failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "ttl expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unassigned code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds every strict prefix of `whole` to `parse` and checks it asks for more, with a need
    /// past what it was given and never past `whole`; then the whole parses.
    fn check_prefixes<T: std::fmt::Debug + PartialEq + Clone>(
        whole: &[u8],
        parse: impl Fn(&[u8]) -> Result<Status<T>, HandshakeError>,
        want: T,
    ) {
        for cut in 0..whole.len() {
            match parse(&whole[..cut]) {
                Ok(Status::Partial(need)) => {
                    assert!(need > cut && need <= whole.len(), "{whole:?} cut at {cut}")
                }
                other => panic!("{whole:?} cut at {cut}: {other:?}"),
            }
        }
        assert_eq!(parse(whole), Ok(Status::Complete(want.clone())));
        // Bytes after the message are not the parser's.
        let longer = [whole, b"tunnel bytes"].concat();
        assert_eq!(parse(&longer), Ok(Status::Complete(want)));
    }

    #[test]
    fn greetings() {
        assert_eq!(greeting(false), [5, 1, 0]);
        assert_eq!(greeting(true), [5, 2, 0, 2]);
    }

    #[test]
    fn method_choices() {
        check_prefixes(&[5, 0], |b| parse_choice(b, false), false);
        check_prefixes(&[5, 2], |b| parse_choice(b, true), true);
        check_prefixes(&[5, 0], |b| parse_choice(b, true), false);
        let rows: &[(&[u8], bool, HandshakeError)] = &[
            (&[5, 0xFF], false, HandshakeError::SocksNoMethod),
            (&[5, 0xFF], true, HandshakeError::SocksNoMethod),
            // Username/password chosen though not offered.
            (&[5, 2], false, HandshakeError::MalformedSocks),
            // GSSAPI, never offered.
            (&[5, 1], true, HandshakeError::MalformedSocks),
            (&[4, 0], false, HandshakeError::MalformedSocks),
            (b"HT", false, HandshakeError::MalformedSocks),
        ];
        for &(reply, creds, want) in rows {
            assert_eq!(parse_choice(reply, creds), Err(want), "{reply:?}");
        }
    }

    #[test]
    fn auth_requests_and_limits() {
        assert_eq!(
            auth_request(b"user", b"pw").unwrap(),
            [1, 4, b'u', b's', b'e', b'r', 2, b'p', b'w']
        );
        let max = [b'x'; 255];
        let req = auth_request(&max, &max).unwrap();
        assert_eq!(req.len(), 3 + 255 + 255);
        assert_eq!((req[1], req[257]), (255, 255));
        let long = [b'x'; 256];
        for (user, password) in [
            (&long[..], &b"pw"[..]),
            (b"u", &long),
            (b"", b"pw"),
            (b"u", b""),
        ] {
            assert_eq!(
                auth_request(user, password),
                Err(InputError::SocksField),
                "{} {}",
                user.len(),
                password.len()
            );
        }
    }

    #[test]
    fn auth_replies() {
        check_prefixes(&[1, 0], parse_auth_reply, ());
        check_prefixes(&[5, 0], parse_auth_reply, ());
        assert_eq!(
            parse_auth_reply(&[1, 1]),
            Err(HandshakeError::SocksAuthFailed)
        );
        assert_eq!(
            parse_auth_reply(&[1, 0xFF]),
            Err(HandshakeError::SocksAuthFailed)
        );
        assert_eq!(
            parse_auth_reply(&[0, 0]),
            Err(HandshakeError::MalformedSocks)
        );
    }

    #[test]
    fn connect_requests() {
        let v4: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        let v6: SocketAddr = "[::1]:443".parse().unwrap();
        let mut want_v6 = vec![5, 1, 0, 4];
        want_v6.extend([0; 15]);
        want_v6.extend([1, 1, 187]);
        let rows: &[(Target<'_>, Vec<u8>)] = &[
            (Target::Addr(v4), vec![5, 1, 0, 1, 127, 0, 0, 1, 0x23, 0x29]),
            (Target::Addr(v6), want_v6.clone()),
            (
                Target::Name("localhost", 80),
                [&[5, 1, 0, 3, 9][..], b"localhost", &[0, 80]].concat(),
            ),
            // An address literal goes as an address, not as a name.
            (Target::Name("::1", 443), want_v6),
            (
                Target::Name("10.0.0.1", 1),
                vec![5, 1, 0, 1, 10, 0, 0, 1, 0, 1],
            ),
        ];
        for (target, want) in rows {
            assert_eq!(&connect_request(target).unwrap(), want, "{target:?}");
        }
        let name = "a".repeat(255);
        assert_eq!(
            connect_request(&Target::Name(&name, 1)).unwrap().len(),
            5 + 255 + 2
        );
        let name = "a".repeat(256);
        assert_eq!(
            connect_request(&Target::Name(&name, 1)),
            Err(InputError::SocksField)
        );
        // A name is 1 to 255 bytes: its length goes in one byte, and an empty one names nothing.
        assert_eq!(
            connect_request(&Target::Name("", 1)),
            Err(InputError::SocksField)
        );
    }

    #[test]
    fn replies_of_each_address_type() {
        let v4 = [5, 0, 0, 1, 127, 0, 0, 1, 0x1F, 0x90];
        check_prefixes(&v4, parse_reply, v4.len());
        let mut v6 = vec![5, 0, 0, 4];
        v6.extend([0xAB; 16]);
        v6.extend([0, 1]);
        check_prefixes(&v6, parse_reply, 22);
        let name = [&[5, 0, 0, 3, 7][..], b"example", &[0, 80]].concat();
        check_prefixes(&name, parse_reply, name.len());
        let longest = [&[5, 0, 0, 3, 255][..], &[b'a'; 255], &[0, 80]].concat();
        assert_eq!(longest.len(), MAX_REPLY);
        check_prefixes(&longest, parse_reply, MAX_REPLY);
        let empty_name = [5, 0, 0, 3, 0, 0, 80];
        check_prefixes(&empty_name, parse_reply, 7);
    }

    #[test]
    fn bad_replies() {
        for code in 1..=255u8 {
            assert_eq!(
                parse_reply(&[5, code]),
                Err(HandshakeError::SocksRefused(code))
            );
        }
        let rows: &[&[u8]] = &[
            &[4, 0, 0, 1],
            &[0, 90],
            b"HTTP/1.1 200",
            &[5, 0, 0, 2, 0, 0],
            &[5, 0, 0, 0],
            &[5, 0, 0, 0xFF],
        ];
        for reply in rows {
            assert_eq!(
                parse_reply(reply),
                Err(HandshakeError::MalformedSocks),
                "{reply:?}"
            );
        }
        let meanings = [
            (1, "general failure"),
            (2, "connection not allowed by ruleset"),
            (3, "network unreachable"),
            (4, "host unreachable"),
            (5, "connection refused"),
            (6, "ttl expired"),
            (7, "command not supported"),
            (8, "address type not supported"),
            (9, "unassigned code"),
            (0xFF, "unassigned code"),
        ];
        for (code, meaning) in meanings {
            assert_eq!(reply_meaning(code), meaning, "{code}");
        }
    }
}
