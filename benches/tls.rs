//! What splitting a wss connection costs: round-trip latency and 1 MiB echo throughput for
//! plain and TLS connections, whole and split, in one run.
//!
//! ```text
//! cargo bench --bench tls              # 5 rounds, ~20 s
//! cargo bench --bench tls -- --quick   # 1 short round
//! ```
//!
//! The server is a syncws echo server in this process (test certificate from
//! `tests/fixtures`); its handler echoes through a whole `WebSocket`, or through a `Reader` and a
//! `Writer` when the mode is "split" (both sides split). The client sends a message and waits
//! for its echo: whole, with `send`/`recv` on one `WebSocket`; split, with `Writer::send` and
//! `Reader::recv` (same thread, so only the split's own cost shows). Latency is the p50 of
//! 32-byte round trips; throughput is MB/s of one direction for 1 MiB echoes. Every echo is
//! checked. Over TLS the split reader waits outside the session lock with a `peek` and decrypts
//! with the socket briefly non-blocking: three extra system calls per read.

use std::net::SocketAddr;
use std::thread;
use std::time::Instant;

use syncws::{Client, ClientBuilder, ClientTls, Server, ServerTls, WebSocket};

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn server(tls: bool, split: bool) -> SocketAddr {
    let mut server = Server::bind("127.0.0.1:0").unwrap();
    if tls {
        let identity = ServerTls::from_pem_files(fixture("server.pem"), fixture("server.key"));
        server = server.tls(identity.unwrap());
    }
    let addr = server.local_addr();
    thread::spawn(move || {
        server.serve(move |ws| {
            if split {
                let (mut reader, writer) = ws.split()?;
                while let Some(msg) = reader.recv()? {
                    writer.send(msg)?;
                }
            } else {
                while let Some(msg) = ws.recv()? {
                    ws.send(msg)?;
                }
            }
            Ok(())
        })
    });
    addr
}

fn client() -> ClientBuilder {
    let roots = ClientTls::builder()
        .add_root_file(fixture("ca.pem"))
        .build();
    Client::builder().no_proxy().tls(roots.unwrap())
}

/// Sends `payload` `n` times, waiting for each echo; returns each round trip in seconds.
fn round_trips(ws: &mut WebSocket, split: bool, payload: &[u8], n: usize) -> Vec<f64> {
    let mut times = Vec::with_capacity(n);
    if split {
        let (mut reader, writer) = ws.split().unwrap();
        for _ in 0..n {
            let t = Instant::now();
            writer.send(payload).unwrap();
            let got = reader.recv().unwrap().unwrap();
            times.push(t.elapsed().as_secs_f64());
            assert_eq!(got.as_bytes(), payload);
        }
        reader.close(syncws::CloseCode::NORMAL, "").unwrap();
    } else {
        for _ in 0..n {
            let t = Instant::now();
            ws.send(payload).unwrap();
            let got = ws.recv().unwrap().unwrap();
            times.push(t.elapsed().as_secs_f64());
            assert_eq!(got.as_bytes(), payload);
        }
        ws.close(syncws::CloseCode::NORMAL, "").unwrap();
    }
    times
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, lat_n, mib_n) = if quick { (1, 200, 3) } else { (5, 3000, 40) };
    let small = [7u8; 32];
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i ^ (i >> 9)) as u8).collect();
    let modes = [(false, false), (false, true), (true, false), (true, true)];
    let mut lat = vec![Vec::new(); modes.len()];
    let mut thr = vec![Vec::new(); modes.len()];
    for _ in 0..rounds {
        for (i, &(tls, split)) in modes.iter().enumerate() {
            let addr = server(tls, split);
            let scheme = if tls { "wss" } else { "ws" };
            let url = format!("{scheme}://localhost:{}/", addr.port());
            let mut ws = client().connect(&url).unwrap();
            let mut t = round_trips(&mut ws, split, &small, lat_n);
            lat[i].push(median(&mut t) * 1e6);
            let mut ws = client().connect(&url).unwrap();
            let t = round_trips(&mut ws, split, &big, mib_n);
            thr[i].push(big.len() as f64 * mib_n as f64 / t.iter().sum::<f64>() / 1e6);
        }
    }
    println!("| connection | latency p50 (us) | vs whole | 1 MiB echo (MB/s) | vs whole |");
    println!("|---|---|---|---|---|");
    for (i, &(tls, split)) in modes.iter().enumerate() {
        let whole = i - usize::from(split);
        let (l, w) = (median(&mut lat[i]), median(&mut thr[i]));
        let (lw, ww) = (median(&mut lat[whole]), median(&mut thr[whole]));
        println!(
            "| {} {} | {l:.1} | {:.2} | {w:.0} | {:.2} |",
            if tls { "wss" } else { "ws" },
            if split { "split" } else { "whole" },
            l / lw,
            w / ww
        );
    }
}
