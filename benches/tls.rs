//! wss in two tables, one run: what splitting a connection costs, and each TLS backend against
//! tungstenite over the same backend. Round-trip latency and 1 MiB echo throughput throughout.
//!
//! ```text
//! cargo bench --bench tls --all-features   # both backends: 5 rounds, ~40 s
//! cargo bench --bench tls                  # native-tls only (the default feature)
//! cargo bench --no-default-features --features rustls --bench tls   # rustls only
//! cargo bench --bench tls -- --quick       # 1 short round
//! ```
//!
//! # Backends
//!
//! For each backend compiled in (native-tls with `tls`, rustls with `rustls`), a syncws echo
//! server and client, then a tungstenite echo server and client (each over a TLS stream of the
//! same backend, built from the same settings: native-tls acceptor and connector, or one rustls
//! `ServerConfig` and `ClientConfig` with ring). Both ends are the same library, whole
//! connections, one thread per connection; medians over the rounds. tungstenite's servers run a
//! thread per connection with its default config.
//!
//! # Split
//!
//! The server is a syncws echo server (on the backend the features pick) in this process (test certificate from
//! `tests/fixtures`); its handler echoes through a whole `WebSocket`, or through a `Reader` and a
//! `Writer` when the mode is "split" (both sides split). The client sends a message and waits
//! for its echo: whole, with `send`/`recv` on one `WebSocket`; split, with `Writer::send` and
//! `Reader::recv` (same thread, so only the split's own cost shows). Latency is the p50 of
//! 32-byte round trips; throughput is MB/s of one direction for 1 MiB echoes. Every echo is
//! checked. Over TLS the split reader waits outside the session lock with a `peek` (which also
//! tells how much the session may read under the lock), and the split writer writes each record
//! to the socket after letting the lock go: one extra system call per read, one copy.

#![cfg_attr(not(any(feature = "tls", feature = "rustls")), allow(unused))]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Instant;

#[cfg(not(any(feature = "tls", feature = "rustls")))]
fn main() {
    eprintln!("the tls benchmark needs the `tls` or the `rustls` feature");
}

#[cfg(any(feature = "tls", feature = "rustls"))]
use syncws::{Client, ClientBuilder, ClientTls, Server, ServerTls, WebSocket};

#[cfg(any(feature = "tls", feature = "rustls"))]
fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[cfg(any(feature = "tls", feature = "rustls"))]
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

#[cfg(any(feature = "tls", feature = "rustls"))]
fn client() -> ClientBuilder {
    let roots = ClientTls::builder()
        .add_root_file(fixture("ca.pem"))
        .build();
    Client::builder().no_proxy().tls(roots.unwrap())
}

#[cfg(any(feature = "tls", feature = "rustls"))]
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

#[cfg(any(feature = "tls", feature = "rustls"))]
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[cfg(any(feature = "tls", feature = "rustls"))]
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
    let picked = ServerTls::from_pem_files(fixture("server.pem"), fixture("server.key"));
    println!(
        "Whole and split, syncws at both ends ({:?}):",
        picked.unwrap()
    );
    println!();
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
    println!();
    println!("Each backend, syncws and tungstenite (each at both ends):");
    println!();
    backends::run(rounds, lat_n, mib_n, &small, &big);
}

/// Each backend compiled in: syncws and tungstenite over it.
#[cfg(any(feature = "tls", feature = "rustls"))]
mod backends {
    use super::*;
    #[cfg(feature = "rustls")]
    use std::sync::Arc;

    /// One backend's settings, shared by both libraries.
    #[derive(Clone)]
    enum Backend {
        #[cfg(feature = "tls")]
        Native(native_tls::TlsAcceptor, native_tls::TlsConnector),
        #[cfg(feature = "rustls")]
        Rustls(Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>),
    }

    impl Backend {
        fn name(&self) -> &'static str {
            match self {
                #[cfg(feature = "tls")]
                Backend::Native(..) => "native-tls",
                #[cfg(feature = "rustls")]
                Backend::Rustls(..) => "rustls",
            }
        }

        fn server_tls(&self) -> ServerTls {
            match self {
                #[cfg(feature = "tls")]
                Backend::Native(acceptor, _) => ServerTls::from_acceptor(acceptor.clone()),
                #[cfg(feature = "rustls")]
                Backend::Rustls(config, _) => ServerTls::from_rustls(Arc::clone(config)),
            }
        }

        fn client_tls(&self) -> ClientTls {
            match self {
                #[cfg(feature = "tls")]
                Backend::Native(_, connector) => ClientTls::from_connector(connector.clone()),
                #[cfg(feature = "rustls")]
                Backend::Rustls(_, config) => ClientTls::from_rustls(Arc::clone(config)),
            }
        }

        fn accept(&self, tcp: TcpStream) -> Option<Box<dyn Rw>> {
            match self {
                #[cfg(feature = "tls")]
                Backend::Native(acceptor, _) => Some(Box::new(acceptor.accept(tcp).ok()?)),
                #[cfg(feature = "rustls")]
                Backend::Rustls(config, _) => {
                    let conn = rustls::ServerConnection::new(Arc::clone(config)).ok()?;
                    Some(Box::new(rustls::StreamOwned::new(conn, tcp)))
                }
            }
        }

        fn connect(&self, tcp: TcpStream) -> Box<dyn Rw> {
            match self {
                #[cfg(feature = "tls")]
                Backend::Native(_, connector) => {
                    Box::new(connector.connect("localhost", tcp).unwrap())
                }
                #[cfg(feature = "rustls")]
                Backend::Rustls(_, config) => {
                    let name = "localhost".try_into().unwrap();
                    let conn = rustls::ClientConnection::new(Arc::clone(config), name).unwrap();
                    Box::new(rustls::StreamOwned::new(conn, tcp))
                }
            }
        }
    }

    /// A TLS stream of either backend, for tungstenite.
    trait Rw: Read + Write + Send {}
    impl<T: Read + Write + Send> Rw for T {}

    fn all() -> Vec<Backend> {
        let cert = std::fs::read(fixture("server.pem")).unwrap();
        let key = std::fs::read(fixture("server.key")).unwrap();
        let ca = std::fs::read(fixture("ca.pem")).unwrap();
        let _ = (&cert, &key, &ca);
        let mut all = Vec::new();
        #[cfg(feature = "tls")]
        {
            let identity = native_tls::Identity::from_pkcs8(&cert, &key).unwrap();
            let acceptor = native_tls::TlsAcceptor::new(identity).unwrap();
            let connector = native_tls::TlsConnector::builder()
                .add_root_certificate(native_tls::Certificate::from_pem(&ca).unwrap())
                .build()
                .unwrap();
            all.push(Backend::Native(acceptor, connector));
        }
        #[cfg(feature = "rustls")]
        {
            use rustls::pki_types::pem::PemObject;
            use rustls::pki_types::{CertificateDer, PrivateKeyDer};
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let chain = CertificateDer::pem_slice_iter(&cert)
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(&key).unwrap();
            let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap();
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(&ca) {
                roots.add(c.unwrap()).unwrap();
            }
            let client = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            all.push(Backend::Rustls(Arc::new(server), Arc::new(client)));
        }
        all
    }

    fn syncws_server(backend: &Backend) -> SocketAddr {
        let server = Server::bind("127.0.0.1:0")
            .unwrap()
            .tls(backend.server_tls());
        let addr = server.local_addr();
        thread::spawn(move || {
            server.serve(|ws| {
                while let Some(msg) = ws.recv()? {
                    ws.send(msg)?;
                }
                Ok(())
            })
        });
        addr
    }

    fn tungstenite_server(backend: &Backend) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let backend = backend.clone();
        thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { continue };
                let backend = backend.clone();
                thread::spawn(move || {
                    tcp.set_nodelay(true).unwrap();
                    let Some(tls) = backend.accept(tcp) else {
                        return;
                    };
                    let Ok(mut ws) = tungstenite::accept(tls) else {
                        return;
                    };
                    while let Ok(msg) = ws.read() {
                        if (msg.is_binary() || msg.is_text()) && ws.send(msg).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    /// Round trips of `payload` over a tungstenite client, each in seconds.
    fn tungstenite_round_trips(
        backend: &Backend,
        addr: SocketAddr,
        payload: &[u8],
        n: usize,
    ) -> Vec<f64> {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_nodelay(true).unwrap();
        let url = format!("wss://localhost:{}/", addr.port());
        let (mut ws, _) = tungstenite::client(url, backend.connect(tcp)).unwrap();
        let payload = tungstenite::Bytes::copy_from_slice(payload);
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            ws.send(tungstenite::Message::Binary(payload.clone()))
                .unwrap();
            let got = loop {
                match ws.read().unwrap() {
                    tungstenite::Message::Binary(b) => break b,
                    _ => continue,
                }
            };
            times.push(t.elapsed().as_secs_f64());
            assert_eq!(got, payload);
        }
        let _ = ws.close(None);
        times
    }

    pub(super) fn run(rounds: usize, lat_n: usize, mib_n: usize, small: &[u8], big: &[u8]) {
        let backends = all();
        // Per backend: [syncws, tungstenite] latency (us) and throughput (MB/s) per round.
        let mut lat = vec![[Vec::new(), Vec::new()]; backends.len()];
        let mut thr = vec![[Vec::new(), Vec::new()]; backends.len()];
        let mb_s = |t: &[f64]| big.len() as f64 * mib_n as f64 / t.iter().sum::<f64>() / 1e6;
        for _ in 0..rounds {
            for (b, backend) in backends.iter().enumerate() {
                let addr = syncws_server(backend);
                let url = format!("wss://localhost:{}/", addr.port());
                let client = Client::builder().no_proxy().tls(backend.client_tls());
                let mut ws = client.connect(&url).unwrap();
                let mut t = round_trips(&mut ws, false, small, lat_n);
                lat[b][0].push(median(&mut t) * 1e6);
                let mut ws = client.connect(&url).unwrap();
                thr[b][0].push(mb_s(&round_trips(&mut ws, false, big, mib_n)));

                let addr = tungstenite_server(backend);
                let mut t = tungstenite_round_trips(backend, addr, small, lat_n);
                lat[b][1].push(median(&mut t) * 1e6);
                thr[b][1].push(mb_s(&tungstenite_round_trips(backend, addr, big, mib_n)));
            }
        }
        println!(
            "| backend | library | latency p50 (us) | vs tungstenite | 1 MiB echo (MB/s) | vs tungstenite |"
        );
        println!("|---|---|---|---|---|---|");
        for (b, backend) in backends.iter().enumerate() {
            let tl = median(&mut lat[b][1]);
            let tw = median(&mut thr[b][1]);
            for (i, library) in ["syncws", "tungstenite"].iter().enumerate() {
                let l = median(&mut lat[b][i]);
                let w = median(&mut thr[b][i]);
                println!(
                    "| {} | {library} | {l:.1} | {:.2} | {w:.0} | {:.2} |",
                    backend.name(),
                    l / tl,
                    w / tw
                );
            }
        }
    }
}
