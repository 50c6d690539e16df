//! Frame writing: header and (for clients, masked) payload reach the kernel in one call, under
//! one total deadline per frame.

use std::io::{self, IoSlice, Write};
use std::time::Duration;

use crate::io::{Deadline, Transport};
#[cfg(feature = "deflate")]
use crate::proto::deflate::Compressor;
use crate::proto::frame::{FrameHeader, MAX_HEADER_LEN, OpCode};
use crate::proto::mask::mask_copy;

use super::outbox::{Encoding, Prepared};

/// Payloads up to this size are copied behind the header so the frame goes out in one `write`;
/// larger ones go out with one vectored write of header and payload, uncopied.
const COPY_LIMIT: usize = 16 << 10;
/// A client masks large payloads in pieces of this size, so its write buffer stays small.
const MASK_CHUNK: usize = 64 << 10;

/// The most a connection keeps for copying frames: one masked piece behind the largest header.
const KEEP_WBUF: usize = MASK_CHUNK + MAX_HEADER_LEN;

/// Fed frames (`WebSocket::feed`) are written once they would pass this many bytes, and a
/// message this large is not copied into the queue but written at once behind it.
pub(crate) const QUEUE_LIMIT: usize = 64 << 10;

/// Compressed output buffers larger than this are freed after the frame instead of kept.
#[cfg(feature = "deflate")]
const KEEP_OUT: usize = 64 << 10;

/// The sending half of a connection's state.
pub(crate) struct Sender {
    client: bool,
    wbuf: Vec<u8>,
    keys: MaskKeys,
    /// The total time one frame's write may take; `None` waits forever.
    write_timeout: Option<Duration>,
    /// The write timeout the stream has now, `None` if unknown. Set only when a frame needs
    /// another value: a frame that went out in one call leaves it as it was.
    armed: Option<Option<Duration>>,
    /// permessage-deflate, when negotiated; `None` keeps the plain path free of it.
    #[cfg(feature = "deflate")]
    deflate: Option<Box<Deflate>>,
    /// Whole frames fed and not yet written, in order (see [`Sender::feed_data`]).
    queue: Vec<u8>,
}

/// Appends what is written to a queue: frames are encoded into it exactly as they would be
/// written to the stream.
struct QueueSink<'a>(&'a mut Vec<u8>);

impl Write for QueueSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl io::Read for QueueSink<'_> {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Ok(0)
    }
}

impl Transport for QueueSink<'_> {}

/// The send side of permessage-deflate.
#[cfg(feature = "deflate")]
struct Deflate {
    compressor: Compressor,
    threshold: usize,
    /// The settings a hub compresses this connection's messages with when our side compresses
    /// every message on its own; `None` with context takeover.
    shared: Option<super::outbox::Compression>,
    /// The message being sent is compressed (decided on its first frame).
    in_message: bool,
    out: Vec<u8>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// A sender whose every frame write finishes within `write_timeout` (plus the system call
    /// in progress) or fails.
    pub fn new(client: bool, write_timeout: Option<Duration>) -> Self {
        Sender {
            client,
            wbuf: Vec::new(),
            keys: MaskKeys::new(),
            write_timeout,
            armed: None,
            #[cfg(feature = "deflate")]
            deflate: None,
            queue: Vec::new(),
        }
    }

    /// Bytes of fed frames not yet written.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Encodes one final data frame (compressed, masked, as [`Sender::write_data`] would write
    /// it) onto the queue instead of writing it; [`Sender::flush_queue`] writes the queue.
    pub fn feed_data(&mut self, opcode: OpCode, payload: &[u8], compress: bool) -> io::Result<()> {
        let mut queue = std::mem::take(&mut self.queue);
        // The queue is not the stream: what the stream's timeout is stays as it was.
        let armed = self.armed;
        let result = self.write_data(&mut QueueSink(&mut queue), opcode, true, payload, compress);
        self.armed = armed;
        self.queue = queue;
        result
    }

    /// Writes the queued frames in one go (one system call, unless the kernel takes them in
    /// part) under one write timeout, and empties the queue; nothing if it is empty.
    pub fn flush_queue<W: Transport + ?Sized>(&mut self, w: &mut W) -> io::Result<()> {
        if self.queue.is_empty() {
            return Ok(());
        }
        let w = &mut Timed::start(w, self.write_timeout, &mut self.armed)?;
        let result = w.write_all(&self.queue).and_then(|()| w.flush());
        self.queue.clear();
        if self.queue.capacity() > 2 * QUEUE_LIMIT {
            self.queue = Vec::new();
        }
        result
    }

    /// Bounds the frames written from now on by `timeout` each (a dropped connection's last
    /// close frame is bounded by the close timeout instead).
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write_timeout = timeout;
    }

    /// Turns on permessage-deflate for the data frames sent from now on.
    #[cfg(feature = "deflate")]
    pub fn set_deflate(&mut self, params: &crate::DeflateParams, config: &crate::DeflateConfig) {
        self.deflate = Some(Box::new(Deflate {
            compressor: Compressor::new(
                params.window_bits,
                config.level,
                params.no_context_takeover,
            ),
            threshold: config.threshold,
            shared: params
                .no_context_takeover
                .then_some(super::outbox::Compression {
                    level: config.level.min(9),
                    window_bits: params.window_bits,
                    threshold: config.threshold,
                }),
            in_message: false,
            out: Vec::new(),
        }));
    }

    /// How this connection takes what a hub publishes (see [`Encoding`]).
    pub fn encoding(&self) -> Encoding {
        #[cfg(feature = "deflate")]
        if let Some(d) = self.deflate.as_deref() {
            return d.shared.map_or(Encoding::Own, Encoding::Shared);
        }
        Encoding::Plain
    }

    /// Compresses a hub's plain frame (from `outbox::prepare`) with this connection's own
    /// context, as [`Sender::write_data`] would compress the message; `None` leaves it as it is
    /// (shorter than the threshold, or no compression).
    pub fn compress_prepared(&mut self, frame: &[u8]) -> io::Result<Option<Prepared>> {
        #[cfg(feature = "deflate")]
        if let Some(d) = self.deflate.as_deref_mut() {
            let (opcode, payload) = super::outbox::split_prepared(frame);
            if payload.len() < d.threshold {
                return Ok(None);
            }
            let mut out = std::mem::take(&mut d.out);
            out.clear();
            let result = d.compressor.compress(payload, true, &mut out);
            let frame = result.map(|()| super::outbox::unmasked_frame(opcode, 0b100, &out));
            if out.capacity() <= KEEP_OUT {
                d.out = out;
            }
            return frame.map(|f| Some(f.into()));
        }
        let _ = frame;
        Ok(None)
    }

    /// Writes one frame of a message, or a control frame, and flushes it. With
    /// permessage-deflate negotiated, a message is compressed if its first frame asks for it
    /// (`compress`) and is at least the threshold long (or not final); its continuation frames
    /// follow that decision whatever they ask.
    pub fn write_data<W: Transport + ?Sized>(
        &mut self,
        w: &mut W,
        opcode: OpCode,
        fin: bool,
        payload: &[u8],
        compress: bool,
    ) -> io::Result<()> {
        #[cfg(feature = "deflate")]
        if let Some(d) = self.deflate.as_deref_mut() {
            let first = match opcode {
                OpCode::Text | OpCode::Binary => {
                    d.in_message = compress && (!fin || payload.len() >= d.threshold);
                    true
                }
                OpCode::Continuation => false,
                _ => return self.write_frame(w, opcode, fin, payload),
            };
            if d.in_message {
                return self.write_compressed(w, opcode, fin, payload, first);
            }
        }
        let _ = compress;
        self.write_frame(w, opcode, fin, payload)
    }

    /// Compresses one frame's payload and writes it; RFC 7692 6: RSV1 on the first frame only.
    #[cfg(feature = "deflate")]
    fn write_compressed<W: Transport + ?Sized>(
        &mut self,
        w: &mut W,
        opcode: OpCode,
        fin: bool,
        payload: &[u8],
        first: bool,
    ) -> io::Result<()> {
        let d = self.deflate.as_deref_mut().expect("compressing");
        let mut out = std::mem::take(&mut d.out);
        out.clear();
        let result = d.compressor.compress(payload, fin, &mut out);
        let rsv = if first { 0b100 } else { 0 };
        let result = result.and_then(|()| self.write_raw(w, opcode, fin, rsv, &out));
        if out.capacity() <= KEEP_OUT {
            self.deflate.as_deref_mut().expect("compressing").out = out;
        }
        result
    }

    /// Writes bytes that are already a frame (or the rest of one), e.g. a hub's prepared frame,
    /// and flushes them, within one write timeout.
    pub fn write_prepared<W: Transport + ?Sized>(
        &mut self,
        w: &mut W,
        bytes: &[u8],
    ) -> io::Result<()> {
        let w = &mut Timed::start(w, self.write_timeout, &mut self.armed)?;
        w.write_all(bytes).and_then(|()| w.flush())
    }

    /// Writes one uncompressed frame and flushes it. The payload is never modified.
    pub fn write_frame<W: Transport + ?Sized>(
        &mut self,
        w: &mut W,
        opcode: OpCode,
        fin: bool,
        payload: &[u8],
    ) -> io::Result<()> {
        self.write_raw(w, opcode, fin, 0, payload)
    }

    fn write_raw<W: Transport + ?Sized>(
        &mut self,
        w: &mut W,
        opcode: OpCode,
        fin: bool,
        rsv: u8,
        payload: &[u8],
    ) -> io::Result<()> {
        let mask = self.client.then(|| self.keys.next());
        let header = FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            len: payload.len() as u64,
        };
        let mut head = [0u8; MAX_HEADER_LEN];
        let head_len = header.encode(&mut head);
        let head = &head[..head_len];
        let w = &mut Timed::start(w, self.write_timeout, &mut self.armed)?;
        let result = match mask {
            None if payload.len() > COPY_LIMIT => write_all_vectored(w, head, payload),
            None => {
                self.wbuf.clear();
                self.wbuf.extend_from_slice(head);
                self.wbuf.extend_from_slice(payload);
                w.write_all(&self.wbuf)
            }
            Some(_) if payload.is_empty() => w.write_all(head),
            Some(key) => {
                // RFC 6455 5.3: mask while copying into our buffer, one pass; the first piece
                // rides behind the header. The buffer keeps its length between frames, so it is
                // zeroed once, when it first grows.
                let h = head.len();
                let first = payload.len().min(MASK_CHUNK);
                if self.wbuf.len() < h + first {
                    self.wbuf.reserve_exact(h + first - self.wbuf.len());
                    self.wbuf.resize(h + first, 0);
                }
                self.wbuf[..h].copy_from_slice(head);
                let mut result = Ok(());
                for (i, chunk) in payload.chunks(MASK_CHUNK).enumerate() {
                    let at = if i == 0 { h } else { 0 };
                    mask_copy(
                        &mut self.wbuf[at..at + chunk.len()],
                        chunk,
                        key,
                        i * MASK_CHUNK,
                    );
                    result = w.write_all(&self.wbuf[..at + chunk.len()]);
                    if result.is_err() {
                        break;
                    }
                }
                result
            }
        };
        if self.wbuf.capacity() > KEEP_WBUF {
            self.wbuf = Vec::new();
        }
        result.and_then(|()| w.flush())
    }
}

/// A stream under one frame's write deadline. The first write runs under the full timeout (armed
/// at the start, usually already in force); every later write of the same frame, which comes
/// only after a partial write or between a client's masked pieces, runs under what is left. So
/// a peer that reads a little now and then (or a kernel that grows its send buffer) cannot
/// stretch a send past the timeout, each partial write restarting the socket's clock.
struct Timed<'a, W: Transport + ?Sized> {
    w: &'a mut W,
    deadline: Deadline,
    armed: &'a mut Option<Option<Duration>>,
    wrote: bool,
}

impl<'a, W: Transport + ?Sized> Timed<'a, W> {
    fn start(
        w: &'a mut W,
        timeout: Option<Duration>,
        armed: &'a mut Option<Option<Duration>>,
    ) -> io::Result<Self> {
        let mut timed = Timed {
            w,
            deadline: Deadline::after(timeout),
            armed,
            wrote: false,
        };
        timed.arm(timeout)?;
        Ok(timed)
    }

    /// Sets the stream's write timeout unless it is already in force.
    fn arm(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if *self.armed != Some(timeout) {
            *self.armed = None;
            self.w.set_write_timeout(timeout)?;
            *self.armed = Some(timeout);
        }
        Ok(())
    }

    fn before_write(&mut self) -> io::Result<()> {
        if self.wrote {
            let left = self.deadline.remaining()?;
            self.arm(left)?;
        }
        self.wrote = true;
        Ok(())
    }
}

impl<W: Transport + ?Sized> Write for Timed<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.before_write()?;
        self.w.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.before_write()?;
        self.w.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

fn write_all_vectored<W: Write + ?Sized>(w: &mut W, head: &[u8], body: &[u8]) -> io::Result<()> {
    let mut bufs = [IoSlice::new(head), IoSlice::new(body)];
    let mut bufs = &mut bufs[..];
    while !bufs.is_empty() {
        match w.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Masking keys for a client, drawn from the operating system 64 at a time.
struct MaskKeys {
    pool: [u8; 256],
    used: usize,
}

impl MaskKeys {
    fn new() -> Self {
        MaskKeys {
            pool: [0; 256],
            used: 256,
        }
    }

    fn next(&mut self) -> [u8; 4] {
        if self.used == self.pool.len() {
            // RFC 6455 5.3: the masking key MUST be unpredictable, from a strong source of entropy.
            getrandom::fill(&mut self.pool).expect("the operating system's random source failed");
            self.used = 0;
        }
        let k = &self.pool[self.used..self.used + 4];
        self.used += 4;
        [k[0], k[1], k[2], k[3]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mask::apply_mask;

    /// Records each write call separately.
    #[derive(Default)]
    struct Calls(Vec<Vec<u8>>);

    impl Write for Calls {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.push(b.to_vec());
            Ok(b.len())
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.0
                .push(bufs.iter().flat_map(|b| b.iter().copied()).collect());
            Ok(bufs.iter().map(|b| b.len()).sum())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl io::Read for Calls {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Ok(0)
        }
    }

    impl Transport for Calls {}

    #[test]
    fn small_and_large_frames_go_out_in_one_call_each() {
        for len in [0usize, 1, 125, 126, COPY_LIMIT, COPY_LIMIT + 1, 1 << 20] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut out = Calls::default();
            Sender::new(false, None)
                .write_frame(&mut out, OpCode::Binary, true, &payload)
                .unwrap();
            assert_eq!(out.0.len(), 1, "len {len}");
            let (h, n) = FrameHeader::parse(&out.0[0]).unwrap().unwrap();
            assert_eq!((h.len as usize, h.mask), (len, None));
            assert_eq!(&out.0[0][n..], &payload[..]);
        }
    }

    #[test]
    fn the_copy_buffer_stays_within_one_masked_piece_and_its_header() {
        // Whatever a connection sends, what it keeps for copying is at most one masked piece
        // and the largest header; a client's buffer grows to that once and is kept.
        let bound = KEEP_WBUF;
        for client in [true, false] {
            let mut sender = Sender::new(client, None);
            assert_eq!(
                format!("{sender:?}"),
                format!("Sender {{ client: {client}, .. }}")
            );
            let mut out = Calls::default();
            for len in [10, 1 << 20, 100, 3 * MASK_CHUNK + 5, COPY_LIMIT, 70_000] {
                sender
                    .write_frame(&mut out, OpCode::Binary, true, &vec![1; len])
                    .unwrap();
                let kept = sender.wbuf.capacity();
                assert!(kept <= bound, "client {client}, {len} bytes: {kept} kept");
                if client && len >= MASK_CHUNK {
                    assert_eq!(kept, bound, "{len} bytes");
                }
            }
        }
    }

    #[test]
    fn client_frames_are_masked_and_payload_untouched() {
        for len in [0usize, 5, MASK_CHUNK - 3, MASK_CHUNK + 7, 3 * MASK_CHUNK] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 3) as u8).collect();
            let copy = payload.clone();
            let mut out = Calls::default();
            let mut sender = Sender::new(true, None);
            sender
                .write_frame(&mut out, OpCode::Text, false, &payload)
                .unwrap();
            assert_eq!(payload, copy);
            // small frames in one call; large ones in one call per masked piece
            assert_eq!(out.0.len(), len.div_ceil(MASK_CHUNK).max(1), "len {len}");
            let wire: Vec<u8> = out.0.concat();
            let (h, n) = FrameHeader::parse(&wire).unwrap().unwrap();
            assert!(!h.fin);
            let mut body = wire[n..].to_vec();
            apply_mask(&mut body, h.mask.expect("masked"), 0);
            assert_eq!(body, payload);
        }
    }

    /// Takes at most `piece` bytes per write and records every write timeout set.
    struct Dribble {
        piece: usize,
        written: usize,
        timeouts: Vec<Option<Duration>>,
    }

    impl Write for Dribble {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let n = b.len().min(self.piece);
            self.written += n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl io::Read for Dribble {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Ok(0)
        }
    }

    impl Transport for Dribble {
        fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
            self.timeouts.push(timeout);
            Ok(())
        }
    }

    #[test]
    fn partial_writes_get_what_is_left_and_whole_ones_cost_no_system_call() {
        let minute = Duration::from_secs(60);
        for client in [false, true] {
            let mut w = Dribble {
                piece: 1000,
                written: 0,
                timeouts: Vec::new(),
            };
            let mut sender = Sender::new(client, Some(minute));
            // Small frames: armed once, then the timeout in force fits.
            for _ in 0..3 {
                sender
                    .write_frame(&mut w, OpCode::Text, true, b"hi")
                    .unwrap();
            }
            assert_eq!(w.timeouts, [Some(minute)], "client {client}");
            // A frame in many partial writes: each later write gets only what is left.
            w.timeouts.clear();
            let big = vec![0u8; 10_000];
            sender
                .write_frame(&mut w, OpCode::Binary, true, &big)
                .unwrap();
            let rearmed = &w.timeouts[1..];
            assert!(rearmed.len() >= 9, "client {client}: {:?}", w.timeouts);
            assert!(rearmed.iter().all(|t| t.is_some_and(|t| t < minute)));
            assert!(rearmed.windows(2).all(|p| p[1] <= p[0]), "{rearmed:?}");
            // The next frame starts with the full timeout again, once.
            w.timeouts.clear();
            sender
                .write_frame(&mut w, OpCode::Text, true, b"hi")
                .unwrap();
            sender
                .write_frame(&mut w, OpCode::Text, true, b"hi")
                .unwrap();
            assert_eq!(w.timeouts, [Some(minute)], "client {client}");
        }
    }

    #[test]
    fn a_frame_fails_once_its_deadline_has_passed() {
        let mut w = Dribble {
            piece: 1000,
            written: 0,
            timeouts: Vec::new(),
        };
        let mut sender = Sender::new(false, Some(Duration::ZERO));
        let err = sender
            .write_frame(&mut w, OpCode::Binary, true, &[0u8; 5000])
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(w.written, 1000, "only the first write went out");
        // No timeout at all: a frame takes as many writes as it needs.
        let mut sender = Sender::new(false, None);
        sender
            .write_frame(&mut w, OpCode::Binary, true, &[0u8; 5000])
            .unwrap();
    }

    #[test]
    fn the_feed_queue_keeps_its_buffer_unless_it_grew_past_twice_the_limit() {
        // Steady feeding allocates the queue once: a flush keeps the buffer for the next batch.
        let mut sender = Sender::new(false, None);
        let mut out = Calls::default();
        for _ in 0..100 {
            sender.feed_data(OpCode::Text, b"tick", false).unwrap();
        }
        let kept = sender.queue.capacity();
        sender.flush_queue(&mut out).unwrap();
        assert_eq!((sender.queued(), sender.queue.capacity()), (0, kept));
        assert_eq!(out.0.len(), 1, "one write for the batch");
        assert_eq!(out.0[0].len(), 100 * 6);
        // A batch that made it grow past twice the limit (a large frame fed) gives it back.
        sender
            .feed_data(OpCode::Binary, &vec![0; 3 * QUEUE_LIMIT], false)
            .unwrap();
        assert!(sender.queue.capacity() > 2 * QUEUE_LIMIT);
        sender.flush_queue(&mut out).unwrap();
        assert_eq!(sender.queue.capacity(), 0);
        // Exactly twice the limit is still kept.
        sender.queue.reserve_exact(2 * QUEUE_LIMIT);
        assert_eq!(sender.queue.capacity(), 2 * QUEUE_LIMIT);
        sender.feed_data(OpCode::Text, b"tock", false).unwrap();
        sender.flush_queue(&mut out).unwrap();
        assert_eq!(sender.queue.capacity(), 2 * QUEUE_LIMIT);
    }

    #[test]
    fn keys_differ() {
        let mut keys = MaskKeys::new();
        let seen: std::collections::HashSet<[u8; 4]> = (0..200).map(|_| keys.next()).collect();
        assert!(seen.len() > 190);
    }
}
