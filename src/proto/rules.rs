//! The receive rules of RFC 6455 (and RFC 7692's RSV1) for one frame header, as a pure function:
//! given the message in progress and the limits, is this frame allowed, and what does it start?
//!
//! ```text
//!        Text / Binary (fin): a whole message
//!           +-----+
//!           |     v
//!        +-----------+   Text / Binary (!fin)   +--------------+
//!  ----->|   IDLE    |------------------------->|  IN MESSAGE  |---+
//!        +-----------+                          +--------------+   | Continuation (!fin)
//!              ^          Continuation (fin)        |      ^       |
//!              +------------------------------------+      +-------+
//!
//!  Control frames (ping, pong, close) may come in either state and change neither.
//!  IDLE + Continuation: UnexpectedContinuation; IN MESSAGE + Text / Binary: ExpectedContinuation.
//! ```
//!
//! Rules that need no context (reserved opcodes, control frames final and at most 125 bytes, the
//! length encoded minimally) are checked while parsing, in [`frame`](super::frame); what is
//! checked here needs the connection: its role, its limits, whether compression was agreed, and
//! the message in progress. The payload rules (UTF-8, inflating) run while the payload arrives.

use crate::error::ProtocolError;
use crate::message::MessageKind;
use crate::proto::frame::{FrameHeader, OpCode};

/// Which end of the connection this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Accepted the connection; receives masked frames, sends unmasked ones.
    Server,
    /// Opened the connection; masks every frame it sends.
    Client,
}

/// What a receiver enforces on every frame header; fixed for the life of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// This end: a server expects masked frames, a client unmasked ones.
    pub role: Role,
    /// Largest payload of one frame, in bytes.
    pub max_frame: usize,
    /// Largest message, in bytes (a compressed message's inflated bytes are bounded while
    /// inflating; here only its compressed bytes, see [`compressed_bound`]).
    pub max_message: usize,
    /// Most frames one message may come in.
    pub max_fragments: usize,
    /// permessage-deflate was agreed: RSV1 marks a compressed message.
    pub compression: bool,
}

/// The data message in progress, as far as the header rules need to know it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageState {
    /// The kind of the message in progress; `None` between messages.
    pub kind: Option<MessageKind>,
    /// The message in progress is compressed (its first frame had RSV1).
    pub compressed: bool,
    /// Frames of the message so far.
    pub fragments: usize,
    /// Payload bytes of its frames so far, as they came on the wire (compressed, if it is).
    pub wire: usize,
}

/// What a frame header that passed the rules is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameVerdict {
    /// Ping, pong or close; the message in progress is unchanged.
    Control,
    /// The first frame of a new data message; the message state once it is accepted.
    Start(MessageState),
    /// The next frame of the message in progress; the message state once it is accepted.
    Continue(MessageState),
}

/// Checks a frame header against the message in progress and the limits, in this order: RSV
/// bits, mask direction, frame size, continuation order, fragment count, message size. The
/// first rule broken decides the error (and so the close code).
#[inline]
pub fn check_frame(
    h: &FrameHeader,
    state: &MessageState,
    limits: &Limits,
) -> Result<FrameVerdict, ProtocolError> {
    // RFC 7692 6: RSV1 marks the first frame of a compressed message, and only that frame;
    // RFC 6455 5.2: RSV bits MUST be 0 unless an extension defines them.
    let compressed = match h.rsv {
        0 => false,
        0b100 if limits.compression && matches!(h.opcode, OpCode::Text | OpCode::Binary) => true,
        _ => return Err(ProtocolError::ReservedBits),
    };
    // RFC 6455 5.1: a server MUST close on an unmasked frame, a client on a masked one.
    match (limits.role, h.mask.is_some()) {
        (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
        (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
        _ => {}
    }
    if h.len > limits.max_frame as u64 {
        return Err(ProtocolError::FrameTooLarge);
    }
    // Fits in usize: at most max_frame.
    let len = h.len as usize;
    let (mut next, first) = match (h.opcode, state.kind) {
        _ if h.opcode.is_control() => return Ok(FrameVerdict::Control),
        // RFC 6455 5.4: a continuation needs a message in progress, and a new message may not
        // start before the previous one is finished.
        (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
        (OpCode::Continuation, Some(_)) => (*state, false),
        (_, Some(_)) => return Err(ProtocolError::ExpectedContinuation),
        (opcode, None) => {
            let kind = if opcode == OpCode::Text {
                MessageKind::Text
            } else {
                MessageKind::Binary
            };
            let start = MessageState {
                kind: Some(kind),
                compressed,
                fragments: 0,
                wire: 0,
            };
            (start, true)
        }
    };
    next.fragments += 1;
    if next.fragments > limits.max_fragments {
        return Err(ProtocolError::TooManyFragments);
    }
    next.wire = next.wire.saturating_add(len);
    let bound = if next.compressed {
        compressed_bound(limits.max_message)
    } else {
        limits.max_message
    };
    if next.wire > bound {
        return Err(ProtocolError::MessageTooLarge);
    }
    Ok(if first {
        FrameVerdict::Start(next)
    } else {
        FrameVerdict::Continue(next)
    })
}

/// What was wrong, said for the reason of the close frame that fails the connection: sizes with
/// their limits where a limit was passed. `refused` is the frame header the rules refused, if
/// they refused one (a message that grows too large while inflating has none), and `state` the
/// message in progress before it.
pub fn describe(
    e: ProtocolError,
    refused: Option<&FrameHeader>,
    state: &MessageState,
    limits: &Limits,
) -> String {
    match (e, refused) {
        (ProtocolError::FrameTooLarge, Some(h)) => {
            format!(
                "frame of {} bytes over the {} limit",
                h.len, limits.max_frame
            )
        }
        (ProtocolError::MessageTooLarge, Some(h)) => {
            let continues = h.opcode == OpCode::Continuation;
            let so_far = if continues { state.wire as u64 } else { 0 };
            let size = so_far.saturating_add(h.len);
            if (continues && state.compressed) || (!continues && h.rsv & 0b100 != 0) {
                let bound = compressed_bound(limits.max_message);
                format!("compressed message of {size} bytes over the {bound} limit")
            } else {
                format!(
                    "message of {size} bytes over the {} limit",
                    limits.max_message
                )
            }
        }
        (ProtocolError::MessageTooLarge, None) => {
            format!(
                "message inflates past the {} byte limit",
                limits.max_message
            )
        }
        (ProtocolError::TooManyFragments, _) => {
            format!("message in more than {} fragments", limits.max_fragments)
        }
        (ProtocolError::InvalidUtf8, _) => "invalid utf-8 in a text message".to_owned(),
        (ProtocolError::OverMemoryBudget, _) => {
            "memory for incoming messages is spent; try again later".to_owned()
        }
        _ => e.to_string(),
    }
}

/// The most compressed bytes a message of `max_message` inflated bytes may come in. Its inflated
/// bytes are checked while inflating; this bounds the work (empty deflate blocks inflate to
/// nothing, yet cost time). Deflate grows incompressible data by well under 1/8 (stored blocks,
/// sync flushes).
pub fn compressed_bound(max_message: usize) -> usize {
    max_message.saturating_add(max_message / 8 + 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProtocolError::*;

    const MASK: Option<[u8; 4]> = Some([1, 2, 3, 4]);

    const LIMITS: Limits = Limits {
        role: Role::Server,
        max_frame: 1000,
        max_message: 3000,
        max_fragments: 3,
        compression: true,
    };

    const IDLE: MessageState = MessageState {
        kind: None,
        compressed: false,
        fragments: 0,
        wire: 0,
    };

    fn frame(opcode: OpCode, fin: bool, rsv: u8, len: u64) -> FrameHeader {
        FrameHeader {
            fin,
            rsv,
            opcode,
            mask: MASK,
            len,
        }
    }

    fn msg(kind: MessageKind, compressed: bool, fragments: usize, wire: usize) -> MessageState {
        MessageState {
            kind: Some(kind),
            compressed,
            fragments,
            wire,
        }
    }

    use MessageKind::{Binary as B, Text as T};
    use OpCode::{Binary, Close, Continuation, Ping, Pong, Text};

    #[test]
    fn table() {
        let big = 3000 * 9 / 8 + 1024;
        #[rustfmt::skip]
        let rows: &[(MessageState, FrameHeader, Result<FrameVerdict, ProtocolError>)] = &[
            // Messages start, continue and end.
            (IDLE, frame(Text, true, 0, 5), Ok(FrameVerdict::Start(msg(T, false, 1, 5)))),
            (IDLE, frame(Binary, false, 0, 0), Ok(FrameVerdict::Start(msg(B, false, 1, 0)))),
            (msg(T, false, 1, 5), frame(Continuation, false, 0, 7),
                Ok(FrameVerdict::Continue(msg(T, false, 2, 12)))),
            (msg(B, true, 2, 9), frame(Continuation, true, 0, 1),
                Ok(FrameVerdict::Continue(msg(B, true, 3, 10)))),
            // Control frames, between messages or inside one.
            (IDLE, frame(Ping, true, 0, 125), Ok(FrameVerdict::Control)),
            (msg(T, false, 3, 3000), frame(Pong, true, 0, 0), Ok(FrameVerdict::Control)),
            (msg(B, true, 1, 1), frame(Close, true, 0, 2), Ok(FrameVerdict::Control)),
            // RSV bits: RSV1 only on the first frame of a data message.
            (IDLE, frame(Text, true, 0b100, 5), Ok(FrameVerdict::Start(msg(T, true, 1, 5)))),
            (IDLE, frame(Binary, false, 0b100, 5), Ok(FrameVerdict::Start(msg(B, true, 1, 5)))),
            (msg(T, true, 1, 5), frame(Continuation, true, 0b100, 5), Err(ReservedBits)),
            (IDLE, frame(Ping, true, 0b100, 0), Err(ReservedBits)),
            (IDLE, frame(Close, true, 0b100, 0), Err(ReservedBits)),
            (IDLE, frame(Text, true, 0b010, 0), Err(ReservedBits)),
            (IDLE, frame(Text, true, 0b001, 0), Err(ReservedBits)),
            (IDLE, frame(Text, true, 0b110, 0), Err(ReservedBits)),
            (IDLE, frame(Binary, true, 0b111, 0), Err(ReservedBits)),
            // Continuation order.
            (IDLE, frame(Continuation, true, 0, 1), Err(UnexpectedContinuation)),
            (msg(T, false, 1, 1), frame(Text, true, 0, 1), Err(ExpectedContinuation)),
            (msg(B, true, 1, 1), frame(Binary, true, 0b100, 1), Err(ExpectedContinuation)),
            // Frame size, for data and control frames alike.
            (IDLE, frame(Binary, true, 0, 1000), Ok(FrameVerdict::Start(msg(B, false, 1, 1000)))),
            (IDLE, frame(Binary, true, 0, 1001), Err(FrameTooLarge)),
            (IDLE, frame(Binary, true, 0, u64::MAX >> 1), Err(FrameTooLarge)),
            (msg(T, false, 1, 1), frame(Continuation, true, 0, 1001), Err(FrameTooLarge)),
            // Fragment count.
            (msg(T, false, 2, 2), frame(Continuation, true, 0, 1),
                Ok(FrameVerdict::Continue(msg(T, false, 3, 3)))),
            (msg(T, false, 3, 3), frame(Continuation, true, 0, 1), Err(TooManyFragments)),
            // Message size: the bytes of an uncompressed message...
            (msg(B, false, 2, 2000), frame(Continuation, true, 0, 1000),
                Ok(FrameVerdict::Continue(msg(B, false, 3, 3000)))),
            (msg(B, false, 2, 2001), frame(Continuation, true, 0, 1000), Err(MessageTooLarge)),
            // ...and the compressed bytes of a compressed one, with room for deflate's growth.
            (msg(B, true, 2, 2001), frame(Continuation, true, 0, 1000),
                Ok(FrameVerdict::Continue(msg(B, true, 3, 3001)))),
            (msg(B, true, 2, big - 1000), frame(Continuation, true, 0, 1000),
                Ok(FrameVerdict::Continue(msg(B, true, 3, big)))),
            (msg(B, true, 2, big - 999), frame(Continuation, true, 0, 1000), Err(MessageTooLarge)),
            // Several rules broken: the first in the documented order decides.
            (msg(T, false, 3, 2900), frame(Text, true, 0b010, 5000), Err(ReservedBits)),
            (msg(T, false, 3, 2900), frame(Text, true, 0, 5000), Err(FrameTooLarge)),
            (msg(T, false, 3, 2900), frame(Text, true, 0, 500), Err(ExpectedContinuation)),
            (msg(T, false, 3, 2900), frame(Continuation, true, 0, 500), Err(TooManyFragments)),
        ];
        for (state, header, verdict) in rows {
            assert_eq!(
                check_frame(header, state, &LIMITS),
                *verdict,
                "{state:?} {header:?}"
            );
        }
    }

    #[test]
    fn close_reasons_name_sizes_and_limits() {
        // compressed_bound(3000) = 3000 + 375 + 1024
        let with_rsv1 = |h: FrameHeader| FrameHeader { rsv: 0b100, ..h };
        #[rustfmt::skip]
        let rows: &[(ProtocolError, Option<FrameHeader>, MessageState, &str)] = &[
            (FrameTooLarge, Some(frame(Binary, true, 0, 1001)), IDLE,
                "frame of 1001 bytes over the 1000 limit"),
            // A continuation counts the message so far; a first frame only itself.
            (MessageTooLarge, Some(frame(Continuation, true, 0, 1000)), msg(B, false, 2, 2001),
                "message of 3001 bytes over the 3000 limit"),
            (MessageTooLarge, Some(frame(Binary, true, 0, 3001)), msg(B, true, 1, 100),
                "message of 3001 bytes over the 3000 limit"),
            // Compressed: the continuation of a compressed message, or a first frame with RSV1.
            (MessageTooLarge, Some(frame(Continuation, true, 0, 1000)), msg(B, true, 2, 3500),
                "compressed message of 4500 bytes over the 4399 limit"),
            (MessageTooLarge, Some(with_rsv1(frame(Text, true, 0, 4400))), msg(T, false, 1, 100),
                "compressed message of 4400 bytes over the 4399 limit"),
            (MessageTooLarge, Some(with_rsv1(frame(Continuation, true, 0, 600))),
                msg(B, false, 1, 2500), "message of 3100 bytes over the 3000 limit"),
            (MessageTooLarge, None, IDLE, "message inflates past the 3000 byte limit"),
            (TooManyFragments, Some(frame(Continuation, true, 0, 1)), msg(T, false, 3, 3),
                "message in more than 3 fragments"),
            (InvalidUtf8, None, IDLE, "invalid utf-8 in a text message"),
            (OverMemoryBudget, None, IDLE,
                "memory for incoming messages is spent; try again later"),
            // The rest say what their error says.
            (FrameTooLarge, None, IDLE, "frame too large"),
            (ReservedBits, Some(frame(Text, true, 0b010, 0)), IDLE, "reserved bits set"),
        ];
        for (e, refused, state, want) in rows {
            assert_eq!(
                describe(*e, refused.as_ref(), state, &LIMITS),
                *want,
                "{e:?}"
            );
        }
    }

    #[test]
    fn mask_direction_per_role() {
        let client = Limits {
            role: Role::Client,
            ..LIMITS
        };
        for opcode in [Text, Binary, Ping, Pong, Close] {
            let masked = frame(opcode, true, 0, 1);
            let unmasked = FrameHeader {
                mask: None,
                ..masked
            };
            // RSV bits are checked first, then the mask.
            let bad_rsv = FrameHeader {
                rsv: 0b001,
                ..unmasked
            };
            assert!(check_frame(&masked, &IDLE, &LIMITS).is_ok(), "{opcode:?}");
            assert_eq!(check_frame(&unmasked, &IDLE, &LIMITS), Err(UnmaskedFrame));
            assert!(check_frame(&unmasked, &IDLE, &client).is_ok(), "{opcode:?}");
            assert_eq!(check_frame(&masked, &IDLE, &client), Err(MaskedFrame));
            assert_eq!(check_frame(&bad_rsv, &IDLE, &LIMITS), Err(ReservedBits));
        }
        // The mask is checked before the size.
        let huge = FrameHeader {
            mask: None,
            ..frame(Binary, true, 0, 1 << 40)
        };
        assert_eq!(check_frame(&huge, &IDLE, &LIMITS), Err(UnmaskedFrame));
    }

    #[test]
    fn rsv1_without_compression_is_reserved() {
        let plain = Limits {
            compression: false,
            ..LIMITS
        };
        for opcode in [Text, Binary, Continuation, Ping] {
            let h = frame(opcode, true, 0b100, 1);
            assert_eq!(
                check_frame(&h, &IDLE, &plain),
                Err(ReservedBits),
                "{opcode:?}"
            );
        }
        let h = frame(Text, true, 0, 1);
        assert_eq!(
            check_frame(&h, &IDLE, &plain),
            Ok(FrameVerdict::Start(msg(T, false, 1, 1)))
        );
    }

    #[test]
    fn a_message_of_every_allowed_shape_is_accepted_frame_by_frame() {
        // Walk messages of 1..=max_fragments frames with controls interleaved, feeding each
        // verdict's state back in, as the receiver does.
        for fragments in 1..=LIMITS.max_fragments {
            for opcode in [Text, Binary] {
                let mut state = IDLE;
                for i in 0..fragments {
                    let fin = i + 1 == fragments;
                    let op = if i == 0 { opcode } else { Continuation };
                    let h = frame(op, fin, 0, 1000);
                    match check_frame(&h, &state, &LIMITS) {
                        Ok(FrameVerdict::Start(next)) if i == 0 => state = next,
                        Ok(FrameVerdict::Continue(next)) if i > 0 => state = next,
                        other => panic!("{fragments} {i}: {other:?}"),
                    }
                    let ping = frame(Ping, true, 0, 0);
                    assert_eq!(
                        check_frame(&ping, &state, &LIMITS),
                        Ok(FrameVerdict::Control)
                    );
                }
                assert_eq!((state.fragments, state.wire), (fragments, fragments * 1000));
            }
        }
    }
}
