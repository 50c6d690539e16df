//! The per-connection read buffer: zeroed once when created, then filled by one `read` at a time
//! and drained by the parser, which consumes every complete frame before the next read.

use std::io::{self, Read};

/// A fixed-size buffer holding received bytes not yet parsed, `buf[start..end]`.
#[derive(Debug)]
pub(crate) struct ReadBuf {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl ReadBuf {
    /// A buffer of `capacity` bytes that already holds `leftover` (bytes that arrived right behind
    /// a handshake). It grows to fit the leftover if needed.
    pub fn with_leftover(capacity: usize, leftover: &[u8]) -> Self {
        let mut buf = vec![0u8; capacity.max(leftover.len())].into_boxed_slice();
        buf[..leftover.len()].copy_from_slice(leftover);
        ReadBuf {
            buf,
            start: 0,
            end: leftover.len(),
        }
    }

    /// The bytes received and not yet consumed.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Marks `n` bytes of [`ReadBuf::data`] as parsed.
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.end - self.start);
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Number of bytes the buffer holds at most.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// One `read` call appending to the unparsed bytes. Returns the number of bytes read; 0 means
    /// the peer closed its side.
    pub fn fill<R: Read + ?Sized>(&mut self, reader: &mut R) -> io::Result<usize> {
        if self.start > 0 {
            // Move the unparsed tail (a partial frame) to the front, so the read is offered the
            // whole room: copying at most one buffer costs less than the extra `read` that a
            // short room behind the tail would take (a frame's worth of bytes each time).
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = reader.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out its bytes a few at a time.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(out.len()).min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn fill_consume_and_compact() {
        let input: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let mut src = Trickle(&input, 700);
        let mut rb = ReadBuf::with_leftover(1024, b"");
        let mut out = Vec::new();
        loop {
            let n = rb.fill(&mut src).unwrap();
            if n == 0 && rb.data().is_empty() {
                break;
            }
            // consume in odd-sized bites, leaving a tail behind each time
            let take = rb.data().len().min(333);
            out.extend_from_slice(&rb.data()[..take]);
            rb.consume(take);
        }
        assert_eq!(out, input);
    }

    /// Hands out `0` bytes per read at most, recording how much room each read was offered.
    struct Offered(usize, Vec<usize>);

    impl Read for Offered {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.1.push(out.len());
            let n = self.0.min(out.len());
            out[..n].fill(7);
            Ok(n)
        }
    }

    #[test]
    fn a_partial_frame_moves_to_the_front_before_a_read() {
        // (bytes read first, bytes then consumed, room offered to the next read)
        let rows = [
            (1000, 600, 624),   // the 400 left move to the front
            (1024, 1000, 1000), // full: the 24 left move
            (300, 100, 824),    // 724 behind the tail, but all but the 200 left once they move
            (512, 1, 513),      // even one consumed byte: the 511 left move
            (1000, 0, 24),      // nothing consumed: nothing to move
        ];
        for (first, consumed, offered) in rows {
            let mut rb = ReadBuf::with_leftover(1024, b"");
            let mut src = Offered(first, Vec::new());
            assert_eq!(rb.fill(&mut src).unwrap(), first);
            rb.consume(consumed);
            src.0 = 1;
            rb.fill(&mut src).unwrap();
            assert_eq!(src.1, [1024, offered], "{first} {consumed}");
            assert_eq!(rb.data().len(), first - consumed + 1);
        }
    }

    #[test]
    fn leftover_is_kept_and_can_exceed_capacity() {
        let rb = ReadBuf::with_leftover(4, b"abcdef");
        assert_eq!(rb.data(), b"abcdef");
        assert_eq!(rb.capacity(), 6);
    }
}
