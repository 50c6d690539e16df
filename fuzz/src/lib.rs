//! Shared code of the fuzz targets: an in-memory stream that hands out the fuzz input in fuzzed
//! chunks, and the frame-reading harness that `frame_server` and `frame_client` run.
//!
//! # Input format of the frame targets
//!
//! ```text
//! byte 0      flags: bits 0-2  n, the number of chunk-size bytes that follow (0..=7)
//!                    bit 3     small limits (frame 100, message 300, 4 fragments), else 1 MiB
//!                    bit 4     smallest read buffer (256 bytes), else 4 KiB
//!                    bit 5     the first receive is recv_into (they alternate either way)
//! bytes 1..=n chunk sizes, used in turn for successive reads: 1..=255 bytes at most per read;
//!             0 makes that read fail with WouldBlock, TimedOut or Interrupted (in turn), which
//!             a receive without a deadline retries. n = 0: every read gets all it asks for.
//! the rest    the bytes the peer sends after the handshake
//! ```

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::rc::Rc;

use flate2::{Decompress, FlushDecompress, Status};
use syncws::proto::deflate::{Compressor, Decompressor, InflateError, TAIL};
use syncws::proto::frame::{FrameHeader, OpCode};
use syncws::{CloseCode, Config, Error, Message, MessageKind, Role, Transport, WebSocket};

/// Injected read errors per run at most, so an input of only zero chunk sizes still ends.
const MAX_INJECTED_ERRORS: usize = 256;

/// A stream whose reads hand out `input` in chunks and whose writes land in a shared sink (shared
/// so that what the socket writes when it is dropped can still be read).
#[derive(Debug)]
pub struct ChunkedStream {
    input: Vec<u8>,
    pos: usize,
    chunks: Vec<u8>,
    next_chunk: usize,
    injected: usize,
    /// Reads before this input position are not chunked (a handshake in front of the frames).
    chunk_from: usize,
    written: Rc<RefCell<Vec<u8>>>,
}

impl ChunkedStream {
    /// `chunks` as in the module docs; empty means "all at once".
    pub fn new(input: &[u8], chunks: &[u8], written: Rc<RefCell<Vec<u8>>>) -> Self {
        ChunkedStream {
            input: input.to_vec(),
            pos: 0,
            chunks: chunks.to_vec(),
            next_chunk: 0,
            injected: 0,
            chunk_from: 0,
            written,
        }
    }
}

impl Read for ChunkedStream {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut limit = usize::MAX;
        if self.pos < self.chunk_from {
            limit = self.chunk_from - self.pos;
        } else if !self.chunks.is_empty() {
            let size = self.chunks[self.next_chunk % self.chunks.len()];
            self.next_chunk += 1;
            if size == 0 && self.injected < MAX_INJECTED_ERRORS {
                self.injected += 1;
                let kind = match self.injected % 3 {
                    0 => io::ErrorKind::WouldBlock,
                    1 => io::ErrorKind::TimedOut,
                    _ => io::ErrorKind::Interrupted,
                };
                return Err(kind.into());
            }
            limit = usize::from(size.max(1));
        }
        let n = limit.min(out.len()).min(self.input.len() - self.pos);
        out[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for ChunkedStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Timeouts, shutdown and the peer address keep their do-nothing defaults.
impl Transport for ChunkedStream {}

/// The settings the first bytes of a frame-target input select.
#[derive(Debug, Clone)]
pub struct Setup<'a> {
    /// Chunk sizes for the reads.
    pub chunks: &'a [u8],
    /// Limits and buffer size.
    pub config: Config,
    /// Whether the first receive uses `recv_into`.
    pub into_first: bool,
    /// The wire bytes.
    pub wire: &'a [u8],
}

/// Splits a frame-target input into its settings and wire bytes (see the module docs).
pub fn decode_input(data: &[u8]) -> Option<Setup<'_>> {
    let (&flags, rest) = data.split_first()?;
    let n = usize::from(flags & 0x07);
    if rest.len() < n {
        return None;
    }
    let (chunks, wire) = rest.split_at(n);
    let mut config = Config::default()
        .ping_interval(None)
        .write_timeout(None)
        .read_buffer_size(if flags & 0x10 != 0 { 0 } else { 4096 });
    config = if flags & 0x08 != 0 {
        config
            .max_frame_size(100)
            .max_message_size(300)
            .max_fragments(4)
    } else {
        config.max_frame_size(1 << 20).max_message_size(1 << 20)
    };
    Some(Setup {
        chunks,
        config,
        into_first: flags & 0x20 != 0,
        wire,
    })
}

/// Builds a frame-target input: the inverse of [`decode_input`] (for the seed corpus).
pub fn encode_input(flags: u8, chunks: &[u8], wire: &[u8]) -> Vec<u8> {
    assert!(chunks.len() <= 7, "at most 7 chunk sizes");
    let mut out = vec![(flags & !0x07) | chunks.len() as u8];
    out.extend_from_slice(chunks);
    out.extend_from_slice(wire);
    out
}

/// What one connection delivered, for comparing two runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// The messages in order: text flag and payload.
    pub messages: Vec<(bool, Vec<u8>)>,
    /// How it ended: `closed CODE REASON` after a close frame, else the error's `Display`.
    pub end: String,
    /// The protocol error it ended with, if any.
    pub protocol_error: Option<syncws::ProtocolError>,
    /// The peer's close code, if it closed.
    pub peer_close: Option<CloseCode>,
    /// The frames the socket wrote (unmasked), including what it wrote when dropped.
    pub replies: Vec<(OpCode, Vec<u8>)>,
}

/// Feeds `wire` to a socket in `role` and receives until the connection ends, alternating `recv`
/// and `recv_into` if `alternate`. Panics if an invariant breaks.
pub fn receive_all(
    role: Role,
    config: &Config,
    chunks: &[u8],
    into_first: bool,
    alternate: bool,
    wire: &[u8],
) -> Transcript {
    let written = Rc::new(RefCell::new(Vec::new()));
    let stream = ChunkedStream::new(wire, chunks, written.clone());
    let ws = WebSocket::from_stream(stream, role, config.clone(), &[]);
    drain(ws, role, into_first, alternate, wire.len(), &written, 0)
}

/// Receives from `ws` until the connection ends (see [`receive_all`]); `skip` bytes at the start
/// of what it wrote (a handshake answer) are not frames.
fn drain(
    mut ws: WebSocket<ChunkedStream>,
    role: Role,
    into_first: bool,
    alternate: bool,
    wire_len: usize,
    written: &Rc<RefCell<Vec<u8>>>,
    skip: usize,
) -> Transcript {
    let limit = ws.config().max_message_size;
    let mut messages = Vec::new();
    let mut buf = Vec::new();
    let mut use_into = into_first;
    let (end, protocol_error, ended_ok) = loop {
        let result = if use_into {
            ws.recv_into(&mut buf).map(|kind| {
                kind.map(|kind| {
                    let text = kind == MessageKind::Text;
                    if text {
                        assert!(
                            std::str::from_utf8(&buf).is_ok(),
                            "text not UTF-8: {buf:x?}"
                        );
                    }
                    (text, buf.clone())
                })
            })
        } else {
            ws.recv().map(|msg| {
                msg.map(|msg| {
                    if let Message::Text(s) = &msg {
                        assert!(std::str::from_utf8(s.as_bytes()).is_ok());
                    }
                    (msg.is_text(), msg.into_bytes())
                })
            })
        };
        if alternate {
            use_into = !use_into;
        }
        match result {
            Ok(Some((text, bytes))) => {
                assert!(bytes.len() <= limit, "{} > limit {limit}", bytes.len());
                messages.push((text, bytes));
                assert!(messages.len() <= wire_len / 2, "more messages than frames");
            }
            // A close frame ends the receive with Ok(None) for a normal code, with the frame as
            // an error for any other; both read the same in the transcript.
            Ok(None) => {
                let frame = ws.close_frame().expect("Ok(None) only after a close frame");
                assert!(frame.code.is_normal(), "Ok(None) for {}", frame.code);
                break (
                    format!("closed {} {:?}", frame.code, frame.reason),
                    None,
                    true,
                );
            }
            Err(Error::PeerClosed(frame)) => {
                assert!(!frame.code.is_normal(), "an error for {}", frame.code);
                assert_eq!(ws.close_frame(), Some(&*frame));
                break (
                    format!("closed {} {:?}", frame.code, frame.reason),
                    None,
                    true,
                );
            }
            Err(Error::Protocol(e)) => break (format!("{}", Error::Protocol(e)), Some(e), false),
            Err(e) => break (e.to_string(), None, false),
        }
    };
    // Once ended, the socket stays ended: `Ok(None)` again after a close, an error after an error.
    match ws.recv() {
        Ok(None) => assert!(ended_ok, "Ok(None) after an error"),
        Ok(Some(m)) => panic!("a message after the end: {m:?}"),
        Err(Error::PeerClosed(_)) => assert!(ended_ok, "a peer's close after an error"),
        Err(e) => assert!(!ended_ok, "error after a close: {e}"),
    }
    let peer_close = ws.close_frame().map(|f| f.code);
    drop(ws);
    let replies = decode_replies(role, &written.borrow()[skip..]);
    Transcript {
        messages,
        end,
        protocol_error,
        peer_close,
        replies,
    }
}

/// Decodes the frames the socket wrote, checking that they are well formed, final, without RSV
/// bits, and masked exactly when a client sends (with a fresh random key, hence the unmasking
/// before two runs are compared).
pub fn decode_replies(role: Role, mut rest: &[u8]) -> Vec<(OpCode, Vec<u8>)> {
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let (h, n) = FrameHeader::parse(rest)
            .unwrap_or_else(|e| panic!("we wrote a bad frame header: {e}"))
            .expect("we wrote a truncated frame header");
        let len = h.len as usize;
        assert!(rest.len() >= n + len, "we wrote a truncated frame");
        assert_eq!(h.mask.is_some(), role == Role::Client, "mask bit");
        assert!(h.fin && h.rsv == 0, "{h:?}");
        let mut payload = rest[n..n + len].to_vec();
        if let Some(key) = h.mask {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= key[i % 4];
            }
        }
        frames.push((h.opcode, payload));
        rest = &rest[n + len..];
    }
    frames
}

/// Checks what the socket wrote back: nothing but pongs and one final close; a protocol error
/// is announced with its close code, a peer's close is echoed with its code.
pub fn check_replies(t: &Transcript) {
    let frames = &t.replies;
    let closes = frames.iter().filter(|(op, _)| *op == OpCode::Close).count();
    assert!(closes <= 1, "{closes} close frames written");
    for (op, _) in &frames[..frames.len().saturating_sub(1)] {
        assert_eq!(*op, OpCode::Pong, "only pongs before the close");
    }
    let last_close = frames
        .last()
        .filter(|(op, _)| *op == OpCode::Close)
        .map(|(_, p)| syncws::proto::close::parse(p).expect("we wrote a bad close payload"));
    if let Some(e) = t.protocol_error {
        let sent = last_close
            .as_ref()
            .expect("a protocol error is announced with a close frame");
        assert_eq!(sent.code, e.close_code(), "close code for {e}");
    }
    if let Some(code) = t.peer_close {
        let sent = last_close.as_ref().expect("a peer's close is answered");
        assert_eq!(sent.code, code, "the peer's close code is echoed");
    }
}

/// The masking key of the examples in RFC 6455 5.7, used for the frames peers send to servers.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// One frame with any first-byte bits (`b0` is FIN, RSV and opcode as on the wire), masked with
/// [`MASK`] if `masked`.
pub fn raw_frame(b0: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut out = vec![b0];
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&MASK);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// One frame: `opcode` is the 4-bit value on the wire.
pub fn frame(opcode: u8, fin: bool, payload: &[u8], masked: bool) -> Vec<u8> {
    raw_frame((u8::from(fin) << 7) | opcode, payload, masked)
}

/// The whole frame-target check: the input split as the fuzzer chose and read with alternating
/// `recv`/`recv_into`, then the same bytes all at once with `recv` only; both must deliver the
/// same messages, end the same way and write the same bytes.
pub fn fuzz_frames(role: Role, data: &[u8]) {
    let Some(setup) = decode_input(data) else {
        return;
    };
    let split = receive_all(
        role,
        &setup.config,
        setup.chunks,
        setup.into_first,
        true,
        setup.wire,
    );
    check_replies(&split);
    let whole = receive_all(role, &setup.config, &[], false, false, setup.wire);
    assert_eq!(split, whole, "split and whole input differ");
}

/// How a receive ended, for a transcript: its words, its protocol error, and whether it was a
/// close frame (normal or not) rather than an error.
fn ending(
    ws: &WebSocket<ChunkedStream>,
    result: Result<(), Error>,
) -> (String, Option<syncws::ProtocolError>, bool) {
    match result {
        Ok(()) => {
            let frame = ws.close_frame().expect("Ok(None) only after a close frame");
            assert!(frame.code.is_normal(), "Ok(None) for {}", frame.code);
            (
                format!("closed {} {:?}", frame.code, frame.reason),
                None,
                true,
            )
        }
        Err(Error::PeerClosed(frame)) => {
            assert!(!frame.code.is_normal(), "an error for {}", frame.code);
            (
                format!("closed {} {:?}", frame.code, frame.reason),
                None,
                true,
            )
        }
        Err(Error::Protocol(e)) => (format!("{}", Error::Protocol(e)), Some(e), false),
        Err(e) => (e.to_string(), None, false),
    }
}

/// A message received as a stream: text flag, the bytes read, and whether they are all of it
/// (false for a stream dropped early, or cut short by the end of the connection).
pub type Streamed = (bool, Vec<u8>, bool);

/// Feeds `wire` to a socket in `role` and receives every message with `recv_stream` until the
/// connection ends, reading each in reads of the sizes in `reads` (in turn; empty: 4096 bytes);
/// with `drop_odd`, every other message is dropped after its first read, its rest left for the
/// next receive to skip. Returns the transcript (its messages empty) and the streamed messages.
pub fn stream_all(
    role: Role,
    config: &Config,
    chunks: &[u8],
    reads: &[u8],
    drop_odd: bool,
    wire: &[u8],
) -> (Transcript, Vec<Streamed>) {
    let written = Rc::new(RefCell::new(Vec::new()));
    let stream = ChunkedStream::new(wire, chunks, written.clone());
    let ws = WebSocket::from_stream(stream, role, config.clone(), &[]);
    stream_from(ws, role, reads, drop_odd, wire.len(), &written, 0)
}

/// Like [`stream_all`] for a server that accepted a permessage-deflate offer (`request`, see
/// [`deflate_request`]) in front of the frames.
pub fn stream_all_deflate(
    config: &Config,
    request: &[u8],
    chunks: &[u8],
    drop_odd: bool,
    wire: &[u8],
) -> (Transcript, Vec<Streamed>) {
    let (ws, written, head) = deflate_server(config, request, chunks, wire);
    stream_from(
        ws,
        Role::Server,
        chunks,
        drop_odd,
        wire.len(),
        &written,
        head,
    )
}

/// A server socket that accepted `request` (which offers permessage-deflate) with `config` and
/// the default `DeflateConfig`, with `wire` behind it: the handshake is read whole, the chunking
/// applies to the frames. Returns the socket, what it writes, and the length of its handshake
/// answer there.
fn deflate_server(
    config: &Config,
    request: &[u8],
    chunks: &[u8],
    wire: &[u8],
) -> (WebSocket<ChunkedStream>, Rc<RefCell<Vec<u8>>>, usize) {
    let written = Rc::new(RefCell::new(Vec::new()));
    let mut input = request.to_vec();
    input.extend_from_slice(wire);
    let mut stream = ChunkedStream::new(&input, chunks, written.clone());
    stream.chunk_from = request.len();
    let config = config
        .clone()
        .deflate(Some(syncws::DeflateConfig::default()));
    let ws = syncws::accept_with(stream, config).expect("the upgrade request is accepted");
    assert!(ws.compression().is_some(), "permessage-deflate agreed");
    let head = written.borrow().len();
    (ws, written, head)
}

/// Receives every message of `ws` as a stream (see [`stream_all`]); `skip` bytes at the start
/// of what it wrote (a handshake answer) are not frames.
fn stream_from(
    mut ws: WebSocket<ChunkedStream>,
    role: Role,
    reads: &[u8],
    drop_odd: bool,
    wire_len: usize,
    written: &Rc<RefCell<Vec<u8>>>,
    skip: usize,
) -> (Transcript, Vec<Streamed>) {
    let limit = ws.config().max_stream_size;
    let mut streamed: Vec<Streamed> = Vec::new();
    let mut next_read = 0;
    let mut buf = vec![0u8; 4096];
    let result = 'receive: loop {
        let mut reader = match ws.recv_stream() {
            Ok(Some(reader)) => reader,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        let text = reader.kind() == MessageKind::Text;
        let dropping = drop_odd && streamed.len() % 2 == 1;
        let mut bytes = Vec::new();
        let complete = loop {
            let size = match reads {
                [] => buf.len(),
                _ => usize::from(reads[next_read % reads.len()].max(1)),
            };
            next_read += 1;
            match reader.read(&mut buf[..size]) {
                Ok(0) => break true,
                Ok(n) => {
                    bytes.extend_from_slice(&buf[..n]);
                    assert!(bytes.len() <= limit, "{} > limit {limit}", bytes.len());
                    if dropping {
                        break false;
                    }
                }
                Err(e) => {
                    let e = Error::from(e);
                    if text {
                        // What came out before the error is valid up to a cut code point.
                        if let Err(bad) = std::str::from_utf8(&bytes) {
                            assert!(bad.error_len().is_none(), "invalid text streamed");
                        }
                    }
                    streamed.push((text, bytes, false));
                    match e {
                        // Cut short by the end of the connection: `recv` says how it ended.
                        Error::PeerClosed(_) | Error::Closed => match ws.recv() {
                            Ok(None) => break 'receive Ok(()),
                            Ok(Some(m)) => panic!("a message after a cut: {m:?}"),
                            Err(e) => break 'receive Err(e),
                        },
                        e => break 'receive Err(e),
                    }
                }
            }
        };
        assert_eq!(reader.is_finished(), complete);
        if complete && text {
            assert!(std::str::from_utf8(&bytes).is_ok(), "text not UTF-8");
        }
        streamed.push((text, bytes, complete));
        assert!(streamed.len() <= wire_len / 2, "more messages than frames");
    };
    let (end, protocol_error, ended_ok) = ending(&ws, result);
    match ws.recv() {
        Ok(None) => assert!(ended_ok, "Ok(None) after an error"),
        Ok(Some(m)) => panic!("a message after the end: {m:?}"),
        Err(Error::PeerClosed(_)) => assert!(ended_ok, "a peer's close after an error"),
        Err(e) => assert!(!ended_ok, "error after a close: {e}"),
    }
    let peer_close = ws.close_frame().map(|f| f.code);
    drop(ws);
    let replies = decode_replies(role, &written.borrow()[skip..]);
    let transcript = Transcript {
        messages: Vec::new(),
        end,
        protocol_error,
        peer_close,
        replies,
    };
    (transcript, streamed)
}

/// The `frame_stream` check, in the server role: the input read with `recv_stream` (the chunk
/// sizes cut both the socket's reads and the stream's; bit 5 of the flags drops every other
/// stream after its first read; bit 6 agrees to permessage-deflate first, as `frame_deflate`) must give what the whole-message receive gives: the same
/// messages (a prefix of a dropped one, a valid prefix of one cut short at the end), the same
/// end and the same replies. The streamed limit is set to the whole-message limit.
pub fn fuzz_frames_stream(data: &[u8]) {
    let Some(setup) = decode_input(data) else {
        return;
    };
    let config = setup.config.clone();
    let config = config.clone().max_stream_size(config.max_message_size);
    let role = Role::Server;
    let drop_odd = setup.into_first;
    let (split, streamed, whole) = if data[0] & 0x40 != 0 {
        let request = deflate_request(false, false);
        let (split, streamed) =
            stream_all_deflate(&config, &request, setup.chunks, drop_odd, setup.wire);
        let whole = receive_all_deflate(&config, &request, &[], false, false, setup.wire);
        (split, streamed, whole)
    } else {
        let chunks = setup.chunks;
        let (split, streamed) = stream_all(role, &config, chunks, chunks, drop_odd, setup.wire);
        let whole = receive_all(role, &config, &[], false, false, setup.wire);
        (split, streamed, whole)
    };
    check_replies(&split);
    compare_streamed(&split, &streamed, &whole);
}

/// Checks a streamed receive against the whole-message one (see [`fuzz_frames_stream`]).
pub fn compare_streamed(split: &Transcript, streamed: &[Streamed], whole: &Transcript) {
    let n = whole.messages.len();
    assert!(
        streamed.len() == n || (streamed.len() == n + 1 && !streamed[n].2),
        "{} streamed, {n} whole",
        streamed.len()
    );
    for (i, ((text, bytes), (s_text, s_bytes, complete))) in
        whole.messages.iter().zip(streamed).enumerate()
    {
        assert_eq!(text, s_text, "kind of message {i}");
        if *complete {
            assert!(bytes == s_bytes, "message {i} differs");
        } else {
            assert!(bytes.starts_with(s_bytes), "message {i}: not a prefix");
        }
    }
    let whole_end = Transcript {
        messages: Vec::new(),
        ..whole.clone()
    };
    assert_eq!(
        *split, whole_end,
        "streamed and whole receives end differently"
    );
}

/// The upgrade request in front of every `frame_deflate` input: it offers permessage-deflate,
/// with `client_no_context_takeover` when `no_takeover`, and a 9-bit client window when `small`.
pub fn deflate_request(no_takeover: bool, small: bool) -> Vec<u8> {
    let mut offer = String::from("permessage-deflate");
    if no_takeover {
        offer.push_str("; client_no_context_takeover");
    }
    if small {
        offer.push_str("; client_max_window_bits=9");
    }
    format!(
        "GET / HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: {offer}\r\n\r\n"
    )
    .into_bytes()
}

/// Like [`receive_all`] for a server that accepted a permessage-deflate offer: the wire starts
/// with [`deflate_request`], and the frames may be compressed.
pub fn receive_all_deflate(
    config: &Config,
    request: &[u8],
    chunks: &[u8],
    into_first: bool,
    alternate: bool,
    wire: &[u8],
) -> Transcript {
    let (ws, written, head) = deflate_server(config, request, chunks, wire);
    let answer = String::from_utf8_lossy(&written.borrow()[..head]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 101 "), "{answer}");
    assert!(answer.contains("permessage-deflate"), "{answer}");
    drain(
        ws,
        Role::Server,
        into_first,
        alternate,
        wire.len(),
        &written,
        head,
    )
}

/// The `frame_deflate` check: as [`fuzz_frames`] in the server role, with compression agreed.
/// Bit 6 of the flags byte asks for `client_no_context_takeover`, bit 7 for a 9-bit window.
pub fn fuzz_frames_deflate(data: &[u8]) {
    let Some(setup) = decode_input(data) else {
        return;
    };
    let request = deflate_request(data[0] & 0x40 != 0, data[0] & 0x80 != 0);
    let split = receive_all_deflate(
        &setup.config,
        &request,
        setup.chunks,
        setup.into_first,
        true,
        setup.wire,
    );
    check_replies(&split);
    let whole = receive_all_deflate(&setup.config, &request, &[], false, false, setup.wire);
    assert_eq!(split, whole, "split and whole input differ");
}

/// The settings the first bytes of an `inflate` input select.
///
/// ```text
/// byte 0      bits 0-2  n, the number of piece-length bytes that follow (0..=7)
///             bit 3     a limit of 300 bytes per message, else 1 MiB
///             bit 4     no context takeover
/// byte 1      bits 0-2  window bits - 8 (8..=15); bits 3-7 the compression level (mod 10)
/// bytes 2..   n piece lengths (0 is an empty piece), used in turn to cut the payload
/// the rest    the payload
/// ```
#[derive(Debug, Clone)]
pub struct InflateSetup<'a> {
    /// Piece lengths.
    pub pieces: &'a [u8],
    /// Inflated size limit.
    pub max: usize,
    /// No context takeover.
    pub no_takeover: bool,
    /// LZ77 window bits (8..=15).
    pub bits: u8,
    /// Compression level (0..=9).
    pub level: u32,
    /// The payload.
    pub payload: &'a [u8],
}

/// Splits an `inflate` input into settings and payload.
pub fn decode_inflate_input(data: &[u8]) -> Option<InflateSetup<'_>> {
    let [flags, setting, rest @ ..] = data else {
        return None;
    };
    let n = usize::from(flags & 0x07);
    if rest.len() < n {
        return None;
    }
    let (pieces, payload) = rest.split_at(n);
    Some(InflateSetup {
        pieces,
        max: if flags & 0x08 != 0 { 300 } else { 1 << 20 },
        no_takeover: flags & 0x10 != 0,
        bits: 8 + (setting & 0x07),
        level: u32::from(setting >> 3) % 10,
        payload,
    })
}

/// Cuts `data` into pieces of the given lengths, used in turn; the last piece takes the rest.
pub fn cut<'a>(data: &'a [u8], lengths: &[u8]) -> Vec<&'a [u8]> {
    if lengths.is_empty() {
        return vec![data];
    }
    let mut pieces = Vec::new();
    let mut rest = data;
    for &n in lengths.iter().cycle() {
        if rest.is_empty() || pieces.len() >= 4096 {
            break;
        }
        let (piece, tail) = rest.split_at(usize::from(n).min(rest.len()));
        pieces.push(piece);
        rest = tail;
    }
    pieces.push(rest);
    pieces
}

/// Inflates one message given as `pieces` (a fresh decompressor), checking that the output
/// never grows past `max + 1` bytes.
pub fn inflate_message(
    bits: u8,
    no_takeover: bool,
    pieces: &[&[u8]],
    max: usize,
) -> Result<Vec<u8>, InflateError> {
    let mut d = Decompressor::new(bits, no_takeover);
    let mut out = Vec::new();
    for piece in pieces {
        let r = d.inflate(piece, &mut out, max);
        assert!(out.capacity() <= max + 1, "{} > {max} + 1", out.capacity());
        r?;
    }
    let r = d.finish(&mut out, max);
    assert!(out.capacity() <= max + 1, "{} > {max} + 1", out.capacity());
    r?;
    assert!(out.len() <= max);
    Ok(out)
}

/// A plain one-shot inflate of one message per RFC 7692 7.2.2, for comparison: `None` if the
/// data is corrupt, inflates to more than `max` bytes, or goes on after a final block.
pub fn reference_inflate(payload: &[u8], bits: u8, max: usize) -> Option<Vec<u8>> {
    let mut input = payload.to_vec();
    // A payload that already ends with a whole flush (or is empty) is complete as it is.
    if !(payload.is_empty() || payload.ends_with(&TAIL)) {
        input.extend_from_slice(&TAIL);
    }
    let mut z = Decompress::new_with_window_bits(false, bits.clamp(9, 15));
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        if out.len() == out.capacity() {
            let room = out.capacity().max(4096).min(max + 1 - out.len());
            out.reserve_exact(room);
        }
        let (in_before, out_before) = (z.total_in(), out.len());
        let status = z
            .decompress_vec(&input[pos..], &mut out, FlushDecompress::None)
            .ok()?;
        pos += (z.total_in() - in_before) as usize;
        if out.len() > max {
            return None;
        }
        match status {
            Status::StreamEnd => {
                return (pos == payload.len() || pos == input.len()).then_some(out);
            }
            _ if pos == input.len() => return Some(out),
            _ if pos == in_before as usize && out.len() == out_before => return None,
            _ => {}
        }
    }
}

/// The `inflate` check. The payload as compressed data: inflated whole and in pieces, the same
/// outcome, and the same as [`reference_inflate`]; never more memory than the limit. Then the
/// payload as a message: compressed in pieces (as frames) and inflated back, twice on one pair
/// of codec states so context takeover is exercised.
pub fn fuzz_inflate(data: &[u8]) {
    let Some(s) = decode_inflate_input(data) else {
        return;
    };
    let whole = inflate_message(s.bits, s.no_takeover, &[s.payload], s.max);
    let pieces = cut(s.payload, s.pieces);
    let split = inflate_message(s.bits, s.no_takeover, &pieces, s.max);
    assert_eq!(whole, split, "whole and split inflate differ");
    match reference_inflate(s.payload, s.bits, s.max) {
        Some(out) => assert_eq!(whole, Ok(out), "differs from a one-shot inflate"),
        None => assert!(whole.is_err(), "accepted what a one-shot inflate refuses"),
    }

    let mut c = Compressor::new(s.bits, s.level, s.no_takeover);
    let mut d = Decompressor::new(s.bits, s.no_takeover);
    let max = s.payload.len();
    for message in [s.payload, &s.payload[..s.payload.len() / 2]] {
        let mut out = Vec::new();
        let parts = cut(message, s.pieces);
        for (i, part) in parts.iter().enumerate() {
            let mut frame = Vec::new();
            c.compress(part, i + 1 == parts.len(), &mut frame)
                .expect("compression does not fail");
            d.inflate(&frame, &mut out, max)
                .expect("own output inflates");
        }
        d.finish(&mut out, max).expect("own output inflates");
        assert!(out == message, "round trip changed the message");
    }
}

/// The harness itself, on inputs whose outcome is known (`cargo test --manifest-path
/// fuzz/Cargo.toml`).
#[cfg(test)]
mod tests {
    use super::*;

    fn run(role: Role, chunks: &[u8], wire: &[u8]) -> Transcript {
        let config = decode_input(&[0]).unwrap().config;
        let t = receive_all(role, &config, chunks, true, true, wire);
        check_replies(&t);
        assert_eq!(t, receive_all(role, &config, &[], false, false, wire));
        t
    }

    #[test]
    fn messages_pongs_and_the_close_echo() {
        for (role, masked) in [(Role::Server, true), (Role::Client, false)] {
            let wire = [
                frame(0x1, false, "a€".as_bytes(), masked),
                frame(0x9, true, b"hi", masked),
                frame(0x0, true, b"b", masked),
                frame(0x2, true, &[0, 1, 2], masked),
                frame(0x8, true, &[0x03, 0xE8, b'o', b'k'], masked),
            ]
            .concat();
            for chunks in [&[][..], &[1], &[0, 3, 0, 250]] {
                let t = run(role, chunks, &wire);
                let text = "a€b".as_bytes().to_vec();
                assert_eq!(t.messages, vec![(true, text), (false, vec![0, 1, 2])]);
                assert_eq!(t.end, "closed 1000 \"ok\"");
                let close = vec![0x03, 0xE8];
                assert_eq!(
                    t.replies,
                    vec![(OpCode::Pong, b"hi".to_vec()), (OpCode::Close, close)]
                );
            }
        }
    }

    #[test]
    fn streamed_receives_match_whole_ones() {
        let wire = [
            frame(0x1, false, "a€".as_bytes(), true),
            frame(0x9, true, b"hi", true),
            frame(0x0, true, b"bcdef", true),
            frame(0x2, true, &[0, 1, 2], true),
            frame(0x2, false, &[3, 4], true),
            frame(0x0, true, &[5, 6, 7], true),
            frame(0x1, true, &[b'a', 0xC0, 0xAF], true),
        ]
        .concat();
        let config = decode_input(&[0]).unwrap().config;
        let whole = receive_all(Role::Server, &config, &[], false, false, &wire);
        assert_eq!(whole.messages.len(), 3);
        for drop_odd in [false, true] {
            for chunks in [&[][..], &[1], &[0, 3, 0, 250]] {
                let (t, streamed) =
                    stream_all(Role::Server, &config, chunks, chunks, drop_odd, &wire);
                check_replies(&t);
                compare_streamed(&t, &streamed, &whole);
                assert_eq!(t.protocol_error, Some(syncws::ProtocolError::InvalidUtf8));
                assert_eq!(streamed.len(), 4, "the last one cut by its bad byte");
                assert_eq!(streamed[1].2, !drop_odd);
            }
        }
    }

    #[test]
    fn compressed_streams_match_whole_ones() {
        let mut c = Compressor::new(15, 6, false);
        let mut compressed = |input: &[u8], fin: bool| {
            let mut out = Vec::new();
            c.compress(input, fin, &mut out).unwrap();
            out
        };
        let zeros = vec![0u8; 200_000];
        let wire = [
            raw_frame(0x41, &compressed("h\u{e9}llo ".as_bytes(), false), true),
            frame(0x9, true, b"p", true),
            frame(0x0, true, &compressed(b"world", true), true),
            raw_frame(0xC2, &compressed(&zeros, true), true),
            frame(0x8, true, &[0x03, 0xE8], true),
        ]
        .concat();
        let config = decode_input(&[0]).unwrap().config;
        let request = deflate_request(false, false);
        let whole = receive_all_deflate(&config, &request, &[], false, false, &wire);
        assert_eq!(whole.messages.len(), 2);
        for drop_odd in [false, true] {
            for chunks in [&[][..], &[1], &[0, 3, 0, 250]] {
                let (t, streamed) = stream_all_deflate(&config, &request, chunks, drop_odd, &wire);
                check_replies(&t);
                compare_streamed(&t, &streamed, &whole);
                assert_eq!(t.end, "closed 1000 \"\"");
            }
        }
    }

    #[test]
    fn violations_end_with_their_close_code() {
        let bad_utf8 = run(
            Role::Server,
            &[2],
            &frame(0x1, true, &[b'a', 0xC0, 0xAF], true),
        );
        assert_eq!(
            bad_utf8.protocol_error,
            Some(syncws::ProtocolError::InvalidUtf8)
        );
        // 1007, and a reason that says what was wrong.
        let mut close = vec![0x03, 0xEF];
        close.extend_from_slice(b"invalid utf-8 in a text message");
        assert_eq!(bad_utf8.replies, vec![(OpCode::Close, close)]);
        let unmasked = run(Role::Server, &[], &frame(0x1, true, b"x", false));
        assert_eq!(
            unmasked.protocol_error,
            Some(syncws::ProtocolError::UnmaskedFrame)
        );
        let eof = run(Role::Client, &[1], &frame(0x2, true, b"no close", false));
        assert_eq!(eof.messages.len(), 1);
        assert!(eof.end.contains("without a close frame"), "{}", eof.end);
        assert!(eof.replies.is_empty());
    }

    /// RFC 7692 7.2.3.1: "Hello" compressed, without the tail.
    const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

    #[test]
    fn inflate_known_payloads() {
        assert_eq!(
            inflate_message(15, false, &[&HELLO], 100),
            Ok(b"Hello".to_vec())
        );
        assert_eq!(reference_inflate(&HELLO, 15, 100), Some(b"Hello".to_vec()));
        let split: Vec<&[u8]> = cut(&HELLO, &[1, 0, 3]);
        assert_eq!(split.concat(), HELLO);
        assert_eq!(
            inflate_message(15, false, &split, 100),
            Ok(b"Hello".to_vec())
        );
        assert_eq!(
            inflate_message(15, false, &[&HELLO], 4),
            Err(InflateError::TooLarge)
        );
        assert_eq!(reference_inflate(&HELLO, 15, 4), None);
        assert_eq!(
            inflate_message(15, false, &[&[0xff, 0xff, 0xff]], 100),
            Err(InflateError::Corrupt)
        );
        // A bomb: a megabyte of zeros in about a kilobyte stops one byte over the limit.
        let mut c = Compressor::new(15, 9, false);
        let mut bomb = Vec::new();
        c.compress(&vec![0; 1 << 20], true, &mut bomb).unwrap();
        assert!(bomb.len() < 2048, "{}", bomb.len());
        assert_eq!(
            inflate_message(15, false, &[&bomb], 1000),
            Err(InflateError::TooLarge)
        );
        let mut input = vec![0x09, 0x0f | (6 << 3), 200];
        input.extend_from_slice(&bomb);
        fuzz_inflate(&input);
        fuzz_inflate(&[0x02, 0x07, 1, 2, b'a', b'b', b'c']);
    }

    #[test]
    fn compressed_frames_reach_the_handler_as_messages() {
        let config = decode_input(&[0]).unwrap().config;
        let request = deflate_request(false, false);
        let wire = [
            raw_frame(0xC1, &HELLO, true),       // compressed text, RSV1
            frame(0x9, true, b"p", true),        // ping
            raw_frame(0x41, &HELLO[..3], true),  // compressed, first fragment
            frame(0x0, true, &HELLO[3..], true), // its continuation (no RSV1)
            frame(0x1, true, b"plain", true),    // uncompressed
            frame(0x8, true, &[0x03, 0xE8], true),
        ]
        .concat();
        for chunks in [&[][..], &[1], &[0, 3, 0, 250]] {
            let t = receive_all_deflate(&config, &request, chunks, true, true, &wire);
            check_replies(&t);
            let hello = (true, b"Hello".to_vec());
            assert_eq!(
                t.messages,
                vec![hello.clone(), hello, (true, b"plain".to_vec())]
            );
            assert_eq!(t.end, "closed 1000 \"\"");
        }
        // RSV1 on a continuation frame is a protocol error (1002); corrupt data is 1007.
        let bad_rsv = [
            raw_frame(0x41, &HELLO[..3], true),
            raw_frame(0xC0, &HELLO[3..], true),
        ]
        .concat();
        let t = receive_all_deflate(&config, &request, &[], false, false, &bad_rsv);
        check_replies(&t);
        assert_eq!(t.replies.last().unwrap().1[..2], [0x03, 0xEA]);
        let corrupt = raw_frame(0xC1, &[0xff, 0xff, 0xff], true);
        let t = receive_all_deflate(&config, &request, &[], false, false, &corrupt);
        check_replies(&t);
        assert_eq!(t.replies.last().unwrap().1[..2], [0x03, 0xEF]);
        fuzz_frames_deflate(&encode_input(0xC0, &[2, 0], &wire));
    }
}
