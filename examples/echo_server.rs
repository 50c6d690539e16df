//! Echoes every text and binary message back to its sender.
//!
//! ```text
//! cargo run --release --example echo_server -- [ADDR] [--tls-cert FILE --tls-key FILE] [--deflate]
//!                                               [--allow-origin ORIGIN]...
//! ```
//!
//! ADDR defaults to 127.0.0.1:9001; `unix:PATH` serves on a Unix socket at PATH instead (a
//! stale socket file there is replaced; try the client with `ws+unix://PATH:/`). With a PEM certificate chain and PKCS#8 PEM key it serves
//! `wss://` (try it with `tests/fixtures/server.pem` and `server.key`, and the client's
//! `--ca tests/fixtures/ca.pem`). `--deflate` accepts permessage-deflate (a build with
//! `--features deflate`). `--allow-origin` lets browser pages from that origin connect
//! (repeatable, e.g. `http://localhost:5173` for a dev server; `'*'` allows any origin); by
//! default only pages from this server itself may. Set `RUST_LOG=debug` to see every connection open and end.

use std::process::exit;

const USAGE: &str = "usage: echo_server [ADDR] [--tls-cert FILE --tls-key FILE] [--deflate] \
                     [--allow-origin ORIGIN]...";

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

fn run() -> Result<(), syncws::Error> {
    let mut addr = "127.0.0.1:9001".to_owned();
    let (mut cert, mut key) = (None, None);
    let mut config = syncws::Config::default();
    let mut origins = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--tls-cert" => cert = Some(value("--tls-cert")),
            "--tls-key" => key = Some(value("--tls-key")),
            "--deflate" => config = deflate(config),
            "--allow-origin" => origins.push(origin(value("--allow-origin"))),
            "-h" | "--help" => usage("echoes every message back"),
            flag if flag.starts_with('-') => usage(&format!("unknown option {flag}")),
            _ => addr = arg,
        }
    }
    let mut server = bind(&addr)?.config(config);
    if !origins.is_empty() {
        server = server.allowed_origins(origins);
    }
    let scheme = match (cert, key) {
        (Some(cert), Some(key)) => {
            server = server.tls(syncws::ServerTls::from_pem_files(cert, key)?);
            "wss"
        }
        (None, None) => "ws",
        _ => usage("--tls-cert and --tls-key go together"),
    };
    match addr.strip_prefix("unix:") {
        Some(path) => println!("echo server on {scheme}+unix://{path}:/"),
        None => println!("echo server on {scheme}://{}", server.local_addr()),
    }
    server.serve(|ws| {
        // Batched: answers to messages that arrived together go out in one write, before the
        // next receive waits (see WebSocket::feed).
        while let Some(msg) = ws.recv()? {
            ws.feed(&msg)?;
        }
        Ok(())
    })
}

/// A server on `host:port`, or on the Unix socket of `unix:PATH`.
fn bind(addr: &str) -> Result<syncws::Server, syncws::Error> {
    match addr.strip_prefix("unix:") {
        #[cfg(unix)]
        Some(path) => syncws::Server::bind_unix(path),
        #[cfg(not(unix))]
        Some(_) => usage("unix:PATH needs a Unix system"),
        None => syncws::Server::bind(addr),
    }
}

/// An origin to allow, as browsers send it (`scheme://host[:port]`), or `*` for any.
fn origin(origin: String) -> String {
    if origin != "*" && !origin.contains("://") {
        usage(&format!(
            "--allow-origin wants scheme://host[:port], got {origin:?}"
        ))
    }
    origin
}

#[cfg(feature = "deflate")]
fn deflate(config: syncws::Config) -> syncws::Config {
    config.deflate(Some(syncws::DeflateConfig::default()))
}

#[cfg(not(feature = "deflate"))]
fn deflate(_: syncws::Config) -> syncws::Config {
    usage("--deflate needs a build with --features deflate")
}
