//! Cross-instance delivery through Redis against delivery within one instance, for the same
//! room size: latency from publish to each member's receive, p50 / p99 / max, and their ratio.
//!
//! ```text
//! cargo bench --features redis --bench redis          # 100 members, 1,000 messages, 5 ms apart
//! cargo bench --features redis --bench redis -- --members 500 --messages 2000 --every-us 2000
//! ```
//!
//! Starts its own `/usr/bin/redis-server` (the Debian package; `bash scripts/redis_test.sh`
//! installs it) on a free loopback port with persistence off, and kills it at the end. Both
//! runs are in this process: "local" is one hub with every member; "via redis" publishes on one
//! hub whose room has no members and delivers on a second hub (its own `RedisBackend`, as
//! another instance would) that has them all, so every delivery crosses Redis. The members are
//! WebSocket clients on threads of their own; a message carries its publish time.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use syncws::{Client, Hub, Message, RedisBackend, Server};

const ROOM: &str = "bench";

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut members, mut messages, mut every_us) = (100usize, 1000usize, 5000u64);
    while let Some(arg) = args.next() {
        let mut value = || args.next().and_then(|v| v.parse().ok()).expect("a number");
        match arg.as_str() {
            "--members" => members = value(),
            "--messages" => messages = value(),
            "--every-us" => every_us = value() as u64,
            "--bench" => {}
            other => panic!("unknown argument {other:?}"),
        }
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis = RedisServer::start(port);
    let url = format!("redis://127.0.0.1:{port}");
    println!("{members} members, {messages} messages of ~20 bytes, 1 every {every_us} µs");
    let every = Duration::from_micros(every_us);

    let local = Hub::new().unwrap();
    let single = run(&local, &local, members, messages, every);
    report("local", &single, None);

    let publisher = Hub::builder()
        .backend(RedisBackend::builder(&url).build().unwrap())
        .build()
        .unwrap();
    let receiver = Hub::builder()
        .backend(RedisBackend::builder(&url).build().unwrap())
        .build()
        .unwrap();
    let across = run(&publisher, &receiver, members, messages, every);
    report("via redis", &across, Some(&single));
    redis.stop();
}

/// Members join `on`; `from` publishes; returns every latency seen, sorted.
fn run(from: &Hub, on: &Hub, members: usize, messages: usize, every: Duration) -> Vec<Duration> {
    let rooms = on.clone();
    let server = Server::bind("127.0.0.1:0")
        .unwrap()
        .start(move |ws| {
            let (mut reader, writer) = ws.split()?;
            rooms.join(ROOM, &writer)?;
            writer.send("joined")?;
            while reader.recv()?.is_some() {}
            Ok(())
        })
        .unwrap();
    let url = format!("ws://{}/", server.local_addr());
    let base = Instant::now();
    let clients: Vec<_> = (0..members)
        .map(|_| {
            let mut ws = Client::connect(&url).unwrap();
            assert_eq!(ws.recv().unwrap(), Some(Message::Text("joined".into())));
            thread::spawn(move || {
                let mut seen = Vec::with_capacity(messages);
                while seen.len() < messages {
                    match ws.recv_timeout(Duration::from_secs(10)) {
                        Ok(Some(Message::Text(t))) => {
                            let sent = Duration::from_nanos(t.parse().unwrap());
                            seen.push(base.elapsed().saturating_sub(sent));
                        }
                        other => panic!("member: {other:?} after {} messages", seen.len()),
                    }
                }
                seen
            })
        })
        .collect();
    for _ in 0..messages {
        from.publish(ROOM, base.elapsed().as_nanos().to_string());
        thread::sleep(every);
    }
    let mut all: Vec<Duration> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    server.shutdown();
    all.sort();
    all
}

fn report(name: &str, sorted: &[Duration], baseline: Option<&[Duration]>) {
    let at = |v: &[Duration], q: f64| v[((v.len() - 1) as f64 * q) as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (p50, p99) = (at(sorted, 0.5), at(sorted, 0.99));
    print!(
        "{name:>10}: p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms  ({} deliveries)",
        ms(p50),
        ms(p99),
        ms(*sorted.last().unwrap()),
        sorted.len()
    );
    if let Some(base) = baseline {
        print!(
            "  ratio to local: p50 {:.1}x  p99 {:.1}x",
            ms(p50) / ms(at(base, 0.5)),
            ms(p99) / ms(at(base, 0.99))
        );
    }
    println!();
}

/// A redis-server of this benchmark, killed when it ends.
struct RedisServer(Child);

impl RedisServer {
    fn start(port: u16) -> RedisServer {
        let child = Command::new("/usr/bin/redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("/usr/bin/redis-server (bash scripts/redis_test.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            thread::sleep(Duration::from_millis(20));
        }
        RedisServer(child)
    }

    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
