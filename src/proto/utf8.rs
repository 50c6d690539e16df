//! Incremental UTF-8 validation: bytes are checked as they arrive, so an invalid byte fails the
//! message at once, even in the middle of a frame whose rest has not arrived yet, while a code
//! point split across reads or fragments is accepted.
//!
//! The heavy lifting is `std::str::from_utf8`; this type only carries the (at most 3) bytes of an
//! unfinished code point from one piece to the next.

/// Invalid UTF-8 was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Error;

/// Validates a byte stream fed in arbitrary pieces.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    pending: [u8; 4],
    pending_len: usize,
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next piece. Fails as soon as the bytes so far cannot be the prefix of valid
    /// UTF-8.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), Utf8Error> {
        if self.pending_len > 0 {
            let width = sequence_width(self.pending[0]);
            let take = (width - self.pending_len).min(input.len());
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&input[..take]);
            self.pending_len += take;
            input = &input[take..];
            match std::str::from_utf8(&self.pending[..self.pending_len]) {
                Ok(_) => self.pending_len = 0,
                // Still a valid prefix of one code point: wait for more.
                Err(e) if e.error_len().is_none() => return Ok(()),
                Err(_) => return Err(Utf8Error),
            }
        }
        match std::str::from_utf8(input) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let tail = &input[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len();
                Ok(())
            }
            Err(_) => Err(Utf8Error),
        }
    }

    /// Checks that the message did not end inside a code point, and resets for the next one.
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        let complete = self.pending_len == 0;
        self.pending_len = 0;
        if complete { Ok(()) } else { Err(Utf8Error) }
    }

    /// Forgets any pending bytes.
    pub fn reset(&mut self) {
        self.pending_len = 0;
    }
}

/// Length of the sequence a lead byte starts. Only called on bytes that `from_utf8` reported as
/// the start of an incomplete, so far valid, sequence.
fn sequence_width(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(bytes: &[u8]) -> bool {
        std::str::from_utf8(bytes).is_ok()
    }

    fn check_whole(bytes: &[u8]) -> bool {
        let mut v = Utf8Validator::new();
        v.feed(bytes).is_ok() && v.finish().is_ok()
    }

    fn samples() -> Vec<Vec<u8>> {
        let mut s: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"hello".to_vec(),
            "κόσμε".as_bytes().to_vec(),
            "a€b𝄞c".as_bytes().to_vec(),
            // Code points of different widths back to back: what a split one is completed with
            // must stop at its own end.
            "é€ü𝄞€é".as_bytes().to_vec(),
            "\u{10FFFF}\u{FFFF}\u{800}\u{80}".as_bytes().to_vec(),
            vec![
                0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0, 0x80,
            ],
            vec![0xF4, 0x90, 0x80, 0x80],
            vec![0xC0, 0xAF],
            vec![0xE0, 0x80, 0xAF],
            vec![0xED, 0xBF, 0xBF],
            vec![0xF0, 0x9F, 0x98],
            vec![0xFF],
            vec![b'a', 0x80],
            vec![0xE2, 0x82],
        ];
        s.push("x".repeat(40).into_bytes());
        let mut long = "validé ✓ 🎉 ".repeat(5).into_bytes();
        long.push(0xC3);
        s.push(long);
        s
    }

    #[test]
    fn whole_input_matches_std() {
        for b in samples() {
            assert_eq!(check_whole(&b), reference(&b), "{b:x?}");
        }
    }

    #[test]
    fn every_split_point_matches_std() {
        for b in samples() {
            for i in 0..=b.len() {
                for j in i..=b.len() {
                    let mut v = Utf8Validator::new();
                    let ok = v.feed(&b[..i]).is_ok()
                        && v.feed(&b[i..j]).is_ok()
                        && v.feed(&b[j..]).is_ok()
                        && v.finish().is_ok();
                    assert_eq!(ok, reference(&b), "{b:x?} split {i} {j}");
                }
            }
        }
    }

    #[test]
    fn byte_by_byte_fails_at_the_first_bad_byte() {
        // 0xED 0xA0 starts a surrogate: invalid as soon as the second byte arrives.
        let input = [b'o', b'k', 0xED, 0xA0, 0x80, b'x'];
        let mut v = Utf8Validator::new();
        assert!(v.feed(&input[..1]).is_ok());
        assert!(v.feed(&input[1..2]).is_ok());
        assert!(v.feed(&input[2..3]).is_ok());
        assert_eq!(v.feed(&input[3..4]), Err(Utf8Error));
    }

    #[test]
    fn code_point_split_across_fragments_is_accepted() {
        let euro = "€".as_bytes();
        let mut v = Utf8Validator::new();
        v.feed(&euro[..1]).unwrap();
        v.feed(&euro[1..2]).unwrap();
        v.feed(&euro[2..]).unwrap();
        v.finish().unwrap();
    }

    #[test]
    fn unfinished_code_point_fails_at_finish() {
        let mut v = Utf8Validator::new();
        v.feed(&[0xF0, 0x9F]).unwrap();
        assert_eq!(v.finish(), Err(Utf8Error));
        // and the validator is ready for the next message
        v.feed(b"fine").unwrap();
        v.finish().unwrap();
    }

    #[test]
    fn reset_forgets_an_unfinished_code_point() {
        // A message cut short (a close in the middle) leaves a lead byte pending; the next
        // message must not be read as its continuation.
        let mut v = Utf8Validator::new();
        v.feed(&[0xE2, 0x82]).unwrap();
        v.reset();
        assert_eq!(v.feed(&[0xAC]), Err(Utf8Error));
        let mut v = Utf8Validator::new();
        v.feed(&[0xE2]).unwrap();
        v.reset();
        v.feed(b"ok").unwrap();
        v.finish().unwrap();
    }

    #[test]
    fn pseudo_random_bytes_match_std() {
        let mut x: u32 = 12345;
        for _ in 0..2000 {
            let len = (x % 12) as usize;
            let mut b = Vec::with_capacity(len);
            for _ in 0..len {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let r = (x >> 16) as u8;
                b.push(if r & 1 == 0 { r | 0x80 } else { r & 0x7F });
            }
            for i in 0..=b.len() {
                let mut v = Utf8Validator::new();
                let ok = v.feed(&b[..i]).is_ok() && v.feed(&b[i..]).is_ok() && v.finish().is_ok();
                assert_eq!(ok, reference(&b), "{b:x?} at {i}");
            }
        }
    }
}
