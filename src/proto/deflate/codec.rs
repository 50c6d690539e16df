//! The permessage-deflate codec (RFC 7692 7.2): a message's payload is compressed with a sync
//! flush and its trailing `00 00 ff ff` stripped; on receive the tail is put back and the
//! payload inflated in bounded steps, so a small message that inflates to gigabytes is refused
//! before memory grows. Bytes in, bytes out.
//!
//! Both halves are created on first use and, without context takeover, given up after every
//! message (a compressor to the small pool in `pool`, a decompressor freed), so an idle
//! connection holds no compression state it does not need.

use std::io;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// What a sync flush ends with; RFC 7692 7.2.1 removes it from the wire, 7.2.2 restores it.
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The most the decompressor's output buffer grows by in one step.
const OUT_STEP: usize = 64 << 10;

/// zlib cannot compress with a 256-byte window; a 512-byte one never refers further back than
/// 250 bytes (the window minus the 262-byte lookahead), so its output suits an 8-bit peer too.
fn zlib_bits(bits: u8) -> u8 {
    bits.clamp(9, 15)
}

/// Compresses the messages one endpoint sends.
#[derive(Debug)]
pub struct Compressor {
    level: u32,
    window_bits: u8,
    no_context_takeover: bool,
    state: Option<Compress>,
}

impl Compressor {
    /// A compressor with an LZ77 window of 2^`window_bits` (8..=15) bytes at `level` (0..=9).
    /// `no_context_takeover`: every message on its own, the state freed after each.
    pub fn new(window_bits: u8, level: u32, no_context_takeover: bool) -> Self {
        Compressor {
            level: level.min(9),
            window_bits: zlib_bits(window_bits),
            no_context_takeover,
            state: None,
        }
    }

    /// Whether compression state is held right now (it is created by the first message).
    pub fn holds_state(&self) -> bool {
        self.state.is_some()
    }

    /// Compresses `input`, one frame's worth of a message, appending to `out`.
    ///
    /// Every piece ends with a sync flush, so the peer can inflate each frame as it arrives. On
    /// the message's last piece (`fin`) the trailing `00 00 ff ff` is removed.
    pub fn compress(&mut self, mut input: &[u8], fin: bool, out: &mut Vec<u8>) -> io::Result<()> {
        let (level, bits) = (self.level, self.window_bits);
        let z = self.state.get_or_insert_with(|| {
            if self.no_context_takeover {
                super::pool::take(level, bits)
            } else {
                Compress::new_with_window_bits(Compression::new(level), false, bits)
            }
        });
        let start = out.len();
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(input.len() / 2 + 256);
            }
            let before = z.total_in();
            z.compress_vec(input, out, FlushCompress::Sync)
                .map_err(io::Error::other)?;
            input = &input[(z.total_in() - before) as usize..];
            // zlib's rule: the flush is complete once it returns with room left in the output.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        if fin {
            if out.len() >= start + TAIL.len() && out.ends_with(&TAIL) {
                out.truncate(out.len() - TAIL.len());
            } else if out.len() == start {
                // Nothing to flush (an empty piece right after a flush): the receiver's restored
                // tail still needs a block header in front of it. RFC 7692 7.2.3.6: one 0x00
                // byte, the header of an empty stored block on a byte boundary.
                out.push(0x00);
            }
            if self.no_context_takeover
                && let Some(z) = self.state.take()
            {
                super::pool::give(level, bits, z);
            }
        }
        Ok(())
    }
}

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// The inflated message would exceed its size limit.
    TooLarge,
    /// Not valid deflate data, or data after a final block.
    Corrupt,
    /// The caller's `grow` refused to let the output grow (see [`Decompressor::inflate_with`]).
    Refused,
}

/// Inflates the messages one endpoint receives.
#[derive(Debug)]
pub struct Decompressor {
    window_bits: u8,
    no_context_takeover: bool,
    state: Option<Decompress>,
    /// The peer ended its deflate stream (a block with BFINAL set) within this message.
    ended: bool,
    /// Compressed bytes of this message so far, and the last four of them.
    seen: usize,
    last: [u8; 4],
}

impl Decompressor {
    /// A decompressor for a peer that compresses with a window of at most 2^`window_bits` bytes.
    /// `no_context_takeover`: the peer compresses every message on its own, so the state is
    /// freed after each.
    pub fn new(window_bits: u8, no_context_takeover: bool) -> Self {
        Decompressor {
            // A larger window than the peer's is harmless; zlib's smallest is 9 bits.
            window_bits: zlib_bits(window_bits),
            no_context_takeover,
            state: None,
            ended: false,
            seen: 0,
            last: [0; 4],
        }
    }

    /// Whether decompression state is held right now.
    pub fn holds_state(&self) -> bool {
        self.state.is_some()
    }

    /// Inflates `input`, the next piece of a message's payload, appending to `out`, which holds
    /// the message so far. `out` never grows beyond `max + 1` bytes: once the message would be
    /// larger than `max`, inflating stops with [`InflateError::TooLarge`].
    pub fn inflate(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<(), InflateError> {
        self.inflate_with(input, out, max, &mut |_, _| true)
    }

    /// Like [`Decompressor::inflate`], asking `grow(from, to)` before `out`'s capacity grows
    /// from `from` to `to` bytes: false stops inflating with [`InflateError::Refused`] (what
    /// inflated so far stays in `out`). The caller can charge the growth to a budget.
    pub fn inflate_with(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max: usize,
        grow: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<(), InflateError> {
        self.seen += input.len();
        for &b in input.iter().rev().take(4).rev() {
            self.last = [self.last[1], self.last[2], self.last[3], b];
        }
        self.run(input, out, max, grow)
    }

    fn run(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        max: usize,
        grow: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<(), InflateError> {
        let bits = self.window_bits;
        let z = self
            .state
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, bits));
        loop {
            if self.ended {
                // Only the restored tail may follow a final block.
                return match input {
                    [] => Ok(()),
                    _ => Err(InflateError::Corrupt),
                };
            }
            if out.len() == out.capacity() {
                if out.len() > max {
                    return Err(InflateError::TooLarge);
                }
                // Grow geometrically, but never past one byte over the limit.
                let target = out
                    .capacity()
                    .saturating_mul(2)
                    .max(out.len() + OUT_STEP)
                    .min(max.saturating_add(1));
                if !grow(out.capacity(), target) {
                    return Err(InflateError::Refused);
                }
                out.reserve_exact(target - out.len());
            }
            let in_before = z.total_in();
            let result = z.decompress_vec(input, out, FlushDecompress::None);
            // The limit first: zlib may fill the output and then, in the same call, reach
            // corrupt input further on; fed in smaller pieces it would have stopped at the
            // limit. Either way the limit was crossed first.
            if out.len() > max {
                return Err(InflateError::TooLarge);
            }
            let status = result.map_err(|_| InflateError::Corrupt)?;
            let used = (z.total_in() - in_before) as usize;
            input = &input[used..];
            match status {
                Status::StreamEnd => self.ended = true,
                // zlib stops short of filling `out` only once it has used all the input (it
                // stops when either runs out): everything so far is out. Input left over means
                // it could go no further.
                _ if out.len() < out.capacity() => {
                    return match input {
                        [] => Ok(()),
                        _ => Err(InflateError::Corrupt),
                    };
                }
                _ => {}
            }
        }
    }

    /// The message's last frame has arrived: inflates the restored tail, then forgets the
    /// message's context if the peer does not keep it (or ended its stream).
    ///
    /// The tail completes the sender's last flush. A message that is empty, or already ends with
    /// a whole `00 00 ff ff` (a sender that flushed a piece and then sent an empty last frame),
    /// has nothing to complete: the stream is at a block boundary, and the tail would start a
    /// block that never ends.
    pub fn finish(&mut self, out: &mut Vec<u8>, max: usize) -> Result<(), InflateError> {
        self.finish_with(out, max, &mut |_, _| true)
    }

    /// Like [`Decompressor::finish`], asking `grow` before `out` grows, as
    /// [`Decompressor::inflate_with`] does.
    pub fn finish_with(
        &mut self,
        out: &mut Vec<u8>,
        max: usize,
        grow: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<(), InflateError> {
        let result = if self.needs_tail() {
            self.run(&TAIL, out, max, grow)
        } else {
            Ok(())
        };
        self.end_message();
        result
    }

    /// Whether the message's bytes so far (all of them inflated) need the restored tail to
    /// complete the sender's last flush; see [`Decompressor::finish`].
    pub fn needs_tail(&self) -> bool {
        !(self.ended || self.seen == 0 || (self.seen >= 4 && self.last == TAIL))
    }

    /// Ends the message after its tail (if it needed one) was inflated, for callers that inflate
    /// with [`Decompressor::inflate_bounded`]: forgets the context if the peer does not keep it.
    pub fn end_message(&mut self) {
        if self.no_context_takeover || self.ended {
            self.state = None;
        }
        self.ended = false;
        self.seen = 0;
    }

    /// Inflates as much of `input` as gives at most `room` more bytes in `out`, and returns how
    /// many input bytes were used: the streamed receive, whose output per step is bounded
    /// whatever the input holds. When `out` received `room` bytes, more output may be pending
    /// inside the decompressor: call again with the rest of the input (possibly empty). Fewer
    /// than `room` bytes with all the input used means everything so far is out.
    pub fn inflate_bounded(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        room: usize,
    ) -> Result<usize, InflateError> {
        if self.ended {
            // Only the restored tail may follow a final block.
            return match input {
                [] => Ok(0),
                _ => Err(InflateError::Corrupt),
            };
        }
        let bits = self.window_bits;
        let z = self
            .state
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, bits));
        let start = out.len();
        out.resize(start + room, 0);
        let (in_before, out_before) = (z.total_in(), z.total_out());
        let status = z.decompress(input, &mut out[start..], FlushDecompress::None);
        // What inflated before corrupt data stays: the caller checks it first (bad text ahead
        // of the corruption decides the close code, as in the unbounded path).
        let used = (z.total_in() - in_before) as usize;
        let made = (z.total_out() - out_before) as usize;
        out.truncate(start + made);
        self.seen += used;
        for &b in input[..used].iter().rev().take(4).rev() {
            self.last = [self.last[1], self.last[2], self.last[3], b];
        }
        match status {
            Err(_) => Err(InflateError::Corrupt),
            Ok(Status::StreamEnd) => {
                self.ended = true;
                match used == input.len() {
                    true => Ok(used),
                    false => Err(InflateError::Corrupt),
                }
            }
            // zlib stops when the input or the room runs out; short of both, it could go no
            // further.
            Ok(_) if made < room && used < input.len() => Err(InflateError::Corrupt),
            Ok(_) => Ok(used),
        }
    }

    /// Drops whatever a failed message left behind.
    pub fn reset(&mut self) {
        self.state = None;
        self.ended = false;
        self.seen = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> Vec<u8> {
        let words = [
            "alpha",
            "beta",
            "gamma",
            "{\"id\":",
            "\"name\":",
            "true",
            "17",
            "é€",
        ];
        let mut out = Vec::with_capacity(n + 8);
        let mut x = 7u32;
        while out.len() < n {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            out.extend_from_slice(words[(x >> 16) as usize % words.len()].as_bytes());
            out.push(b' ');
        }
        out.truncate(n);
        out
    }

    /// Compresses `pieces` as one message (one frame each) and returns the frames' payloads.
    fn compress_message(c: &mut Compressor, pieces: &[&[u8]]) -> Vec<Vec<u8>> {
        pieces
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut out = Vec::new();
                c.compress(p, i + 1 == pieces.len(), &mut out).unwrap();
                out
            })
            .collect()
    }

    fn inflate_message(
        d: &mut Decompressor,
        frames: &[Vec<u8>],
        max: usize,
    ) -> Result<Vec<u8>, InflateError> {
        let mut out = Vec::new();
        for f in frames {
            d.inflate(f, &mut out, max)?;
        }
        d.finish(&mut out, max)?;
        Ok(out)
    }

    #[test]
    fn round_trips_with_and_without_context_takeover() {
        for (bits, level, nct) in [
            (15, 6, false),
            (15, 1, true),
            (9, 9, false),
            (8, 0, false),
            (12, 6, true),
        ] {
            let mut c = Compressor::new(bits, level, nct);
            let mut d = Decompressor::new(bits, nct);
            for size in [0usize, 1, 100, 5000, 70_000, 300_000] {
                let msg = sample(size);
                let frames = compress_message(&mut c, &[&msg]);
                assert!(!frames[0].ends_with(&TAIL) || size == 0, "tail stripped");
                let got = inflate_message(&mut d, &frames, usize::MAX).unwrap();
                assert!(
                    got == msg,
                    "bits {bits} level {level} nct {nct} size {size}"
                );
                assert_eq!(c.holds_state(), !nct);
                assert_eq!(d.holds_state(), !nct);
            }
        }
    }

    /// Bytes no compressor can shrink (xorshift), so the output outgrows what is reserved.
    fn noise(n: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn incompressible_messages_round_trip_through_a_full_output_buffer() {
        // The output outgrows the half of the input reserved for it: zlib may take all the
        // input while the flush is still pending, and the loop must go on until it is out.
        for level in [1, 6, 9] {
            let mut c = Compressor::new(15, level, false);
            let mut d = Decompressor::new(15, false);
            for size in [300, 1000, 5000, 70_000, 300_000] {
                let msg = noise(size);
                let frames = compress_message(&mut c, &[&msg]);
                let got = inflate_message(&mut d, &frames, usize::MAX).unwrap();
                assert!(got == msg, "level {level} size {size}");
            }
        }
    }

    #[test]
    fn a_piece_appended_after_other_bytes_loses_only_its_own_tail() {
        // `out` already holds bytes (a frame header, an earlier piece): only the piece's own
        // trailing 00 00 ff ff goes, and an empty last piece adds its one byte.
        let mut c = Compressor::new(15, 6, false);
        let mut out = vec![0xab; 100];
        c.compress(b"hello", true, &mut out).unwrap();
        assert_eq!(&out[..100], &[0xab; 100][..]);
        assert!(!out.ends_with(&TAIL), "{out:x?}");
        let mut d = Decompressor::new(15, false);
        assert_eq!(
            inflate_message(&mut d, &[out[100..].to_vec()], 100).unwrap(),
            b"hello"
        );

        let mut out = Vec::new();
        c.compress(b"again", false, &mut out).unwrap();
        let first = out.clone();
        assert!(
            first.ends_with(&TAIL),
            "a piece that is not the last keeps its flush"
        );
        c.compress(b"", true, &mut out).unwrap();
        assert_eq!(
            &out[..first.len()],
            &first[..],
            "the earlier piece is intact"
        );
        assert_eq!(&out[first.len()..], &[0x00]);
        let got = inflate_message(&mut d, &[first, vec![0x00]], 100).unwrap();
        assert_eq!(got, b"again");
    }

    #[test]
    fn the_output_buffer_grows_once_and_in_proportion() {
        let mut c = Compressor::new(15, 6, false);
        // 64 bytes of room take a short message as they are.
        let mut out = Vec::with_capacity(64);
        c.compress(b"hi", true, &mut out).unwrap();
        assert_eq!(out.capacity(), 64);
        // A message that compresses to under half its size: one reservation of half of it
        // (and a little), not more.
        for size in [5000, 1 << 20] {
            let msg = sample(size);
            let mut out = Vec::new();
            c.compress(&msg, true, &mut out).unwrap();
            assert!(
                out.len() < size / 4,
                "size {size}: {} compressed",
                out.len()
            );
            assert_eq!(out.capacity(), size / 2 + 256, "size {size}");
        }
    }

    #[test]
    fn the_limit_wins_over_corruption_found_in_the_same_call() {
        // 301 bytes of text, then a stored block with bad lengths: with a limit of 300 the
        // output crosses it before the bad block, however the input is cut. (Whole, zlib fills
        // the output exactly and reads on to the bad block in the same call.)
        let text: Vec<u8> = (0..301u32).map(|i| b'a' + (i * 7 % 26) as u8).collect();
        let mut c = Compressor::new(15, 6, false);
        let mut z = Vec::new();
        c.compress(&text, false, &mut z).unwrap();
        z.extend_from_slice(&[0x00, 0x12, 0x34, 0x56, 0x78]);
        for step in [z.len(), 1, 7] {
            let mut d = Decompressor::new(15, false);
            let mut out = Vec::new();
            let mut result = Ok(());
            for piece in z.chunks(step) {
                result = d.inflate(piece, &mut out, 300);
                if result.is_err() {
                    break;
                }
            }
            assert_eq!(result, Err(InflateError::TooLarge), "pieces of {step}");
            let mut d = Decompressor::new(15, false);
            let mut out = Vec::new();
            let result = z.chunks(step).try_for_each(|p| d.inflate(p, &mut out, 500));
            assert_eq!(
                result,
                Err(InflateError::Corrupt),
                "pieces of {step}, limit 500"
            );
        }
    }

    #[test]
    fn empty_pieces_leave_the_stream_usable() {
        // Empty messages, and empty last pieces right after a flushed piece, then more messages:
        // every message must leave the decompressor at a block boundary.
        let mut c = Compressor::new(15, 6, false);
        let mut d = Decompressor::new(15, false);
        assert_eq!(compress_message(&mut c, &[b""]), vec![vec![0x00]]);
        assert_eq!(compress_message(&mut c, &[b""]), vec![vec![0x00]]);
        let messages: &[&[&[u8]]] = &[
            &[b""],
            &[b"ab", b"cd", b""],
            &[b"", b""],
            &[b"", b"x"],
            &[b"hello"],
            &[b"ab", b"", b"", b"cd"],
            &[b""],
            &[b"the end"],
        ];
        for pieces in messages {
            let frames = compress_message(&mut c, pieces);
            let got = inflate_message(&mut d, &frames, 100).unwrap();
            assert_eq!(got, pieces.concat(), "{pieces:?} as {frames:x?}");
        }
    }

    #[test]
    fn empty_payloads_and_whole_flushes_from_other_senders_are_understood() {
        // Another sender may send an empty payload for an empty message, or flush every piece
        // and end with an empty frame; the stream must stay usable either way.
        let mut z = Compress::new_with_window_bits(Compression::new(6), false, 15);
        let mut piece = |input: &[u8]| {
            let mut out = Vec::with_capacity(1024);
            z.compress_vec(input, &mut out, FlushCompress::Sync)
                .unwrap();
            out
        };
        let mut d = Decompressor::new(15, false);
        let messages: Vec<(Vec<Vec<u8>>, &[u8])> = vec![
            (vec![vec![]], b""),
            (vec![piece(b"abc"), vec![]], b"abc"),
            (vec![vec![]], b""),
            (vec![piece(b"de"), piece(b"f"), vec![]], b"def"),
            (
                vec![{
                    let mut p = piece(b"ghi");
                    p.truncate(p.len() - 4);
                    p
                }],
                b"ghi",
            ),
        ];
        for (frames, want) in messages {
            assert_eq!(
                inflate_message(&mut d, &frames, 100).as_deref(),
                Ok(want),
                "{frames:x?}"
            );
        }
    }

    #[test]
    fn context_takeover_makes_repeats_cheap() {
        let msg = sample(2000);
        let mut keep = Compressor::new(15, 6, false);
        let mut forget = Compressor::new(15, 6, true);
        let first = compress_message(&mut keep, &[&msg])[0].len();
        let again = compress_message(&mut keep, &[&msg])[0].len();
        let fresh = compress_message(&mut forget, &[&msg]);
        let fresh_again = compress_message(&mut forget, &[&msg]);
        assert!(again * 10 < first, "{again} vs {first}");
        assert_eq!(fresh, fresh_again);
    }

    #[test]
    fn fragmented_message_inflates_across_every_split_point() {
        let msg = sample(3000);
        let mut c = Compressor::new(15, 6, false);
        let frames = compress_message(&mut c, &[&msg[..1000], &msg[1000..1001], &msg[1001..]]);
        let wire: Vec<u8> = frames.concat();
        for cut in 0..=wire.len() {
            let mut d = Decompressor::new(15, false);
            let got = inflate_message(
                &mut d,
                &[wire[..cut].to_vec(), wire[cut..].to_vec()],
                1 << 20,
            );
            assert_eq!(got.as_deref(), Ok(&msg[..]), "cut {cut}");
        }
    }

    #[test]
    fn grow_is_asked_before_every_growth_and_can_refuse() {
        let msg = sample(1 << 20);
        let mut c = Compressor::new(15, 6, false);
        let frame = compress_message(&mut c, &[&msg]).remove(0);
        // Allowed: every growth is seen, from the capacity out has to the one it gets.
        let mut d = Decompressor::new(15, false);
        let mut out = Vec::new();
        let mut asked = Vec::new();
        d.inflate_with(&frame, &mut out, 2 << 20, &mut |from, to| {
            asked.push((from, to));
            true
        })
        .unwrap();
        d.finish_with(&mut out, 2 << 20, &mut |from, to| {
            asked.push((from, to));
            true
        })
        .unwrap();
        assert_eq!(out, msg);
        assert_eq!(asked.first().map(|a| a.0), Some(0));
        assert_eq!(asked.last().map(|a| a.1), Some(out.capacity()));
        assert!(asked.windows(2).all(|w| w[0].1 == w[1].0), "{asked:?}");
        // Refused past 256 KiB: inflating stops there, out no larger.
        let mut d = Decompressor::new(15, false);
        let mut out = Vec::new();
        let result = d.inflate_with(&frame, &mut out, 2 << 20, &mut |_, to| to <= 256 << 10);
        assert_eq!(result, Err(InflateError::Refused));
        assert!(out.capacity() <= 256 << 10, "{}", out.capacity());
        assert_eq!(out[..], msg[..out.len()]);
    }

    #[test]
    fn bomb_stops_at_the_limit_without_growing_past_it() {
        let zeros = vec![0u8; 10 << 20];
        let mut c = Compressor::new(15, 9, false);
        let frames = compress_message(&mut c, &[&zeros]);
        assert!(frames[0].len() < 20 << 10, "{}", frames[0].len());
        let max = 1 << 20;
        let mut d = Decompressor::new(15, false);
        let mut out = Vec::new();
        let mut result = Ok(());
        for piece in frames[0].chunks(1000) {
            result = d.inflate(piece, &mut out, max);
            assert!(out.capacity() <= max + 1, "capacity {}", out.capacity());
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(InflateError::TooLarge));
        // exactly at the limit is fine
        let exact = vec![7u8; max];
        let frames = compress_message(&mut c, &[&exact]);
        let mut d = Decompressor::new(15, false);
        assert_eq!(
            inflate_message(&mut d, &frames, max).map(|v| v.len()),
            Ok(max)
        );
    }

    #[test]
    fn garbage_and_data_after_a_final_block_are_corrupt() {
        let mut d = Decompressor::new(15, false);
        let mut out = Vec::new();
        // BTYPE 11 is reserved
        assert_eq!(
            d.inflate(&[0xff, 0xff, 0xff], &mut out, 100),
            Err(InflateError::Corrupt)
        );
        // a final empty stored block, then more
        let mut d = Decompressor::new(15, false);
        let final_block = [0x01, 0x00, 0x00, 0xff, 0xff];
        assert_eq!(
            inflate_message(&mut d, &[final_block.to_vec()], 100),
            Ok(vec![])
        );
        let mut with_more = final_block.to_vec();
        with_more.push(0x00);
        assert_eq!(
            inflate_message(&mut d, &[with_more], 100),
            Err(InflateError::Corrupt)
        );
    }

    /// A message as a peer may compress it: ending in a final block (zlib's finish), not in a
    /// sync flush.
    fn finished(msg: &[u8]) -> Vec<u8> {
        let mut z = Compress::new_with_window_bits(Compression::new(6), false, 15);
        let mut out = Vec::with_capacity(msg.len() + 64);
        z.compress_vec(msg, &mut out, FlushCompress::Finish)
            .unwrap();
        out
    }

    #[test]
    fn a_message_ending_in_a_final_block_needs_no_tail_and_ends_the_stream() {
        // Two such messages on a decompressor that would keep its context: each is a stream
        // of its own, the tail is not added, and the state goes with the message.
        let one = sample(5000);
        let two = noise(3000);
        let mut d = Decompressor::new(15, false);
        for msg in [&one, &two] {
            let got = inflate_message(&mut d, &[finished(msg)], usize::MAX);
            assert_eq!(got.as_deref(), Ok(&msg[..]));
            assert!(!d.holds_state(), "the ended stream is forgotten");
        }
        for room in [1, 100, 1 << 20] {
            let mut d = Decompressor::new(15, false);
            for msg in [&one, &two] {
                assert_eq!(inflate_in_steps(&mut d, &[finished(msg)], room), *msg);
                assert!(!d.holds_state());
            }
        }
        // After the final block, in steps too, only the tail may follow.
        let mut d = Decompressor::new(15, false);
        let mut extra = finished(b"done");
        extra.push(0x00);
        let mut out = Vec::new();
        assert_eq!(
            d.inflate_bounded(&extra, &mut out, 1 << 10),
            Err(InflateError::Corrupt)
        );
        assert_eq!(out, b"done");
    }

    #[test]
    fn every_flushed_piece_is_out_when_inflate_returns() {
        // A piece ending in a sync flush is all there to read once `inflate` returns, whatever
        // room `out` had: nothing waits inside the decompressor for the next piece.
        for data in [sample(200_000), noise(200_000)] {
            for cut in [1, 1000, 65_535, 65_536, 65_537, 131_072, 150_000] {
                let mut c = Compressor::new(15, 6, false);
                let frames = compress_message(&mut c, &[&data[..cut], &data[cut..]]);
                for room in [0, cut - 1, cut, cut + 1] {
                    let mut d = Decompressor::new(15, false);
                    let mut out = Vec::with_capacity(room);
                    d.inflate(&frames[0], &mut out, usize::MAX).unwrap();
                    assert!(out == data[..cut], "cut {cut} room {room}: {}", out.len());
                    d.inflate(&frames[1], &mut out, usize::MAX).unwrap();
                    d.finish(&mut out, usize::MAX).unwrap();
                    assert!(out == data, "cut {cut} room {room}");
                }
            }
        }
    }

    #[test]
    fn a_piece_cut_anywhere_gives_all_it_decodes_to_whatever_room_out_had() {
        // A peer may cut the compressed payload between frames anywhere, even inside a long
        // match. Whatever `out`'s room, `inflate` returns with every byte the piece decodes
        // to, including a match zlib had begun when `out` filled.
        let zeros = vec![0u8; 20_000];
        let mut c = Compressor::new(15, 6, false);
        let wire = compress_message(&mut c, &[&zeros]).remove(0);
        for cut in 1..wire.len() {
            let piece = &wire[..cut];
            let mut d = Decompressor::new(15, false);
            let mut all = Vec::with_capacity(1 << 20);
            d.inflate(piece, &mut all, usize::MAX).unwrap();
            let n = all.len();
            for room in n.saturating_sub(300)..=n {
                let mut d = Decompressor::new(15, false);
                let mut out = Vec::with_capacity(room);
                d.inflate(piece, &mut out, usize::MAX).unwrap();
                assert_eq!(out.len(), n, "cut {cut}, room {room}");
            }
        }
    }

    #[test]
    fn bounded_inflate_appends_after_what_out_holds() {
        let msg = sample(3000);
        let mut c = Compressor::new(15, 6, false);
        let frames = compress_message(&mut c, &[&msg]);
        let mut d = Decompressor::new(15, false);
        let mut out = b"before".to_vec();
        let used = d.inflate_bounded(&frames[0], &mut out, 1 << 20).unwrap();
        assert_eq!(used, frames[0].len());
        d.inflate_bounded(&TAIL, &mut out, 1 << 20).unwrap();
        assert_eq!(&out[..6], b"before");
        assert!(out[6..] == msg[..]);
    }

    #[test]
    fn a_reset_after_a_failed_message_starts_the_next_afresh() {
        let mut d = Decompressor::new(15, false);
        let mut out = Vec::new();
        let mut c = Compressor::new(15, 6, false);
        let first = compress_message(&mut c, &[b"half a message", b"rest"]);
        d.inflate(&first[0], &mut out, 100).unwrap();
        // The message fails (its other half never comes: corrupt, too large, closed).
        assert_eq!(
            d.inflate(&[0xff; 3], &mut out, 100),
            Err(InflateError::Corrupt)
        );
        d.reset();
        assert!(!d.holds_state());
        assert!(!d.needs_tail(), "nothing of a message seen");
        // A peer starting over (a new stream) is understood.
        let mut c = Compressor::new(15, 6, false);
        let frames = compress_message(&mut c, &[b"next"]);
        assert_eq!(inflate_message(&mut d, &frames, 100), Ok(b"next".to_vec()));
    }

    #[test]
    fn window_of_8_bits_is_served_by_9() {
        // zlib refuses 8 bits for raw deflate; 9 bits keeps distances within 250 bytes.
        let msg = sample(50_000);
        let mut c = Compressor::new(8, 9, false);
        let frames = compress_message(&mut c, &[&msg]);
        let mut d = Decompressor::new(8, false);
        assert_eq!(inflate_message(&mut d, &frames, usize::MAX), Ok(msg));
    }

    /// Inflates a message's frames in steps of at most `room` bytes, as a streamed receive does.
    fn inflate_in_steps(d: &mut Decompressor, frames: &[Vec<u8>], room: usize) -> Vec<u8> {
        let mut got = Vec::new();
        let tail = TAIL.to_vec();
        let feed = |d: &mut Decompressor, input: &[u8], got: &mut Vec<u8>| {
            let mut at = 0;
            loop {
                let mut step = Vec::new();
                at += d.inflate_bounded(&input[at..], &mut step, room).unwrap();
                assert!(step.len() <= room, "{} bytes for room {room}", step.len());
                got.extend_from_slice(&step);
                if at == input.len() && step.len() < room {
                    return;
                }
            }
        };
        for frame in frames {
            feed(d, frame, &mut got);
        }
        if d.needs_tail() {
            feed(d, &tail, &mut got);
        }
        d.end_message();
        got
    }

    #[test]
    fn bounded_inflate_gives_the_same_bytes_in_steps_of_any_size() {
        let msg = sample(20_000);
        let zeros = vec![0u8; 300_000];
        for takeover in [false, true] {
            let mut c = Compressor::new(15, 6, !takeover);
            let first = compress_message(&mut c, &[&msg[..7000], &msg[7000..]]);
            let second = compress_message(&mut c, &[&zeros]);
            for room in [1, 2, 3, 7, 100, 4096, 1 << 20] {
                let mut d = Decompressor::new(15, !takeover);
                assert_eq!(inflate_in_steps(&mut d, &first, room), msg, "room {room}");
                assert_eq!(
                    inflate_in_steps(&mut d, &second, room),
                    zeros,
                    "room {room}"
                );
            }
        }
    }

    #[test]
    fn bounded_inflate_finds_corrupt_data() {
        let mut d = Decompressor::new(15, false);
        let mut out = Vec::new();
        let got = d.inflate_bounded(&[0xff; 10], &mut out, 64);
        assert_eq!(got, Err(InflateError::Corrupt));
    }
}
