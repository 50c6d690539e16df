//! Sends each line of stdin as a text message and prints every message received on its own line.
//! At end of input it waits for the echoes of what it sent, closes with 1000 and exits 0.
//!
//! `cargo run --release --example client -- [URL]` (defaults to ws://127.0.0.1:9001).

use std::io::{BufRead, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use syncws::{Client, CloseCode, Message};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9001".into());
    let mut ws = Client::connect(&url)?;
    let (mut reader, writer) = ws.split()?;
    let (got_one, arrivals) = mpsc::channel();
    let printer = std::thread::spawn(move || -> syncws::Result<()> {
        while let Some(msg) = reader.recv()? {
            let mut out = std::io::stdout().lock();
            match msg {
                Message::Text(t) => writeln!(out, "{t}")?,
                Message::Binary(b) => writeln!(out, "<{} bytes binary>", b.len())?,
            }
            out.flush()?;
            let _ = got_one.send(());
        }
        Ok(())
    });
    let mut sent = 0;
    for line in std::io::stdin().lock().lines() {
        writer.send(line?)?;
        sent += 1;
    }
    // Wait for as many messages as we sent (at most 5 s), then close.
    let deadline = Instant::now() + Duration::from_secs(5);
    for _ in 0..sent {
        let left = deadline.saturating_duration_since(Instant::now());
        if arrivals.recv_timeout(left).is_err() {
            break;
        }
    }
    writer.close(CloseCode::NORMAL, "")?;
    printer.join().expect("printer thread")?;
    Ok(())
}
