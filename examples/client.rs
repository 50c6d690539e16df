//! Sends each line of stdin as a text message and prints every message received on its own line.
//! At end of input it waits for the echoes of what it sent, closes with 1000 and exits 0.
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
use std::sync::mpsc;
use std::time::{Duration, Instant};

use syncws::{Client, ClientTls, CloseCode, Message};

const USAGE: &str = "usage: client [URL] [-H 'Name: value']... [--protocol NAME]... [--ca FILE] \
                     [--insecure] [--deflate]";

fn usage(problem: &str) -> ! {
    eprintln!("{problem}\n{USAGE}");
    exit(2)
}

fn main() {
    env_logger::init();
    if let Err(e) = run() {
        eprintln!("error: {e}");
        exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
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

#[cfg(feature = "deflate")]
fn deflate() -> syncws::Config {
    syncws::Config::default().deflate(Some(syncws::DeflateConfig::default()))
}

#[cfg(not(feature = "deflate"))]
fn deflate() -> syncws::Config {
    usage("--deflate needs a build with --features deflate")
}
