//! Sends each line of stdin as a text message and prints every message received on its own line.
//! At end of input it waits for the echoes of what it sent, closes with 1000 and exits 0; Ctrl-C
//! closes with 1000 at once. When the server closes first it exits without waiting for stdin,
//! printing the close code and reason to stderr: status 0 for 1000, 1001 or a close without a
//! code, 1 for any other code or a connection dropped without a close frame.
//!
//! ```text
//! cargo run --release --example client -- [URL] [-H 'Name: value']... [--protocol NAME]...
//!                                          [--ca FILE] [--insecure] [--deflate]
//! ```
//!
//! URL defaults to ws://127.0.0.1:9001. `-H` adds a request header (repeatable), `--protocol`
//! offers a subprotocol (repeatable), `--ca` trusts a PEM CA for `wss://` besides the system's,
//! `--insecure` accepts any certificate (testing only), `--deflate` offers permessage-deflate (a
//! build with `--features deflate`). Proxies come from `HTTPS_PROXY`,
//! `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY`.

use std::io::{BufRead, Write};
use std::process::exit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use syncws::{Client, ClientTls, CloseCode, CloseFrame, Message, Writer};

const USAGE: &str = "usage: client [URL] [-H 'Name: value']... [--protocol NAME]... [--ca FILE] \
                     [--insecure] [--deflate]";

fn usage(problem: &str) -> ! {
    eprintln!("{problem}\n{USAGE}");
    exit(2)
}

fn main() {
    env_logger::init();
    match run() {
        Ok(status) => exit(status),
        Err(e) => {
            eprintln!("error: {e}");
            exit(1);
        }
    }
}

/// Runs the tool; returns its exit status.
fn run() -> Result<i32, Box<dyn std::error::Error + Send + Sync>> {
    let mut url = "ws://127.0.0.1:9001".to_owned();
    let mut builder = Client::builder();
    let mut tls = ClientTls::builder();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        match arg.as_str() {
            "-H" | "--header" => {
                let header = value("-H");
                let Some((name, val)) = header.split_once(':') else {
                    usage(&format!("-H wants 'Name: value', got {header:?}"))
                };
                builder = builder.header(name.trim(), val.trim());
            }
            "--protocol" => builder = builder.protocol(&value("--protocol")),
            "--ca" => tls = tls.add_root_file(value("--ca")),
            "--insecure" => tls = tls.insecure(true),
            "--deflate" => builder = builder.config(deflate()),
            "-h" | "--help" => usage("sends stdin lines, prints what arrives"),
            flag if flag.starts_with('-') => usage(&format!("unknown option {flag}")),
            _ => url = arg,
        }
    }
    let mut ws = builder.tls(tls.build()?).connect(&url)?;
    if let Some(protocol) = ws.protocol() {
        eprintln!("subprotocol: {protocol}");
    }
    #[cfg(feature = "deflate")]
    if let Some(agreed) = ws.compression() {
        eprintln!("compression: permessage-deflate {agreed:?}");
    }
    let (mut reader, writer) = ws.split()?;
    // Set by whoever starts our own close (end of stdin, Ctrl-C); its outcome comes on our_close.
    let closing = Arc::new(AtomicBool::new(false));
    let (closed_ours, our_close) = mpsc::channel();
    {
        let (writer, closing, closed_ours) = (writer.clone(), closing.clone(), closed_ours.clone());
        ctrlc::set_handler(move || close_ours(&writer, &closing, &closed_ours, Ok(())))?;
    }
    let (got_one, arrivals) = mpsc::channel();
    let sender_closing = closing.clone();
    std::thread::spawn(move || {
        if let Some(input) = send_lines(&writer, &arrivals) {
            close_ours(&writer, &sender_closing, &closed_ours, input);
        }
    });
    // The main thread prints what arrives until the connection ends, whoever ends it; stdin may
    // still be open then, and is not waited for.
    let ended = loop {
        match reader.recv() {
            Ok(Some(msg)) => {
                let mut out = std::io::stdout().lock();
                match msg {
                    Message::Text(t) => writeln!(out, "{t}")?,
                    Message::Binary(b) => writeln!(out, "<{} bytes binary>", b.len())?,
                }
                out.flush()?;
                let _ = got_one.send(());
            }
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    if closing.load(Ordering::SeqCst) {
        // Our close: the peer's answer ended the loop, and the close itself says how it went.
        return match our_close.recv() {
            Ok(Ok(())) => Ok(0),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the closing thread died".into()),
        };
    }
    Ok(peer_ended(reader.close_frame(), ended))
}

/// Sends stdin's lines; at its end waits for as many messages as were sent (at most 5 s).
/// `Some` when the connection is ours to close (with the stdin error if reading failed),
/// `None` when a send failed: the connection is already ending and the receiving side reports it.
fn send_lines(writer: &Writer, arrivals: &mpsc::Receiver<()>) -> Option<Outcome> {
    let mut sent = 0;
    for line in std::io::stdin().lock().lines() {
        let line = match line {
            Ok(line) => line,
            Err(e) => return Some(Err(format!("reading stdin: {e}").into())),
        };
        writer.send(line).ok()?;
        sent += 1;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for _ in 0..sent {
        let left = deadline.saturating_duration_since(Instant::now());
        if arrivals.recv_timeout(left).is_err() {
            break;
        }
    }
    Some(Ok(()))
}

type Outcome = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Closes with 1000 and reports `before` (what ended our side), or the close's own failure.
fn close_ours(
    writer: &Writer,
    closing: &AtomicBool,
    report: &mpsc::Sender<Outcome>,
    before: Outcome,
) {
    closing.store(true, Ordering::SeqCst);
    let closed = writer.close(CloseCode::NORMAL, "").map_err(Into::into);
    let _ = report.send(before.and(closed));
}

/// The exit status when the peer ended the connection: 0 for a normal end (1000, 1001, a close
/// frame without a code), 1 for any other code or a connection dropped without a close frame.
fn peer_ended(frame: Option<&CloseFrame>, error: Option<syncws::Error>) -> i32 {
    let Some(frame) = frame else {
        match error {
            Some(e) => eprintln!("connection dropped without a close frame: {e}"),
            None => eprintln!("connection dropped without a close frame"),
        }
        return 1;
    };
    if frame.code == CloseCode::NO_STATUS {
        eprintln!("closed by peer without a code");
    } else {
        eprintln!("closed by peer: {} {}", frame.code, frame.reason);
    }
    let normal = [
        CloseCode::NORMAL,
        CloseCode::GOING_AWAY,
        CloseCode::NO_STATUS,
    ];
    if normal.contains(&frame.code) { 0 } else { 1 }
}

#[cfg(feature = "deflate")]
fn deflate() -> syncws::Config {
    syncws::Config::default().deflate(Some(syncws::DeflateConfig::default()))
}

#[cfg(not(feature = "deflate"))]
fn deflate() -> syncws::Config {
    usage("--deflate needs a build with --features deflate")
}
