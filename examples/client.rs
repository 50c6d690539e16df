//! Sends each line of stdin as a text message and prints every message received on its own line.
//! At end of input it waits for the echoes of what it sent, closes with 1000 and exits 0.
//!
//! `cargo run --release --example client -- [URL]` (defaults to ws://127.0.0.1:9001).

use std::io::{BufRead, Write};
use std::sync::mpsc::{self, TryRecvError};
use std::time::{Duration, Instant};

use syncws::{Client, CloseCode, Message};

fn main() -> Result<(), syncws::Error> {
    env_logger::init();
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9001".into());
    let mut ws = Client::connect(&url)?;
    let (lines_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut sent, mut received) = (0usize, 0usize);
    let mut input_done: Option<Instant> = None;
    let stdout = std::io::stdout();
    loop {
        loop {
            match lines.try_recv() {
                Ok(line) => {
                    ws.send(line.as_str())?;
                    sent += 1;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    input_done.get_or_insert_with(Instant::now);
                    break;
                }
            }
        }
        // At end of input, close once every echo is in (or after 5 s of waiting for them).
        if let Some(since) = input_done {
            if received >= sent || since.elapsed() > Duration::from_secs(5) {
                ws.close(CloseCode::NORMAL, "")?;
                return Ok(());
            }
        }
        match ws.recv_timeout(Duration::from_millis(10)) {
            Ok(Some(msg)) => {
                received += 1;
                let mut out = stdout.lock();
                match msg {
                    Message::Text(t) => writeln!(out, "{t}")?,
                    Message::Binary(b) => writeln!(out, "<{} bytes binary>", b.len())?,
                }
                out.flush()?;
            }
            Ok(None) => return Ok(()),
            Err(e) if e.is_timeout() => {}
            Err(e) => return Err(e),
        }
    }
}
