//! End-to-end benchmark: syncws against raw TCP and tungstenite, in one run (issue 7).
//!
//! ```text
//! cargo bench --bench e2e              # full run: 5 rounds, a few minutes
//! cargo bench --bench e2e -- --quick   # CI smoke run: 1 round, tiny counts, < 20 s
//! cargo bench --bench e2e -- --rounds 3 --no-c10k
//! cargo bench --bench e2e -- --only mib16,allocs --imp syncws   # one workload, for profiling
//! ```
//!
//! `--only` takes workload keys: latency, multi, pipelined, mib1, mib16, connrate, client, rss,
//! allocs, c10k. `--c10k N` changes the number of concurrent connections (default 10,000).
//!
//! # What runs where
//!
//! Every server runs in a child process (this binary re-executed with `SYNCWS_E2E_SERVE=<impl>`),
//! pinned to the last CPU; the benchmark itself (all clients) is pinned to CPU 0. Each child
//! prints its port, serves until its stdin closes, and its resident memory is read from
//! `/proc/PID/status` (VmRSS). Servers are thread-per-connection echo servers:
//!
//! - `raw`: TCP with a 4-byte big-endian length prefix; reads through an 8 KiB `BufReader` (one
//!   `read` for many small messages, large payloads read straight into a reused buffer), answers
//!   each message with one `write` (prefix and payload together). The same system calls as a
//!   WebSocket echo, without the framing.
//! - `tungstenite`: `tungstenite::accept` per connection, `read` / `send` (default config, limits
//!   raised to 64 MiB so 16 MiB fits).
//! - `syncws`: `Server::bind(..).start(handler)` with the default `Config`, `recv` / `send`.
//!
//! Raw and tungstenite connection threads get a 512 KiB stack, the syncws default. Every client
//! sets TCP_NODELAY (the syncws client and server do it themselves).
//!
//! # Workloads
//!
//! Each round starts fresh servers and runs every workload for each implementation in turn, the
//! order rotating from round to round; the table shows the median over the rounds, and below it
//! the same ratios as medians of the ratio within each round (this machine's speed drifts
//! between rounds by up to 3x on some rows; two sides of one round ran seconds apart). Every echo
//! is checked byte for byte against what was sent (payloads are pseudo-random and differ between
//! consecutive messages).
//!
//! 1. latency: one connection, 32-byte round trips, p50 of the individual round trips.
//! 2. 64 connections, each in its own client thread, 128-byte request/response; messages per
//!    second over all connections (from a common start to the last finish).
//! 3. pipelined: one connection, 100k 64-byte messages written by one thread while another reads
//!    the echoes; messages per second. raw: a `try_clone` of the socket for the writer. syncws:
//!    `WebSocket::split`. tungstenite cannot split a socket, so after the handshake a second
//!    `tungstenite::WebSocket::from_raw_socket` (client role) is built on a `try_clone` of the TCP
//!    stream and used only for sending (one `send`, i.e. write + flush, per message) while the
//!    original only reads. This is what a tungstenite user would do; it is correct here because
//!    the server never pings.
//! 4. 1 MiB and 16 MiB echo: MB/s = payload bytes of one direction / time of the round trips
//!    (10^6 bytes; the verification after each round trip is not timed).
//! 5. RSS per idle connection: a fresh server process, VmRSS before and after N connections that
//!    each did the handshake and one 32-byte echo, then sat idle; (after - before) / N in KiB.
//! 6. connections per second: sequentially connect, handshake, one 32-byte echo, close (WebSocket
//!    closing handshake; raw: drop).
//! 7. batching (with `pipelined`): the pipelined workload against two more servers that answer
//!    many messages with one write. `raw batched` gathers its answers in a buffer and writes it
//!    when its `BufReader` holds no further whole request (before it would read the socket
//!    again) or the buffer passes 64 KiB; `syncws feed` is the echo handler with `feed` instead of `send`,
//!    which flushes at the same two points. Printed below the table, against the plain raw
//!    server (one write per message) and against `raw batched`; then again with a client that
//!    writes 16 messages per system call (WebSocket frames masked and encoded by the bench,
//!    echoes read by a tungstenite client; raw: the length prefix), so that the servers' writes
//!    set the pace rather than the client's.
//!
//! Client side: the tungstenite client and the syncws client against the same tungstenite server,
//! for latency and 1 MiB echo.
//!
//! Allocations: a counting global allocator counts `alloc`/`realloc` calls in this process (the
//! clients) while a phase runs; reported per message for the receive and the send path.
//!
//! c10k: 10,000 syncws clients held open against one syncws server process, each echoing once
//! after all are connected; reports the time and the server's RSS. The process's file limit is
//! raised to its hard limit at start (both here and in the servers).

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, IoSlice, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::{Bytes, Message as TMessage};

#[path = "support/counting.rs"]
mod counting;
use counting::count_allocs;

// ---------------------------------------------------------------------------------------------
// Process setup: CPU pinning, file limit
// ---------------------------------------------------------------------------------------------

#[path = "support/cpu.rs"]
mod cpu;
use cpu::pin_to;

/// Raises the soft limit on open files to the hard limit; returns the new soft limit.
fn raise_nofile() -> u64 {
    // SAFETY: rlimit is plain data passed by pointer.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 0;
        }
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur
    }
}

// ---------------------------------------------------------------------------------------------
// Implementations
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Imp {
    Raw,
    Tung,
    Sync,
}

const ALL: [Imp; 3] = [Imp::Raw, Imp::Tung, Imp::Sync];

impl Imp {
    fn name(self) -> &'static str {
        match self {
            Imp::Raw => "raw",
            Imp::Tung => "tungstenite",
            Imp::Sync => "syncws",
        }
    }

    fn from_name(s: &str) -> Option<Imp> {
        ALL.into_iter().find(|i| i.name() == s)
    }
}

const SERVE_ENV: &str = "SYNCWS_E2E_SERVE";
/// Appended to an implementation's name in `SERVE_ENV` for its batching server.
const BATCHED: &str = "+batched";
const CPU_ENV: &str = "SYNCWS_E2E_CPU";
const STACK: usize = 512 << 10;
const BIG: usize = 64 << 20;

fn tung_config() -> tungstenite::protocol::WebSocketConfig {
    tungstenite::protocol::WebSocketConfig::default()
        .max_frame_size(Some(BIG))
        .max_message_size(Some(BIG))
}

// ---------------------------------------------------------------------------------------------
// Raw TCP framing: 4-byte big-endian length, then the payload
// ---------------------------------------------------------------------------------------------

fn raw_read(r: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let n = u32::from_be_bytes(len) as usize;
    if buf.len() < n {
        buf.resize(n, 0);
    }
    r.read_exact(&mut buf[..n])?;
    Ok(n)
}

/// One system call per message (small: one buffer; large: one vectored write).
fn raw_write(w: &mut TcpStream, p: &[u8]) -> io::Result<()> {
    let len = (p.len() as u32).to_be_bytes();
    if p.len() <= 4092 {
        let mut frame = [0u8; 4096];
        frame[..4].copy_from_slice(&len);
        frame[4..4 + p.len()].copy_from_slice(p);
        return w.write_all(&frame[..4 + p.len()]);
    }
    let n = w.write_vectored(&[IoSlice::new(&len), IoSlice::new(p)])?;
    if n < 4 {
        w.write_all(&len[n..])?;
        w.write_all(p)
    } else {
        w.write_all(&p[n - 4..])
    }
}

// ---------------------------------------------------------------------------------------------
// Servers (child processes)
// ---------------------------------------------------------------------------------------------

fn raw_echo(stream: TcpStream) -> io::Result<()> {
    let mut r = BufReader::with_capacity(8 << 10, stream.try_clone()?);
    let mut w = stream;
    // Room for the prefix in front of the payload: one write per answer, no copy.
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let mut len = [0u8; 4];
        match r.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let n = u32::from_be_bytes(len) as usize;
        if buf.len() < 4 + n {
            buf.resize(4 + n, 0);
        }
        buf[..4].copy_from_slice(&len);
        r.read_exact(&mut buf[4..4 + n])?;
        w.write_all(&buf[..4 + n])?;
    }
}

/// Whether `buf` starts with a whole length-prefixed request.
fn raw_complete(buf: &[u8]) -> bool {
    buf.len() >= 4 && buf.len() - 4 >= u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize
}

/// `raw_echo`, answering with one write per batch: answers gather in `out` while the reader's
/// buffer holds another whole request, and go out before the socket would be read again (or at
/// 64 KiB). The same rule as `feed`'s: no answer waits behind a read that may block.
fn raw_echo_batched(stream: TcpStream) -> io::Result<()> {
    let mut r = BufReader::with_capacity(8 << 10, stream.try_clone()?);
    let mut w = stream;
    let mut out: Vec<u8> = Vec::with_capacity(64 << 10);
    loop {
        if !out.is_empty() && (!raw_complete(r.buffer()) || out.len() >= 64 << 10) {
            w.write_all(&out)?;
            out.clear();
        }
        let mut len = [0u8; 4];
        match r.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let n = u32::from_be_bytes(len) as usize;
        let at = out.len();
        out.extend_from_slice(&len);
        out.resize(at + 4 + n, 0);
        r.read_exact(&mut out[at + 4..])?;
    }
}

fn tung_echo(stream: TcpStream) {
    let Ok(mut ws) = tungstenite::accept_with_config(stream, Some(tung_config())) else {
        return;
    };
    loop {
        match ws.read() {
            Ok(m) if m.is_binary() || m.is_text() => {
                if ws.send(m).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// A server child: `imp`'s echo server, or with `batched` the one that answers in batches (raw
/// and syncws only).
fn serve(imp: Imp, batched: bool) -> ! {
    if let Some(cpu) = std::env::var(CPU_ENV).ok().and_then(|c| c.parse().ok()) {
        pin_to(cpu);
    }
    raise_nofile();
    let mut _handle = None;
    let port = match imp {
        Imp::Raw | Imp::Tung => {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let port = listener.local_addr().expect("addr").port();
            thread::spawn(move || {
                for s in listener.incoming() {
                    let Ok(s) = s else {
                        thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    let _ = s.set_nodelay(true);
                    let _ = thread::Builder::new().stack_size(STACK).spawn(move || {
                        if imp == Imp::Raw && batched {
                            let _ = raw_echo_batched(s);
                        } else if imp == Imp::Raw {
                            let _ = raw_echo(s);
                        } else {
                            tung_echo(s);
                        }
                    });
                }
            });
            port
        }
        Imp::Sync => {
            let handle = syncws::Server::bind("127.0.0.1:0")
                .expect("bind")
                .max_connections(1_000_000)
                .start(move |ws| {
                    // The allocation-free receive: one buffer reused for every message.
                    let mut buf = Vec::new();
                    while let Some(kind) = ws.recv_into(&mut buf)? {
                        match (kind, batched) {
                            (syncws::MessageKind::Binary, false) => ws.send(&buf[..])?,
                            (syncws::MessageKind::Binary, true) => ws.feed(&buf[..])?,
                            (syncws::MessageKind::Text, _) => {
                                ws.send(std::str::from_utf8(&buf)?)?
                            }
                        }
                    }
                    Ok(())
                })
                .expect("start");
            let port = handle.local_addr().port();
            _handle = Some(handle);
            port
        }
    };
    println!("PORT {port}");
    let _ = io::stdout().flush();
    let mut sink = [0u8; 64];
    while matches!(io::stdin().read(&mut sink), Ok(n) if n > 0) {}
    std::process::exit(0);
}

/// A server child process; stops when dropped (its stdin closes).
struct ServerProc {
    child: Child,
    addr: SocketAddr,
}

impl ServerProc {
    fn start(imp: Imp, cpu: Option<usize>) -> ServerProc {
        ServerProc::start_as(imp.name(), cpu)
    }

    /// The batching echo server of `imp` (raw or syncws; see workload 7).
    fn start_batched(imp: Imp, cpu: Option<usize>) -> ServerProc {
        ServerProc::start_as(&format!("{}{BATCHED}", imp.name()), cpu)
    }

    fn start_as(name: &str, cpu: Option<usize>) -> ServerProc {
        let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
        cmd.env(SERVE_ENV, name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(cpu) = cpu {
            cmd.env(CPU_ENV, cpu.to_string());
        }
        let mut child = cmd.spawn().expect("spawn server process");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read port");
        let port: u16 = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("bad line from server: {line:?}"));
        ServerProc {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
}

impl ServerProc {
    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).map_or(0, |d| d.count())
    }

    fn fd_limit(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/limits", self.child.id()))
            .ok()
            .and_then(|l| {
                l.lines()
                    .find(|l| l.starts_with("Max open files"))
                    .map(|l| l.split_whitespace().nth(3).unwrap_or("?").to_owned())
            })
            .unwrap_or_else(|| "?".into())
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

// Unboxed on purpose: no extra indirection on the measured paths.
#[allow(clippy::large_enum_variant)]
enum Client {
    Raw {
        r: BufReader<TcpStream>,
        w: TcpStream,
        buf: Vec<u8>,
    },
    Tung(tungstenite::WebSocket<TcpStream>),
    /// The socket and the buffer `recv_into` reuses.
    Sync(syncws::WebSocket, Vec<u8>),
}

fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}/")
}

fn tung_connect(addr: SocketAddr) -> tungstenite::WebSocket<TcpStream> {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    tungstenite::client::client_with_config(url(addr), s, Some(tung_config()))
        .map_err(|e| e.to_string())
        .expect("tungstenite handshake")
        .0
}

impl Client {
    fn connect(imp: Imp, addr: SocketAddr) -> Client {
        match imp {
            Imp::Raw => {
                let s = TcpStream::connect(addr).expect("connect");
                s.set_nodelay(true).expect("nodelay");
                Client::Raw {
                    r: BufReader::with_capacity(8 << 10, s.try_clone().expect("clone")),
                    w: s,
                    buf: Vec::new(),
                }
            }
            Imp::Tung => Client::Tung(tung_connect(addr)),
            Imp::Sync => Client::Sync(
                syncws::Client::connect(&url(addr)).expect("connect"),
                Vec::new(),
            ),
        }
    }

    fn send(&mut self, p: &Bytes) {
        match self {
            Client::Raw { w, .. } => raw_write(w, p).expect("send"),
            Client::Tung(ws) => ws.send(TMessage::Binary(p.clone())).expect("send"),
            Client::Sync(ws, _) => ws.send(&p[..]).expect("send"),
        }
    }

    /// Receives one message and hands its bytes to `f`.
    fn recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Client::Raw { r, buf, .. } => {
                let n = raw_read(r, buf).expect("recv");
                f(&buf[..n])
            }
            Client::Tung(ws) => loop {
                match ws.read().expect("recv") {
                    TMessage::Binary(b) => return f(&b),
                    TMessage::Text(t) => return f(t.as_bytes()),
                    TMessage::Ping(_) | TMessage::Pong(_) => {}
                    m => panic!("unexpected {m:?}"),
                }
            },
            Client::Sync(ws, buf) => {
                ws.recv_into(buf).expect("recv").expect("closed early");
                f(buf)
            }
        }
    }

    fn recv_check(&mut self, expect: &[u8]) {
        self.recv_with(|got| check(got, expect));
    }

    fn echo(&mut self, p: &Bytes) {
        self.send(p);
        self.recv_check(p);
    }

    fn close(self) {
        match self {
            Client::Raw { .. } => {}
            Client::Tung(mut ws) => {
                let _ = ws.close(None);
                while ws.read().is_ok() {}
            }
            Client::Sync(mut ws, _) => {
                let _ = ws.close(syncws::CloseCode::NORMAL, "");
            }
        }
    }
}

fn check(got: &[u8], expect: &[u8]) {
    assert!(
        got == expect,
        "echo mismatch: got {} bytes, expected {}",
        got.len(),
        expect.len()
    );
}

/// Pseudo-random payload; different seeds give different bytes.
fn payload(len: usize, seed: u64) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        v.extend_from_slice(&b[..(len - v.len()).min(8)]);
    }
    Bytes::from(v)
}

fn payloads(len: usize, count: usize, seed: u64) -> Vec<Bytes> {
    (0..count as u64)
        .map(|i| payload(len, seed * 1000 + i))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------------------------

/// p50 of `n` round trips of 32 bytes, in microseconds.
fn w_latency(imp: Imp, addr: SocketAddr, n: usize) -> f64 {
    let mut c = Client::connect(imp, addr);
    let ps = payloads(32, 16, 1);
    for i in 0..n / 10 + 10 {
        c.echo(&ps[i % 16]);
    }
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        c.echo(&ps[i % 16]);
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    c.close();
    median(&mut times)
}

/// Messages per second over `conns` connections doing `per` round trips of `size` bytes each.
fn w_multi(imp: Imp, addr: SocketAddr, conns: usize, per: usize, size: usize) -> f64 {
    let start = Arc::new(Barrier::new(conns + 1));
    let threads: Vec<_> = (0..conns)
        .map(|k| {
            let start = Arc::clone(&start);
            thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || {
                    let mut c = Client::connect(imp, addr);
                    let ps = payloads(size, 4, 100 + k as u64);
                    c.echo(&ps[0]);
                    start.wait();
                    for i in 0..per {
                        c.echo(&ps[i % 4]);
                    }
                    let done = Instant::now();
                    c.close();
                    done
                })
                .expect("spawn")
        })
        .collect();
    start.wait();
    let t0 = Instant::now();
    let end = threads
        .into_iter()
        .map(|t| t.join().expect("client thread"))
        .max()
        .expect("threads");
    (conns * per) as f64 / (end - t0).as_secs_f64()
}

/// Messages per second for `n` pipelined messages of `size` bytes on one connection.
fn w_pipelined(imp: Imp, addr: SocketAddr, n: usize, size: usize) -> f64 {
    let ps = payloads(size, 16, 2);
    let writer_ps = ps.clone();
    match imp {
        Imp::Raw => {
            let s = TcpStream::connect(addr).expect("connect");
            s.set_nodelay(true).expect("nodelay");
            let mut w = s.try_clone().expect("clone");
            let mut r = BufReader::with_capacity(8 << 10, s);
            let mut buf = Vec::new();
            let t0 = Instant::now();
            let writer = thread::spawn(move || {
                for i in 0..n {
                    raw_write(&mut w, &writer_ps[i % 16]).expect("send");
                }
                w
            });
            for i in 0..n {
                let k = raw_read(&mut r, &mut buf).expect("recv");
                check(&buf[..k], &ps[i % 16]);
            }
            let el = t0.elapsed();
            drop(writer.join().expect("writer"));
            n as f64 / el.as_secs_f64()
        }
        Imp::Tung => {
            let s = TcpStream::connect(addr).expect("connect");
            s.set_nodelay(true).expect("nodelay");
            let w = s.try_clone().expect("clone");
            let (mut ws, _) =
                tungstenite::client::client_with_config(url(addr), s, Some(tung_config()))
                    .map_err(|e| e.to_string())
                    .expect("handshake");
            let mut wws = tungstenite::WebSocket::from_raw_socket(
                w,
                tungstenite::protocol::Role::Client,
                Some(tung_config()),
            );
            let t0 = Instant::now();
            let writer = thread::spawn(move || {
                for i in 0..n {
                    wws.send(TMessage::Binary(writer_ps[i % 16].clone()))
                        .expect("send");
                }
                wws
            });
            for i in 0..n {
                match ws.read().expect("recv") {
                    TMessage::Binary(b) => check(&b, &ps[i % 16]),
                    m => panic!("unexpected {m:?}"),
                }
            }
            let el = t0.elapsed();
            drop(writer.join().expect("writer"));
            n as f64 / el.as_secs_f64()
        }
        Imp::Sync => {
            let mut ws = syncws::Client::connect(&url(addr)).expect("connect");
            let (mut reader, writer) = ws.split().expect("split");
            let t0 = Instant::now();
            let wt = thread::spawn(move || {
                for i in 0..n {
                    writer.send(&writer_ps[i % 16][..]).expect("send");
                }
                writer
            });
            let mut buf = Vec::new();
            for i in 0..n {
                reader
                    .recv_into(&mut buf)
                    .expect("recv")
                    .expect("closed early");
                check(&buf, &ps[i % 16]);
            }
            let el = t0.elapsed();
            let writer = wt.join().expect("writer");
            let _ = writer.close(syncws::CloseCode::NORMAL, "");
            drop(reader);
            drop(ws);
            n as f64 / el.as_secs_f64()
        }
    }
}

/// Messages in each of the batching client's writes (workload 7).
const CLIENT_BATCH: usize = 16;

/// Like `w_pipelined`, with a client that writes `CLIENT_BATCH` messages per system call, so the
/// server's writes, not the client's, set the pace. `ws`: WebSocket framing (masked binary frames
/// encoded here, written to a clone of a tungstenite client's socket, whose reader takes the
/// echoes); otherwise the raw length prefix.
fn w_pipelined_batching_client(ws: bool, addr: SocketAddr, n: usize, size: usize) -> f64 {
    let ps = payloads(size, 16, 2);
    let mut wire: Vec<Vec<u8>> = Vec::new();
    for (i, p) in ps.iter().enumerate() {
        let mut f = Vec::with_capacity(p.len() + 14);
        if ws {
            assert!(p.len() < 126);
            let mask = [i as u8, 0x5a, 0xa5, 0x3c];
            f.extend_from_slice(&[0x82, 0x80 | p.len() as u8]);
            f.extend_from_slice(&mask);
            f.extend(p.iter().enumerate().map(|(j, b)| b ^ mask[j % 4]));
        } else {
            f.extend_from_slice(&(p.len() as u32).to_be_bytes());
            f.extend_from_slice(p);
        }
        wire.push(f);
    }
    let s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let mut w = s.try_clone().expect("clone");
    let mut tung = None;
    let mut raw = None;
    if ws {
        let (t, _) = tungstenite::client::client_with_config(url(addr), s, Some(tung_config()))
            .map_err(|e| e.to_string())
            .expect("handshake");
        tung = Some(t);
    } else {
        raw = Some(BufReader::with_capacity(8 << 10, s));
    }
    let t0 = Instant::now();
    let writer = thread::spawn(move || {
        let mut batch = Vec::new();
        for i in 0..n {
            batch.extend_from_slice(&wire[i % 16]);
            if (i + 1) % CLIENT_BATCH == 0 || i + 1 == n {
                w.write_all(&batch).expect("send");
                batch.clear();
            }
        }
        w
    });
    let mut buf = Vec::new();
    for i in 0..n {
        if let Some(t) = tung.as_mut() {
            match t.read().expect("recv") {
                TMessage::Binary(b) => check(&b, &ps[i % 16]),
                m => panic!("unexpected {m:?}"),
            }
        } else if let Some(r) = raw.as_mut() {
            let k = raw_read(r, &mut buf).expect("recv");
            check(&buf[..k], &ps[i % 16]);
        }
    }
    let el = t0.elapsed();
    drop(writer.join().expect("writer"));
    n as f64 / el.as_secs_f64()
}

/// MB/s (10^6, one direction) echoing `reps` messages of `size` bytes.
fn w_bulk(imp: Imp, addr: SocketAddr, size: usize, reps: usize) -> f64 {
    let mut c = Client::connect(imp, addr);
    let ps = payloads(size, 2, 3);
    c.echo(&ps[1]);
    let mut total = Duration::ZERO;
    for i in 0..reps {
        let p = &ps[i % 2];
        let t = Instant::now();
        c.send(p);
        let (el, ok) = c.recv_with(|got| (t.elapsed(), got == &p[..]));
        assert!(ok, "echo mismatch at {size} bytes");
        total += el;
    }
    c.close();
    (size * reps) as f64 / total.as_secs_f64() / 1e6
}

/// KiB of server RSS per idle connection, on a fresh server process.
fn w_idle_rss(imp: Imp, n: usize, cpu: Option<usize>) -> f64 {
    let srv = ServerProc::start(imp, cpu);
    thread::sleep(Duration::from_millis(200));
    let before = srv.rss_kib();
    let p = payload(32, 7);
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let mut c = Client::connect(imp, srv.addr);
        c.echo(&p);
        held.push(c);
    }
    thread::sleep(Duration::from_millis(500));
    let after = srv.rss_kib();
    drop(held);
    after.saturating_sub(before) as f64 / n as f64
}

/// Connections per second: connect, handshake, one 32-byte echo, close.
fn w_connrate(imp: Imp, addr: SocketAddr, n: usize) -> f64 {
    let p = payload(32, 9);
    let t0 = Instant::now();
    for _ in 0..n {
        let mut c = Client::connect(imp, addr);
        c.echo(&p);
        c.close();
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// Allocations per message (client side)
// ---------------------------------------------------------------------------------------------

/// (recv allocs/msg, send allocs/msg) for `n` messages of `size` bytes.
fn allocs_per_msg(imp: Imp, addr: SocketAddr, n: usize, size: usize) -> (f64, f64) {
    let mut c = Client::connect(imp, addr);
    let ps = payloads(size, 4, 11);
    // Warm up buffers.
    for p in &ps {
        c.echo(p);
    }
    let mut recv = 0;
    let mut send = 0;
    // In batches that fit the socket buffers: send a batch (counted), then receive it (counted).
    let batch = ((256 << 10) / (size + 14)).clamp(1, 1000);
    let mut left = n;
    while left > 0 {
        let k = left.min(batch);
        send += count_allocs(|| {
            for i in 0..k {
                c.send(&ps[i % 4]);
            }
        });
        let mut oks = 0;
        recv += count_allocs(|| {
            for i in 0..k {
                if c.recv_with(|got| got == &ps[i % 4][..]) {
                    oks += 1;
                }
            }
        });
        assert_eq!(oks, k, "echo mismatch");
        left -= k;
    }
    c.close();
    (recv as f64 / n as f64, send as f64 / n as f64)
}

// ---------------------------------------------------------------------------------------------
// c10k
// ---------------------------------------------------------------------------------------------

fn c10k(n: usize, cpu: Option<usize>) -> String {
    let srv = ServerProc::start(Imp::Sync, cpu);
    thread::sleep(Duration::from_millis(200));
    let before = srv.rss_kib();
    let p = payload(32, 5);
    let t0 = Instant::now();
    let mut held = Vec::with_capacity(n);
    let mut failure = None;
    let builder = syncws::Client::builder()
        .config(syncws::Config::default().handshake_timeout(Duration::from_secs(2)));
    for i in 0..n {
        match builder.connect(&url(srv.addr)) {
            Ok(ws) => held.push(Client::Sync(ws, Vec::new())),
            Err(e) => {
                failure = Some(format!(
                    "connection {} failed ({e}); the server process had {} file descriptors open \
                     (its limit: {})",
                    i + 1,
                    srv.open_fds(),
                    srv.fd_limit()
                ));
                break;
            }
        }
    }
    let opened = t0.elapsed();
    let t1 = Instant::now();
    for c in &mut held {
        c.send(&p);
    }
    for c in &mut held {
        c.recv_check(&p);
    }
    let echoed = t1.elapsed();
    let rss = srv.rss_kib();
    let count = held.len();
    drop(held);
    format!(
        "c10k: {} of {n} syncws connections held at once{}: opened in {:.2} s, all echoed (32 B \
         each, all sent then all received) in {:.0} ms; server RSS {} MiB ({:.1} KiB per \
         connection){}",
        count,
        if count == n { " (ok)" } else { " (MISS)" },
        opened.as_secs_f64(),
        echoed.as_secs_f64() * 1e3,
        rss / 1024,
        rss.saturating_sub(before) as f64 / count.max(1) as f64,
        failure.map(|f| format!("\n  {f}")).unwrap_or_default()
    )
}

// ---------------------------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------------------------

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

struct Params {
    rounds: usize,
    latency_n: usize,
    multi_conns: usize,
    multi_per: usize,
    pipelined_n: usize,
    mib1_reps: usize,
    mib16_reps: usize,
    idle_n: usize,
    connrate_n: usize,
    c10k_n: usize,
    alloc_n: usize,
}

const FULL: Params = Params {
    rounds: 5,
    latency_n: 3000,
    multi_conns: 64,
    multi_per: 400,
    pipelined_n: 100_000,
    mib1_reps: 60,
    mib16_reps: 6,
    idle_n: 1000,
    connrate_n: 1000,
    c10k_n: 10_000,
    alloc_n: 10_000,
};

const QUICK: Params = Params {
    rounds: 1,
    latency_n: 200,
    multi_conns: 64,
    multi_per: 10,
    pipelined_n: 5_000,
    mib1_reps: 3,
    mib16_reps: 1,
    idle_n: 50,
    connrate_n: 50,
    c10k_n: 0,
    alloc_n: 500,
};

#[derive(Clone, Copy)]
enum Better {
    Lower,
    Higher,
}

struct Row {
    key: &'static str,
    label: &'static str,
    unit: &'static str,
    better: Better,
    vs_raw: Option<f64>,
    vs_tung: Option<f64>,
}

const ROWS: &[Row] = &[
    Row {
        key: "latency",
        label: "latency p50, 32 B, 1 conn",
        unit: "us",
        better: Better::Lower,
        vs_raw: Some(1.05),
        vs_tung: Some(1.00),
    },
    Row {
        key: "multi",
        label: "64 conns req/resp, 128 B",
        unit: "msg/s",
        better: Better::Higher,
        vs_raw: Some(0.97),
        vs_tung: Some(1.08),
    },
    Row {
        key: "pipelined",
        label: "pipelined 64 B, 1 conn",
        unit: "msg/s",
        better: Better::Higher,
        vs_raw: Some(1.00),
        vs_tung: Some(1.20),
    },
    Row {
        key: "mib1",
        label: "echo 1 MiB",
        unit: "MB/s",
        better: Better::Higher,
        vs_raw: Some(0.90),
        vs_tung: Some(1.35),
    },
    Row {
        key: "mib16",
        label: "echo 16 MiB",
        unit: "MB/s",
        better: Better::Higher,
        vs_raw: Some(0.90),
        vs_tung: Some(1.35),
    },
    Row {
        key: "rss",
        label: "server RSS per idle conn",
        unit: "KiB",
        better: Better::Lower,
        vs_raw: Some(2.0),
        vs_tung: Some(0.2),
    },
    Row {
        key: "connrate",
        label: "connections opened",
        unit: "conn/s",
        better: Better::Higher,
        vs_raw: Some(0.80),
        vs_tung: Some(1.40),
    },
];

const CLIENT_ROWS: &[Row] = &[
    Row {
        key: "client_latency",
        label: "client: latency p50, 32 B",
        unit: "us",
        better: Better::Lower,
        vs_raw: None,
        vs_tung: Some(1.00),
    },
    Row {
        key: "client_mib1",
        label: "client: echo 1 MiB",
        unit: "MB/s",
        better: Better::Higher,
        vs_raw: None,
        vs_tung: Some(1.00),
    },
];

type Samples = HashMap<(&'static str, Imp), Vec<f64>>;

fn fmt_num(v: f64) -> String {
    if v >= 1e5 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn judge(ratio: f64, target: Option<f64>, better: Better) -> String {
    match target {
        None => format!("{ratio:>5.2}              "),
        Some(t) => {
            let (sign, ok) = match better {
                Better::Lower => ("<=", ratio <= t),
                Better::Higher => (">=", ratio >= t),
            };
            format!(
                "{ratio:>5.2} ({sign}{t:.2}) {:<4}",
                if ok { "ok" } else { "MISS" }
            )
        }
    }
}

/// Workload 7: the batching servers against the plain raw one and against each other.
fn print_batching(samples: &Samples) {
    println!("\nbatching servers, pipelined 64 B, 1 conn (msg/s):");
    let rows = [
        (
            "with the pipelined client".to_owned(),
            "pipelined",
            "pipelined_batched",
        ),
        (
            format!("with a client that writes {CLIENT_BATCH} messages per system call"),
            "batching_client_plain",
            "batching_client_batched",
        ),
    ];
    for (label, plain, batched) in rows {
        let (Some(raw), Some(raw_batched), Some(feed)) = (
            sample_median(samples, plain, Imp::Raw),
            sample_median(samples, batched, Imp::Raw),
            sample_median(samples, batched, Imp::Sync),
        ) else {
            continue;
        };
        println!(
            "  {label}: raw {}   raw batched {}   syncws feed {}   feed/raw {}   feed/raw batched {}",
            fmt_num(raw),
            fmt_num(raw_batched),
            fmt_num(feed),
            judge(feed / raw, Some(1.2), Better::Higher),
            judge(feed / raw_batched, Some(0.9), Better::Higher)
        );
        let feed_key = (batched, Imp::Sync);
        let paired =
            |den| paired_median(samples, feed_key, den).map_or("-".into(), |r| format!("{r:.2}"));
        println!(
            "    paired by round: feed/raw {}   feed/raw batched {}",
            paired((plain, Imp::Raw)),
            paired((batched, Imp::Raw))
        );
    }
}

/// The median of the samples of `key` for `imp`, if there are any (the samples keep their
/// round order).
fn sample_median(samples: &Samples, key: &'static str, imp: Imp) -> Option<f64> {
    samples
        .get(&(key, imp))
        .filter(|v| !v.is_empty())
        .map(|v| median(&mut v.clone()))
}

/// The median over rounds of `num / den`, each pair taken from one round. This machine's speed
/// drifts between rounds (by 3x on some rows here), and both sides of one round ran within
/// seconds of each other, so a ratio within a round cancels most of the drift that a ratio of
/// two medians keeps.
fn paired_median(
    samples: &Samples,
    num: (&'static str, Imp),
    den: (&'static str, Imp),
) -> Option<f64> {
    let (a, b) = (samples.get(&num)?, samples.get(&den)?);
    let mut ratios: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    (!ratios.is_empty()).then(|| median(&mut ratios))
}

/// The main table's syncws/raw and syncws/tungstenite ratios again, each the median of the
/// ratios within a round ([`paired_median`]).
fn print_paired(samples: &Samples) {
    println!(
        "
the same ratios paired by round (median over rounds of the ratio within a round):"
    );
    for row in ROWS {
        let vs = |imp| paired_median(samples, (row.key, Imp::Sync), (row.key, imp));
        let show =
            |r: Option<f64>, target| r.map_or_else(|| "-".into(), |r| judge(r, target, row.better));
        println!(
            "  {:<28} syncws/raw {:<21} syncws/tung {}",
            row.label,
            show(vs(Imp::Raw), row.vs_raw),
            show(vs(Imp::Tung), row.vs_tung)
        );
    }
    for row in CLIENT_ROWS {
        let r = paired_median(samples, (row.key, Imp::Sync), (row.key, Imp::Tung));
        let shown = r.map_or_else(|| "-".into(), |r| judge(r, row.vs_tung, row.better));
        println!("  {:<28} {:<32} syncws/tung {}", row.label, "", shown);
    }
}

fn print_table(samples: &Samples) {
    let med = sample_median;
    println!();
    println!(
        "{:<28} {:>6} {:>9} {:>12} {:>9} {:>9}   {:<21} {:<21}",
        "workload",
        "unit",
        "raw",
        "tungstenite",
        "syncws",
        "tung/raw",
        "syncws/raw (target)",
        "syncws/tung (target)"
    );
    println!("{}", "-".repeat(126));
    for row in ROWS {
        let raw = med(samples, row.key, Imp::Raw);
        let tung = med(samples, row.key, Imp::Tung);
        let sync = med(samples, row.key, Imp::Sync);
        let show = |v: Option<f64>| v.map(fmt_num).unwrap_or_else(|| "-".into());
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let tr = ratio(tung, raw)
            .map(|r| format!("{r:.2}"))
            .unwrap_or_else(|| "-".into());
        let sr = ratio(sync, raw)
            .map(|r| judge(r, row.vs_raw, row.better))
            .unwrap_or_else(|| "-".into());
        let st = ratio(sync, tung)
            .map(|r| judge(r, row.vs_tung, row.better))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<28} {:>6} {:>9} {:>12} {:>9} {:>9}   {:<21} {:<21}",
            row.label,
            row.unit,
            show(raw),
            show(tung),
            show(sync),
            tr,
            sr,
            st
        );
    }
    for row in CLIENT_ROWS {
        let tung = med(samples, row.key, Imp::Tung);
        let sync = med(samples, row.key, Imp::Sync);
        let show = |v: Option<f64>| v.map(fmt_num).unwrap_or_else(|| "-".into());
        let st = match (sync, tung) {
            (Some(a), Some(b)) if b > 0.0 => judge(a / b, row.vs_tung, row.better),
            _ => "-".into(),
        };
        println!(
            "{:<28} {:>6} {:>9} {:>12} {:>9} {:>9}   {:<21} {:<21}",
            row.label,
            row.unit,
            "-",
            show(tung),
            show(sync),
            "-",
            "-",
            st
        );
    }
    println!(
        "(client rows: each client against the same tungstenite server; their targets are \
         \"no worse than tungstenite\", not from the issue)"
    );
}

fn print_samples(samples: &Samples) {
    println!("\nper-round samples (run order rotates each round):");
    for row in ROWS.iter().chain(CLIENT_ROWS) {
        for imp in ALL {
            if let Some(v) = samples.get(&(row.key, imp)) {
                let list: Vec<String> = v.iter().map(|x| fmt_num(*x)).collect();
                println!("  {:<28} {:<12} {}", row.label, imp.name(), list.join("  "));
            }
        }
    }
}

fn main() {
    if let Ok(name) = std::env::var(SERVE_ENV) {
        let (name, batched) = match name.strip_suffix(BATCHED) {
            Some(name) => (name.to_owned(), true),
            None => (name, false),
        };
        serve(
            Imp::from_name(&name).expect("unknown implementation"),
            batched,
        );
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let mut p = if quick { QUICK } else { FULL };
    let mut only: Option<String> = None;
    let mut imps: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rounds" => p.rounds = it.next().and_then(|v| v.parse().ok()).expect("--rounds N"),
            "--no-c10k" => p.c10k_n = 0,
            "--c10k" => p.c10k_n = it.next().and_then(|v| v.parse().ok()).expect("--c10k N"),
            "--only" => only = Some(it.next().expect("--only KEY[,KEY..]").clone()),
            "--imp" => imps = Some(it.next().expect("--imp NAME[,NAME..]").clone()),
            _ => {}
        }
    }

    let want = |key: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|k| k == key))
    };
    let imp_ok = |imp: Imp| {
        imps.as_deref()
            .is_none_or(|o| o.split(',').any(|k| k == imp.name()))
    };
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    let server_cpu = (cpus >= 2).then_some(cpus - 1);
    if server_cpu.is_some() {
        pin_to(0);
    }
    let nofile = raise_nofile();
    println!(
        "syncws e2e benchmark: {} round(s){}, {cpus} CPUs ({}), open-file limit {nofile}",
        p.rounds,
        if quick { " (quick)" } else { "" },
        match server_cpu {
            Some(c) => format!("clients on CPU 0, servers on CPU {c}"),
            None => "no pinning".into(),
        }
    );
    let started = Instant::now();
    let mut samples: Samples = HashMap::new();

    for round in 0..p.rounds {
        let order: Vec<Imp> = (0..3)
            .map(|i| ALL[(i + round) % 3])
            .filter(|&i| imp_ok(i))
            .collect();
        let servers: HashMap<Imp, ServerProc> = ALL
            .into_iter()
            .map(|imp| (imp, ServerProc::start(imp, server_cpu)))
            .collect();
        let addr = |imp: Imp| servers[&imp].addr;
        let mut add = |key: &'static str, imp: Imp, v: f64| {
            samples.entry((key, imp)).or_default().push(v);
        };
        for &imp in order.iter().filter(|_| want("latency")) {
            add("latency", imp, w_latency(imp, addr(imp), p.latency_n));
        }
        for &imp in order.iter().filter(|_| want("multi")) {
            let v = w_multi(imp, addr(imp), p.multi_conns, p.multi_per, 128);
            add("multi", imp, v);
        }
        for &imp in order.iter().filter(|_| want("pipelined")) {
            let v = w_pipelined(imp, addr(imp), p.pipelined_n, 64);
            add("pipelined", imp, v);
        }
        for &imp in order
            .iter()
            .filter(|&&i| i != Imp::Tung && want("pipelined"))
        {
            let server = ServerProc::start_batched(imp, server_cpu);
            let v = w_pipelined(imp, server.addr, p.pipelined_n, 64);
            add("pipelined_batched", imp, v);
            let ws = imp == Imp::Sync;
            let v = w_pipelined_batching_client(ws, server.addr, p.pipelined_n, 64);
            add("batching_client_batched", imp, v);
            if imp == Imp::Raw {
                let v = w_pipelined_batching_client(false, addr(Imp::Raw), p.pipelined_n, 64);
                add("batching_client_plain", imp, v);
            }
        }
        for &imp in order.iter().filter(|_| want("mib1")) {
            add("mib1", imp, w_bulk(imp, addr(imp), 1 << 20, p.mib1_reps));
        }
        for &imp in order.iter().filter(|_| want("mib16")) {
            add("mib16", imp, w_bulk(imp, addr(imp), 16 << 20, p.mib16_reps));
        }
        for &imp in order.iter().filter(|_| want("connrate")) {
            add("connrate", imp, w_connrate(imp, addr(imp), p.connrate_n));
        }
        // Client side: both WebSocket clients against the tungstenite server.
        for &imp in order.iter().filter(|&&i| i != Imp::Raw && want("client")) {
            let v = w_latency(imp, addr(Imp::Tung), p.latency_n);
            add("client_latency", imp, v);
            let v = w_bulk(imp, addr(Imp::Tung), 1 << 20, p.mib1_reps);
            add("client_mib1", imp, v);
        }
        drop(servers);
        for &imp in order.iter().filter(|_| want("rss")) {
            add("rss", imp, w_idle_rss(imp, p.idle_n, server_cpu));
        }
        eprintln!(
            "round {}/{} done at {:.0} s",
            round + 1,
            p.rounds,
            started.elapsed().as_secs_f64()
        );
    }

    print_table(&samples);
    print_paired(&samples);
    print_batching(&samples);
    print_samples(&samples);

    if want("allocs") {
        println!(
            "\nallocations per message in this process (client side; counting global allocator):"
        );
        let srv = ServerProc::start(Imp::Sync, server_cpu);
        for (size, label) in [(64usize, "64 B"), (1 << 20, "1 MiB")] {
            let n = if size > 4096 {
                (p.alloc_n / 200).max(4)
            } else {
                p.alloc_n
            };
            for imp in ALL.into_iter().filter(|&i| imp_ok(i)) {
                let server = if imp == Imp::Raw {
                    None
                } else {
                    Some(srv.addr)
                };
                let raw_srv;
                let addr = match server {
                    Some(a) => a,
                    None => {
                        raw_srv = ServerProc::start(Imp::Raw, server_cpu);
                        raw_srv.addr
                    }
                };
                let (r, s) = allocs_per_msg(imp, addr, n, size);
                println!(
                    "  {:<12} {label:>6} messages: recv {r:>5.2} allocs/msg, send {s:>5.2} allocs/msg",
                    imp.name()
                );
            }
        }
    }

    if p.c10k_n > 0 && want("c10k") {
        println!("\n{}", c10k(p.c10k_n, server_cpu));
    }
    println!("\ntotal time {:.0} s", started.elapsed().as_secs_f64());
}
