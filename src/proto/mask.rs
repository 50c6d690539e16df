//! Masking (RFC 6455 5.3): XOR the payload with a 4-byte key, a machine word at a time.
//!
//! Safe code only: the compiler turns the 8-byte chunk loop into vector instructions, so it runs
//! as fast as the `unsafe` pointer versions other crates use.

/// XORs `buf` in place with `key`, where `buf[0]` is byte number `offset` of the payload.
///
/// The offset lets a payload be unmasked in pieces as it arrives.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotate(key, offset);
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes(chunk.try_into().expect("chunk of 8")) ^ wide;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    // The tail starts at a multiple of 8, so the key phase is unchanged.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// Writes `src` masked with `key` into `dst` (same length) in one pass: the copy and the XOR
/// together, a machine word at a time.
pub fn mask_copy(dst: &mut [u8], src: &[u8], key: [u8; 4], offset: usize) {
    assert_eq!(dst.len(), src.len(), "mask_copy needs equal lengths");
    let key = rotate(key, offset);
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut out = dst.chunks_exact_mut(8);
    let mut inp = src.chunks_exact(8);
    for (o, i) in (&mut out).zip(&mut inp) {
        let word = u64::from_ne_bytes(i.try_into().expect("chunk of 8")) ^ wide;
        o.copy_from_slice(&word.to_ne_bytes());
    }
    let tail = out.into_remainder().iter_mut().zip(inp.remainder());
    for (n, (o, i)) in tail.enumerate() {
        *o = i ^ key[n & 3];
    }
}

/// Appends `src` masked with `key` to `dst`, leaving `src` untouched (never mutate the caller's
/// buffer). `offset` is the position of `src[0]` in the payload.
pub fn extend_masked(dst: &mut Vec<u8>, src: &[u8], key: [u8; 4], offset: usize) {
    let start = dst.len();
    dst.extend_from_slice(src);
    apply_mask(&mut dst[start..], key, offset);
}

fn rotate(key: [u8; 4], offset: usize) -> [u8; 4] {
    let s = offset & 3;
    [key[s], key[(s + 1) & 3], key[(s + 2) & 3], key[(s + 3) & 3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(buf: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[(offset + i) % 4];
        }
    }

    #[test]
    fn matches_bytewise_reference_at_every_offset_and_length() {
        let key = [0x12, 0x9a, 0xfe, 0x01];
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for offset in 0..8 {
            for len in 0..=data.len() {
                let mut fast = data[..len].to_vec();
                let mut slow = fast.clone();
                apply_mask(&mut fast, key, offset);
                reference(&mut slow, key, offset);
                assert_eq!(fast, slow, "offset {offset} len {len}");
            }
        }
    }

    #[test]
    fn mask_copy_matches_reference_and_leaves_source_alone() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        let src: Vec<u8> = (0..300u32).map(|i| (i * 13 + 5) as u8).collect();
        for offset in 0..8 {
            for len in 0..=src.len() {
                let mut want = src[..len].to_vec();
                reference(&mut want, key, offset);
                let mut dst = vec![0xAAu8; len];
                mask_copy(&mut dst, &src[..len], key, offset);
                assert_eq!(dst, want, "offset {offset} len {len}");
            }
        }
        assert_eq!(src[7], (7 * 13 + 5) as u8);
    }

    #[test]
    fn unaligned_slices_match() {
        let key = [1, 2, 3, 4];
        let mut backing: Vec<u8> = (0..200u8).collect();
        for start in 0..8 {
            let mut expect = backing[start..].to_vec();
            reference(&mut expect, key, 0);
            apply_mask(&mut backing[start..], key, 0);
            assert_eq!(backing[start..], expect[..]);
            apply_mask(&mut backing[start..], key, 0);
        }
    }

    #[test]
    fn masking_in_pieces_equals_masking_whole() {
        let key = [9, 8, 7, 6];
        let data: Vec<u8> = (0..100u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        for split in 0..data.len() {
            let mut out = Vec::new();
            extend_masked(&mut out, &data[..split], key, 0);
            extend_masked(&mut out, &data[split..], key, split);
            assert_eq!(out, whole, "split {split}");
        }
    }

    #[test]
    fn extend_masked_leaves_source_alone() {
        let src = vec![0xAAu8; 33];
        let mut dst = vec![1, 2];
        extend_masked(&mut dst, &src, [0xFF; 4], 0);
        assert_eq!(src, vec![0xAA; 33]);
        assert_eq!(&dst[..2], &[1, 2]);
        assert!(dst[2..].iter().all(|&b| b == 0x55));
    }
}
