//! Micro benchmarks of the receive path's building blocks (issue 7).
//!
//! ```text
//! cargo bench --bench micro              # about 15 s
//! cargo bench --bench micro -- --quick   # CI smoke run, about 2 s
//! ```
//!
//! - masking: `proto::mask::apply_mask` in GB/s, next to `copy_from_slice` (memcpy) of a buffer
//!   of the same size, which reads and writes the same bytes;
//! - UTF-8: `proto::utf8::Utf8Validator` (whole buffer, and fed in 1000-byte pieces that split
//!   code points) next to `std::str::from_utf8`;
//! - frame header parsing: `proto::frame::FrameHeader::parse`, ns per header;
//! - message assembly: frames read by a `WebSocket` (client role) from an in-memory stream
//!   (`WebSocket::from_stream` over a `Transport` that hands out a prepared buffer at most 64 KiB
//!   per `read`), in messages/s and allocations per message; tungstenite reading the same bytes
//!   through `WebSocket::from_raw_socket` is shown for reference.
//!
//! Numbers are best-of-3 of time-bounded loops, on whatever core the OS picks.

use std::hint::black_box;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use syncws::proto::frame::FrameHeader;
use syncws::proto::mask::apply_mask;
use syncws::proto::utf8::Utf8Validator;
use syncws::{Config, Role, Transport, WebSocket};

#[path = "support/counting.rs"]
mod counting;
use counting::count_allocs;

// ---------------------------------------------------------------------------------------------
// Timing
// ---------------------------------------------------------------------------------------------

/// Seconds per call of `f`: best of 3 runs, each repeating `f` for at least `budget`.
fn time_per_call(budget: Duration, mut f: impl FnMut()) -> f64 {
    // Calibrate: how many calls fit in a tenth of the budget.
    let mut batch = 1u64;
    loop {
        let t = Instant::now();
        for _ in 0..batch {
            f();
        }
        if t.elapsed() >= budget / 10 || batch >= 1 << 30 {
            break;
        }
        batch *= 2;
    }
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        let mut calls = 0u64;
        while t.elapsed() < budget {
            for _ in 0..batch {
                f();
            }
            calls += batch;
        }
        best = best.min(t.elapsed().as_secs_f64() / calls as f64);
    }
    best
}

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn size_label(n: usize) -> String {
    if n >= 1 << 20 {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

// ---------------------------------------------------------------------------------------------
// Masking
// ---------------------------------------------------------------------------------------------

fn bench_mask(budget: Duration) {
    println!("masking (GB/s; memcpy = copy_from_slice of the same size)");
    println!(
        "  {:>8} {:>10} {:>10} {:>10}",
        "size", "apply_mask", "memcpy", "mask/copy"
    );
    for size in [16usize, 125, 1 << 10, 8 << 10, 64 << 10, 1 << 20, 16 << 20] {
        let mut buf = data(size, 1);
        let src = data(size, 2);
        let mut dst = vec![0u8; size];
        let key = [0x12, 0x34, 0x56, 0x78];
        let mask = time_per_call(budget, || {
            apply_mask(black_box(&mut buf), black_box(key), black_box(1));
        });
        let copy = time_per_call(budget, || {
            black_box(&mut dst).copy_from_slice(black_box(&src));
        });
        let gbs = |t: f64| size as f64 / t / 1e9;
        println!(
            "  {:>8} {:>10.2} {:>10.2} {:>10.2}",
            size_label(size),
            gbs(mask),
            gbs(copy),
            copy / mask
        );
    }
}

// ---------------------------------------------------------------------------------------------
// UTF-8
// ---------------------------------------------------------------------------------------------

fn text(len: usize, mixed: bool) -> Vec<u8> {
    let piece = if mixed {
        "Grüße, κόσμε! 日本語のテキスト 🦀 ok. "
    } else {
        "The quick brown fox jumps over the lazy dog. 0123456789 "
    };
    let mut s = String::new();
    while s.len() < len {
        s.push_str(piece);
    }
    // Cut at a character boundary at or below len.
    let mut end = len.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.into_bytes()
}

fn bench_utf8(budget: Duration) {
    println!("\nUTF-8 validation (GB/s)");
    println!(
        "  {:<16} {:>10} {:>16} {:>14}",
        "input", "validator", "validator/1000B", "str::from_utf8"
    );
    for (label, input) in [
        ("ASCII 64 B", text(64, false)),
        ("ASCII 64 KiB", text(64 << 10, false)),
        ("mixed 64 B", text(64, true)),
        ("mixed 64 KiB", text(64 << 10, true)),
    ] {
        let mut v = Utf8Validator::new();
        let whole = time_per_call(budget, || {
            v.feed(black_box(&input)).expect("valid");
            v.finish().expect("valid");
        });
        let pieces = time_per_call(budget, || {
            for chunk in black_box(&input).chunks(1000) {
                v.feed(chunk).expect("valid");
            }
            v.finish().expect("valid");
        });
        let std = time_per_call(budget, || {
            black_box(std::str::from_utf8(black_box(&input)).is_ok());
        });
        let gbs = |t: f64| input.len() as f64 / t / 1e9;
        println!(
            "  {:<16} {:>10.2} {:>16.2} {:>14.2}",
            label,
            gbs(whole),
            gbs(pieces),
            gbs(std)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Frame headers
// ---------------------------------------------------------------------------------------------

fn bench_headers(budget: Duration) {
    println!("\nframe header parsing (ns per header)");
    let cases: [(&str, Vec<u8>); 4] = [
        ("2 B, 64 B payload", vec![0x82, 64]),
        ("6 B, masked 64 B", vec![0x82, 0x80 | 64, 1, 2, 3, 4]),
        (
            "8 B, masked 16-bit",
            vec![0x82, 0x80 | 126, 0x10, 0x00, 1, 2, 3, 4],
        ),
        (
            "14 B, masked 64-bit",
            vec![0x82, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4],
        ),
    ];
    for (label, bytes) in &cases {
        assert!(FrameHeader::parse(bytes).expect("valid").is_some());
        let t = time_per_call(budget, || {
            black_box(FrameHeader::parse(black_box(bytes)).ok());
        });
        println!("  {label:<22} {:>6.2}", t * 1e9);
    }
}

// ---------------------------------------------------------------------------------------------
// Message assembly over an in-memory stream
// ---------------------------------------------------------------------------------------------

/// Hands out a prepared byte buffer, at most 64 KiB per `read`; swallows writes.
struct Mem {
    data: std::sync::Arc<Vec<u8>>,
    pos: usize,
}

impl Read for Mem {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.data.len() - self.pos).min(64 << 10);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for Mem {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Mem {}

/// Unmasked server-to-client frames: `count` messages of `size` bytes, each in `fragments`
/// frames; text or binary.
fn frames(count: usize, size: usize, fragments: usize, text_payload: bool) -> Vec<u8> {
    let body = if text_payload {
        text(size, true)
    } else {
        data(size, 3)
    };
    let per = size / fragments;
    let mut out = Vec::new();
    for _ in 0..count {
        for f in 0..fragments {
            let part = if f + 1 == fragments {
                &body[f * per..]
            } else {
                &body[f * per..(f + 1) * per]
            };
            let op = match (f, text_payload) {
                (0, true) => 0x1,
                (0, false) => 0x2,
                _ => 0x0,
            };
            let fin = if f + 1 == fragments { 0x80 } else { 0 };
            out.push(fin | op);
            let n = part.len();
            if n < 126 {
                out.push(n as u8);
            } else if n <= 0xFFFF {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            } else {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
            out.extend_from_slice(part);
        }
    }
    out
}

fn bench_assembly(quick: bool) {
    println!("\nmessage assembly (client receiving from an in-memory stream)");
    println!(
        "  {:<28} {:>12} {:>10} {:>12} {:>10}",
        "messages", "syncws msg/s", "allocs/msg", "tung msg/s", "allocs/msg"
    );
    let scale = if quick { 10 } else { 1 };
    let cases = [
        ("binary 64 B", 200_000 / scale, 64, 1, false),
        ("text 64 B (UTF-8 checked)", 200_000 / scale, 64, 1, true),
        ("binary 4 KiB", 50_000 / scale, 4 << 10, 1, false),
        (
            "binary 256 B in 4 fragments",
            100_000 / scale,
            256,
            4,
            false,
        ),
        ("binary 1 MiB", 200 / scale, 1 << 20, 1, false),
    ];
    for (label, count, size, fragments, text_payload) in cases {
        let wire = std::sync::Arc::new(frames(count, size, fragments, text_payload));
        let big = Config::default()
            .max_message_size(64 << 20)
            .max_frame_size(64 << 20);
        let mut ours = (f64::INFINITY, 0u64);
        let mut theirs = (f64::INFINITY, 0u64);
        for _ in 0..3 {
            let mem = Mem {
                data: wire.clone(),
                pos: 0,
            };
            let mut ws = WebSocket::from_stream(mem, Role::Client, big.clone(), &[]);
            let mut el = 0.0;
            let allocs = count_allocs(|| {
                let t = Instant::now();
                for _ in 0..count {
                    let m = ws.recv().expect("recv").expect("message");
                    assert_eq!(m.len(), size);
                    black_box(m);
                }
                el = t.elapsed().as_secs_f64();
            });
            ours = (ours.0.min(el), allocs);

            let mem = Mem {
                data: wire.clone(),
                pos: 0,
            };
            let config = tungstenite::protocol::WebSocketConfig::default()
                .max_message_size(Some(64 << 20))
                .max_frame_size(Some(64 << 20));
            let mut tws = tungstenite::WebSocket::from_raw_socket(
                mem,
                tungstenite::protocol::Role::Client,
                Some(config),
            );
            let mut el = 0.0;
            let allocs = count_allocs(|| {
                let t = Instant::now();
                for _ in 0..count {
                    let m = tws.read().expect("read");
                    assert_eq!(m.len(), size);
                    black_box(m);
                }
                el = t.elapsed().as_secs_f64();
            });
            theirs = (theirs.0.min(el), allocs);
        }
        println!(
            "  {:<28} {:>12.0} {:>10.2} {:>12.0} {:>10.2}",
            label,
            count as f64 / ours.0,
            ours.1 as f64 / count as f64,
            count as f64 / theirs.0,
            theirs.1 as f64 / count as f64
        );
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = Duration::from_millis(if quick { 10 } else { 150 });
    bench_mask(budget);
    bench_utf8(budget);
    bench_headers(budget);
    bench_assembly(quick);
}
