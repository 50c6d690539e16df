//! Frame headers (RFC 6455 5.2): parse from bytes, encode into bytes. No I/O.
//!
//! ```text
//!  0               1               2               3
//!  0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               | Masking-key, if MASK set to 1 |
//! +-------------------------------+-------------------------------+
//! ```

use crate::error::ProtocolError;

/// Longest possible header: 2 + 8 length bytes + 4 mask bytes.
pub const MAX_HEADER_LEN: usize = 14;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// 0x0: the next piece of a fragmented message.
    Continuation,
    /// 0x1: the first frame of a text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// The 4-bit value on the wire.
    pub fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    fn from_bits(bits: u8) -> Result<OpCode, ProtocolError> {
        Ok(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            // RFC 6455 5.2: reserved opcodes MUST fail the connection.
            other => return Err(ProtocolError::ReservedOpcode(other)),
        })
    }

    /// Close, ping and pong.
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Last frame of its message.
    pub fin: bool,
    /// RSV1 (used by permessage-deflate), RSV2, RSV3 as the low three bits: `0b100` is RSV1.
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, if the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub len: u64,
}

impl FrameHeader {
    /// Parses a header from the start of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` does not yet hold the whole header (nothing is consumed), or
    /// the header and the number of bytes it took. Rules that need no context are checked here:
    /// reserved opcodes, control frames final and short, the length encoded minimally.
    pub fn parse(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (buf[0], buf[1]);
        let fin = b0 & 0x80 != 0;
        let rsv = (b0 >> 4) & 0x7;
        let opcode = OpCode::from_bits(b0 & 0x0F)?;
        let masked = b1 & 0x80 != 0;
        let short = b1 & 0x7F;
        if opcode.is_control() {
            // RFC 6455 5.5: control frames MUST have a payload of 125 bytes or less and MUST NOT
            // be fragmented.
            if short > 125 {
                return Err(ProtocolError::ControlTooLong);
            }
            if !fin {
                return Err(ProtocolError::FragmentedControl);
            }
        }
        let ext = match short {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let total = 2 + ext + if masked { 4 } else { 0 };
        if buf.len() < total {
            return Ok(None);
        }
        let len = match ext {
            0 => u64::from(short),
            2 => {
                let n = u64::from(u16::from_be_bytes([buf[2], buf[3]]));
                // RFC 6455 5.2: "the minimal number of bytes MUST be used to encode the length".
                if n < 126 {
                    return Err(ProtocolError::BadLength);
                }
                n
            }
            _ => {
                let n = u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes"));
                // RFC 6455 5.2: the most significant bit MUST be 0; and minimal encoding.
                if n >> 63 != 0 || n <= 0xFFFF {
                    return Err(ProtocolError::BadLength);
                }
                n
            }
        };
        let mask = masked.then(|| {
            let m = &buf[2 + ext..2 + ext + 4];
            [m[0], m[1], m[2], m[3]]
        });
        Ok(Some((
            FrameHeader {
                fin,
                rsv,
                opcode,
                mask,
                len,
            },
            total,
        )))
    }

    /// Encodes the header into `out`, returning how many bytes were written.
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        out[0] = (u8::from(self.fin) << 7) | ((self.rsv & 0x7) << 4) | self.opcode.bits();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut n = if self.len < 126 {
            out[1] = mask_bit | self.len as u8;
            2
        } else if self.len <= 0xFFFF {
            out[1] = mask_bit | 126;
            out[2..4].copy_from_slice(&(self.len as u16).to_be_bytes());
            4
        } else {
            out[1] = mask_bit | 127;
            out[2..10].copy_from_slice(&self.len.to_be_bytes());
            10
        };
        if let Some(key) = self.mask {
            out[n..n + 4].copy_from_slice(&key);
            n += 4;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(opcode: OpCode, fin: bool, mask: Option<[u8; 4]>, len: u64) -> FrameHeader {
        FrameHeader {
            fin,
            rsv: 0,
            opcode,
            mask,
            len,
        }
    }

    fn encoded(h: &FrameHeader) -> Vec<u8> {
        let mut out = [0u8; MAX_HEADER_LEN];
        let n = h.encode(&mut out);
        out[..n].to_vec()
    }

    #[test]
    fn round_trips_every_length_class_and_split_point() {
        let opcodes = [OpCode::Continuation, OpCode::Text, OpCode::Binary];
        let lens = [0u64, 1, 125, 126, 65535, 65536, 1 << 32, (1 << 63) - 1];
        for &opcode in &opcodes {
            for &len in &lens {
                for mask in [None, Some([1, 2, 3, 4])] {
                    for rsv in [0u8, 0b100, 0b111] {
                        let h = FrameHeader {
                            rsv,
                            ..header(opcode, len % 2 == 0, mask, len)
                        };
                        let bytes = encoded(&h);
                        // every strict prefix asks for more and consumes nothing
                        for cut in 0..bytes.len() {
                            assert_eq!(FrameHeader::parse(&bytes[..cut]), Ok(None), "{h:?} {cut}");
                        }
                        let mut with_payload = bytes.clone();
                        with_payload.extend_from_slice(b"payload");
                        assert_eq!(
                            FrameHeader::parse(&with_payload),
                            Ok(Some((h, bytes.len())))
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn known_bytes() {
        // RFC 6455 5.7: a single-frame unmasked text message "Hello".
        assert_eq!(
            FrameHeader::parse(&[0x81, 0x05, 0x48]),
            Ok(Some((header(OpCode::Text, true, None, 5), 2)))
        );
        // A masked "Hello" from a client.
        assert_eq!(
            FrameHeader::parse(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d]),
            Ok(Some((
                header(OpCode::Text, true, Some([0x37, 0xfa, 0x21, 0x3d]), 5),
                6
            )))
        );
        // 256 bytes binary: 16-bit length.
        assert_eq!(
            FrameHeader::parse(&[0x82, 0x7E, 0x01, 0x00]),
            Ok(Some((header(OpCode::Binary, true, None, 256), 4)))
        );
        // RFC 6455 5.5: 125 bytes is the longest control payload, and allowed.
        assert_eq!(
            FrameHeader::parse(&[0x89, 0x7D]),
            Ok(Some((header(OpCode::Ping, true, None, 125), 2)))
        );
        assert_eq!(
            encoded(&header(OpCode::Ping, true, None, 0)),
            vec![0x89, 0x00]
        );
    }

    #[test]
    fn rejections() {
        let cases: &[(&[u8], ProtocolError)] = &[
            (&[0x83, 0x00], ProtocolError::ReservedOpcode(3)),
            (&[0x87, 0x00], ProtocolError::ReservedOpcode(7)),
            (&[0x8B, 0x00], ProtocolError::ReservedOpcode(11)),
            (&[0x8F, 0x00], ProtocolError::ReservedOpcode(15)),
            (&[0x09, 0x00], ProtocolError::FragmentedControl),
            (&[0x89, 0x7E, 0x00, 0x7E], ProtocolError::ControlTooLong),
            (&[0x88, 0x7E], ProtocolError::ControlTooLong),
            (&[0x82, 0x7E, 0x00, 0x7D], ProtocolError::BadLength),
            (
                &[0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF],
                ProtocolError::BadLength,
            ),
            (
                &[0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0],
                ProtocolError::BadLength,
            ),
        ];
        for (bytes, err) in cases {
            assert_eq!(FrameHeader::parse(bytes), Err(*err), "{bytes:x?}");
        }
    }

    #[test]
    fn header_of_2_pow_63_minus_1_parses_so_limits_can_reject_it() {
        let bytes = [0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        let (h, n) = FrameHeader::parse(&bytes).unwrap().unwrap();
        assert_eq!((h.len, n), (u64::MAX >> 1, 10));
    }
}
