//! Stress, faults and hostile input against a syncws server in its own process, whose threads,
//! file descriptors and memory are read from `/proc` after each check.
//!
//! ```text
//! cargo test --test stress                      # the fast part (also part of `cargo test`)
//! cargo test --release --test stress -- --full  # everything at full size (scripts/stress.sh)
//! ```
//!
//! The server is this binary re-executed with `SYNCWS_STRESS_SERVE=1`: an echo server on
//! 127.0.0.1 (path `/panic` panics after its first message), with short timeouts so faults are
//! cleaned up quickly: handshake 2 s, write 2 s, close 1 s, frames up to 1 MiB, messages up to
//! 4 MiB. It prints its port, and shuts down (`ServerHandle::shutdown`) when its stdin closes.
//! Every check ends by waiting until the server's thread and descriptor counts are back at their
//! baseline. A table of what was tried and the outcome is printed; any failure exits non-zero.
//! Loopback only; every loop is bounded in count and time.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use support::{Frame, Len, RawConn, upgrade_request};
use syncws::{Client, CloseCode, Config, Message, Server};

// ------------------------------------------------------------------ the server process

fn server_config() -> Config {
    Config::default()
        .handshake_timeout(Duration::from_secs(2))
        .write_timeout(Some(Duration::from_secs(2)))
        .close_timeout(Duration::from_secs(1))
        .max_frame_size(1 << 20)
        .max_message_size(4 << 20)
}

fn serve() -> ! {
    raise_nofile();
    // The deliberate panics of `/panic` handlers are expected; say nothing about them.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let deliberate = info
            .payload()
            .downcast_ref::<&str>()
            .is_some_and(|m| m.contains("on purpose"));
        if !deliberate {
            default_hook(info);
        }
    }));
    let server = Server::bind("127.0.0.1:0")
        .unwrap()
        .config(server_config())
        .thread_stack_size(256 << 10)
        .shutdown_timeout(Duration::from_secs(3));
    let port = server.local_addr().port();
    let handle = server
        .start(|ws| {
            let panics = ws.request().is_some_and(|r| r.path() == "/panic");
            while let Some(msg) = ws.recv()? {
                if panics {
                    panic!("a handler panics on purpose (stress test)");
                }
                ws.send(msg)?;
            }
            Ok(())
        })
        .unwrap();
    println!("{port}");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    handle.shutdown();
    println!("stopped");
    std::process::exit(0)
}

struct ServerProc {
    child: Child,
    addr: SocketAddr,
    out: BufReader<std::process::ChildStdout>,
}

impl ServerProc {
    fn start() -> ServerProc {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env("SYNCWS_STRESS_SERVE", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let port: u16 = line.trim().parse().expect("server printed its port");
        ServerProc {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            out,
        }
    }

    fn status_field(&self, name: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()));
        status
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    fn threads(&self) -> u64 {
        self.status_field("Threads:")
    }

    fn rss_kib(&self) -> u64 {
        self.status_field("VmRSS:")
    }

    fn fds(&self) -> u64 {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count() as u64)
            .unwrap_or(0)
    }

    /// Threads and descriptors now.
    fn usage(&self) -> (u64, u64) {
        (self.threads(), self.fds())
    }

    /// Waits (up to `within`) for threads and descriptors to return to `baseline`.
    fn settles_to(&self, baseline: (u64, u64), within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            let now = self.usage();
            if now.0 <= baseline.0 && now.1 <= baseline.1 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "threads/fds {}/{} after {within:?}, baseline {}/{}",
                    now.0, now.1, baseline.0, baseline.1
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Closes stdin (the shutdown signal) and waits for the process to say it stopped.
    fn shutdown(mut self, within: Duration) -> Result<Duration, String> {
        let started = Instant::now();
        drop(self.child.stdin.take());
        let mut line = String::new();
        let _ = self.out.read_line(&mut line);
        let took = started.elapsed();
        let _ = self.child.wait();
        if line.trim() != "stopped" {
            return Err(format!("server said {line:?} instead of stopped"));
        }
        if took > within {
            return Err(format!("shutdown took {took:?}"));
        }
        Ok(took)
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn raise_nofile() {
    // SAFETY: rlimit is plain data passed by pointer.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// Makes `drop` send a TCP reset instead of a FIN.
fn reset_on_drop(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

// ------------------------------------------------------------------ checks

struct Sizes {
    faults_each: usize,
    stalled: usize,
    load_conns: usize,
    load_msgs: usize,
    idle_conns: usize,
}

const FAST: Sizes = Sizes {
    faults_each: 20,
    stalled: 200,
    load_conns: 50,
    load_msgs: 100,
    idle_conns: 0,
};

const FULL: Sizes = Sizes {
    faults_each: 200,
    stalled: 1000,
    load_conns: 1000,
    load_msgs: 1000,
    idle_conns: 10_000,
};

type Outcome = Result<String, String>;

/// A client that echoes `n` messages on a fresh connection, checking each.
fn echo_client(addr: SocketAddr, n: usize) -> Result<(), String> {
    let mut ws = Client::builder()
        .no_proxy()
        .connect(&format!("ws://{addr}/"))
        .map_err(|e| e.to_string())?;
    for i in 0..n {
        let msg = format!("echo {i}");
        ws.send(msg.as_str()).map_err(|e| e.to_string())?;
        match ws.recv_timeout(Duration::from_secs(10)) {
            Ok(Some(Message::Text(t))) if t == msg => {}
            other => return Err(format!("message {i}: {other:?}")),
        }
    }
    ws.close(CloseCode::NORMAL, "").map_err(|e| e.to_string())
}

/// Clients that break off in one state, each `n` times, with a FIN or a reset.
fn faults(srv: &ServerProc, n: usize) -> Outcome {
    let base = srv.usage();
    type Act<'a> = &'a dyn Fn(&mut RawConn);
    let states: [(&str, Act); 4] = [
        ("mid-handshake", &|_| {}),
        ("mid-frame", &|c: &mut RawConn| {
            let bytes = Frame::text(vec![b'x'; 1000]).to_bytes();
            c.write_raw(&bytes[..bytes.len() / 2]);
        }),
        ("mid-close", &|c: &mut RawConn| {
            c.send(&Frame::close(1000, "bye"));
        }),
        ("mid-message", &|c: &mut RawConn| {
            c.send(&Frame::text("part").fin(false));
        }),
    ];
    let mut done = 0;
    for reset in [false, true] {
        for (name, act) in &states {
            for _ in 0..n {
                if *name == "mid-handshake" {
                    let mut tcp = TcpStream::connect(srv.addr).map_err(|e| e.to_string())?;
                    let req = upgrade_request("/");
                    tcp.write_all(&req.as_bytes()[..req.len() / 2])
                        .map_err(|e| e.to_string())?;
                    if reset {
                        reset_on_drop(&tcp);
                    }
                    drop(tcp);
                } else {
                    let mut conn = RawConn::connect(srv.addr);
                    act(&mut conn);
                    if reset {
                        reset_on_drop(&conn.stream);
                    }
                    drop(conn);
                }
                done += 1;
            }
        }
    }
    srv.settles_to(base, Duration::from_secs(8))?;
    Ok(format!(
        "{done} clients died mid-handshake/frame/message/close, half by reset; threads and fds back to {}/{}",
        base.0, base.1
    ))
}

fn panicking_handlers(srv: &ServerProc, n: usize) -> Outcome {
    let base = srv.usage();
    let addr = srv.addr;
    let healthy: Vec<_> = (0..n)
        .map(|_| thread::spawn(move || echo_client(addr, 50)))
        .collect();
    let mut codes = Vec::new();
    for _ in 0..n {
        let mut ws = Client::builder()
            .no_proxy()
            .connect(&format!("ws://{addr}/panic"))
            .map_err(|e| e.to_string())?;
        ws.send("boom").map_err(|e| e.to_string())?;
        let _ = ws.recv_timeout(Duration::from_secs(5));
        codes.push(ws.close_frame().map(|f| f.code.0));
    }
    for h in healthy {
        h.join().map_err(|_| "client panicked".to_owned())??;
    }
    if codes.iter().any(|c| *c != Some(1011)) {
        return Err(format!("panicking handlers closed with {codes:?}"));
    }
    srv.settles_to(base, Duration::from_secs(5))?;
    Ok(format!(
        "{n} handlers panicked (each closed 1011) while {n} clients echoed 50 messages each without error"
    ))
}

/// Sends `head` and returns the status line's code.
fn status_of(addr: SocketAddr, head: Vec<u8>) -> Result<String, String> {
    let mut tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut writer = tcp.try_clone().map_err(|e| e.to_string())?;
    // The server answers after reading its limit, so write from another thread.
    let w = thread::spawn(move || {
        let _ = writer.write_all(&head);
    });
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
    let _ = tcp.shutdown(Shutdown::Both);
    let _ = w.join();
    let text = String::from_utf8_lossy(&got);
    Ok(text.split(' ').nth(1).unwrap_or("(none)").to_owned())
}

fn hostile_heads(srv: &ServerProc) -> Outcome {
    let base = srv.usage();
    let mut many = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..10_000 {
        many.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let got_many = status_of(srv.addr, many)?;
    let mut big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big.resize(big.len() + (1 << 20), b'a');
    big.extend_from_slice(b"\r\n\r\n");
    let got_big = status_of(srv.addr, big)?;
    if got_many != "431" || got_big != "431" {
        return Err(format!(
            "10,000 headers -> {got_many}, 1 MB header -> {got_big}"
        ));
    }
    srv.settles_to(base, Duration::from_secs(5))?;
    Ok("10,000 headers -> 431; one 1 MB header -> 431".to_owned())
}

fn hostile_frames(srv: &ServerProc) -> Outcome {
    let base = srv.usage();
    let rss_before = srv.rss_kib();
    let mut results = Vec::new();
    for (what, len, want) in [
        ("2^63 bytes", Len::Ext64(1 << 63), 1002),
        ("2^63-1 bytes", Len::Ext64((1 << 63) - 1), 1009),
        ("2^62 bytes", Len::Ext64(1 << 62), 1009),
    ] {
        let mut c = RawConn::connect(srv.addr);
        c.send(&Frame::binary("x").len(len));
        let code = c.expect_close();
        if code != Some(want) {
            return Err(format!(
                "frame claiming {what}: closed with {code:?}, want {want}"
            ));
        }
        results.push(format!("{what} -> {want}"));
    }
    // Maximum-size frames (1 MiB) continuing one message past the 4 MiB message limit, on 8
    // connections at once.
    let rss_peak = Arc::new(AtomicUsize::new(0));
    let conns: Vec<_> = (0..8)
        .map(|_| {
            let addr = srv.addr;
            thread::spawn(move || {
                let mut c = RawConn::connect(addr);
                let chunk = vec![7u8; 1 << 20];
                c.send(&Frame::binary(&chunk).fin(false));
                for _ in 0..6 {
                    c.send(&Frame::cont(&chunk).fin(false));
                }
                c.expect_close()
            })
        })
        .collect();
    for _ in 0..20 {
        rss_peak.fetch_max(srv.rss_kib() as usize, Ordering::SeqCst);
        thread::sleep(Duration::from_millis(10));
    }
    for c in conns {
        let code = c.join().map_err(|_| "client panicked")?;
        if code != Some(1009) {
            return Err(format!("max-size frames past the message limit: {code:?}"));
        }
    }
    let peak = rss_peak.load(Ordering::SeqCst) as u64;
    srv.settles_to(base, Duration::from_secs(5))?;
    results.push(format!(
        "8 x seven 1 MiB frames of one message -> 1009 each, server RSS {} -> peak {} MiB (limit 4 MiB/message)",
        rss_before / 1024,
        peak / 1024
    ));
    if peak > rss_before + 8 * 6 * 1024 + 64 * 1024 {
        return Err(format!("RSS grew to {peak} KiB"));
    }
    Ok(results.join("; "))
}

fn stalled_handshakes(srv: &ServerProc, n: usize) -> Outcome {
    let base = srv.usage();
    let mut stalled = Vec::with_capacity(n);
    for _ in 0..n {
        let mut tcp = TcpStream::connect(srv.addr).map_err(|e| e.to_string())?;
        tcp.write_all(b"GET / HTTP/1.1\r\n")
            .map_err(|e| e.to_string())?;
        stalled.push(tcp);
    }
    let started = Instant::now();
    echo_client(srv.addr, 20)?;
    let healthy = started.elapsed();
    // The handshake deadline (2 s) frees them all.
    srv.settles_to(base, Duration::from_secs(6))?;
    let freed = started.elapsed();
    drop(stalled);
    Ok(format!(
        "{n} stalled handshakes: a healthy client echoed 20 messages in {} ms meanwhile; all freed after {:.1} s",
        healthy.as_millis(),
        freed.as_secs_f64()
    ))
}

fn ping_flood(srv: &ServerProc) -> Outcome {
    let base = srv.usage();
    let rss_before = srv.rss_kib();
    let mut c = RawConn::connect(srv.addr);
    let ping = Frame::ping(vec![1u8; 125]).to_bytes();
    let burst: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 512)
        .collect();
    let started = Instant::now();
    let mut sent = 0usize;
    let mut peak = 0;
    c.stream
        .set_write_timeout(Some(Duration::from_secs(1)))
        .ok();
    // Write pings and never read the pongs, for at most 6 s.
    let mut cut_off = None;
    while started.elapsed() < Duration::from_secs(6) {
        if c.stream.write_all(&burst).is_err() {
            cut_off = Some(started.elapsed());
            break;
        }
        sent += 512;
        peak = peak.max(srv.rss_kib());
    }
    let other = echo_client(srv.addr, 20);
    drop(c);
    srv.settles_to(base, Duration::from_secs(5))?;
    other?;
    if peak > rss_before + 32 * 1024 {
        return Err(format!("RSS grew from {rss_before} to {peak} KiB"));
    }
    let Some(cut_off) = cut_off else {
        return Err(format!(
            "{sent} pings: the server still read them after 6 s"
        ));
    };
    Ok(format!(
        "{sent} pings without reading a pong: server gave up on its blocked pongs and cut the \
         connection after {:.1} s (write timeout 2 s), RSS {} -> peak {} MiB, others served",
        cut_off.as_secs_f64(),
        rss_before / 1024,
        peak / 1024
    ))
}

/// A deterministic generator for sizes and contents.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn size(&mut self) -> usize {
        match self.next() % 100 {
            0 => 65_536 + (self.next() % 200_000) as usize,
            1..=9 => (self.next() % 16_384) as usize,
            _ => (self.next() % 512) as usize,
        }
    }
}

fn load(srv: &ServerProc, conns: usize, msgs: usize) -> Outcome {
    let base = srv.usage();
    let sent = Arc::new(AtomicUsize::new(0));
    let bytes = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(conns + 1));
    let started = Instant::now();
    let clients: Vec<_> = (0..conns)
        .map(|i| {
            let (addr, sent, bytes, barrier) =
                (srv.addr, sent.clone(), bytes.clone(), barrier.clone());
            thread::Builder::new()
                .stack_size(128 << 10)
                .spawn(move || -> Result<(), String> {
                    let connected = Client::builder()
                        .no_proxy()
                        .connect(&format!("ws://{addr}/"));
                    barrier.wait();
                    let mut ws = connected.map_err(|e| format!("conn {i}: {e}"))?;
                    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1));
                    for m in 0..msgs {
                        let size = rng.size();
                        let seed = rng.next();
                        let payload: Vec<u8> = (0..size)
                            .map(|k| (seed >> (k % 8 * 8)) as u8 ^ k as u8)
                            .collect();
                        let text = m % 3 == 0;
                        let msg = if text {
                            Message::Text(payload.iter().map(|b| (b'a' + b % 26) as char).collect())
                        } else {
                            Message::Binary(payload)
                        };
                        if m % 4 == 0 && size >= 3 {
                            // Fragmented: three pieces.
                            let b = msg.as_bytes();
                            let (x, y) = (b.len() / 3, 2 * b.len() / 3);
                            let sent = if text {
                                let t = msg.as_text().unwrap();
                                let (x, y) = (floor_char(t, x), floor_char(t, y));
                                ws.send_fragmented([&t[..x], &t[x..y], &t[y..]])
                            } else {
                                ws.send_fragmented([&b[..x], &b[x..y], &b[y..]])
                            };
                            sent.map_err(|e| format!("conn {i} msg {m}: {e}"))?;
                        } else {
                            ws.send(&msg)
                                .map_err(|e| format!("conn {i} msg {m}: {e}"))?;
                        }
                        match ws.recv_timeout(Duration::from_secs(30)) {
                            Ok(Some(got)) if got == msg => {}
                            Ok(Some(_)) => return Err(format!("conn {i} msg {m}: corrupted")),
                            other => return Err(format!("conn {i} msg {m}: {other:?}")),
                        }
                        sent.fetch_add(1, Ordering::Relaxed);
                        bytes.fetch_add(size, Ordering::Relaxed);
                    }
                    ws.close(CloseCode::NORMAL, "")
                        .map_err(|e| format!("conn {i} close: {e}"))
                })
                .unwrap()
        })
        .collect();
    barrier.wait();
    let peak_threads = srv.threads();
    let mut errors = Vec::new();
    for c in clients {
        if let Err(e) = c.join().unwrap_or_else(|_| Err("client panicked".into())) {
            errors.push(e);
        }
    }
    let took = started.elapsed();
    let total = sent.load(Ordering::SeqCst);
    if !errors.is_empty() {
        return Err(format!(
            "{} errors, first: {}; {total} of {} echoed",
            errors.len(),
            errors[0],
            conns * msgs
        ));
    }
    srv.settles_to(base, Duration::from_secs(10))?;
    Ok(format!(
        "{conns} connections x {msgs} messages (random sizes to 265 KB, 1 in 4 fragmented): {total} echoed and verified, 0 lost, 0 corrupted, 0 errors, {:.1} MB in {:.1} s; {peak_threads} server threads at peak",
        bytes.load(Ordering::SeqCst) as f64 / 1e6,
        took.as_secs_f64()
    ))
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn idle_then_echo(srv: &ServerProc, n: usize) -> Outcome {
    let base = srv.usage();
    let rss_before = srv.rss_kib();
    let mut held = Vec::with_capacity(n);
    let builder = Client::builder().no_proxy();
    for i in 0..n {
        let ws = builder
            .connect(&format!("ws://{}/", srv.addr))
            .map_err(|e| format!("connection {i}: {e}"))?;
        held.push(ws);
    }
    let rss = srv.rss_kib();
    for ws in &mut held {
        ws.send("still there?").map_err(|e| e.to_string())?;
    }
    for (i, ws) in held.iter_mut().enumerate() {
        match ws.recv_timeout(Duration::from_secs(30)) {
            Ok(Some(m)) if m.as_text() == Some("still there?") => {}
            other => return Err(format!("connection {i}: {other:?}")),
        }
    }
    drop(held);
    srv.settles_to(base, Duration::from_secs(30))?;
    Ok(format!(
        "{n} idle connections held at once, each then echoed; server RSS {:.1} KiB per connection",
        (rss.saturating_sub(rss_before)) as f64 / n as f64
    ))
}

fn shutdown_under_load(srv: ServerProc) -> Outcome {
    let addr = srv.addr;
    let ended_well = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..50)
        .map(|_| {
            let ended_well = ended_well.clone();
            thread::spawn(move || {
                let Ok(mut ws) = Client::builder()
                    .no_proxy()
                    .connect(&format!("ws://{addr}/"))
                else {
                    return;
                };
                let started = Instant::now();
                while started.elapsed() < Duration::from_secs(10) {
                    if ws.send(vec![1u8; 2000]).is_err() {
                        break;
                    }
                    match ws.recv_timeout(Duration::from_secs(5)) {
                        Ok(Some(_)) => {}
                        Ok(None) => {
                            if ws.close_frame().map(|f| f.code) == Some(CloseCode::GOING_AWAY) {
                                ended_well.fetch_add(1, Ordering::SeqCst);
                            }
                            return;
                        }
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    let took = srv.shutdown(Duration::from_secs(5))?;
    for c in clients {
        let _ = c.join();
    }
    let well = ended_well.load(Ordering::SeqCst);
    // A client between its send and recv may see its send fail instead: most must see 1001.
    if well < 40 {
        return Err(format!("only {well} of 50 busy clients got 1001"));
    }
    Ok(format!(
        "shutdown with 50 clients echoing: serve returned after {} ms, {well}/50 clients saw 1001",
        took.as_millis()
    ))
}

fn main() {
    if std::env::var_os("SYNCWS_STRESS_SERVE").is_some() {
        serve();
    }
    let args: Vec<String> = std::env::args().collect();
    // `cargo test` passes harness flags (e.g. --list in some tools); answer them quietly.
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let full = args.iter().any(|a| a == "--full");
    let sizes = if full { FULL } else { FAST };
    raise_nofile();
    let srv = ServerProc::start();
    thread::sleep(Duration::from_millis(100));
    // Warm up (the first connection starts helper threads), then take the baseline.
    let _ = echo_client(srv.addr, 1);
    thread::sleep(Duration::from_millis(300));
    let (threads, fds) = srv.usage();
    println!(
        "server baseline: {threads} threads, {fds} fds, RSS {} KiB",
        srv.rss_kib()
    );
    let mut table: Vec<(&str, Outcome)> = Vec::new();
    let started = Instant::now();
    table.push(("faults", faults(&srv, sizes.faults_each)));
    table.push(("panicking handlers", panicking_handlers(&srv, 10)));
    table.push(("hostile headers", hostile_heads(&srv)));
    table.push(("hostile frames", hostile_frames(&srv)));
    table.push((
        "stalled handshakes",
        stalled_handshakes(&srv, sizes.stalled),
    ));
    table.push(("ping flood", ping_flood(&srv)));
    table.push(("load", load(&srv, sizes.load_conns, sizes.load_msgs)));
    if sizes.idle_conns > 0 {
        table.push(("idle connections", idle_then_echo(&srv, sizes.idle_conns)));
    }
    table.push(("shutdown under load", shutdown_under_load(srv)));
    println!(
        "\nstress ({}, {:.0} s)\n\n| check | outcome | what was tried |\n|---|---|---|",
        if full { "full" } else { "fast" },
        started.elapsed().as_secs_f64()
    );
    let mut failed = 0;
    for (name, outcome) in &table {
        match outcome {
            Ok(what) => println!("| {name} | ok | {what} |"),
            Err(why) => {
                failed += 1;
                println!("| {name} | FAILED | {why} |");
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} stress checks failed");
        std::process::exit(1);
    }
}
