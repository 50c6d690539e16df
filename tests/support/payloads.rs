//! Message payloads that make boundaries fall in awkward places.

/// `n` bytes of valid UTF-8 mixing one- to four-byte characters, so chunk and buffer boundaries
/// fall inside characters.
pub fn text_of_len(n: usize) -> String {
    let mut s = String::with_capacity(n);
    let pattern = ['a', 'é', '€', '𝄞', ' ', 'z'];
    for c in pattern.iter().cycle() {
        if s.len() + c.len_utf8() > n {
            break;
        }
        s.push(*c);
    }
    while s.len() < n {
        s.push('.');
    }
    s
}

/// `n` bytes that are not a repeating short pattern.
pub fn bytes_of_len(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i ^ (i >> 8) ^ (i >> 16)) as u8).collect()
}

/// JSON-like text that compresses well (for the compression tests).
pub fn json_like(n: usize) -> String {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < n {
        s.push_str(&format!(
            "{{\"id\":{i},\"user\":\"user{}\",\"active\":{},\"tags\":[\"a\",\"b\"]}},",
            i % 17,
            i % 3 == 0
        ));
        i += 1;
    }
    s.truncate(n);
    s
}

/// `total` zero bytes compressed as one message, `piece` bytes at a time (each piece flushed,
/// the tail stripped at the end), as a hostile peer would build it without holding it all.
#[cfg(feature = "deflate")]
pub fn zero_bomb(total: usize, piece: usize) -> Vec<u8> {
    let zeros = vec![0u8; piece];
    let mut c = syncws::proto::deflate::Compressor::new(15, 9, true);
    let mut out = Vec::new();
    let pieces = total / piece;
    for i in 0..pieces {
        c.compress(&zeros, i + 1 == pieces, &mut out).unwrap();
    }
    out
}

/// Words in a pseudo-random order: compresses to about half, so a repeat that refers back to
/// it is much smaller than the first copy.
pub fn varied_text(n: usize) -> String {
    let words = [
        "alpha", "beta", "gamma", "delta", "17", "42", "true", "null", "x", "yz",
    ];
    let mut s = String::new();
    let mut x = 12345u32;
    while s.len() < n {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        s.push_str(words[(x >> 16) as usize % words.len()]);
        s.push(if x.is_multiple_of(7) { ',' } else { ' ' });
    }
    s.truncate(n);
    s
}

/// Inflates one whole compressed message's payload (RFC 7692) with `d`, which keeps or drops
/// its context as it was made to.
#[cfg(feature = "deflate")]
pub fn inflate_with(d: &mut syncws::proto::deflate::Decompressor, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    d.inflate(payload, &mut out, usize::MAX).unwrap();
    d.finish(&mut out, usize::MAX).unwrap();
    out
}
