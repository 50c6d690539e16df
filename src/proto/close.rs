//! Close frame payloads (RFC 6455 5.5.1): a 2-byte code, then an optional UTF-8 reason.

use crate::error::{InputError, ProtocolError};
use crate::message::{CloseCode, CloseFrame};

/// Longest reason that fits in a control frame beside the code.
pub const MAX_REASON_LEN: usize = 123;

/// Decodes a received close payload. An empty payload means "no status" ([`CloseCode::NO_STATUS`]).
pub fn parse(payload: &[u8]) -> Result<CloseFrame, ProtocolError> {
    match payload.len() {
        0 => Ok(CloseFrame {
            code: CloseCode::NO_STATUS,
            reason: String::new(),
        }),
        // RFC 6455 5.5.1: if there is a body, its first two bytes MUST be the status code.
        1 => Err(ProtocolError::ClosePayloadTooShort),
        _ => {
            let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
            if !code.is_valid_on_wire() {
                return Err(ProtocolError::InvalidCloseCode(code.0));
            }
            let reason =
                std::str::from_utf8(&payload[2..]).map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok(CloseFrame {
                code,
                reason: reason.to_owned(),
            })
        }
    }
}

/// A close payload to send, built on the stack.
#[derive(Debug, Clone, Copy)]
pub struct ClosePayload {
    buf: [u8; 125],
    len: usize,
}

impl ClosePayload {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Encodes a close payload to send; `None` gives an empty payload. The caller has checked the
/// code and the reason length ([`check_outgoing`]).
pub fn encode(code: Option<CloseCode>, reason: &str) -> ClosePayload {
    let mut buf = [0u8; 125];
    let len = match code {
        None => 0,
        Some(code) => {
            buf[..2].copy_from_slice(&code.0.to_be_bytes());
            buf[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
            2 + reason.len()
        }
    };
    ClosePayload { buf, len }
}

/// The longest start of `reason` that fits a close frame (123 bytes), cut at a character
/// boundary; for reasons the library composes itself.
pub fn fit_reason(reason: &str) -> &str {
    let mut end = reason.len().min(MAX_REASON_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// Checks a close the local side wants to send.
pub fn check_outgoing(code: CloseCode, reason: &str) -> Result<(), InputError> {
    if !code.is_valid_on_wire() {
        return Err(InputError::CloseCode);
    }
    if reason.len() > MAX_REASON_LEN {
        return Err(InputError::CloseReasonTooLong);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let ok = |p: &[u8], code: u16, reason: &str| {
            assert_eq!(
                parse(p),
                Ok(CloseFrame {
                    code: CloseCode(code),
                    reason: reason.into()
                })
            );
        };
        ok(&[], 1005, "");
        ok(&[0x03, 0xE8], 1000, "");
        ok(&[0x03, 0xE9, b'b', b'y', b'e'], 1001, "bye");
        ok(&[0x0B, 0xB8], 3000, "");
        ok(&[0x13, 0x87], 4999, "");
        assert_eq!(parse(&[0x03]), Err(ProtocolError::ClosePayloadTooShort));
        for bad in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            let p = bad.to_be_bytes();
            assert_eq!(
                parse(&p),
                Err(ProtocolError::InvalidCloseCode(bad)),
                "{bad}"
            );
        }
        assert_eq!(parse(&[0x03, 0xE8, 0xFF]), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn encode_and_check() {
        let payload = encode(Some(CloseCode::NORMAL), "done");
        assert_eq!(payload.as_bytes(), &[0x03, 0xE8, b'd', b'o', b'n', b'e']);
        assert!(encode(None, "").as_bytes().is_empty());
        assert!(check_outgoing(CloseCode::NORMAL, &"x".repeat(123)).is_ok());
        assert!(check_outgoing(CloseCode::NORMAL, &"x".repeat(124)).is_err());
        assert!(check_outgoing(CloseCode::NO_STATUS, "").is_err());
        assert!(check_outgoing(CloseCode::ABNORMAL, "").is_err());
        assert!(check_outgoing(CloseCode::TLS_HANDSHAKE, "").is_err());
        assert!(check_outgoing(CloseCode(4000), "").is_ok());
    }

    #[test]
    fn composed_reasons_are_cut_to_fit() {
        assert_eq!(fit_reason("short"), "short");
        assert_eq!(fit_reason(&"x".repeat(200)).len(), 123);
        // 61 two-byte characters are 122 bytes; the 62nd would end at byte 124.
        let wide = "é".repeat(80);
        assert_eq!(fit_reason(&wide).len(), 122);
        assert!(check_outgoing(CloseCode::NORMAL, fit_reason(&wide)).is_ok());
    }
}
