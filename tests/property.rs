//! Property tests: however the bytes of a conversation are split into reads, a socket must see the
//! same thing.
//!
//! Each case builds a random conversation as the peer would send it (text and binary messages,
//! some fragmented, pings and pongs in between, payloads of 0, 125, 126, 65535, 65536 bytes and
//! others, masked when the peer is a client, then a close frame) and feeds it to a `WebSocket`
//! twice: (a) all at once, (b) cut at random points into many reads, some of one byte. Both must
//! return exactly the messages that were built, write back the same pongs and close, and end
//! with the same close.
//!
//! The second test injects one random violation of RFC 6455 at a random place; both ways must
//! deliver the messages before it and then fail with the same error and the same close code.
//!
//! No dependencies: a tiny xorshift generator with fixed seeds, so every run is the same. A
//! failing case prints its seed; rerun just that seed by narrowing `SEEDS`.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::ops::Range;

use syncws::{Config, Error, Message, ProtocolError, Role, Transport, WebSocket};

/// How many random conversations each test builds per role.
const SEEDS: Range<u64> = 1..301;

/// Frames larger than this fail with 1009; the valid conversations stay below it.
const MAX_FRAME: usize = 70_000;

const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

#[test]
fn valid_conversations_read_the_same_whole_and_split() {
    for seed in SEEDS {
        for role in [Role::Server, Role::Client] {
            let mut rng = Rng::new(seed * 2 + u64::from(role == Role::Client));
            let convo = Conversation::random(&mut rng, peer_masks(role));
            let wire = encode(&convo.frames, &mut rng);
            let expected = Outcome {
                messages: convo.messages(convo.frames.len()),
                replies: convo.replies(convo.frames.len(), Some(convo.close_code)),
                end: End::Closed(convo.close_code, convo.close_reason.clone()),
            };
            let cuts = random_cuts(&mut rng, wire.len());
            let whole = receive_all(role, &wire, &[]);
            let split = receive_all(role, &wire, &cuts);
            assert_eq!(whole, expected, "seed {seed} {role:?}, whole");
            assert_eq!(split, expected, "seed {seed} {role:?}, cut at {cuts:?}");
        }
    }
}

#[test]
fn violations_fail_the_same_whole_and_split() {
    for seed in SEEDS {
        for role in [Role::Server, Role::Client] {
            let mut rng = Rng::new(seed * 2 + u64::from(role == Role::Client));
            let mut convo = Conversation::random(&mut rng, peer_masks(role));
            // Insert the violation before frame `at` (never after the final close).
            let at = rng.below(convo.frames.len());
            let (bad_frames, error) = violation(&mut rng, &convo, at);
            let delivered = convo.messages(at);
            let replies = convo.replies(at, Some(error.close_code().0));
            convo.frames.splice(at..at, bad_frames);
            let wire = encode(&convo.frames, &mut rng);
            let expected = Outcome {
                messages: delivered,
                replies,
                end: End::Error(Error::Protocol(error).to_string()),
            };
            let cuts = random_cuts(&mut rng, wire.len());
            let whole = without_reason(receive_all(role, &wire, &[]));
            let split = without_reason(receive_all(role, &wire, &cuts));
            assert_eq!(whole, expected, "seed {seed} {role:?}, whole");
            assert_eq!(split, expected, "seed {seed} {role:?}, cut at {cuts:?}");
        }
    }
}

// ------------------------------------------------------------------ building conversations

/// One frame as the peer puts it on the wire.
#[derive(Debug, Clone)]
struct Frame {
    fin: bool,
    /// RSV1-3 as the low three bits.
    rsv: u8,
    opcode: u8,
    payload: Vec<u8>,
    masked: bool,
    /// Send only a header announcing this many bytes (for "frame too large").
    announce_only: Option<u64>,
    /// Encode the length in the 16-bit form even when it is below 126 (not allowed).
    long_length_form: bool,
}

impl Frame {
    fn new(opcode: u8, fin: bool, payload: &[u8], masked: bool) -> Frame {
        Frame {
            fin,
            rsv: 0,
            opcode,
            payload: payload.to_vec(),
            masked,
            announce_only: None,
            long_length_form: false,
        }
    }
}

/// A valid conversation: frames, and for each frame what the receiver should make of it.
struct Conversation {
    frames: Vec<Frame>,
    /// After frame i: the message it completes, if any.
    completes: Vec<Option<Message>>,
    /// After frame i: whether a fragmented message is open, and if so whether it is text.
    open_after: Vec<Option<bool>>,
    masked: bool,
    close_code: u16,
    close_reason: String,
}

impl Conversation {
    fn random(rng: &mut Rng, masked: bool) -> Conversation {
        let reason_len = rng.below(20);
        let mut c = Conversation {
            frames: Vec::new(),
            completes: Vec::new(),
            open_after: Vec::new(),
            masked,
            close_code: *rng.pick(&[1000, 1001, 1003, 1011, 3000, 4000, 4999]),
            close_reason: random_text(rng, reason_len),
        };
        for _ in 0..rng.below(6) + 1 {
            c.maybe_control(rng, None);
            let text = rng.chance(50);
            let size = random_size(rng);
            let payload = if text {
                random_text(rng, size).into_bytes()
            } else {
                (0..size).map(|_| rng.next() as u8).collect()
            };
            // Cut into 1-4 fragments at random byte offsets (a code point may be cut in two).
            let mut cuts: Vec<usize> = (0..rng.below(4))
                .map(|_| rng.below(payload.len() + 1))
                .collect();
            cuts.push(0);
            cuts.push(payload.len());
            cuts.sort_unstable();
            cuts.dedup();
            if cuts.len() == 1 {
                cuts.push(0); // an empty payload: one frame with nothing in it
            }
            let pieces = cuts.len() - 1;
            for i in 0..pieces {
                let opcode = match (i, text) {
                    (0, true) => TEXT,
                    (0, false) => BINARY,
                    _ => CONTINUATION,
                };
                let last = i + 1 == pieces;
                let piece = &payload[cuts[i]..cuts[i + 1]];
                let message = last.then(|| match text {
                    true => Message::Text(String::from_utf8(payload.clone()).unwrap()),
                    false => Message::Binary(payload.clone()),
                });
                c.push(
                    Frame::new(opcode, last, piece, masked),
                    message,
                    (!last).then_some(text),
                );
                if !last {
                    c.maybe_control(rng, Some(text));
                }
            }
        }
        let mut close = c.close_code.to_be_bytes().to_vec();
        close.extend_from_slice(c.close_reason.as_bytes());
        c.push(Frame::new(CLOSE, true, &close, masked), None, None);
        c
    }

    fn push(&mut self, frame: Frame, completes: Option<Message>, open: Option<bool>) {
        self.frames.push(frame);
        self.completes.push(completes);
        self.open_after.push(open);
    }

    /// Sometimes a ping or an unsolicited pong, which may come between fragments.
    fn maybe_control(&mut self, rng: &mut Rng, open: Option<bool>) {
        if rng.chance(30) {
            let opcode = if rng.chance(50) { PING } else { PONG };
            let len = *rng.pick(&[0, 1, 8, 125]);
            let payload: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            self.push(Frame::new(opcode, true, &payload, self.masked), None, open);
        }
    }

    /// The messages the first `n` frames complete.
    fn messages(&self, n: usize) -> Vec<Message> {
        self.completes[..n].iter().flatten().cloned().collect()
    }

    /// What the receiver writes back for the first `n` frames: a pong for each ping, then a
    /// close with `close`.
    fn replies(&self, n: usize, close: Option<u16>) -> Vec<(u8, Vec<u8>)> {
        let mut out: Vec<(u8, Vec<u8>)> = self.frames[..n]
            .iter()
            .filter(|f| f.opcode == PING)
            .map(|f| (PONG, f.payload.clone()))
            .collect();
        out.extend(close.map(|code| (CLOSE, code.to_be_bytes().to_vec())));
        out
    }
}

/// The outcome with the reason of the closing reply cut off, after checking there is one: a
/// failed connection says what was wrong (its words depend on sizes and limits and are checked
/// by `tests/close_outcomes.rs`).
fn without_reason(mut outcome: Outcome) -> Outcome {
    if let Some((CLOSE, payload)) = outcome.replies.last_mut() {
        assert!(payload.len() > 2, "a close reason: {payload:?}");
        assert!(std::str::from_utf8(&payload[2..]).is_ok(), "{payload:?}");
        payload.truncate(2);
    }
    outcome
}

/// A random way to break RFC 6455 before frame `at`, and the error it must produce.
fn violation(rng: &mut Rng, c: &Conversation, at: usize) -> (Vec<Frame>, ProtocolError) {
    let m = c.masked;
    let open = if at == 0 { None } else { c.open_after[at - 1] };
    let ping = |payload: &[u8]| Frame::new(PING, true, payload, m);
    let mut f = ping(b"bad");
    let error = match rng.below(12) {
        0 => {
            f.opcode = *rng.pick(&[3, 4, 5, 6, 7, 11, 12, 13, 14, 15]);
            ProtocolError::ReservedOpcode(f.opcode)
        }
        1 => {
            f.rsv = *rng.pick(&[0b100, 0b010, 0b001]);
            ProtocolError::ReservedBits
        }
        2 => {
            f.masked = !m;
            if m {
                ProtocolError::UnmaskedFrame
            } else {
                ProtocolError::MaskedFrame
            }
        }
        3 => {
            f.fin = false;
            ProtocolError::FragmentedControl
        }
        4 => {
            f = ping(&[b'p'; 126]);
            ProtocolError::ControlTooLong
        }
        5 => {
            f = Frame::new(CLOSE, true, &1005u16.to_be_bytes(), m);
            ProtocolError::InvalidCloseCode(1005)
        }
        6 => {
            f = Frame::new(CLOSE, true, &[0x03], m);
            ProtocolError::ClosePayloadTooShort
        }
        7 => {
            f = Frame::new(BINARY, true, &[0; 100], m);
            f.long_length_form = true;
            ProtocolError::BadLength
        }
        8 => {
            f = Frame::new(BINARY, true, b"", m);
            f.announce_only = Some(MAX_FRAME as u64 + 1);
            ProtocolError::FrameTooLarge
        }
        // The rest depend on whether a fragmented message is open here.
        _ => match open {
            None if rng.chance(50) => {
                f = Frame::new(CONTINUATION, true, b"orphan", m);
                ProtocolError::UnexpectedContinuation
            }
            None => {
                f = Frame::new(TEXT, true, &[b'o', b'k', 0xFF], m);
                ProtocolError::InvalidUtf8
            }
            Some(true) if rng.chance(50) => {
                f = Frame::new(CONTINUATION, true, &[0xC0, 0xAF], m);
                ProtocolError::InvalidUtf8
            }
            Some(_) => {
                f = Frame::new(BINARY, true, b"too soon", m);
                ProtocolError::ExpectedContinuation
            }
        },
    };
    (vec![f], error)
}

/// Payload sizes: the length-encoding boundaries often, small random ones otherwise.
fn random_size(rng: &mut Rng) -> usize {
    if rng.chance(40) {
        *rng.pick(&[0, 1, 125, 126, 127, 1000, 65535, 65536])
    } else {
        rng.below(300)
    }
}

/// Random valid UTF-8 of about `len` bytes, mixing 1- to 4-byte characters.
fn random_text(rng: &mut Rng, len: usize) -> String {
    let mut s = String::with_capacity(len + 3);
    while s.len() < len {
        let c = match rng.below(8) {
            0 => char::from_u32(0x80 + rng.below(0x780) as u32),
            1 => char::from_u32(0x800 + rng.below(0xF800) as u32), // may hit a surrogate: None
            2 => char::from_u32(0x10000 + rng.below(0x100000) as u32),
            _ => char::from_u32(0x20 + rng.below(0x5F) as u32),
        };
        s.extend(c);
    }
    s
}

/// Puts frames on the wire, masking each masked one with a fresh random key.
fn encode(frames: &[Frame], rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        out.push(u8::from(f.fin) << 7 | f.rsv << 4 | f.opcode);
        let mask_bit = if f.masked { 0x80 } else { 0 };
        let len = f.announce_only.unwrap_or(f.payload.len() as u64);
        if len < 126 && !f.long_length_form {
            out.push(mask_bit | len as u8);
        } else if len <= 0xFFFF {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(mask_bit | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
        if f.announce_only.is_some() {
            continue;
        }
        if f.masked {
            let key = (rng.next() as u32).to_be_bytes();
            out.extend_from_slice(&key);
            out.extend(f.payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            out.extend_from_slice(&f.payload);
        }
    }
    out
}

/// Random places to end a read: a few anywhere, more in long inputs, and a run of one-byte reads
/// somewhere (sometimes everywhere).
fn random_cuts(rng: &mut Rng, len: usize) -> Vec<usize> {
    if len < 3000 && rng.chance(15) {
        return (1..len).collect();
    }
    let mut cuts = BTreeSet::new();
    for _ in 0..rng.below(32) + len / 1024 {
        cuts.insert(rng.below(len));
    }
    let start = rng.below(len);
    cuts.extend(start..(start + rng.below(64)).min(len));
    cuts.into_iter().filter(|&c| c > 0).collect()
}

// ------------------------------------------------------------------ receiving

/// The peer as seen through a socket: each read ends at the next cut (or where the caller's
/// buffer is full); what the socket writes is kept.
struct Peer {
    wire: Vec<u8>,
    pos: usize,
    cuts: Vec<usize>,
    next_cut: usize,
    written: Vec<u8>,
}

impl Read for Peer {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.next_cut < self.cuts.len() && self.cuts[self.next_cut] <= self.pos {
            self.next_cut += 1;
        }
        let end = self
            .cuts
            .get(self.next_cut)
            .copied()
            .unwrap_or(self.wire.len());
        let n = (end - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.wire[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for Peer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Peer {}

#[derive(Debug, PartialEq)]
enum End {
    /// The peer closed: its code and reason.
    Closed(u16, String),
    /// `recv` failed: the error's text.
    Error(String),
}

/// Everything a receiver observably did.
#[derive(Debug, PartialEq)]
struct Outcome {
    messages: Vec<Message>,
    /// The frames written back, unmasked: (opcode, payload).
    replies: Vec<(u8, Vec<u8>)>,
    end: End,
}

/// Receives from `wire` (cut into reads at `cuts`) until the connection ends.
fn receive_all(role: Role, wire: &[u8], cuts: &[usize]) -> Outcome {
    let peer = Peer {
        wire: wire.to_vec(),
        pos: 0,
        cuts: cuts.to_vec(),
        next_cut: 0,
        written: Vec::new(),
    };
    let config = Config::default()
        .ping_interval(None)
        .max_frame_size(MAX_FRAME)
        .max_message_size(1 << 20);
    let mut ws = WebSocket::from_stream(peer, role, config, &[]);
    let mut messages = Vec::new();
    let end = loop {
        match ws.recv() {
            Ok(Some(msg)) => messages.push(msg),
            // A normal code ends with Ok(None), any other with the frame as an error.
            Ok(None) => {
                let close = ws.close_frame().expect("the peer's close frame");
                assert!(close.code.is_normal(), "Ok(None) for {}", close.code);
                break End::Closed(close.code.0, close.reason.clone());
            }
            Err(Error::PeerClosed(close)) => {
                assert!(!close.code.is_normal(), "an error for {}", close.code);
                break End::Closed(close.code.0, close.reason.clone());
            }
            Err(e) => break End::Error(e.to_string()),
        }
    };
    let replies = decode_replies(&ws.get_ref().written, role);
    Outcome {
        messages,
        replies,
        end,
    }
}

/// Splits what the socket wrote into frames, unmasking a client's. Replies are control frames,
/// so their lengths fit the 7-bit form.
fn decode_replies(mut bytes: &[u8], role: Role) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let (b0, b1) = (bytes[0], bytes[1]);
        assert_eq!(b0 & 0xF0, 0x80, "replies are final, without RSV bits");
        assert_eq!(b1 & 0x80 != 0, role == Role::Client, "only clients mask");
        let len = usize::from(b1 & 0x7F);
        assert!(len <= 125, "a control frame");
        let (key, start) = match role {
            Role::Client => (bytes[2..6].try_into().unwrap(), 6),
            Role::Server => ([0; 4], 2),
        };
        let payload = bytes[start..start + len]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        frames.push((b0 & 0x0F, payload));
        bytes = &bytes[start + len..];
    }
    frames
}

/// Clients mask what they send, so a server's peer masks.
fn peer_masks(role: Role) -> bool {
    role == Role::Server
}

// ------------------------------------------------------------------ randomness

/// xorshift64*: small, fast, and the same sequence for the same seed everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}
