//! A streamed receive costs bounded memory whatever the message's size: a server in this process
//! sends one 256 MiB binary message (and, compressed, one of 128 MiB), generated piece by piece
//! as it goes, and the client reads it with `recv_stream`; the peak heap of this whole process
//! (server, client, both threads) grows by a few hundred KiB, far under the 16 MiB bar, where
//! assembling the message would take all of its size. The tests take turns (a lock), so no
//! other test's allocations blur the peak.

mod heap;
mod support;

use std::io::Read;
use std::sync::Mutex;

use support::*;
use syncws::{Client, Config, MessageKind};

#[global_allocator]
static GLOBAL: heap::Peak = heap::Peak;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const PIECE: usize = 64 << 10;
/// Well under the 16 MiB bar: the read buffer, one chunk, the inflater's window and input, the
/// sender's frame and compressor, and the connections' bookkeeping.
const BOUND: usize = 4 << 20;

/// Piece `i` of the message: every byte the same, so the reader can check each read cheaply.
fn piece(i: usize) -> Vec<u8> {
    vec![(i % 251) as u8; PIECE]
}

/// Streams one message of `pieces` pieces from a server in this process; returns how far the
/// heap grew at its peak while the message was sent and read.
fn stream_through(config: Config, pieces: usize) -> usize {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let addr = serve(config.clone(), move |ws| {
        ws.send_fragmented((0..pieces).map(piece))?;
        ws.close(syncws::CloseCode::NORMAL, "")?;
        Ok(())
    });
    let mut ws = Client::builder()
        .config(config)
        .connect(&ws_url(addr, "/"))
        .unwrap();
    let base = heap::mark();
    let mut stream = ws.recv_stream().unwrap().unwrap();
    assert_eq!(stream.kind(), MessageKind::Binary);
    let mut buf = vec![0u8; 100_000];
    let mut at = 0usize;
    let mut want = piece(0);
    loop {
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        let mut got = &buf[..n];
        while !got.is_empty() {
            let index = at / PIECE;
            if want[0] != (index % 251) as u8 {
                want = piece(index);
            }
            let take = got.len().min(PIECE - at % PIECE);
            assert!(got[..take] == want[..take], "bytes at {at}");
            at += take;
            got = &got[take..];
        }
    }
    let grew = heap::growth_since(base);
    assert_eq!(at, pieces * PIECE);
    assert!(ws.recv().unwrap().is_none());
    grew
}

#[test]
fn a_256_mib_message_streams_through_bounded_memory() {
    let grew = stream_through(Config::default(), (256 << 20) / PIECE);
    eprintln!("256 MiB streamed: the heap grew by {} KiB", grew >> 10);
    assert!(grew < BOUND, "the heap grew by {grew} bytes");
}

#[cfg(feature = "deflate")]
#[test]
fn a_128_mib_compressed_message_streams_through_bounded_memory() {
    let deflate = syncws::DeflateConfig::default().threshold(0);
    let config = Config::default().deflate(Some(deflate));
    let grew = stream_through(config, (128 << 20) / PIECE);
    eprintln!(
        "128 MiB compressed streamed: the heap grew by {} KiB",
        grew >> 10
    );
    assert!(grew < BOUND, "the heap grew by {grew} bytes");
}
