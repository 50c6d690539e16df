//! The bytes of one message on a Redis channel: a fixed 24-byte header, then the payload as it
//! is (binary-safe, no escaping).
//!
//! ```text
//!   0      2   3    4                12          16                24
//!   +------+---+----+----------------+-----------+-----------------+-----------
//!   | "sw" | 1 |kind| instance (u64) | publisher | sequence (u64)  | payload ...
//!   +------+---+----+----------------+-----------+-----------------+-----------
//!    magic  version  big-endian       (u32)       per room, from 1
//!           kind: 1 text (UTF-8), 2 binary
//! ```
//!
//! The room is not in the envelope: it is the channel's name after the prefix.

use crate::message::MessageRef;

/// The header's length in bytes.
pub(super) const HEADER: usize = 24;

const MAGIC: &[u8; 2] = b"sw";
const VERSION: u8 = 1;
const TEXT: u8 = 1;
const BINARY: u8 = 2;

/// Who sent a message and where it stands in its room's sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Origin {
    /// The sending backend's random id (one per [`RedisBackend`](super::RedisBackend)).
    pub instance: u64,
    /// The sender's sequence epoch: its sequences start again from 1 under a new one.
    pub publisher: u32,
    /// The message's number in its room, from this instance and epoch: 1, 2, 3, ...
    pub seq: u64,
}

/// Why a channel message is not one of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Malformed {
    /// Shorter than the header.
    Short(usize),
    /// Does not start with the magic bytes: another program publishes on the prefix.
    Foreign,
    /// Ours, but of a version this build does not read.
    Version(u8),
    /// An unknown payload kind.
    Kind(u8),
    /// A text payload that is not UTF-8.
    NotUtf8,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed::Short(n) => write!(f, "{n} bytes, shorter than the {HEADER}-byte envelope"),
            Malformed::Foreign => f.write_str("not a syncws envelope (wrong magic bytes)"),
            Malformed::Version(v) => write!(f, "envelope version {v}, this build reads {VERSION}"),
            Malformed::Kind(k) => write!(f, "unknown payload kind {k}"),
            Malformed::NotUtf8 => f.write_str("a text payload that is not UTF-8"),
        }
    }
}

/// The envelope of `msg` from `origin`: header and payload in one buffer.
pub(super) fn encode(origin: Origin, msg: MessageRef<'_>) -> Vec<u8> {
    let (kind, payload) = match msg {
        MessageRef::Text(t) => (TEXT, t.as_bytes()),
        MessageRef::Binary(b) => (BINARY, b),
    };
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(&origin.instance.to_be_bytes());
    out.extend_from_slice(&origin.publisher.to_be_bytes());
    out.extend_from_slice(&origin.seq.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Writes the sequence epoch and number into an envelope made by [`encode`] (the publisher
/// thread numbers messages in the order it sends them, not the order callers queued them).
pub(super) fn stamp(envelope: &mut [u8], publisher: u32, seq: u64) {
    envelope[12..16].copy_from_slice(&publisher.to_be_bytes());
    envelope[16..24].copy_from_slice(&seq.to_be_bytes());
}

/// Reads an envelope; the message borrows from `bytes`.
pub(super) fn decode(bytes: &[u8]) -> Result<(Origin, MessageRef<'_>), Malformed> {
    if !bytes.starts_with(MAGIC) {
        // Checked first so that a foreign message is named as such even when it is short;
        // only a start of the magic (0 or 1 bytes) is an envelope cut short.
        return Err(if MAGIC.starts_with(bytes) {
            Malformed::Short(bytes.len())
        } else {
            Malformed::Foreign
        });
    }
    if bytes.len() < HEADER {
        return Err(Malformed::Short(bytes.len()));
    }
    if bytes[2] != VERSION {
        return Err(Malformed::Version(bytes[2]));
    }
    let word = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let origin = Origin {
        instance: word(4),
        publisher: u32::from_be_bytes(bytes[12..16].try_into().expect("4 bytes")),
        seq: word(16),
    };
    let payload = &bytes[HEADER..];
    let msg = match bytes[3] {
        TEXT => MessageRef::Text(std::str::from_utf8(payload).map_err(|_| Malformed::NotUtf8)?),
        BINARY => MessageRef::Binary(payload),
        other => return Err(Malformed::Kind(other)),
    };
    Ok((origin, msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: Origin = Origin {
        instance: 0x0102_0304_0506_0708,
        publisher: 0x0a0b_0c0d,
        seq: 0x1112_1314_1516_1718,
    };

    #[test]
    fn the_header_is_laid_out_as_documented() {
        let bytes = encode(ORIGIN, MessageRef::Text("hi"));
        assert_eq!(
            bytes,
            [
                b"sw\x01\x01".as_slice(),
                &[1, 2, 3, 4, 5, 6, 7, 8],
                &[0xa, 0xb, 0xc, 0xd],
                &[0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18],
                b"hi",
            ]
            .concat()
        );
    }

    #[test]
    fn every_message_comes_back_as_it_went_in() {
        let binary: Vec<u8> = (0..=255).collect();
        let cases = [
            MessageRef::Text(""),
            MessageRef::Text("héllo\r\n\0"),
            MessageRef::Binary(&[]),
            MessageRef::Binary(&binary),
        ];
        for msg in cases {
            let bytes = encode(ORIGIN, msg);
            assert_eq!(bytes.len(), HEADER + msg.bytes().len());
            assert_eq!(decode(&bytes), Ok((ORIGIN, msg)));
        }
    }

    #[test]
    fn a_stamp_sets_the_epoch_and_number_only() {
        let unstamped = Origin {
            publisher: 0,
            seq: 0,
            ..ORIGIN
        };
        let mut bytes = encode(unstamped, MessageRef::Text("x"));
        stamp(&mut bytes, ORIGIN.publisher, ORIGIN.seq);
        assert_eq!(decode(&bytes), Ok((ORIGIN, MessageRef::Text("x"))));
    }

    #[test]
    fn every_prefix_of_an_envelope_is_refused() {
        let bytes = encode(ORIGIN, MessageRef::Binary(b"payload"));
        for n in 0..HEADER {
            assert_eq!(decode(&bytes[..n]), Err(Malformed::Short(n)), "{n} bytes");
        }
    }

    #[test]
    fn foreign_and_damaged_messages_say_what_is_wrong() {
        let good = encode(ORIGIN, MessageRef::Text("x"));
        let with = |at: usize, byte: u8| {
            let mut b = good.clone();
            b[at] = byte;
            b
        };
        let cases: [(Vec<u8>, Malformed); 6] = [
            (b"hello".to_vec(), Malformed::Foreign),
            (b"{\"json\": true}".to_vec(), Malformed::Foreign),
            (with(2, 9), Malformed::Version(9)),
            (with(3, 0), Malformed::Kind(0)),
            (with(3, 7), Malformed::Kind(7)),
            (with(HEADER, 0xff), Malformed::NotUtf8),
        ];
        for (bytes, expected) in cases {
            assert_eq!(decode(&bytes), Err(expected), "{bytes:?}");
        }
    }
}
