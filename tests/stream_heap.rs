//! A streamed receive costs bounded memory whatever the message's size: a server in this process
//! sends one 1 GiB binary message (and, compressed, one of 128 MiB), generated piece by piece
//! as it goes, and the client reads it with `recv_stream`; the peak heap of this whole process
//! (server, client, both threads) grows by a few hundred KiB, far under the 16 MiB bar, where
//! assembling the message would take all of its size. The tests take turns (a lock), so no
//! other test's allocations blur the peak.
//!
//! The send side likewise: a client sends one 100 MiB message with `send_from` (masked, and
//! compressed) from a reader that makes it up as it goes, to a server in this process that reads
//! it as a stream; the heap grows by one fragment's buffers, not by the message.

mod heap;
mod support;

use std::io::{self, Read};
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
fn a_1_gib_message_streams_through_bounded_memory() {
    let grew = stream_through(Config::default(), (1 << 30) / PIECE);
    eprintln!("1 GiB streamed: the heap grew by {} KiB", grew >> 10);
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

/// A message of `left` bytes made up as it is read: byte `i` is `i % 251`.
struct Made {
    at: usize,
    left: usize,
}

impl Read for Made {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = out.len().min(self.left);
        for (i, b) in out[..n].iter_mut().enumerate() {
            *b = ((self.at + i) % 251) as u8;
        }
        self.at += n;
        self.left -= n;
        Ok(n)
    }
}

/// Sends one message of `len` bytes from a client with `send_from` to a server in this process
/// that reads it as a stream and checks every byte; returns how far the heap grew at its peak.
fn send_through(config: Config, len: usize) -> usize {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let addr = serve(config.clone(), move |ws| {
        let mut stream = ws.recv_stream()?.expect("a message");
        let mut buf = vec![0u8; 100_000];
        let mut at = 0usize;
        loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            for (i, b) in buf[..n].iter().enumerate() {
                assert_eq!(*b, ((at + i) % 251) as u8, "byte {}", at + i);
            }
            at += n;
        }
        ws.send(at.to_string())?;
        while ws.recv()?.is_some() {}
        Ok(())
    });
    let mut ws = Client::builder()
        .config(config)
        .connect(&ws_url(addr, "/"))
        .unwrap();
    let base = heap::mark();
    let sent = ws
        .send_from(MessageKind::Binary, Made { at: 0, left: len })
        .unwrap();
    let got = ws.recv().unwrap();
    let grew = heap::growth_since(base);
    assert_eq!(sent, len as u64);
    assert_eq!(got, Some(syncws::Message::Text(len.to_string())));
    ws.close(syncws::CloseCode::NORMAL, "").unwrap();
    grew
}

#[test]
fn a_100_mib_message_sent_from_a_reader_goes_out_in_bounded_memory() {
    let grew = send_through(Config::default(), 100 << 20);
    eprintln!("100 MiB sent: the heap grew by {} KiB", grew >> 10);
    assert!(grew < BOUND, "the heap grew by {grew} bytes");
}

#[cfg(feature = "deflate")]
#[test]
fn a_100_mib_compressed_message_sent_from_a_reader_goes_out_in_bounded_memory() {
    let deflate = syncws::DeflateConfig::default();
    let config = Config::default().deflate(Some(deflate));
    let grew = send_through(config, 100 << 20);
    eprintln!(
        "100 MiB compressed sent: the heap grew by {} KiB",
        grew >> 10
    );
    assert!(grew < BOUND, "the heap grew by {grew} bytes");
}
