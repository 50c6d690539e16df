//! One memory budget for the incoming messages of all of a server's connections: 40 clients
//! send a compressed 64 MiB message of zeros each (about 64 KiB on the wire) to a server whose
//! budget is 48 MiB, less than one such message, so every one of them must be refused with 1013
//! (try again later) while the heap of this process (server and raw clients) never grows by
//! more than the budget plus a little. Afterwards the budget is back at zero and a normal
//! client still echoes. Without the budget the same 40 messages take the heap to gigabytes.
//! The tests take turns (a lock), so no other test's allocations blur the peak.

#![cfg(feature = "deflate")]

mod heap;
mod support;

use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::*;
use syncws::{Client, Config, DeflateConfig, MemoryBudget, Message, Server};

#[global_allocator]
static GLOBAL: heap::Peak = heap::Peak;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const CLIENTS: usize = 40;
const MESSAGE: usize = 64 << 20;
const BUDGET: usize = 48 << 20;
/// What besides the budgeted message buffers may be live at the peak, per connection: the
/// server's read buffer (8 KiB), compressed input piece (64 KiB) and decompressor (about
/// 50 KiB), the raw client's copy of its frame (64 KiB, masked) and the connection's
/// bookkeeping on both sides.
const SLACK_PER_CONNECTION: usize = 320 << 10;

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A server that answers each message with its length, so a message handed over is dropped at
/// once and the heap shows what the connections hold.
fn length_server(server: Server) -> std::net::SocketAddr {
    let addr = server.local_addr();
    thread::spawn(move || {
        server.serve(|ws| {
            while let Some(msg) = ws.recv()? {
                ws.send(msg.len().to_string())?;
            }
            Ok(())
        })
    });
    addr
}

/// Waits (bounded) until the budget is back at zero; returns what it last showed.
fn settles(budget: &MemoryBudget) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    while budget.used() != 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    budget.used()
}

#[test]
fn forty_compressed_64_mib_messages_share_one_small_budget() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let budget = MemoryBudget::new(BUDGET);
    // 64 MiB messages, within limits raised to match (the default is 16 MiB): only the budget
    // may refuse them.
    let config = Config::default()
        .deflate(Some(DeflateConfig::default()))
        .max_message_size(MESSAGE)
        .max_frame_size(MESSAGE)
        .memory_budget(Some(budget.clone()));
    let server = Server::bind("127.0.0.1:0").unwrap().config(config);
    let addr = length_server(server);
    let bomb = Arc::new(zero_bomb(MESSAGE, 8 << 20));
    let on_wire = bomb.len();
    let (ready, go) = (
        Arc::new(Barrier::new(CLIENTS + 1)),
        Arc::new(Barrier::new(CLIENTS + 1)),
    );
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (bomb, ready, go) = (Arc::clone(&bomb), Arc::clone(&ready), Arc::clone(&go));
            thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || {
                    let (mut raw, head) = RawConn::connect_with_headers(
                        addr,
                        "Sec-WebSocket-Extensions: permessage-deflate\r\n",
                    );
                    assert!(head_header(&head, "sec-websocket-extensions").is_some());
                    let frame = Frame::binary(&bomb[..]).rsv(0b100).to_bytes();
                    ready.wait();
                    go.wait();
                    raw.write_raw(&frame);
                    drop(frame);
                    raw.expect_close()
                })
                .unwrap()
        })
        .collect();
    // Every client is connected and holds its frame: measure from here, then let them go.
    ready.wait();
    let base = heap::mark();
    go.wait();
    let started = Instant::now();
    let codes: Vec<Option<u16>> = clients
        .into_iter()
        // A client that saw no close frame in time (it panicked) counts as not refused.
        .map(|c| c.join().ok().flatten())
        .collect();
    let took = started.elapsed();
    let peak = heap::growth_since(base);
    let refused = codes.iter().filter(|c| **c == Some(1013)).count();
    println!(
        "{CLIENTS} clients x a {} MiB compressed message ({} KiB on the wire each), budget {} MiB: \
         {refused} closed with 1013 in {:.2} s; heap peak +{:.1} MiB; process VmHWM {} MiB",
        MESSAGE >> 20,
        on_wire >> 10,
        BUDGET >> 20,
        took.as_secs_f64(),
        peak as f64 / (1 << 20) as f64,
        rss_kib("VmHWM:") >> 10
    );
    let slack = CLIENTS * SLACK_PER_CONNECTION;
    assert!(
        peak <= BUDGET + slack,
        "heap grew by {peak} bytes: budget {BUDGET} + slack {slack}"
    );
    assert_eq!(refused, CLIENTS, "close codes: {codes:?}");
    assert_eq!(
        settles(&budget),
        0,
        "the refused messages gave their bytes back"
    );

    // The server goes on: a normal client echoes, compressed, and nothing stays charged.
    let mut ws = Client::builder()
        .no_proxy()
        .config(Config::default().deflate(Some(DeflateConfig::default())))
        .connect(&ws_url(addr, "/"))
        .unwrap();
    assert!(ws.compression().is_some());
    let text = json_like(100_000);
    ws.send(text.as_str()).unwrap();
    let got = ws.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(got, Some(Message::Text(text.len().to_string())));
    ws.close(syncws::CloseCode::NORMAL, "").unwrap();
    assert_eq!(settles(&budget), 0);
}

#[test]
fn a_server_gives_its_connections_one_budget() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::bind("127.0.0.1:0")
        .unwrap()
        .max_message_memory(1 << 20);
    let addr = length_server(server);
    let mut ws = Client::builder()
        .no_proxy()
        .connect(&ws_url(addr, "/"))
        .unwrap();
    // Under the budget: served.
    ws.send(&vec![1u8; 512 << 10][..]).unwrap();
    let got = ws.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(got, Some(Message::Text((512 << 10).to_string())));
    // Over it: refused with 1013, though well within max_message_size.
    ws.send(&vec![1u8; 2 << 20][..]).unwrap();
    let got = ws.recv_timeout(Duration::from_secs(10)).unwrap_err();
    assert_eq!(got.peer_close().map(|f| f.code.0), Some(1013), "{got}");
    assert_eq!(ws.close_frame().map(|f| f.code.0), Some(1013));
    // Another connection is served again: the refused message gave its bytes back.
    let mut ws = Client::builder()
        .no_proxy()
        .connect(&ws_url(addr, "/"))
        .unwrap();
    ws.send(&vec![1u8; 768 << 10][..]).unwrap();
    let got = ws.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(got, Some(Message::Text((768 << 10).to_string())));
}
