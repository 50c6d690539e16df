//! Sends each line of stdin as a text message and prints every message received on its own line.
//! At end of input it waits for the echoes of what it sent, closes with 1000 and exits 0; Ctrl-C
//! closes with 1000 at once. When the server closes first it exits without waiting for stdin,
//! printing the close code and reason to stderr: status 0 for 1000, 1001 or a close without a
//! code, 1 for any other code or a connection dropped without a close frame.
//!
//! ```text
//! cargo run --release --example client -- [URL] [-H 'Name: value']... [--protocol NAME]...
//!                                          [--ca FILE] [--insecure] [--deflate] [--reconnect]
//! ```
//!
//! URL defaults to ws://127.0.0.1:9001; `ws+unix:///path/to.sock:/request/path` connects to a
//! Unix socket (e.g. `echo_server unix:/tmp/echo.sock`). `-H` adds a request header (repeatable), `--protocol`
//! offers a subprotocol (repeatable), `--ca` trusts a PEM CA for `wss://` besides the system's,
//! `--insecure` accepts any certificate (testing only), `--deflate` offers permessage-deflate (a
//! build with `--features deflate`). Proxies come from `HTTPS_PROXY`,
//! `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY`.
//!
//! `--reconnect` keeps the session alive across drops and server restarts: it reconnects with
//! backoff (1 s doubling to 60 s) when the connection drops or the server closes with 1001 or
//! 1011-1014 (or refuses with 5xx or 429), saying so on stderr; lines typed meanwhile go out on
//! the next connection. A close with 1000, 1008 or another refusal still ends it, as above.
//! `RUST_LOG=syncws=debug` shows each failed attempt and wait.

use std::io::{BufRead, Write};
use std::process::exit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use syncws::{Client, ClientBuilder, ClientTls, CloseCode, CloseFrame, Ending, Message, Writer};

const USAGE: &str = "usage: client [URL] [-H 'Name: value']... [--protocol NAME]... [--ca FILE] \
                     [--insecure] [--deflate] [--reconnect]";

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
    let mut reconnect = false;
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
            "--reconnect" => reconnect = true,
            "-h" | "--help" => usage("sends stdin lines, prints what arrives"),
            flag if flag.starts_with('-') => usage(&format!("unknown option {flag}")),
            _ => url = arg,
        }
    }
    let builder = builder.tls(tls.build()?);
    if reconnect {
        return run_reconnecting(&builder, &url);
    }
    let mut ws = builder.connect(&url)?;
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
            Ok(Some(msg)) => show(msg, &got_one)?,
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

/// Prints a message on its own line and counts it as an arrival.
fn show(msg: Message, got_one: &mpsc::Sender<()>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match msg {
        Message::Text(t) => writeln!(out, "{t}")?,
        Message::Binary(b) => writeln!(out, "<{} bytes binary>", b.len())?,
    }
    out.flush()?;
    let _ = got_one.send(());
    Ok(())
}

/// `--reconnect`: each connection is split like a single one; the stdin thread sends through
/// whichever connection is current. End of stdin and Ctrl-C stop the loop and close the current
/// connection with 1000.
fn run_reconnecting(
    builder: &ClientBuilder,
    url: &str,
) -> Result<i32, Box<dyn std::error::Error + Send + Sync>> {
    let current = Arc::new(Current::default());
    let reconnecting = builder
        .reconnecting(url)
        .on_connect(|_| {
            eprintln!("connected to {url}");
            Ok(())
        })
        .reconnect_if(|ended| {
            let again = ended.reconnects();
            if again {
                match ended {
                    Ending::Peer(frame) => {
                        eprintln!(
                            "closed by peer: {} {}; reconnecting",
                            frame.code, frame.reason
                        )
                    }
                    Ending::Failed(e) => eprintln!("connection lost: {e}; reconnecting"),
                    _ => eprintln!("reconnecting"),
                }
            }
            again
        });
    let stop = reconnecting.stop_handle();
    {
        let (current, stop) = (current.clone(), stop.clone());
        ctrlc::set_handler(move || {
            stop.stop();
            current.close();
        })?;
    }
    let (got_one, arrivals) = mpsc::channel();
    let sender = current.clone();
    std::thread::spawn(move || {
        let outcome = send_lines_to(&sender, &arrivals);
        stop.stop();
        sender.close();
        if let Err(e) = outcome {
            eprintln!("{e}");
        }
    });
    let ended = reconnecting.run(|ws| {
        let (mut reader, writer) = ws.split()?;
        current.install(writer);
        let ended = loop {
            match reader.recv() {
                Ok(Some(msg)) => show(msg, &got_one)?,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        current.remove();
        ended
    });
    match ended {
        Ok(()) => Ok(0),
        Err(e) => {
            eprintln!("ended: {e}");
            Ok(1)
        }
    }
}

/// The writer of the connection `--reconnect` has now, if any.
#[derive(Default)]
struct Current {
    /// The writer, and whether the tool is closing (no writer is taken any more).
    slot: Mutex<(Option<Writer>, bool)>,
    changed: Condvar,
}

impl Current {
    fn lock(&self) -> MutexGuard<'_, (Option<Writer>, bool)> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new connection's writer; closed at once if the tool is closing.
    fn install(&self, writer: Writer) {
        let mut slot = self.lock();
        if slot.1 {
            drop(slot);
            let _ = writer.close(CloseCode::NORMAL, "");
            return;
        }
        slot.0 = Some(writer);
        self.changed.notify_all();
    }

    fn remove(&self) {
        self.lock().0 = None;
    }

    /// The current writer, waiting for a connection; `None` once closing.
    fn wait(&self) -> Option<Writer> {
        let mut slot = self.lock();
        loop {
            match &*slot {
                (_, true) => return None,
                (Some(writer), false) => return Some(writer.clone()),
                (None, false) => {
                    slot = self.changed.wait(slot).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }

    /// Closes the current connection with 1000 and takes no new one.
    fn close(&self) {
        let writer = {
            let mut slot = self.lock();
            slot.1 = true;
            self.changed.notify_all();
            slot.0.take()
        };
        if let Some(writer) = writer {
            let _ = writer.close(CloseCode::NORMAL, "");
        }
    }
}

/// Sends stdin's lines through the current connection (a line whose send fails goes out again
/// on the next one); at the end waits for the echoes, as `send_lines` does.
fn send_lines_to(current: &Current, arrivals: &mpsc::Receiver<()>) -> Outcome {
    let mut sent = 0;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("reading stdin: {e}"))?;
        loop {
            let Some(writer) = current.wait() else {
                return Ok(());
            };
            if writer.send(line.as_str()).is_ok() {
                break;
            }
            // This connection is ending; the session takes it out and the next one comes in.
            std::thread::sleep(Duration::from_millis(10));
        }
        sent += 1;
    }
    wait_for_echoes(arrivals, sent);
    Ok(())
}

/// Waits for `sent` messages to arrive, at most 5 s in all.
fn wait_for_echoes(arrivals: &mpsc::Receiver<()>, sent: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    for _ in 0..sent {
        let left = deadline.saturating_duration_since(Instant::now());
        if arrivals.recv_timeout(left).is_err() {
            break;
        }
    }
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
    wait_for_echoes(arrivals, sent);
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
