//! permessage-deflate negotiation (RFC 7692 section 7.1): read `Sec-WebSocket-Extensions`, let a
//! server pick the first acceptable offer and write its answer, let a client write its offer and
//! check the answer. Strings in, strings out; the compression itself is in `codec.rs` beside this file.
//!
//! ```text
//!   client                                   server
//!   offer(config) ----- Sec-WebSocket-Extensions ----> accept_offer(values, config)
//!                                                        first well-formed offer wins,
//!                                                        answer = agreed parameters
//!   check_answer(values, config) <-------------------- answer (or no header: declined)
//!   both sides now hold the same DeflateParams, seen from each end
//! ```

use std::fmt::Write as _;

use crate::config::DeflateConfig;
use crate::error::HandshakeError;
use crate::proto::extensions::{Extension, parse_extensions};

/// The extension's registered name.
pub const NAME: &str = "permessage-deflate";

/// The parameters agreed for one connection, from this endpoint's point of view.
///
/// Read it with `WebSocket::compression`; `None` there means
/// messages go uncompressed both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// Largest LZ77 window (base-2 logarithm, 8..=15) this endpoint compresses with.
    pub window_bits: u8,
    /// This endpoint compresses every message on its own.
    pub no_context_takeover: bool,
    /// Largest window the peer compresses with: what this endpoint's decompressor must keep.
    pub peer_window_bits: u8,
    /// The peer compresses every message on its own, so nothing is kept between messages.
    pub peer_no_context_takeover: bool,
}

/// The four parameters of RFC 7692 7.1 as one offer or answer carries them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Params {
    /// `server_no_context_takeover`.
    pub server_no_context_takeover: bool,
    /// `client_no_context_takeover`.
    pub client_no_context_takeover: bool,
    /// `server_max_window_bits=N`.
    pub server_max_window_bits: Option<u8>,
    /// `client_max_window_bits`: `Some(None)` without a value (allowed in an offer only),
    /// `Some(Some(n))` with one.
    pub client_max_window_bits: Option<Option<u8>>,
}

/// Why an element's parameters are unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamError {
    /// A parameter RFC 7692 does not define.
    Unknown,
    /// A parameter given twice (RFC 7692 7.1: the offer or answer MUST be declined or failed).
    Duplicate,
    /// A value where none belongs, none where one must be, or a window outside 8..=15.
    BadValue,
}

impl Params {
    /// Reads the parameters of one permessage-deflate element.
    pub fn from_extension(ext: &Extension) -> Result<Params, ParamError> {
        let mut p = Params::default();
        for (name, value) in &ext.params {
            let value = value.as_deref();
            match name.as_str() {
                "server_no_context_takeover" => set_flag(&mut p.server_no_context_takeover, value)?,
                "client_no_context_takeover" => set_flag(&mut p.client_no_context_takeover, value)?,
                "server_max_window_bits" => {
                    if p.server_max_window_bits.is_some() {
                        return Err(ParamError::Duplicate);
                    }
                    let bits = window_bits(value.ok_or(ParamError::BadValue)?)?;
                    p.server_max_window_bits = Some(bits);
                }
                "client_max_window_bits" => {
                    if p.client_max_window_bits.is_some() {
                        return Err(ParamError::Duplicate);
                    }
                    p.client_max_window_bits = Some(value.map(window_bits).transpose()?);
                }
                _ => return Err(ParamError::Unknown),
            }
        }
        Ok(p)
    }

    /// The element as it goes into `Sec-WebSocket-Extensions`: `permessage-deflate; ...`.
    pub fn to_header(&self) -> String {
        let mut s = String::from(NAME);
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = self.server_max_window_bits {
            let _ = write!(s, "; server_max_window_bits={bits}");
        }
        match self.client_max_window_bits {
            Some(Some(bits)) => {
                let _ = write!(s, "; client_max_window_bits={bits}");
            }
            Some(None) => s.push_str("; client_max_window_bits"),
            None => {}
        }
        s
    }
}

fn set_flag(flag: &mut bool, value: Option<&str>) -> Result<(), ParamError> {
    if *flag {
        return Err(ParamError::Duplicate);
    }
    // RFC 7692 7.1.1: the no_context_takeover parameters have no value.
    if value.is_some() {
        return Err(ParamError::BadValue);
    }
    *flag = true;
    Ok(())
}

/// RFC 7692 7.1.2: a decimal integer from 8 to 15 without leading zeroes.
fn window_bits(value: &str) -> Result<u8, ParamError> {
    match value.parse::<u8>() {
        Ok(bits @ 8..=15) if !value.starts_with('0') => Ok(bits),
        _ => Err(ParamError::BadValue),
    }
}

/// The client's offer: one permessage-deflate element built from `config`.
///
/// It always carries `client_max_window_bits` (with our window if below 15), which lets the
/// server limit our window; the RFC asks every client to honour that.
pub fn offer(config: &DeflateConfig) -> String {
    let own = config.own_bits();
    let peer = config.peer_bits();
    Params {
        server_no_context_takeover: config.peer_no_context_takeover,
        client_no_context_takeover: config.no_context_takeover,
        server_max_window_bits: (peer < 15).then_some(peer),
        client_max_window_bits: Some((own < 15).then_some(own)),
    }
    .to_header()
}

/// Server side: answers the first acceptable permessage-deflate offer among the request's
/// `Sec-WebSocket-Extensions` values. Returns the agreed parameters and the answer's header
/// value, or `None` to decline (no compression) when nothing acceptable was offered.
///
/// Every offer the RFC allows is acceptable: a limit on our window is honoured, a request for
/// `server_no_context_takeover` too. Malformed offers (unknown or repeated parameters, bad
/// values) are skipped, as are other extensions; a header that is not an extension list at all
/// declines compression.
pub fn accept_offer<'a, I>(values: I, config: &DeflateConfig) -> Option<(DeflateParams, String)>
where
    I: IntoIterator<Item = &'a str>,
{
    let offers = parse_extensions(values).ok()?;
    let offer = offers
        .iter()
        .filter(|e| e.name.eq_ignore_ascii_case(NAME))
        .find_map(|e| Params::from_extension(e).ok())?;
    let own = config.own_bits();
    let peer = config.peer_bits();
    // RFC 7692 7.1.2.1: answer a limit with the same or a smaller value; without one in the
    // offer we may still announce our own smaller window.
    let server_bits = match offer.server_max_window_bits {
        Some(asked) => Some(asked.min(own)),
        None => (own < 15).then_some(own),
    };
    // RFC 7692 7.1.2.2: only a client that offered client_max_window_bits may be limited, never
    // above the value it offered; without the parameter in the offer it MUST NOT be answered.
    let client_bits = match offer.client_max_window_bits {
        None => None,
        Some(None) => (peer < 15).then_some(peer),
        Some(Some(offered)) => Some(offered.min(peer)),
    };
    let answer = Params {
        // RFC 7692 7.1.1.1: a client's request for it is accepted by echoing it.
        server_no_context_takeover: offer.server_no_context_takeover || config.no_context_takeover,
        // RFC 7692 7.1.1.2: a client that offers client_no_context_takeover will not keep its
        // context anyway; confirming it binds the client and lets our decompressor forget
        // between messages. Without it we only ask if configured to.
        client_no_context_takeover: offer.client_no_context_takeover
            || config.peer_no_context_takeover,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits.map(Some),
    };
    let agreed = DeflateParams {
        window_bits: server_bits.unwrap_or(15),
        no_context_takeover: answer.server_no_context_takeover,
        peer_window_bits: client_bits.unwrap_or(15),
        peer_no_context_takeover: answer.client_no_context_takeover,
    };
    Some((agreed, answer.to_header()))
}

/// Client side: checks the server's `Sec-WebSocket-Extensions` answer to our [`offer`]. No
/// answer means the server declined: `Ok(None)`, messages go uncompressed.
pub fn check_answer<'a, I>(
    values: I,
    config: &DeflateConfig,
) -> Result<Option<DeflateParams>, HandshakeError>
where
    I: IntoIterator<Item = &'a str>,
{
    let answer = parse_extensions(values).map_err(|_| HandshakeError::BadExtension)?;
    let ext = match answer.as_slice() {
        [] => return Ok(None),
        [one] if one.name.eq_ignore_ascii_case(NAME) => one,
        // RFC 6455 9.1: the server may only answer with extensions the client offered, once.
        _ => return Err(HandshakeError::UnexpectedNegotiation),
    };
    let params = Params::from_extension(ext).map_err(|_| HandshakeError::BadExtension)?;
    let own = config.own_bits();
    let peer = config.peer_bits();
    let own_bits = match params.client_max_window_bits {
        None => own,
        // RFC 7692 7.1.2.2: the answer's client_max_window_bits MUST have a value.
        Some(None) => return Err(HandshakeError::BadExtension),
        Some(Some(bits)) if bits <= own => bits,
        Some(Some(_)) => return Err(HandshakeError::UnexpectedNegotiation),
    };
    let peer_bits = match params.server_max_window_bits {
        Some(bits) if bits <= peer => bits,
        // Our limit was not accepted: the server would compress with a larger window.
        _ if peer < 15 => return Err(HandshakeError::UnexpectedNegotiation),
        Some(bits) => bits,
        None => 15,
    };
    if config.peer_no_context_takeover && !params.server_no_context_takeover {
        return Err(HandshakeError::UnexpectedNegotiation);
    }
    Ok(Some(DeflateParams {
        window_bits: own_bits,
        // RFC 7692 7.1.1.2: offering client_no_context_takeover is a promise we keep either way.
        no_context_takeover: config.no_context_takeover || params.client_no_context_takeover,
        peer_window_bits: peer_bits,
        peer_no_context_takeover: params.server_no_context_takeover,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(value: &str) -> Result<Params, ParamError> {
        let exts = parse_extensions([value]).expect("syntax");
        Params::from_extension(&exts[0])
    }

    #[test]
    fn parameters_parse_and_round_trip() {
        let full = Params {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: Some(10),
            client_max_window_bits: Some(Some(8)),
        };
        let rows: &[(&str, Result<Params, ParamError>)] = &[
            ("permessage-deflate", Ok(Params::default())),
            (&full.to_header(), Ok(full)),
            (
                "permessage-deflate; client_max_window_bits",
                Ok(Params {
                    client_max_window_bits: Some(None),
                    ..Params::default()
                }),
            ),
            (
                "permessage-deflate; server_max_window_bits=15",
                Ok(Params {
                    server_max_window_bits: Some(15),
                    ..Params::default()
                }),
            ),
            (
                "permessage-deflate; server_max_window_bits",
                Err(ParamError::BadValue),
            ),
            (
                "permessage-deflate; server_max_window_bits=7",
                Err(ParamError::BadValue),
            ),
            (
                "permessage-deflate; server_max_window_bits=16",
                Err(ParamError::BadValue),
            ),
            (
                "permessage-deflate; server_max_window_bits=09",
                Err(ParamError::BadValue),
            ),
            (
                "permessage-deflate; client_max_window_bits=x",
                Err(ParamError::BadValue),
            ),
            (
                "permessage-deflate; client_no_context_takeover=1",
                Err(ParamError::BadValue),
            ),
            (
                "permessage-deflate; server_no_context_takeover=\"x\"",
                Err(ParamError::BadValue),
            ),
            ("permessage-deflate; mystery", Err(ParamError::Unknown)),
            (
                "permessage-deflate; Server_No_Context_Takeover",
                Err(ParamError::Unknown),
            ),
            (
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                Err(ParamError::Duplicate),
            ),
            (
                "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
                Err(ParamError::Duplicate),
            ),
            (
                "permessage-deflate; server_max_window_bits=9; server_max_window_bits=9",
                Err(ParamError::Duplicate),
            ),
            (
                "permessage-deflate; client_max_window_bits; client_max_window_bits=9",
                Err(ParamError::Duplicate),
            ),
        ];
        for (value, want) in rows {
            assert_eq!(params(value), *want, "{value}");
        }
    }

    /// The settings these tables were written for: the defaults with context takeover (our
    /// side's default is to compress every message on its own; see `defaults_keep_no_context`).
    fn takeover() -> DeflateConfig {
        DeflateConfig::default().no_context_takeover(false)
    }

    #[test]
    fn defaults_keep_no_context() {
        let config = DeflateConfig::default();
        assert_eq!(
            offer(&config),
            "permessage-deflate; client_no_context_takeover; client_max_window_bits"
        );
        let (params, answer) = accept_offer(["permessage-deflate"], &config).unwrap();
        assert_eq!(params, agreed(15, true, 15, false));
        assert_eq!(answer, "permessage-deflate; server_no_context_takeover");
    }

    fn agreed(window: u8, nct: bool, peer_window: u8, peer_nct: bool) -> DeflateParams {
        DeflateParams {
            window_bits: window,
            no_context_takeover: nct,
            peer_window_bits: peer_window,
            peer_no_context_takeover: peer_nct,
        }
    }

    #[test]
    fn server_takes_the_first_acceptable_offer() {
        let default = takeover();
        let frugal = takeover()
            .window_bits(10)
            .peer_window_bits(11)
            .peer_no_context_takeover(true);
        let quiet = takeover().no_context_takeover(true);
        type Row<'a> = (
            &'a [&'a str],
            &'a DeflateConfig,
            Option<(DeflateParams, &'a str)>,
        );
        let rows: &[Row<'_>] = &[
            (&[], &default, None),
            (&["x-webkit-deflate-frame"], &default, None),
            (&["permessage-deflate; bogus"], &default, None),
            (&["permessage-deflate; bogus=\"unclosed"], &default, None),
            (
                &["permessage-deflate"],
                &default,
                Some((agreed(15, false, 15, false), "permessage-deflate")),
            ),
            (
                &["permessage-deflate; client_max_window_bits"],
                &default,
                Some((agreed(15, false, 15, false), "permessage-deflate")),
            ),
            (
                &["permessage-deflate; client_no_context_takeover; client_max_window_bits"],
                &default,
                Some((
                    agreed(15, false, 15, true),
                    "permessage-deflate; client_no_context_takeover",
                )),
            ),
            (
                &["permessage-deflate; server_no_context_takeover"],
                &default,
                Some((
                    agreed(15, true, 15, false),
                    "permessage-deflate; server_no_context_takeover",
                )),
            ),
            (
                &["permessage-deflate; server_max_window_bits=9"],
                &default,
                Some((
                    agreed(9, false, 15, false),
                    "permessage-deflate; server_max_window_bits=9",
                )),
            ),
            (
                &["permessage-deflate; server_max_window_bits=8"],
                &default,
                Some((
                    agreed(8, false, 15, false),
                    "permessage-deflate; server_max_window_bits=8",
                )),
            ),
            (
                &["permessage-deflate; client_max_window_bits=12"],
                &default,
                Some((
                    agreed(15, false, 12, false),
                    "permessage-deflate; client_max_window_bits=12",
                )),
            ),
            // our own limits: announced for us, asked of a client that allows it
            (
                &["permessage-deflate; client_max_window_bits"],
                &frugal,
                Some((
                    agreed(10, false, 11, true),
                    "permessage-deflate; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=11",
                )),
            ),
            (
                &["permessage-deflate; server_max_window_bits=12; client_max_window_bits=9"],
                &frugal,
                Some((
                    agreed(10, false, 9, true),
                    "permessage-deflate; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9",
                )),
            ),
            // a client that cannot be limited: its window stays 15
            (
                &["permessage-deflate"],
                &frugal,
                Some((
                    agreed(10, false, 15, true),
                    "permessage-deflate; client_no_context_takeover; server_max_window_bits=10",
                )),
            ),
            (
                &["permessage-deflate"],
                &quiet,
                Some((
                    agreed(15, true, 15, false),
                    "permessage-deflate; server_no_context_takeover",
                )),
            ),
            // first acceptable offer wins, malformed ones are skipped
            (
                &[
                    "permessage-deflate; server_max_window_bits=20, permessage-deflate; server_no_context_takeover, permessage-deflate",
                ],
                &default,
                Some((
                    agreed(15, true, 15, false),
                    "permessage-deflate; server_no_context_takeover",
                )),
            ),
            (
                &[
                    "foo; bar=1",
                    "permessage-deflate; server_max_window_bits=11",
                    "permessage-deflate",
                ],
                &default,
                Some((
                    agreed(11, false, 15, false),
                    "permessage-deflate; server_max_window_bits=11",
                )),
            ),
            (
                &["permessage-deflate; server_no_context_takeover; server_no_context_takeover"],
                &default,
                None,
            ),
        ];
        for (values, config, want) in rows {
            let got = accept_offer(values.iter().copied(), config);
            let want = want.map(|(p, s)| (p, s.to_owned()));
            assert_eq!(got, want, "{values:?} with {config:?}");
        }
    }

    #[test]
    fn client_offers_what_it_is_configured_for() {
        let rows = [
            (takeover(), "permessage-deflate; client_max_window_bits"),
            (
                takeover()
                    .window_bits(9)
                    .peer_window_bits(12)
                    .no_context_takeover(true)
                    .peer_no_context_takeover(true),
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=9",
            ),
            (
                takeover().window_bits(3).peer_window_bits(99),
                "permessage-deflate; client_max_window_bits=8",
            ),
        ];
        for (config, want) in rows {
            assert_eq!(offer(&config), want);
        }
    }

    #[test]
    fn client_checks_the_answer() {
        use HandshakeError::{BadExtension, UnexpectedNegotiation};
        let default = takeover();
        let asks = takeover()
            .window_bits(12)
            .peer_window_bits(10)
            .peer_no_context_takeover(true);
        let promises = takeover().no_context_takeover(true);
        type Row<'a> = (
            &'a [&'a str],
            &'a DeflateConfig,
            Result<Option<DeflateParams>, HandshakeError>,
        );
        let rows: &[Row<'_>] = &[
            (&[], &default, Ok(None)),
            (
                &["permessage-deflate"],
                &default,
                Ok(Some(agreed(15, false, 15, false))),
            ),
            (
                &["permessage-deflate; server_no_context_takeover; client_no_context_takeover"],
                &default,
                Ok(Some(agreed(15, true, 15, true))),
            ),
            (
                &["permessage-deflate; server_max_window_bits=11; client_max_window_bits=9"],
                &default,
                Ok(Some(agreed(9, false, 11, false))),
            ),
            (
                &["permessage-deflate"],
                &promises,
                Ok(Some(agreed(15, true, 15, false))),
            ),
            (
                &["permessage-deflate; server_no_context_takeover; server_max_window_bits=10"],
                &asks,
                Ok(Some(agreed(12, false, 10, true))),
            ),
            (
                &[
                    "permessage-deflate; server_no_context_takeover; server_max_window_bits=8; client_max_window_bits=8",
                ],
                &asks,
                Ok(Some(agreed(8, false, 8, true))),
            ),
            // what was not offered, or more than one answer
            (
                &["x-webkit-deflate-frame"],
                &default,
                Err(UnexpectedNegotiation),
            ),
            (
                &["permessage-deflate, permessage-deflate"],
                &default,
                Err(UnexpectedNegotiation),
            ),
            (
                &["permessage-deflate", "permessage-deflate"],
                &default,
                Err(UnexpectedNegotiation),
            ),
            (
                &["permessage-deflate, foo"],
                &default,
                Err(UnexpectedNegotiation),
            ),
            // limits and requests not honoured
            (
                &["permessage-deflate; server_no_context_takeover; server_max_window_bits=11"],
                &asks,
                Err(UnexpectedNegotiation),
            ),
            (
                &["permessage-deflate; server_no_context_takeover"],
                &asks,
                Err(UnexpectedNegotiation),
            ),
            (
                &["permessage-deflate; server_max_window_bits=10"],
                &asks,
                Err(UnexpectedNegotiation),
            ),
            (
                &[
                    "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=13",
                ],
                &asks,
                Err(UnexpectedNegotiation),
            ),
            // malformed, unknown, duplicated, out of range
            (
                &["permessage-deflate; client_max_window_bits"],
                &default,
                Err(BadExtension),
            ),
            (
                &["permessage-deflate; server_max_window_bits=16"],
                &default,
                Err(BadExtension),
            ),
            (
                &["permessage-deflate; server_max_window_bits"],
                &default,
                Err(BadExtension),
            ),
            (
                &["permessage-deflate; mystery"],
                &default,
                Err(BadExtension),
            ),
            (
                &["permessage-deflate; client_no_context_takeover; client_no_context_takeover"],
                &default,
                Err(BadExtension),
            ),
            (&["permessage-deflate;"], &default, Err(BadExtension)),
        ];
        for (values, config, want) in rows {
            assert_eq!(
                check_answer(values.iter().copied(), config),
                *want,
                "{values:?} with {config:?}"
            );
        }
    }

    #[test]
    fn offer_and_answer_agree_from_both_ends() {
        let configs = [
            takeover(),
            takeover().window_bits(9).peer_window_bits(12),
            takeover()
                .no_context_takeover(true)
                .peer_no_context_takeover(true),
            takeover().window_bits(8).peer_window_bits(8),
            takeover().peer_window_bits(13).no_context_takeover(true),
        ];
        for client in &configs {
            for server in &configs {
                let offered = offer(client);
                let (at_server, answer) =
                    accept_offer([offered.as_str()], server).expect("accepted");
                let at_client = check_answer([answer.as_str()], client)
                    .expect("answer is valid")
                    .expect("compression on");
                let pair = format!("client {client:?}, server {server:?}");
                assert_eq!(at_client.window_bits, at_server.peer_window_bits, "{pair}");
                assert_eq!(at_server.window_bits, at_client.peer_window_bits, "{pair}");
                assert!(at_client.window_bits <= client.own_bits(), "{pair}");
                assert!(at_server.window_bits <= server.own_bits(), "{pair}");
                assert!(at_client.peer_window_bits <= client.peer_bits(), "{pair}");
                assert_eq!(
                    at_server.no_context_takeover, at_client.peer_no_context_takeover,
                    "{pair}"
                );
                assert_eq!(
                    at_server.peer_no_context_takeover, at_client.no_context_takeover,
                    "{pair}"
                );
            }
        }
    }
}
