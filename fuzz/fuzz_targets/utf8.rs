//! The incremental UTF-8 validator against `std::str::from_utf8`, with the input cut into pieces
//! at fuzzed points.
//!
//! Input: byte 0 & 0x0F = n, then n piece lengths (used in turn; 0 feeds an empty piece), then the
//! bytes to validate. n = 0 feeds the bytes whole; every input is also fed byte by byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syncws::proto::utf8::Utf8Validator;
use syncws_fuzz::cut;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(flags & 0x0F).min(rest.len());
    let (lengths, text) = rest.split_at(n);
    check(text, &cut(text, lengths));
    check(text, &cut(text, &[1]));
});

/// The validator's contract (src/proto/utf8.rs): `feed` fails as soon as the bytes so far cannot
/// be the prefix of valid UTF-8, i.e. exactly at the piece holding the first byte that makes the
/// prefix invalid, and not before; `finish` fails if the message ends inside a code point. The
/// overall verdict equals `from_utf8` on the whole.
fn check(text: &[u8], pieces: &[&[u8]]) {
    let reference = std::str::from_utf8(text);
    // Index of the first byte after which the prefix can no longer become valid UTF-8.
    let first_bad = match reference {
        Err(e) if e.error_len().is_some() => Some(
            (e.valid_up_to()..text.len())
                .find(|&i| matches!(std::str::from_utf8(&text[..=i]), Err(e) if e.error_len().is_some()))
                .expect("from_utf8 reported an invalid sequence"),
        ),
        _ => None,
    };
    let mut v = Utf8Validator::new();
    let mut offset = 0;
    let mut failed_at = None;
    for (i, piece) in pieces.iter().enumerate() {
        let end = offset + piece.len();
        let ok = v.feed(piece).is_ok();
        let should_fail = first_bad.is_some_and(|b| b < end);
        assert_eq!(
            ok, !should_fail,
            "piece {i} ({offset}..{end}), first bad byte {first_bad:?}"
        );
        if !ok {
            failed_at = Some(i);
            break;
        }
        offset = end;
    }
    if failed_at.is_none() {
        assert_eq!(offset, text.len());
        assert_eq!(v.finish().is_ok(), reference.is_ok(), "finish");
    }
    // Reset (after a failure) or finish leaves it ready for the next message.
    v.reset();
    let next = "next €𝄞 message".as_bytes();
    assert!(v.feed(&next[..10]).is_ok() && v.feed(&next[10..]).is_ok() && v.finish().is_ok());
}
