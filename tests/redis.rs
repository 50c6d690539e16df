//! Rooms across processes through a real Redis: `redis-server` (the Debian package), one per
//! test on a free loopback port with persistence off, stopped by its PID.
//!
//! Instances run in separate processes: this test binary run again as a child
//! (`instance_child`), which builds a hub on a `RedisBackend`, serves WebSocket clients on
//! 127.0.0.1:0 (each joins the room; what a client sends is published to the room, except to
//! itself) and answers `stats` and `drop` on its standard input. The clients are here.
//!
//! Covered: 2 and 3 instances with 10,000 messages across them, none lost, none doubled, in
//! order per publisher; `kill -9` of Redis and a restart on the same port (delivery resumes,
//! publishers were refused rather than stalled, the logs say what happened, thread and fd
//! counts back to where they were, the threads gone once the hub is dropped); a Redis that
//! stops answering (`SIGSTOP`) for longer than the backend's timeout (local delivery as fast as
//! ever, the publisher notices, delivery across resumes in order on `SIGCONT`); malformed and
//! foreign messages PUBLISHed by a raw client (ignored and logged); `requirepass` with the
//! password in the URL, a wrong or missing password; `rediss://` to Redis's own `tls-port` with
//! the test CA (feature `redis-tls`); Redis down at start-up, or silent between `build` and
//! the hub's start (the start fails after the backend's timeout, with its error); a stopped
//! instance that Redis drops for its `client-output-buffer-limit pubsub`, and recovers; a
//! replayed envelope dropped and a gap counted; two processes of the chat example
//! (`--redis URL`) sharing their room, directly and behind nginx.
//!
//! The tests are ignored by default; `bash scripts/redis_test.sh` installs redis-server when
//! missing and runs them.

#![cfg(all(unix, feature = "redis"))]

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use support::*;
use syncws::{
    BackendErrorKind, Error, Forwarded, Hub, Message, RedisBackend, RedisBuilder, Server, WebSocket,
};

/// What the children's backends wait between reconnects: short, so a test does not wait long
/// for a restarted Redis.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(50), Duration::from_millis(500));

/// How long delivery may take to resume after Redis is back: the longest backoff, twice (the
/// publisher and the subscriber each), plus a generous margin for a loaded machine.
const RESUME_WITHIN: Duration = Duration::from_secs(5);

fn backend(url: &str) -> RedisBuilder {
    RedisBackend::builder(url)
        .backoff(BACKOFF.0, BACKOFF.1)
        .timeout(Duration::from_secs(2))
}

// ------------------------------------------------------------------ the child instance

/// The child side: only when run by [`Instance::start`] (the variable is set), else nothing.
#[test]
#[ignore = "run by the tests below as a child process"]
fn instance_child() {
    let Ok(url) = std::env::var("SYNCWS_REDIS_URL") else {
        return;
    };
    env_logger::Builder::new()
        .filter_level(log::LevelFilter::Info)
        .target(env_logger::Target::Stderr)
        .init();
    let backend = backend(&url).build().expect("backend");
    let status = backend.status();
    let mut hub = Hub::builder().backend(backend);
    if let Ok(bytes) = std::env::var("SYNCWS_BACKLOG") {
        hub = hub.backlog(bytes.parse().unwrap());
    }
    let hub = hub.build().expect("hub");
    let refused = Arc::new(AtomicU64::new(0));
    let (members, refusals) = (hub.clone(), Arc::clone(&refused));
    let server = Server::bind("127.0.0.1:0")
        .unwrap()
        .start(move |ws| {
            let (mut reader, writer) = ws.split()?;
            members.join(ROOM, &writer)?;
            writer.send("joined")?;
            while let Some(msg) = reader.recv()? {
                let d = members.publish_except(ROOM, &msg, writer.id());
                if d.forwarded == Forwarded::Refused {
                    refusals.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(())
        })
        .unwrap();
    let mut out = std::io::stdout();
    writeln!(out, "ready {}", server.local_addr().port()).unwrap();
    out.flush().unwrap();
    let mut hub = Some(hub);
    for line in std::io::stdin().lines() {
        let line = line.unwrap();
        match line.as_str() {
            "stats" => {
                let s = status.stats();
                writeln!(
                    out,
                    "stats up={} threads={} redis_threads={} fds={} published={} lost={} \
                     refused={} refused_down={} refused_full={} received={} own_skipped={} \
                     malformed={} duplicates={} gaps={} reconnects={}",
                    u64::from(status.is_up()),
                    threads(),
                    redis_threads(),
                    fds(),
                    s.published,
                    s.lost,
                    refused.load(Ordering::Relaxed),
                    s.refused_down,
                    s.refused_full,
                    s.received,
                    s.own_skipped,
                    s.malformed,
                    s.duplicates,
                    s.gaps,
                    s.reconnects,
                )
                .unwrap();
            }
            "drop" => {
                server.shutdown();
                drop(hub.take());
                let deadline = Instant::now() + Duration::from_secs(5);
                while redis_threads() > 0 && Instant::now() < deadline {
                    thread::sleep(Duration::from_millis(10));
                }
                writeln!(out, "dropped redis_threads={}", redis_threads()).unwrap();
            }
            other => writeln!(out, "unknown command {other:?}").unwrap(),
        }
        out.flush().unwrap();
    }
}

/// This process's threads.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// The names of this process's threads.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_owned())
        .collect()
}

/// This process's threads of a Redis backend (named `redis-publish` and `redis-subscribe`).
fn redis_threads() -> usize {
    thread_names()
        .iter()
        .filter(|name| *name == "redis-publish" || *name == "redis-subscribe")
        .count()
}

/// This process's open file descriptors (less the one reading the directory).
fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count() - 1
}

// ------------------------------------------------------------------ the parent side

/// A child instance; killed on drop, its log printed when the test fails.
struct Instance {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    port: u16,
    log: PathBuf,
}

impl Instance {
    fn start(url: &str, name: &str) -> Instance {
        Instance::start_with(url, name, &[])
    }

    /// Like [`start`](Self::start), with more environment variables for the child.
    fn start_with(url: &str, name: &str, vars: &[(&str, &str)]) -> Instance {
        // Tests run side by side in this process and reuse names: a number keeps logs apart.
        static STARTED: AtomicU64 = AtomicU64::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let log = std::env::temp_dir().join(format!(
            "syncws-redis-instance-{}-{n}-{name}.log",
            std::process::id()
        ));
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "instance_child", "--ignored", "--nocapture"])
            .args(["--test-threads=1"])
            .env("SYNCWS_REDIS_URL", url)
            .envs(vars.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut instance = Instance {
            child,
            stdin,
            lines,
            port: 0,
            log,
        };
        let ready = instance.answer("ready ");
        instance.port = ready.parse().unwrap();
        instance
    }

    /// What follows `prefix` on the next line of the child's that has it.
    fn answer(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    // libtest's "test instance_child ... " may stand before it on the line
                    if let Some(at) = line.find(prefix) {
                        return line[at + prefix.len()..].to_owned();
                    }
                }
                Err(_) => break,
            }
        }
        panic!("instance gave no {prefix:?} line; its log:\n{}", self.log());
    }

    fn stats(&mut self) -> HashMap<String, u64> {
        writeln!(self.stdin, "stats").unwrap();
        self.answer("stats ")
            .split(' ')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_owned(), v.parse().unwrap())
            })
            .collect()
    }

    /// Drops the child's hub; returns how many backend threads were left after it.
    fn drop_hub(&mut self) -> u64 {
        writeln!(self.stdin, "drop").unwrap();
        let left = self.answer("dropped redis_threads=");
        left.parse().unwrap()
    }

    fn log(&self) -> String {
        read_lossy(&self.log)
    }

    /// Sends the child `signal` (`STOP`, `CONT`).
    fn signal(&self, signal: &str) {
        send_signal(self.child.id(), signal);
    }

    /// A client of this instance, in the room.
    fn member(&self) -> WebSocket {
        let mut ws = syncws::Client::connect(&format!("ws://127.0.0.1:{}/", self.port)).unwrap();
        assert_eq!(text(&mut ws), "joined");
        ws
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("--- instance on port {}:\n{}", self.port, self.log());
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

fn text(ws: &mut WebSocket) -> String {
    match ws.recv_timeout(TIMEOUT) {
        Ok(Some(Message::Text(t))) => t,
        other => panic!("expected a text message, got {other:?}"),
    }
}

fn nothing_more(ws: &mut WebSocket) {
    match ws.recv_timeout(Duration::from_millis(200)) {
        Err(e) if e.is_timeout() => {}
        other => panic!("expected nothing more, got {other:?}"),
    }
}

/// Reads `count` messages `"<publisher> <n>"` and checks that each publisher's come in order
/// from 0, none missing and none twice; returns how many came from each.
fn read_in_order(ws: &mut WebSocket, count: usize) -> HashMap<u32, u32> {
    let mut next: HashMap<u32, u32> = HashMap::new();
    for _ in 0..count {
        let t = text(ws);
        let (p, n) = t.split_once(' ').expect("publisher and number");
        let (p, n): (u32, u32) = (p.parse().unwrap(), n.parse().unwrap());
        let expected = next.entry(p).or_insert(0);
        assert_eq!(n, *expected, "publisher {p}: out of order, lost or doubled");
        *expected += 1;
    }
    next
}

// ------------------------------------------------------------------ tests

/// `instances` child processes, two clients on each; the first client of every instance
/// publishes its share of `total` messages, all at once; every client gets every message of
/// the other publishers, in order, once.
fn across(instances: usize, total: u32) {
    let redis = RedisServer::start(&[]);
    let mut children: Vec<Instance> = (0..instances)
        .map(|i| Instance::start(&redis.url(), &i.to_string()))
        .collect();
    let mut clients: Vec<Vec<WebSocket>> = children
        .iter()
        .map(|c| vec![c.member(), c.member()])
        .collect();
    let share = |p: usize| total / instances as u32 + u32::from(p < (total as usize % instances));
    let publishers: Vec<_> = clients
        .iter_mut()
        .enumerate()
        .map(|(p, on)| {
            let mut ws = on.remove(0);
            let n = share(p);
            thread::spawn(move || {
                for i in 0..n {
                    ws.send(format!("{p} {i}")).unwrap();
                }
                ws
            })
        })
        .collect();
    for (p, publisher) in publishers.into_iter().enumerate() {
        clients[p].insert(0, publisher.join().unwrap());
    }
    let sent: u32 = (0..instances).map(share).sum();
    assert_eq!(sent, total);
    for (i, on) in clients.iter_mut().enumerate() {
        for (j, ws) in on.iter_mut().enumerate() {
            // the publisher (client 0) is left out of its own messages
            let expected = if j == 0 { total - share(i) } else { total };
            let got = read_in_order(ws, expected as usize);
            for p in 0..instances {
                let want = if j == 0 && p == i { 0 } else { share(p) };
                assert_eq!(got.get(&(p as u32)).copied().unwrap_or(0), want);
            }
            nothing_more(ws);
        }
    }
    for (i, child) in children.iter_mut().enumerate() {
        let s = child.stats();
        let others = u64::from(total - share(i));
        assert_eq!(s["published"], u64::from(share(i)), "instance {i}: {s:?}");
        assert_eq!(s["received"], others, "instance {i}: {s:?}");
        assert_eq!(s["own_skipped"], u64::from(share(i)), "instance {i}: {s:?}");
        for zero in [
            "lost",
            "refused",
            "malformed",
            "duplicates",
            "gaps",
            "reconnects",
        ] {
            assert_eq!(s[zero], 0, "instance {i}, {zero}: {s:?}");
        }
        // and nothing was logged as missed, doubled or malformed
        let log = child.log();
        for said in ["never arrived", "dropped message", "ignored a message"] {
            assert!(
                !log.contains(said),
                "instance {i}: {said:?} in its log:\n{log}"
            );
        }
    }
}

#[test]
#[ignore = "needs redis-server: bash scripts/redis_test.sh"]
fn two_instances_carry_ten_thousand_messages_in_order_once() {
    across(2, 10_000);
}

#[test]
#[ignore = "needs redis-server: bash scripts/redis_test.sh"]
fn three_instances_carry_ten_thousand_messages_in_order_once() {
    across(3, 10_000);
}

#[test]
#[ignore = "needs redis-server: bash scripts/redis_test.sh"]
fn delivery_resumes_after_redis_is_killed_and_restarted() {
    let mut redis = RedisServer::start(&[]);
    let mut a = Instance::start(&redis.url(), "a");
    let mut b = Instance::start(&redis.url(), "b");
    let mut sender = a.member();
    let mut receiver = b.member();
    for n in 0..10 {
        sender.send(format!("0 {n}")).unwrap();
    }
    read_in_order(&mut receiver, 10);
    let baseline = [a.stats(), b.stats()];

    redis.kill9();
    // Publishes go on while Redis is gone: refused (or lost, the first of them), never a stall.
    let (tx, got) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_reading = Arc::clone(&stop);
    let reader = thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && !stop_reading.load(Ordering::Relaxed) {
            match receiver.recv_timeout(Duration::from_millis(100)) {
                Ok(Some(Message::Text(t))) => {
                    let n: u32 = t.split_once(' ').unwrap().1.parse().unwrap();
                    if tx.send(n).is_err() {
                        break;
                    }
                }
                Err(e) if e.is_timeout() => {}
                other => panic!("receiver: {other:?}"),
            }
        }
        receiver
    });
    let mut n = 10;
    let send_until = |until: Instant, sender: &mut WebSocket, n: &mut u32| {
        while Instant::now() < until {
            sender.send(format!("0 {n}")).unwrap();
            *n += 1;
            thread::sleep(Duration::from_millis(10));
        }
    };
    send_until(
        Instant::now() + Duration::from_millis(700),
        &mut sender,
        &mut n,
    );
    let down = [a.stats(), b.stats()];
    assert_eq!(down[0]["up"], 0, "{:?}", down[0]);
    assert!(
        down[0]["refused"] > 0,
        "the publisher saw no refusal: {:?}",
        down[0]
    );
    let last_while_down = n - 1;

    redis.restart();
    let restarted = Instant::now();
    let mut seen = Vec::new();
    let resumed = loop {
        send_until(
            Instant::now() + Duration::from_millis(50),
            &mut sender,
            &mut n,
        );
        seen.extend(got.try_iter());
        if seen.iter().any(|&m| m > last_while_down) {
            break restarted.elapsed();
        }
        assert!(
            restarted.elapsed() < RESUME_WITHIN,
            "no delivery within {RESUME_WITHIN:?} of the restart; got {seen:?}"
        );
    };
    eprintln!("delivery resumed {resumed:?} after the restart");
    stop.store(true, Ordering::Relaxed);
    let mut receiver = reader.join().unwrap();
    seen.extend(got.try_iter());
    in_order_and_new(&seen, 10);
    nothing_more_than_new(&mut receiver, *seen.last().unwrap());

    // Both are back, with the threads and descriptors they had before.
    for (name, child, before) in [("a", &mut a, &baseline[0]), ("b", &mut b, &baseline[1])] {
        let deadline = Instant::now() + Duration::from_secs(5);
        let after = loop {
            let s = child.stats();
            if s["up"] == 1 && s["fds"] == before["fds"] && s["threads"] == before["threads"] {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: not back to {before:?}: {s:?}"
            );
            thread::sleep(Duration::from_millis(50));
        };
        assert!(after["reconnects"] >= 2, "{name}: {after:?}");
        assert_eq!(after["redis_threads"], 2, "{name}: {after:?}");
        let log = child.log();
        for said in [
            "publisher lost its connection",
            "subscriber lost its connection",
            "publisher reconnected",
            "subscriber reconnected",
        ] {
            assert!(
                log.contains(said),
                "{name}'s log does not say {said:?}:\n{log}"
            );
        }
    }
    assert!(b.stats()["gaps"] > 0 || a.stats()["lost"] + a.stats()["refused"] > 0);

    // And once its hub is gone, a backend's threads are too.
    assert_eq!(a.drop_hub(), 0);
    assert_eq!(b.drop_hub(), 0);
}

/// Sends `signal` (`STOP`, `CONT`) to the process `pid`.
fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

#[test]
#[ignore = "needs redis-server: bash scripts/redis_test.sh"]
fn a_redis_that_stops_answering_stalls_no_socket_thread_and_delivery_resumes() {
    let redis = RedisServer::start(&[]);
    let pid = redis.pid().unwrap();
    let mut a = Instance::start(&redis.url(), "a");
    let b = Instance::start(&redis.url(), "b");
    let mut sender = a.member();
    let mut local = a.member();
    let remote = b.member();
    let (got, stop, reader) = numbers(remote);
    let mut n = 0u32;
    let mut send_and_see_locally = |n: &mut u32| -> Duration {
        let sent = Instant::now();
        sender.send(format!("0 {n}")).unwrap();
        assert_eq!(text(&mut local), format!("0 {n}"));
        *n += 1;
        sent.elapsed()
    };
    for _ in 0..10 {
        send_and_see_locally(&mut n);
    }
    let deadline = Instant::now() + TIMEOUT;
    while got.try_iter().last() != Some(9) {
        assert!(Instant::now() < deadline, "the first 10 did not cross");
        thread::sleep(Duration::from_millis(10));
    }

    // Redis stops answering (it is slow, or hung): its sockets stay open and silent. For longer
    // than the backend's timeout (2 s), publishes go on and reach the local member as fast as
    // ever: no socket thread waits for Redis.
    send_signal(pid, "STOP");
    let stopped = Instant::now();
    let mut slowest = Duration::ZERO;
    while stopped.elapsed() < Duration::from_secs(3) {
        slowest = slowest.max(send_and_see_locally(&mut n));
        thread::sleep(Duration::from_millis(10));
    }
    let last_while_stopped = n - 1;
    let during = a.stats();
    send_signal(pid, "CONT");
    eprintln!("slowest local round trip while Redis was stopped: {slowest:?}");
    assert!(
        slowest < Duration::from_millis(500),
        "a publish waited for the stopped Redis: {slowest:?}"
    );
    assert!(
        during["lost"] + during["refused"] > 0,
        "the publisher noticed nothing in 3 s: {during:?}"
    );

    // Redis answers again: the publisher reconnects and delivery across resumes, in order.
    let resumed_at = Instant::now();
    let mut seen: Vec<u32> = Vec::new();
    loop {
        send_and_see_locally(&mut n);
        thread::sleep(Duration::from_millis(10));
        seen.extend(got.try_iter());
        if seen.iter().any(|&m| m > last_while_stopped) {
            break;
        }
        assert!(
            resumed_at.elapsed() < RESUME_WITHIN,
            "no delivery within {RESUME_WITHIN:?} of Redis answering again; got {seen:?}"
        );
    }
    eprintln!("delivery resumed {:?} after SIGCONT", resumed_at.elapsed());
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    seen.extend(got.try_iter());
    in_order_and_new(&seen, 10);
    let after = a.stats();
    assert_eq!(after["up"], 1, "{after:?}");
    let log = a.log();
    assert!(
        log.contains("publisher lost its connection") && log.contains("publisher reconnected"),
        "a's log does not tell what happened:\n{log}"
    );
}

/// Checks the numbers a member got across a fault: in order, none twice, none below `first`
/// (delivered before the fault, so never again).
fn in_order_and_new(seen: &[u32], first: u32) {
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "out of order or doubled: {seen:?}"
    );
    assert!(
        seen.iter().all(|&m| m >= first),
        "a message from before the fault came again: {seen:?}"
    );
}

/// Reads `"<publisher> <n> ..."` messages on a thread until told to stop, sending each `n` on.
fn numbers(mut ws: WebSocket) -> (mpsc::Receiver<u32>, Arc<AtomicBool>, thread::JoinHandle<()>) {
    let (tx, got) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_reading = Arc::clone(&stop);
    let reader = thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && !stop_reading.load(Ordering::Relaxed) {
            match ws.recv_timeout(Duration::from_millis(100)) {
                Ok(Some(Message::Text(t))) => {
                    let n: u32 = t.split(' ').nth(1).unwrap().parse().unwrap();
                    if tx.send(n).is_err() {
                        break;
                    }
                }
                Err(e) if e.is_timeout() => {}
                other => panic!("receiver: {other:?}"),
            }
        }
    });
    (got, stop, reader)
}

#[test]
#[ignore = "needs redis-server: bash scripts/redis_test.sh"]
fn a_stopped_instance_that_redis_drops_for_its_output_buffer_recovers() {
    let redis = RedisServer::start(&["--client-output-buffer-limit", "pubsub 64kb 32kb 1"]);
    let a = Instance::start(&redis.url(), "a");
    // A backlog that holds what the kernel buffered for it while stopped (several MiB).
    let mut b = Instance::start_with(&redis.url(), "b", &[("SYNCWS_BACKLOG", "268435456")]);
    let mut sender = a.member();
    let (got, stop, reader) = numbers(b.member());
    let pad = "x".repeat(16 << 10);
    // A few first, so that b follows a's sequence and can tell what it missed.
    for n in 0..10 {
        sender.send(format!("0 {n}")).unwrap();
    }
    let before: Vec<u32> = (0..10)
        .map(|_| got.recv_timeout(TIMEOUT).unwrap())
        .collect();
    assert_eq!(before, (0..10).collect::<Vec<u32>>());

    b.signal("STOP");
    // Past the kernel's socket buffers and then Redis's 64 KiB limit.
    let mut n = 10u32;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !redis.log().contains("output buffer limits") {
        assert!(
            Instant::now() < deadline && n < 8000,
            "Redis did not drop the stopped subscriber after {n} messages:\n{}",
            redis.log()
        );
        for _ in 0..100 {
            sender.send(format!("0 {n} {pad}")).unwrap();
            n += 1;
        }
        thread::sleep(Duration::from_millis(20));
    }
    b.signal("CONT");
    eprintln!("Redis dropped the stopped subscriber after {n} messages");
    let first_after = n;
    let resumed_by = Instant::now() + RESUME_WITHIN;
    let mut seen = Vec::new();
    while !seen.iter().any(|&m| m >= first_after) {
        assert!(
            Instant::now() < resumed_by,
            "nothing new within {RESUME_WITHIN:?}; last seen {:?}",
            seen.last()
        );
        sender.send(format!("0 {n}")).unwrap();
        n += 1;
        thread::sleep(Duration::from_millis(10));
        seen.extend(got.try_iter());
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    seen.extend(got.try_iter());
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "out of order or doubled"
    );
    let s = b.stats();
    eprintln!("b got {} of {n} messages, then resumed: {s:?}", seen.len());
    assert!(
        s["reconnects"] >= 1 && s["gaps"] > 0 && s["up"] == 1,
        "{s:?}"
    );
    let log = b.log();
    for said in ["subscriber lost its connection", "subscriber reconnected"] {
        assert!(log.contains(said), "b's log does not say {said:?}:\n{log}");
    }
}

/// Whatever is still on its way is newer than `last`, and in order.
fn nothing_more_than_new(ws: &mut WebSocket, mut last: u32) {
    loop {
        match ws.recv_timeout(Duration::from_millis(300)) {
            Ok(Some(Message::Text(t))) => {
                let n: u32 = t.split_once(' ').unwrap().1.parse().unwrap();
                assert!(n > last, "{n} after {last}");
                last = n;
            }
            Err(e) if e.is_timeout() => return,
            other => panic!("{other:?}"),
        }
    }
}

#[test]
#[ignore = "needs redis-server: bash scripts/redis_test.sh"]
fn malformed_and_foreign_messages_are_ignored_and_logged() {
    capture_logs();
    let redis = RedisServer::start(&[]);
    let prefix = "malformed-test:";
    let here = backend(&redis.url()).prefix(prefix).build().unwrap();
    let status = here.status();
    let hub = Hub::builder().backend(here).build().unwrap();
    let there = Hub::builder()
        .backend(backend(&redis.url()).prefix(prefix).build().unwrap())
        .build()
        .unwrap();
    let (addr, joins) = room_server_on(&hub, Server::bind("127.0.0.1:0").unwrap(), |_| None);
    let mut member = connect(addr, Default::default());
    joined(&joins, 1);

    let channel = format!("{prefix}{ROOM}");
    let mut bad_version = b"sw\x09\x01".to_vec();
    bad_version.extend_from_slice(&[0; 20]);
    let mut not_utf8 = b"sw\x01\x01".to_vec();
    not_utf8.extend_from_slice(&[0; 20]);
    not_utf8.push(0xff);
    let junk: [&[u8]; 5] = [b"hello", b"", b"sw", &bad_version, &not_utf8];
    for answer in publish_raw(&redis, &channel, &junk) {
        assert_eq!(answer, ":2", "both subscribers got it");
    }
    there.publish(ROOM, "a real one");
    assert_eq!(text(&mut member), "a real one");
    match member.recv_timeout(Duration::from_millis(200)) {
        Err(e) if e.is_timeout() => {}
        other => panic!("expected nothing more, got {other:?}"),
    }
    let stats = status.stats();
    assert_eq!((stats.malformed, stats.received), (5, 1), "{stats:?}");
    let warned = logged(
        log::Level::Warn,
        "redis: ignored a message on \"malformed-test:",
    );
    assert!(!warned.is_empty(), "no warning");
    assert!(
        warned[0].contains("not a syncws envelope"),
        "first warning: {warned:?}"
    );
    // The other instance's own junk counts the same; nothing panicked anywhere.
    assert!(status.is_up());
}

/// PUBLISHes each of `payloads` to `channel` from a raw client of `redis`, in order; returns
/// Redis's answers (how many subscribers got each).
fn publish_raw(redis: &RedisServer, channel: &str, payloads: &[&[u8]]) -> Vec<String> {
    let commands: Vec<Vec<&[u8]>> = payloads
        .iter()
        .map(|p| vec![b"PUBLISH".as_slice(), channel.as_bytes(), p])
        .collect();
    resp_all(redis.addr(), &commands)
}

/// An envelope as the module docs lay it out, written by hand: text from `instance`, epoch 0.
fn envelope(instance: u64, seq: u64, text: &str) -> Vec<u8> {
    let mut out = b"sw\x01\x01".to_vec();
    out.extend_from_slice(&instance.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    out
}

#[test]
#[ignore = "needs redis-server: bash scripts/redis_test.sh"]
fn a_replayed_envelope_is_dropped_and_a_gap_is_counted() {
    let redis = RedisServer::start(&[]);
    let here = backend(&redis.url()).build().unwrap();
    let status = here.status();
    let hub = Hub::builder().backend(here).build().unwrap();
    let (addr, joins) = room_server_on(&hub, Server::bind("127.0.0.1:0").unwrap(), |_| None);
    let mut member = connect(addr, Default::default());
    joined(&joins, 1);

    // A hand-made instance publishes 1, 2, 2 again (a replay), 1 again, then 5 (3 and 4 lost).
    let channel = format!("{}{ROOM}", RedisBackend::DEFAULT_PREFIX);
    let sent = [
        (1, "one"),
        (2, "two"),
        (2, "two again"),
        (1, "one again"),
        (5, "five"),
    ];
    let payloads: Vec<Vec<u8>> = sent.iter().map(|(n, t)| envelope(7, *n, t)).collect();
    let payloads: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    for answer in publish_raw(&redis, &channel, &payloads) {
        assert_eq!(answer, ":1");
    }
    for expected in ["one", "two", "five"] {
        assert_eq!(text(&mut member), expected);
    }
    nothing_more(&mut member);
    let stats = status.stats();
    assert_eq!(
        (stats.received, stats.duplicates, stats.gaps),
        (3, 2, 2),
        "{stats:?}"
    );
    // An envelope that names this backend's own instance is its own message come back from
    // Redis (already delivered here when published): skipped, not delivered twice.
    publish_raw(&redis, &channel, &[&envelope(status.instance(), 1, "mine")]);
    // Another instance's numbers are its own: its 1 is new.
    publish_raw(&redis, &channel, &[&envelope(8, 1, "from eight")]);
    assert_eq!(text(&mut member), "from eight");
    assert_eq!(status.stats().own_skipped, 1);
    // ... and tracking it forgot nothing of the first: 7's 5 again is still a replay.
    publish_raw(
        &redis,
        &channel,
        &[&envelope(7, 5, "five again"), &envelope(7, 6, "six")],
    );
    assert_eq!(text(&mut member), "six");
    assert_eq!(status.stats().duplicates, 3);
    // The status shows itself with its numbers.
    let shown = format!("{status:?}");
    assert!(
        shown.starts_with("RedisStatus")
            && shown.contains("up: true")
            && shown.contains("duplicates: 3"),
        "{shown}"
    );
}

/// Redis refusing a `PUBLISH` (an ACL that forbids it) loses those messages, counted as lost,
/// and keeps the connection: the next publishes are taken, not refused as if Redis
/// were down, and nothing reconnects.
#[test]
#[ignore = "needs redis-server: bash scripts/redis_test.sh"]
fn a_publish_redis_refuses_is_lost_but_the_connection_stays() {
    let redis = RedisServer::start(&[]);
    let acl: Vec<&[u8]> = vec![
        b"ACL",
        b"SETUSER",
        b"nopub",
        b"on",
        b">pw",
        b"~*",
        b"&*",
        b"+@all",
        b"-publish",
    ];
    assert_eq!(resp_all(redis.addr(), &[acl]), ["+OK"]);
    let here = backend(&format!("redis://nopub:pw@{}", redis.addr()))
        .build()
        .unwrap();
    let shown = format!("{here:?}");
    assert!(
        shown.starts_with("RedisBackend")
            && shown.contains(&redis.addr().to_string())
            && shown.contains(RedisBackend::DEFAULT_PREFIX)
            && !shown.contains("pw"),
        "{shown}"
    );
    let status = here.status();
    let hub = Hub::builder().backend(here).build().unwrap();
    for n in 1..=3u64 {
        assert_eq!(
            hub.publish(ROOM, "forbidden").forwarded,
            Forwarded::Queued,
            "publish {n}"
        );
        let deadline = Instant::now() + TIMEOUT;
        while status.stats().lost < n {
            assert!(Instant::now() < deadline, "{:?}", status.stats());
            thread::sleep(Duration::from_millis(10));
        }
    }
    let stats = status.stats();
    assert_eq!(
        (
            stats.lost,
            stats.published,
            stats.refused_down,
            stats.reconnects
        ),
        (3, 0, 0, 0),
        "{stats:?}"
    );
    assert!(status.is_up());
}

/// How many `PING`s Redis has answered so far (its `INFO commandstats`).
fn pings(url: &str) -> u64 {
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut con)
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_ping:calls="))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

/// An idle backend checks its connections now and then, not on every poll: over 2 s the
/// publisher pings about twice (every second it is idle) and the subscriber not at all (every
/// 5 s of silence), where a check on each of the subscriber's 100 ms polls would be 20.
#[test]
#[ignore = "needs redis-server: bash scripts/redis_test.sh"]
fn an_idle_backend_pings_redis_only_now_and_then() {
    let redis = RedisServer::start(&[]);
    let hub = Hub::builder()
        .backend(backend(&redis.url()).build().unwrap())
        .build()
        .unwrap();
    thread::sleep(Duration::from_millis(200));
    let before = pings(&redis.url());
    thread::sleep(Duration::from_secs(2));
    let idle = pings(&redis.url()) - before;
    eprintln!("{idle} pings in 2 s of idling");
    assert!(idle <= 4, "{idle} pings in 2 s of idling");
    drop(hub);
}

#[test]
#[ignore = "needs redis-server: bash scripts/redis_test.sh"]
fn a_password_in_the_url_works_and_a_wrong_or_missing_one_fails_clearly() {
    let redis = RedisServer::start(&["--requirepass", "s3cret"]);
    let url = format!("redis://:s3cret@{}", redis.addr());
    let hubs: Vec<Hub> = (0..2)
        .map(|_| {
            Hub::builder()
                .backend(backend(&url).build().unwrap())
                .build()
                .unwrap()
        })
        .collect();
    let (addr, joins) = room_server_on(&hubs[1], Server::bind("127.0.0.1:0").unwrap(), |_| None);
    let mut member = connect(addr, Default::default());
    joined(&joins, 1);
    assert_eq!(
        hubs[0].publish(ROOM, "through auth").forwarded,
        Forwarded::Queued
    );
    assert_eq!(text(&mut member), "through auth");

    for (url, says) in [
        (
            format!("redis://:wrong@{}", redis.addr()),
            "authentication failed",
        ),
        (redis.url(), "NOAUTH"),
    ] {
        let err = backend(&url).build().unwrap_err();
        let Error::Backend(e) = &err else {
            panic!("expected a backend error, got {err:?}");
        };
        assert_eq!(e.kind(), BackendErrorKind::Refused, "{err}");
        let shown = err.to_string();
        assert!(
            shown.to_lowercase().contains(&says.to_lowercase()),
            "{shown}"
        );
        assert!(shown.contains(&redis.addr().to_string()), "{shown}");
        assert!(
            !shown.contains("wrong"),
            "the password is in the message: {shown}"
        );
    }
}

#[test]
#[ignore = "needs redis-server: bash scripts/redis_test.sh"]
fn redis_down_at_start_up_is_a_clear_error() {
    // A port that nothing listens on: found free, not used.
    let addr = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let err = backend(&format!("redis://{addr}")).build().unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let Error::Backend(e) = &err else {
        panic!("expected a backend error, got {err:?}");
    };
    assert_eq!(e.kind(), BackendErrorKind::Unreachable, "{err}");
    assert!(err.to_string().contains(&addr), "{err}");

    // and an unusable URL says so before any connection
    let unusable: &[&str] = if cfg!(feature = "redis-tls") {
        &["http://127.0.0.1:1"]
    } else {
        &["http://127.0.0.1:1", "rediss://127.0.0.1:1"]
    };
    for &url in unusable {
        match backend(url).build() {
            Err(Error::Backend(e)) => assert_eq!(e.kind(), BackendErrorKind::Config, "{url}: {e}"),
            other => panic!("{url}: {other:?}"),
        }
    }
}

#[test]
#[ignore = "needs redis-server: bash scripts/redis_test.sh"]
fn a_redis_that_stops_answering_before_the_subscription_fails_the_start_within_its_timeout() {
    let redis = RedisServer::start(&[]);
    let pid = redis.pid().unwrap();
    // Connected and PINGed, then Redis stops answering before the hub subscribes.
    let backend = backend(&redis.url()).build().expect("backend");
    send_signal(pid, "STOP");
    let started = Instant::now();
    let result = Hub::builder().backend(backend).build();
    let took = started.elapsed();
    send_signal(pid, "CONT");

    let err = result.expect_err("a hub whose backend cannot subscribe");
    let Error::Backend(e) = &err else {
        panic!("expected a backend error, got {err:?}");
    };
    assert_eq!(e.kind(), BackendErrorKind::Unreachable, "{err}");
    // The subscriber's own read timeout (2 s) ends the wait and its error is the one given,
    // not the hub's fallback of a second more.
    assert!(!err.to_string().contains("no answer"), "{err}");
    assert!(err.to_string().contains(&redis.addr().to_string()), "{err}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_millis(2900),
        "took {took:?}: {err}"
    );
}

/// The messages before `expected`, which must come within the usual timeout.
fn read_until(ws: &mut WebSocket, expected: &str) -> Vec<String> {
    let mut before = Vec::new();
    for _ in 0..10 {
        let t = text(ws);
        if t == expected {
            return before;
        }
        before.push(t);
    }
    panic!("no {expected:?} after {before:?}");
}

/// A chat example process on `--redis url`; killed on drop.
struct Chat {
    child: Child,
    addr: String,
}

impl Chat {
    fn start(url: &str) -> Chat {
        let mut child = example_command("chat")
            .args(["127.0.0.1:0", "--seconds", "60", "--redis", url])
            .env("CHAT_TOKEN", "letmein")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the chat example (cargo build --features redis --example chat)");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        // "chat on http://127.0.0.1:PORT/?token=letmein"
        let addr = first
            .trim_end()
            .strip_prefix("chat on http://")
            .and_then(|rest| rest.split_once('/'))
            .unwrap_or_else(|| panic!("chat printed {first:?}"))
            .0
            .to_owned();
        Chat { child, addr }
    }

    fn join(&self, name: &str) -> WebSocket {
        let url = format!("ws://{}/chat?token=letmein&name={name}", self.addr);
        syncws::Client::connect(&url).unwrap()
    }
}

impl Drop for Chat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs redis-server and the chat example: bash scripts/redis_test.sh"]
fn two_chat_instances_on_one_redis_share_their_room() {
    let redis = RedisServer::start(&[]);
    let (one, two) = (Chat::start(&redis.url()), Chat::start(&redis.url()));
    let mut bob = two.join("bob");
    assert_eq!(text(&mut bob), "* bob joined");
    let mut ann = one.join("ann");
    assert_eq!(text(&mut bob), "* ann joined", "through Redis");
    exchange(&mut ann, &mut bob, "hello from one", "hi from two");
}

/// Ann (just joined, on the other instance than bob) says `hello`, bob answers `reply`: each
/// sees both lines once, in order, and nothing more.
fn exchange(ann: &mut WebSocket, bob: &mut WebSocket, hello: &str, reply: &str) {
    ann.send(hello).unwrap();
    // Bob's notice may reach ann's instance before or after ann joined it.
    let before = read_until(ann, &format!("ann: {hello}"));
    assert!(
        before.first().is_some_and(|t| t == "* ann joined")
            && before[1..].iter().all(|t| t == "* bob joined"),
        "{before:?}"
    );
    assert_eq!(text(bob), format!("ann: {hello}"));
    bob.send(reply).unwrap();
    assert_eq!(text(bob), format!("bob: {reply}"));
    assert_eq!(text(ann), format!("bob: {reply}"));
    nothing_more(ann);
    nothing_more(bob);
}

#[cfg(feature = "redis-tls")]
#[test]
#[ignore = "needs redis-server: bash scripts/redis_test.sh"]
fn rediss_to_a_tls_port_with_the_test_ca() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let file = |name: &str| fixtures.join(name).to_str().unwrap().to_owned();
    let tls_port = free_port().to_string();
    let _redis = RedisServer::start(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &file("server.pem"),
        "--tls-key-file",
        &file("server.key"),
        "--tls-ca-cert-file",
        &file("ca.pem"),
        "--tls-auth-clients",
        "no",
    ]);
    let url = format!("rediss://127.0.0.1:{tls_port}");
    let ca = std::fs::read(fixtures.join("ca.pem")).unwrap();
    let hubs: Vec<Hub> = (0..2)
        .map(|_| {
            let redis = backend(&url).root_certificate(ca.clone()).build().unwrap();
            Hub::builder().backend(redis).build().unwrap()
        })
        .collect();
    let (addr, joins) = room_server_on(&hubs[1], Server::bind("127.0.0.1:0").unwrap(), |_| None);
    let mut member = connect(addr, Default::default());
    joined(&joins, 1);
    assert_eq!(
        hubs[0].publish(ROOM, "over tls").forwarded,
        Forwarded::Queued
    );
    assert_eq!(text(&mut member), "over tls");
    // (the TLS port speaks nothing but TLS: the messages went through it encrypted)

    // Without the test CA the certificate is not trusted, and the error says where.
    let err = backend(&url).build().unwrap_err();
    let Error::Backend(e) = &err else {
        panic!("expected a backend error, got {err:?}");
    };
    assert_eq!(e.kind(), BackendErrorKind::Config, "{err}");
    assert!(err.to_string().contains(&tls_port), "{err}");
    assert!(err.to_string().contains("certificate"), "{err}");
}

/// nginx in front of chat instances `backends`, as a load balancer would be: one address for
/// every client. It routes by the `name` query parameter (`ann` to the first backend, anyone
/// else to the second) rather than round robin, so the test knows where each client landed and
/// a message that reaches the other client has crossed between instances.
fn nginx_in_front(backends: [&str; 2]) -> Daemon {
    let [first, second] = backends;
    start_nginx("scripts/redis_test.sh", 64, |_, port| {
        format!(
            "    map $arg_name $chat_backend {{
        ann {first};
        default {second};
    }}
    server {{
        listen 127.0.0.1:{port};
        {}
    }}",
            ws_location("http://$chat_backend", "")
        )
    })
}

#[test]
#[ignore = "needs redis-server, nginx and the chat example: bash scripts/redis_test.sh"]
fn two_chat_instances_behind_nginx_share_their_room() {
    let redis = RedisServer::start(&[]);
    let (one, two) = (Chat::start(&redis.url()), Chat::start(&redis.url()));
    let nginx = nginx_in_front([one.addr.as_str(), two.addr.as_str()]);
    let join = |name: &str| {
        let url = format!("ws://{}/chat?token=letmein&name={name}", nginx.addr());
        syncws::Client::connect(&url).unwrap()
    };
    let mut bob = join("bob");
    assert_eq!(text(&mut bob), "* bob joined");
    let mut ann = join("ann");
    assert_eq!(
        text(&mut bob),
        "* ann joined",
        "from instance one, through Redis"
    );
    exchange(&mut ann, &mut bob, "hello from behind nginx", "and back");
    // Both came through nginx: it logs each upgrade (101) once the connection ends.
    drop((ann, bob));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut log = nginx.read("access.log");
    while log.matches(" 101 ").count() < 2 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
        log = nginx.read("access.log");
    }
    assert_eq!(log.matches(" 101 ").count(), 2, "{log}");
}
