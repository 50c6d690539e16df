//! Fan-out benchmark (issue 18): one room, many members, a publisher at a steady rate; with every
//! member reading, and with some members that never read. Prints delivery latency at the healthy
//! members, the publish call's latency, server threads and RSS, for the `Hub` and, as the
//! reference, the older `Broadcast`.
//!
//! ```text
//! cargo bench --bench fanout                    # 2,000 members, 40 stalled, 10 msg/s of 1 KiB, 30 s
//! cargo bench --bench fanout -- --quick         # 200 members, 4 stalled, 5 s: a smoke run
//! cargo bench --bench fanout -- --members 500 --stalled 10 --seconds 10 --rate 20 --size 4096
//! cargo bench --all-features --bench fanout -- --deflate shared   # compressed once per publish
//! cargo bench --all-features --bench fanout -- --deflate own      # compressed once per member
//! bash scripts/fanout_bench.sh [ARGS]    # the same, plus Python websockets as a reference
//! ```
//!
//! `--python PATH` adds two rows for Python `websockets` (its sync server, no compression):
//! `scripts/fanout_python.py` run by that interpreter, publishing the same stamped messages at
//! the same rate through a thread pool, to the same member process. `scripts/fanout_bench.sh`
//! installs websockets into a virtual environment and passes it.
//!
//! With `--deflate` every connection negotiates permessage-deflate, the payload after the two
//! stamps is JSON-like text, and the "CPU/pub" column gives the server process's CPU time
//! (all threads, `getrusage`) over the publishing phase divided by the publishes. `shared` is
//! the default `DeflateConfig` (our side without context takeover: the hub compresses once per
//! publish); `own` keeps the context (`no_context_takeover(false)`: each member compresses for
//! itself, on the flusher threads; `Broadcast` compresses for each member in the publisher).
//!
//! The server runs in this process, pinned to CPU 0; the members are threads of a child process
//! (this binary re-executed with `SYNCWS_FANOUT_CLIENT=ADDR`), pinned to the last CPU. Each
//! message carries its number and the wall-clock time it was due (so a publisher held up by a
//! slow member shows in every later message's latency); a member records
//! `now - then` for each message and checks that the numbers come in order without a gap. A
//! stalled member upgrades, shrinks its receive buffer to 4 KiB and never reads, so its share
//! fills the server's socket buffer and its backlog within seconds; the hub's backlog is 64 KiB
//! here (1 KiB messages at 10/s would take minutes to fill the 1 MiB default). The `Broadcast`
//! server uses a 1 s write timeout, as the chat example did.

#[path = "support/cpu.rs"]
mod cpu;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use syncws::{Broadcast, Client, Config, Hub, Message, Server};

const CLIENT_ENV: &str = "SYNCWS_FANOUT_CLIENT";

#[derive(Clone, Copy)]
struct Load {
    members: usize,
    stalled: usize,
    rate: u32,
    size: usize,
    seconds: u64,
    deflate: Deflate,
}

/// What the connections negotiate (see the module docs).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Deflate {
    Off,
    Shared,
    Own,
}

impl Deflate {
    fn name(self) -> &'static str {
        match self {
            Deflate::Off => "off",
            Deflate::Shared => "shared",
            Deflate::Own => "own",
        }
    }

    fn parse(s: &str) -> Deflate {
        match s {
            "off" => Deflate::Off,
            "shared" => Deflate::Shared,
            "own" => Deflate::Own,
            other => panic!("--deflate takes off, shared or own, not {other}"),
        }
    }

    /// The server's config (write timeout as the chat example's) for this mode.
    fn server_config(self) -> Config {
        let config = Config::default().write_timeout(Some(Duration::from_secs(1)));
        match self {
            Deflate::Off => config,
            #[cfg(feature = "deflate")]
            Deflate::Shared => config.deflate(Some(syncws::DeflateConfig::default())),
            #[cfg(feature = "deflate")]
            Deflate::Own => config.deflate(Some(
                syncws::DeflateConfig::default().no_context_takeover(false),
            )),
            #[cfg(not(feature = "deflate"))]
            _ => panic!("--deflate needs the deflate feature (cargo bench --all-features)"),
        }
    }

    /// The members' config: compression offered (with context takeover, as browsers) or not.
    fn client_config(self) -> Config {
        match self {
            Deflate::Off => Config::default(),
            #[cfg(feature = "deflate")]
            _ => Config::default().deflate(Some(
                syncws::DeflateConfig::default().no_context_takeover(false),
            )),
            #[cfg(not(feature = "deflate"))]
            _ => unreachable!("refused by server_config"),
        }
    }
}

fn main() {
    if let Ok(spec) = std::env::var(CLIENT_ENV) {
        return client(&spec);
    }
    let mut load = Load {
        members: 2000,
        stalled: 40,
        rate: 10,
        size: 1024,
        seconds: 30,
        deflate: Deflate::Off,
    };
    let mut python = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .expect("a value")
                .parse::<u64>()
                .expect("a number")
        };
        match a.as_str() {
            "--quick" => {
                load.members = 200;
                load.stalled = 4;
                load.seconds = 5;
            }
            "--members" => load.members = value() as usize,
            "--stalled" => load.stalled = value() as usize,
            "--rate" => load.rate = value() as u32,
            "--size" => load.size = (value() as usize).max(16),
            "--seconds" => load.seconds = value(),
            "--deflate" => load.deflate = Deflate::parse(&args.next().expect("a mode")),
            "--python" => python = Some(args.next().expect("a path")),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    cpu::pin_to(0);
    println!(
        "fan-out: {} members, {} msg/s of {} B for {} s, deflate {}; healthy members' delivery \
         latency and the publish call (ms)",
        load.members,
        load.rate,
        load.size,
        load.seconds,
        load.deflate.name()
    );
    println!(
        "{:<10} {:>7} {:>22} {:>22} {:>8} {:>8} {:>7} {:>9} {:>9} {:>9}",
        "impl",
        "stalled",
        "delivery p50/p99/max",
        "publish p50/p99/max",
        "lost",
        "dropped",
        "threads",
        "RSS MiB",
        "CPU/pub",
        "preempted"
    );
    for imp in ["hub", "broadcast"] {
        for stalled in [0, load.stalled] {
            run(imp, Load { stalled, ..load });
        }
    }
    if let Some(python) = python {
        assert_eq!(
            load.deflate,
            Deflate::Off,
            "the Python reference runs uncompressed"
        );
        for stalled in [0, load.stalled] {
            run_python(&python, Load { stalled, ..load });
        }
    }
}

/// The Python reference: its own server process, the same member process.
fn run_python(python: &str, load: Load) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/fanout_python.py");
    let mut server = Command::new(python)
        .arg(script)
        .args(
            [
                load.members,
                load.stalled,
                load.rate as usize,
                load.size,
                load.seconds as usize,
            ]
            .map(|n| n.to_string()),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the Python server");
    let mut out = BufReader::new(server.stdout.take().unwrap()).lines();
    let first = out.next().expect("the Python server's port").unwrap();
    let port: u16 = first
        .strip_prefix("listening ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected: {first}"));
    let mut child = member_process(&format!("127.0.0.1:{port}").parse().unwrap(), load);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut field = |name: &str| -> Vec<u64> {
        let line = out.next().expect("a line").unwrap();
        let rest = line
            .strip_prefix(name)
            .unwrap_or_else(|| panic!("expected {name}, got {line}"));
        rest.split_whitespace()
            .map(|f| f.parse().unwrap())
            .collect()
    };
    let pub_us = field("publish");
    let stats = field("stats");
    let report = lines.next().expect("a report").unwrap();
    let mut fields = report.split_whitespace().map(|f| f.parse::<u64>().unwrap());
    let (_delivered, lost) = (fields.next().unwrap(), fields.next().unwrap());
    let lat: Vec<u64> = fields.collect();
    let _ = child.wait();
    drop(server.stdin.take());
    let _ = server.wait();
    print_row(Row {
        imp: "python",
        stalled: load.stalled,
        lat,
        pub_us,
        lost,
        dropped: 0,
        threads: stats[0] as usize,
        rss_kib: stats[1],
        cpu: None,
        preempted: None,
    });
}

/// The member process for a server at `addr`.
fn member_process(addr: &SocketAddr, load: Load) -> std::process::Child {
    let exe = std::env::current_exe().unwrap();
    let last_cpu = thread::available_parallelism().map_or(1, |n| n.get()) - 1;
    Command::new(exe)
        .env(
            CLIENT_ENV,
            format!(
                "{addr} {} {} {last_cpu} {}",
                load.members,
                load.stalled,
                load.deflate.name()
            ),
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// One run: a fresh server and a fresh client process.
fn run(imp: &str, load: Load) {
    let joined = Arc::new(AtomicUsize::new(0));
    let hub = Hub::builder().backlog(64 << 10).build().unwrap();
    let broadcast = Arc::new(Broadcast::new());
    let config = load.deflate.server_config();
    let server = Server::bind("127.0.0.1:0")
        .unwrap()
        .config(config)
        .max_connections(load.members + load.stalled + 100);
    let addr = server.local_addr();
    let handle = {
        let (hub, broadcast, joined) = (hub.clone(), Arc::clone(&broadcast), Arc::clone(&joined));
        let imp = imp.to_owned();
        server
            .start(move |ws| {
                let (mut reader, writer) = ws.split()?;
                if imp == "hub" {
                    hub.join("room", &writer)?;
                } else {
                    broadcast.add(writer);
                }
                joined.fetch_add(1, Ordering::SeqCst);
                while reader.recv()?.is_some() {}
                Ok(())
            })
            .unwrap()
    };
    let mut child = member_process(&addr, load);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let total = load.members + load.stalled;
    let deadline = Instant::now() + Duration::from_secs(120);
    while joined.load(Ordering::SeqCst) < total {
        assert!(Instant::now() < deadline, "members did not join");
        thread::sleep(Duration::from_millis(20));
    }

    let mut publish = Vec::new();
    let count = load.rate as u64 * load.seconds;
    let period = Duration::from_secs(1) / load.rate;
    let start = Instant::now();
    let wall_start = now_nanos();
    let mut dropped = 0;
    let mut preempted = 0;
    let cpu_start = cpu_time();
    for seq in 0..count {
        let due = start + period * seq as u32;
        thread::sleep(due.saturating_duration_since(Instant::now()));
        let mut msg = payload(seq, load.size, load.deflate != Deflate::Off);
        msg[..8].copy_from_slice(&seq.to_be_bytes());
        // Stamped with the time it was due: a publisher held up by a member delays every later
        // message, and that counts as delivery latency.
        let due_wall = wall_start + (period * seq as u32).as_nanos() as u64;
        msg[8..16].copy_from_slice(&due_wall.to_be_bytes());
        let switches = involuntary_switches();
        let began = Instant::now();
        if imp == "hub" {
            let d = hub.publish("room", &msg[..]);
            dropped += d.dropped + d.disconnected;
        } else {
            broadcast.send(&msg[..]);
        }
        publish.push(began.elapsed());
        if involuntary_switches() != switches {
            preempted += 1;
        }
    }
    let cpu_per_publish = (cpu_time() - cpu_start) / count.max(1) as u32;
    let threads = std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count());
    let rss = rss_kib();
    let end = format!("end {count}");
    if imp == "hub" {
        hub.publish("room", end);
    } else {
        broadcast.send(end);
    }
    // The client prints one line: delivered, lost (gaps), then latencies in microseconds.
    let report = lines.next().expect("a report").unwrap();
    let mut fields = report.split_whitespace().map(|f| f.parse::<u64>().unwrap());
    let (_delivered, lost) = (fields.next().unwrap(), fields.next().unwrap());
    let lat: Vec<u64> = fields.collect();
    let _ = child.wait();
    handle.shutdown();
    let pub_us: Vec<u64> = publish.iter().map(|d| d.as_micros() as u64).collect();
    print_row(Row {
        imp,
        stalled: load.stalled,
        lat,
        pub_us,
        lost,
        dropped: dropped as u64,
        threads,
        rss_kib: rss,
        cpu: Some(cpu_per_publish),
        preempted: Some(preempted),
    });
}

/// One line of the table.
struct Row<'a> {
    imp: &'a str,
    stalled: usize,
    /// Healthy members' delivery latencies, µs.
    lat: Vec<u64>,
    /// Publish calls, µs.
    pub_us: Vec<u64>,
    lost: u64,
    dropped: u64,
    threads: usize,
    rss_kib: u64,
    cpu: Option<Duration>,
    /// Publish calls during which the publishing thread was switched out against its will
    /// (another thread took its CPU): their time is the scheduler's, not the hub's.
    preempted: Option<u64>,
}

fn print_row(mut r: Row<'_>) {
    r.lat.sort_unstable();
    r.pub_us.sort_unstable();
    let p = |v: &[u64], q: f64| {
        v.get(((v.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0)
    };
    let ms = |us: u64| us as f64 / 1000.0;
    let spread = |v: &[u64], digits: usize| {
        format!(
            "{:.*}/{:.*}/{:.*}",
            digits,
            ms(p(v, 0.5)),
            digits,
            ms(p(v, 0.99)),
            digits,
            ms(p(v, 1.0))
        )
    };
    println!(
        "{:<10} {:>7} {:>22} {:>22} {:>8} {:>8} {:>7} {:>9.1} {:>9} {:>9}",
        r.imp,
        r.stalled,
        spread(&r.lat, 2),
        spread(&r.pub_us, 3),
        r.lost,
        r.dropped,
        r.threads,
        r.rss_kib as f64 / 1024.0,
        r.cpu.map_or("-".to_owned(), |c| format!(
            "{:.3} ms",
            c.as_secs_f64() * 1000.0
        )),
        r.preempted.map_or("-".to_owned(), |n| format!(
            "{:.1}%",
            100.0 * n as f64 / r.pub_us.len().max(1) as f64
        ))
    );
}

/// A message of `size` bytes: 16 bytes of stamps (filled in by the caller), then zeros, or
/// JSON-like records when the run compresses (zeros would cost the compressor nothing).
fn payload(seq: u64, size: usize, json: bool) -> Vec<u8> {
    let mut msg = vec![0u8; size];
    if json {
        let mut text = String::new();
        let mut i = seq;
        while text.len() < size {
            i = i.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            text.push_str(&format!(
                "{{\"id\":{},\"price\":{}.{:02},\"side\":\"{}\"}},",
                i >> 44,
                (i >> 20) % 10_000,
                (i >> 8) % 100,
                if i & 1 == 0 { "buy" } else { "sell" }
            ));
        }
        msg[16..].copy_from_slice(&text.as_bytes()[..size - 16]);
    }
    msg
}

/// CPU time this process has used, all threads, user and system.
fn cpu_time() -> Duration {
    let usage = rusage(libc::RUSAGE_SELF);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// How often the calling thread has been switched out against its will so far.
fn involuntary_switches() -> i64 {
    rusage(libc::RUSAGE_THREAD).ru_nivcsw
}

/// `getrusage(who)`: the process's (`RUSAGE_SELF`) or the calling thread's usage.
fn rusage(who: libc::c_int) -> libc::rusage {
    // SAFETY: getrusage writes one rusage into the struct it is given.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut usage);
        usage
    }
}

/// The member side: `ADDR MEMBERS STALLED CPU DEFLATE`. Prints one line once every reading member saw
/// the end: how many messages were delivered, how many were missing, and every latency in µs.
fn client(spec: &str) {
    let parts: Vec<&str> = spec.split_whitespace().collect();
    let addr: SocketAddr = parts[0].parse().unwrap();
    let (members, stalled): (usize, usize) = (parts[1].parse().unwrap(), parts[2].parse().unwrap());
    cpu::pin_to(parts[3].parse().unwrap());
    let config = Deflate::parse(parts[4]).client_config();
    let results = Arc::new(Mutex::new((0u64, 0u64, Vec::<u64>::new())));
    let readers: Vec<_> = (0..members)
        .map(|_| {
            let results = Arc::clone(&results);
            let mut ws = Client::builder()
                .no_proxy()
                .config(config.clone())
                .connect(&format!("ws://{addr}/"))
                .unwrap();
            thread::Builder::new()
                .stack_size(128 << 10)
                .spawn(move || {
                    let (mut next, mut lost, mut lat) = (0u64, 0u64, Vec::new());
                    // Until the text that ends the run (or the connection ends).
                    while let Ok(Some(Message::Binary(b))) = ws.recv() {
                        let seq = u64::from_be_bytes(b[..8].try_into().unwrap());
                        let sent = u64::from_be_bytes(b[8..16].try_into().unwrap());
                        lost += seq.saturating_sub(next);
                        next = seq + 1;
                        lat.push(now_nanos().saturating_sub(sent) / 1000);
                    }
                    let mut r = results.lock().unwrap();
                    r.0 += lat.len() as u64;
                    r.1 += lost;
                    r.2.extend(lat);
                })
                .unwrap()
        })
        .collect();
    let silent: Vec<TcpStream> = (0..stalled).map(|_| stalled_member(addr)).collect();
    for r in readers {
        let _ = r.join();
    }
    drop(silent);
    let r = results.lock().unwrap();
    let mut out = format!("{} {}", r.0, r.1);
    for l in &r.2 {
        out.push(' ');
        out.push_str(&l.to_string());
    }
    println!("{out}");
}

/// Upgrades by hand, shrinks the receive buffer, and never reads again.
fn stalled_member(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    let small: libc::c_int = 4096;
    // SAFETY: a valid socket and an int option of the size given.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &small as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    s
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
