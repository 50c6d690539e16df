//! permessage-deflate benchmark: throughput and bytes on the wire for JSON-like text with and
//! without compression, and what compression costs in memory per connection.
//!
//! ```text
//! cargo bench --features deflate --bench deflate              # full run, about 40 s
//! cargo bench --features deflate --bench deflate -- --quick   # smoke run, a few seconds
//! ```
//!
//! # What runs where
//!
//! Each server is a child process (this binary re-executed with `SYNCWS_DEFLATE_SERVE=<mode>`)
//! pinned to the last CPU: a syncws echo server with the mode's `Config`. The client runs here,
//! pinned to CPU 0, over a TCP stream that counts the bytes it writes and reads.
//!
//! 1. Throughput: one connection sends a message, waits for the echo and checks it, for about
//!    a second per cell; 64 different JSON-like messages of each size take turns (records with
//!    varying numbers and names, as an API would send). MB/s counts payload bytes one way
//!    (10^6 bytes); "wire" is bytes written by the client over payload bytes sent (headers
//!    and masks included), so 100% means no saving.
//! 2. Memory per connection: a fresh server process; VmRSS before and after N connections
//!    that each did the handshake and echoed one 16 KiB message, then sat idle.
//! 3. Compression state on the heap: a compressor and a decompressor after one 16 KiB message,
//!    measured with a live-bytes allocator in this process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use syncws::proto::deflate::{Compressor, Decompressor};
use syncws::{Client, CloseCode, Config, DeflateConfig, Message, Transport, Url, WebSocket};

const SERVE_ENV: &str = "SYNCWS_DEFLATE_SERVE";
const CPU_ENV: &str = "SYNCWS_DEFLATE_CPU";

// ---------------------------------------------------------------------------------------------
// Live heap bytes, for the size of compression state
// ---------------------------------------------------------------------------------------------

struct Live;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Live {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Live = Live;

// ---------------------------------------------------------------------------------------------
// Modes: what the server (and the client) run with
// ---------------------------------------------------------------------------------------------

/// (key, description, the server's deflate settings, the client's; `None` is no compression).
type Mode = (
    &'static str,
    &'static str,
    Option<DeflateConfig>,
    Option<DeflateConfig>,
);

fn modes() -> Vec<Mode> {
    let takeover = || DeflateConfig::default().no_context_takeover(false);
    let both = |d: DeflateConfig| (Some(d.clone()), Some(d));
    type Row = (
        &'static str,
        &'static str,
        (Option<DeflateConfig>, Option<DeflateConfig>),
    );
    let rows: Vec<Row> = vec![
        ("off", "no compression", (None, None)),
        (
            "l1",
            "deflate, level 1",
            both(DeflateConfig::default().level(1)),
        ),
        (
            "l6",
            "deflate, defaults (level 6, each side no context takeover)",
            both(DeflateConfig::default()),
        ),
        (
            "l6-browser",
            "deflate, default server, client with context takeover (as browsers)",
            (Some(DeflateConfig::default()), Some(takeover())),
        ),
        (
            "l6-ct",
            "deflate, level 6, context takeover both ways (the old default)",
            both(takeover()),
        ),
        (
            "l6-nct",
            "deflate, level 6, no context takeover asked of the peer too",
            both(DeflateConfig::default().peer_no_context_takeover(true)),
        ),
        (
            "l6-w10",
            "deflate, level 6, 10-bit windows, context takeover",
            both(takeover().window_bits(10).peer_window_bits(10)),
        ),
    ];
    rows.into_iter()
        .map(|(k, d, (server, client))| (k, d, server, client))
        .collect()
}

fn mode(key: &str) -> Mode {
    modes()
        .into_iter()
        .find(|m| m.0 == key)
        .unwrap_or_else(|| panic!("unknown mode {key}"))
}

/// The server's config in mode `key`.
fn server_config(key: &str) -> Config {
    let mut config = Config::default();
    config.deflate = mode(key).2;
    config
}

/// The client's config in mode `key`.
fn config_of(key: &str) -> Config {
    let mut config = Config::default();
    config.deflate = mode(key).3;
    config
}

// ---------------------------------------------------------------------------------------------
// Process setup
// ---------------------------------------------------------------------------------------------

#[path = "support/cpu.rs"]
mod cpu;
use cpu::pin_to;

/// The CPU servers run on: the last one, counted before this process pins itself.
fn last_cpu() -> usize {
    static CPU: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPU.get_or_init(|| {
        if let Some(cpu) = std::env::var(CPU_ENV).ok().and_then(|c| c.parse().ok()) {
            return cpu;
        }
        std::thread::available_parallelism().map_or(1, |n| n.get()) - 1
    })
}

/// The child: an echo server for one mode until stdin closes.
fn serve(key: &str) -> ! {
    pin_to(last_cpu());
    let server = syncws::Server::bind("127.0.0.1:0")
        .expect("bind")
        .config(server_config(key))
        .max_connections(100_000);
    println!("PORT {}", server.local_addr().port());
    let handle = server
        .start(|ws| {
            while let Some(msg) = ws.recv()? {
                ws.send(&msg)?;
            }
            Ok(())
        })
        .expect("start");
    // "live" asks for the heap bytes in use; end of input stops the server.
    for line in io::stdin().lock().lines() {
        if line.is_ok_and(|l| l.trim() == "live") {
            println!("LIVE {}", LIVE.load(Ordering::SeqCst));
        }
    }
    handle.shutdown();
    std::process::exit(0);
}

/// A server child process; stops when dropped (its stdin closes).
struct ServerProc {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
    addr: SocketAddr,
}

impl ServerProc {
    fn start(key: &str) -> ServerProc {
        let mut child = Command::new(std::env::current_exe().expect("current_exe"))
            .env(SERVE_ENV, key)
            .env(CPU_ENV, last_cpu().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn server process");
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        out.read_line(&mut line).expect("read port");
        let port: u16 = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("bad line from server: {line:?}"));
        ServerProc {
            child,
            out,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    /// Heap bytes the server holds right now.
    fn live_bytes(&mut self) -> i64 {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "live").expect("ask for live bytes");
        let mut line = String::new();
        self.out.read_line(&mut line).expect("read live bytes");
        line.trim()
            .strip_prefix("LIVE ")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("bad line from server: {line:?}"))
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

impl Drop for ServerProc {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The client side: a counting stream and the workloads
// ---------------------------------------------------------------------------------------------

/// A TCP stream that counts the bytes it writes and reads.
struct Counted {
    tcp: TcpStream,
    written: Arc<AtomicU64>,
    read: Arc<AtomicU64>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.tcp.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.tcp.write(buf)?;
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let n = self.tcp.write_vectored(bufs)?;
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Counted {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp.set_read_timeout(timeout)
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp.set_write_timeout(timeout)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.tcp.shutdown(std::net::Shutdown::Write)
    }
}

struct Conn {
    ws: WebSocket<Counted>,
    written: Arc<AtomicU64>,
    read: Arc<AtomicU64>,
}

fn connect(addr: SocketAddr, key: &str) -> Conn {
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let written = Arc::new(AtomicU64::new(0));
    let read = Arc::new(AtomicU64::new(0));
    let stream = Counted {
        tcp,
        written: Arc::clone(&written),
        read: Arc::clone(&read),
    };
    let url = Url::parse(&format!("ws://{addr}/")).expect("url");
    let ws = Client::builder()
        .config(config_of(key))
        .handshake(stream, &url)
        .expect("handshake");
    assert_eq!(
        ws.compression().is_some(),
        key != "off",
        "negotiation for {key}"
    );
    Conn { ws, written, read }
}

/// JSON-like text: an array of records with varying numbers, names and flags.
fn json_message(size: usize, seed: u32) -> String {
    let names = [
        "ann", "bob", "carla", "dmitri", "eve", "fatima", "gus", "hiro",
    ];
    let cities = ["Lisbon", "Oslo", "Lagos", "Lima", "Osaka", "Perth", "Quito"];
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let mut next = || {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        x >> 8
    };
    let mut s = String::from("[");
    while s.len() < size {
        let (id, score, age) = (next() % 1_000_000, next() % 10_000, 18 + next() % 70);
        s.push_str(&format!(
            "{{\"id\":{id},\"name\":\"{}\",\"city\":\"{}\",\"age\":{age},\"score\":{}.{:02},\"active\":{},\"tags\":[\"t{}\",\"t{}\"]}},",
            names[next() as usize % names.len()],
            cities[next() as usize % cities.len()],
            score / 100,
            score % 100,
            next() % 2 == 0,
            next() % 50,
            next() % 50,
        ));
    }
    s.truncate(size - 1);
    s.push(']');
    s
}

struct Throughput {
    mb_s: f64,
    up_wire: f64,
    down_wire: f64,
}

fn throughput(addr: SocketAddr, key: &str, size: usize, time: Duration) -> Throughput {
    let msgs: Vec<String> = (0..64).map(|i| json_message(size, i)).collect();
    let mut c = connect(addr, key);
    // warm-up: one round of every message
    for m in &msgs {
        c.ws.send(m).expect("send");
        c.ws.recv().expect("recv");
    }
    let (w0, r0) = (
        c.written.load(Ordering::Relaxed),
        c.read.load(Ordering::Relaxed),
    );
    let start = Instant::now();
    let mut bytes = 0u64;
    let mut i = 0;
    while start.elapsed() < time {
        let m = &msgs[i % msgs.len()];
        c.ws.send(m).expect("send");
        match c.ws.recv().expect("recv") {
            Some(Message::Text(t)) if t == *m => {}
            other => panic!("bad echo: {:?}", other.map(|m| m.len())),
        }
        bytes += m.len() as u64;
        i += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let up = c.written.load(Ordering::Relaxed) - w0;
    let down = c.read.load(Ordering::Relaxed) - r0;
    c.ws.close(CloseCode::NORMAL, "").expect("close");
    Throughput {
        mb_s: bytes as f64 / secs / 1e6,
        up_wire: up as f64 / bytes as f64,
        down_wire: down as f64 / bytes as f64,
    }
}

/// (RSS, heap) growth per connection, in KiB.
fn memory_per_connection(key: &str, n: usize) -> (f64, f64) {
    let mut server = ServerProc::start(key);
    let msg = json_message(16 << 10, 99);
    // one connection first, so the process's one-time costs are paid before measuring
    let mut warm = connect(server.addr, key);
    warm.ws.send(&msg).expect("send");
    warm.ws.recv().expect("recv");
    std::thread::sleep(Duration::from_millis(200));
    let before = server.rss_kib();
    let heap_before = server.live_bytes();
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut c = connect(server.addr, key);
        c.ws.send(&msg).expect("send");
        assert!(c.ws.recv().expect("recv").is_some());
        conns.push(c);
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = server.rss_kib();
    let heap_after = server.live_bytes();
    drop(conns);
    (
        after.saturating_sub(before) as f64 / n as f64,
        (heap_after - heap_before) as f64 / 1024.0 / n as f64,
    )
}

/// Heap bytes held by a compressor and a decompressor after one 16 KiB message.
fn state_bytes(window_bits: u8) -> (isize, isize) {
    let msg = json_message(16 << 10, 5);
    let before = LIVE.load(Ordering::SeqCst);
    let mut c = Compressor::new(window_bits, 6, false);
    let mut z = Vec::with_capacity(32 << 10);
    c.compress(msg.as_bytes(), true, &mut z).expect("compress");
    let after_z = LIVE.load(Ordering::SeqCst);
    let mut d = Decompressor::new(window_bits, false);
    let mut out = Vec::with_capacity(32 << 10);
    d.inflate(&z, &mut out, usize::MAX).expect("inflate");
    d.finish(&mut out, usize::MAX).expect("finish");
    let after_d = LIVE.load(Ordering::SeqCst);
    let z_cap = z.capacity() as isize;
    let out_cap = out.capacity() as isize;
    let sizes = (after_z - before - z_cap, after_d - after_z - out_cap);
    drop((c, d, z, out));
    sizes
}

fn main() {
    if let Ok(key) = std::env::var(SERVE_ENV) {
        serve(&key);
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let _ = last_cpu();
    pin_to(0);
    let time = Duration::from_millis(if quick { 150 } else { 1000 });
    let sizes = [1usize << 10, 16 << 10, 256 << 10];

    println!("permessage-deflate: echo of JSON-like text, one connection, client pinned to CPU 0,");
    println!(
        "server process to CPU {}; {} per cell",
        last_cpu(),
        fmt_dur(time)
    );
    println!();
    println!("| mode | message | MB/s | vs off | wire up | wire down | ratio |");
    println!("|---|---|---|---|---|---|---|");
    for &size in &sizes {
        let mut off = None;
        for (key, desc, _, _) in modes() {
            let server = ServerProc::start(key);
            let t = throughput(server.addr, key, size, time);
            let base = *off.get_or_insert(t.mb_s);
            println!(
                "| {desc} | {} KiB | {:.0} | {:.2} | {:.1}% | {:.1}% | {:.1} |",
                size >> 10,
                t.mb_s,
                t.mb_s / base,
                t.up_wire * 100.0,
                t.down_wire * 100.0,
                1.0 / t.up_wire
            );
        }
    }

    levels(time);

    let n = if quick { 20 } else { 300 };
    println!();
    println!("server memory per idle connection after one 16 KiB echo (VmRSS, {n} connections)");
    println!();
    println!("| mode | RSS KiB per connection | heap KiB per connection |");
    println!("|---|---|---|");
    for (key, desc, _, _) in modes() {
        if key == "l1" {
            continue;
        }
        let (rss, heap) = memory_per_connection(key, n);
        println!("| {desc} | {rss:.1} | {heap:.1} |");
    }

    println!();
    println!("compression state on the heap after one 16 KiB message (live-bytes allocator)");
    println!();
    println!("| window | compressor | decompressor |");
    println!("|---|---|---|");
    for bits in [15u8, 12, 10, 9] {
        let (c, d) = state_bytes(bits);
        println!(
            "| {bits} bits | {:.1} KiB | {:.1} KiB |",
            c as f64 / 1024.0,
            d as f64 / 1024.0
        );
    }
}

/// Compression alone, in this thread: MB/s of input and output/input for every level.
fn levels(time: Duration) {
    let msgs: Vec<String> = (0..64).map(|i| json_message(16 << 10, i)).collect();
    println!();
    println!("compression alone by level: 16 KiB JSON-like messages, context takeover, one core");
    println!();
    println!("| level | compress MB/s | inflate MB/s | wire |");
    println!("|---|---|---|---|");
    for level in 1..=9u32 {
        let mut c = Compressor::new(15, level, false);
        let mut out = Vec::with_capacity(32 << 10);
        let mut wire: Vec<Vec<u8>> = Vec::new();
        let (mut bytes, mut zbytes) = (0u64, 0u64);
        let start = Instant::now();
        let mut i = 0;
        while start.elapsed() < time || i < msgs.len() {
            let m = &msgs[i % msgs.len()];
            out.clear();
            c.compress(m.as_bytes(), true, &mut out).expect("compress");
            bytes += m.len() as u64;
            zbytes += out.len() as u64;
            if wire.len() < 256 {
                wire.push(out.clone());
            }
            i += 1;
        }
        let compress = bytes as f64 / start.elapsed().as_secs_f64() / 1e6;
        // The first messages again, in order, each round from a fresh decompressor (they
        // refer back to each other).
        let mut plain = Vec::with_capacity(32 << 10);
        let (mut inflated, mut rounds) = (0u64, 0);
        let start = Instant::now();
        while start.elapsed() < time / 2 || rounds == 0 {
            let mut d = Decompressor::new(15, false);
            for z in &wire {
                plain.clear();
                d.inflate(z, &mut plain, usize::MAX).expect("inflate");
                d.finish(&mut plain, usize::MAX).expect("finish");
                inflated += plain.len() as u64;
            }
            rounds += 1;
        }
        let inflate = inflated as f64 / start.elapsed().as_secs_f64() / 1e6;
        println!(
            "| {level} | {compress:.0} | {inflate:.0} | {:.1}% |",
            zbytes as f64 * 100.0 / bytes as f64
        );
    }
}

fn fmt_dur(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}
