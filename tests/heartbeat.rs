//! Heartbeat without extra threads: pings at the interval, a peer that never answers them given
//! up on (client and server side), and RTT measured on a live connection.

mod support;

use std::io::Write;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::*;
use syncws::{Config, Error, Message, State, WebSocket};

const INTERVAL: Duration = Duration::from_millis(300);
const PONG_TIMEOUT: Duration = Duration::from_millis(300);

fn heartbeat_config() -> Config {
    Config::default()
        .ping_interval(Some(INTERVAL))
        .pong_timeout(PONG_TIMEOUT)
        .close_timeout(Duration::from_secs(1))
}

/// A client's TCP stream that notes when each write began and the first byte written, so the
/// time between two frames is measured by the thread that sent them (a peer's reading thread
/// may wake late on a busy machine and would see them closer together than they were sent),
/// and counts its reads.
struct Timed {
    tcp: std::net::TcpStream,
    writes: Arc<std::sync::Mutex<Vec<(Instant, u8)>>>,
    reads: usize,
}

impl std::io::Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reads += 1;
        self.tcp.read(buf)
    }
}

impl std::io::Write for Timed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(&first) = buf.first() {
            self.writes.lock().unwrap().push((Instant::now(), first));
        }
        self.tcp.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl syncws::Transport for Timed {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> std::io::Result<()> {
        self.tcp.set_read_timeout(timeout)
    }
    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> std::io::Result<()> {
        self.tcp.set_write_timeout(timeout)
    }
    fn shutdown_write(&mut self) -> std::io::Result<()> {
        self.tcp.shutdown(std::net::Shutdown::Write)
    }
}

#[test]
fn client_heartbeat_gives_up_on_a_peer_that_never_answers_pings() {
    let (addr, server) = raw_server(|mut conn| (conn.read_frame(), conn.read_frame()));
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.write_all(upgrade_request("/").as_bytes()).unwrap();
    let mut leftover = Vec::new();
    let head = read_head(&mut tcp, &mut leftover);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let writes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let timed = Timed {
        tcp,
        writes: Arc::clone(&writes),
        reads: 0,
    };
    let mut ws = WebSocket::from_stream(timed, syncws::Role::Client, heartbeat_config(), &leftover);
    let started = Instant::now();
    let r = ws.recv();
    let took = started.elapsed();
    assert!(matches!(r, Err(Error::HeartbeatTimeout)), "{r:?}");
    // One read waits until the ping is due and one more until the pong is (a timer's early
    // wake-up or two aside), not a loop of short reads.
    let reads = ws.get_ref().reads;
    assert!(reads <= 6, "{reads} reads in {took:?}");
    assert!(
        took >= INTERVAL + PONG_TIMEOUT - Duration::from_millis(50),
        "{took:?}"
    );
    assert!(
        took < INTERVAL + PONG_TIMEOUT + Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(ws.state(), State::Closed);
    assert!(matches!(ws.send("x"), Err(Error::Closed)));

    let (ping, close) = server.join().unwrap();
    assert_eq!(ping.opcode, PING, "{ping:?}");
    assert_eq!(close.opcode, CLOSE, "{close:?}");
    assert_eq!(close.close_code(), Some(1011));
    let writes = writes.lock().unwrap().clone();
    let sent = |opcode: u8| {
        writes
            .iter()
            .find(|(_, first)| first & 0x0f == opcode)
            .map(|(at, _)| *at)
            .unwrap_or_else(|| panic!("no frame {opcode:#x} written: {writes:?}"))
    };
    let between = sent(CLOSE).duration_since(sent(PING));
    assert!(
        between >= PONG_TIMEOUT - Duration::from_millis(50),
        "{between:?}"
    );
}

#[test]
fn server_heartbeat_frees_the_handler_of_a_peer_that_never_answers_pings() {
    let (tx, results) = mpsc::channel();
    let addr = serve(heartbeat_config(), move |ws| {
        let started = Instant::now();
        let r = ws.recv();
        tx.send((matches!(r, Err(Error::HeartbeatTimeout)), started.elapsed()))?;
        Ok(())
    });
    let mut conn = RawConn::connect(addr);
    let ping = conn.read_frame();
    assert_eq!(ping.opcode, PING, "{ping:?}");
    // Not answered.
    assert_eq!(conn.expect_close(), Some(1011));
    let (heartbeat_timeout, took) = results.recv_timeout(Duration::from_secs(3)).unwrap();
    assert!(
        heartbeat_timeout,
        "handler's recv did not end with HeartbeatTimeout"
    );
    assert!(
        took < INTERVAL + PONG_TIMEOUT + Duration::from_secs(2),
        "{took:?}"
    );
}

#[test]
fn heartbeat_measures_rtt_and_keeps_a_live_connection_open() {
    let addr = echo_server();
    let config = Config::default()
        .ping_interval(Some(Duration::from_millis(100)))
        .pong_timeout(Duration::from_secs(2));
    let mut ws = connect(addr, config.clone());
    assert_eq!(ws.rtt(), None);
    // Silence for several intervals: pings go out and the echo server answers them.
    assert!(matches!(
        ws.recv_timeout(Duration::from_millis(400)),
        Err(Error::Timeout)
    ));
    let rtt = ws.rtt().expect("no heartbeat round trip measured");
    assert!(rtt < Duration::from_millis(400), "{rtt:?}");
    assert_eq!(ws.state(), State::Open);
    ws.send("alive").unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::Text("alive".into())));

    // The reader of a split socket runs the same heartbeat.
    let mut ws = connect(addr, config);
    let (mut reader, writer) = ws.split().unwrap();
    assert_eq!(reader.rtt(), None);
    assert!(matches!(
        reader.recv_timeout(Duration::from_millis(400)),
        Err(Error::Timeout)
    ));
    assert!(reader.rtt().is_some());
    writer.send("alive").unwrap();
    assert_eq!(reader.recv().unwrap(), Some(Message::Text("alive".into())));
}

/// A pong that comes late, but within the pong timeout, keeps the connection: the messages
/// that arrive while the ping is out are delivered, and the round trip is measured.
#[test]
fn a_late_pong_within_the_timeout_keeps_the_connection_open() {
    let (addr, server) = raw_server(|mut conn: RawConn| {
        let ping = conn.read_frame();
        assert_eq!(ping.opcode, PING);
        for i in 0..6 {
            std::thread::sleep(Duration::from_millis(50));
            conn.send(&Frame::text(format!("tick {i}")).unmasked());
        }
        conn.send(&Frame::pong(&ping.payload).unmasked());
        conn.send(&Frame::text("done").unmasked());
        conn
    });
    let config = Config::default()
        .ping_interval(Some(Duration::from_millis(100)))
        .pong_timeout(Duration::from_secs(3));
    let mut ws = connect(addr, config);
    for i in 0..6 {
        let tick = format!("tick {i}");
        assert_eq!(ws.recv().unwrap(), Some(Message::Text(tick)));
    }
    assert_eq!(ws.recv().unwrap(), Some(Message::Text("done".into())));
    let rtt = ws.rtt().expect("the late pong gives a round trip");
    assert!(rtt >= Duration::from_millis(300), "{rtt:?}");
    assert_eq!(ws.state(), State::Open);
    drop(server.join().unwrap());
}

/// While our close waits for the peer's answer, the heartbeat sends no pings, and it does not
/// wake the wait either: a connection that is closing sleeps until the answer or the close
/// timeout, even long after a ping would have been due.
#[test]
fn a_closing_connection_with_a_heartbeat_sleeps_until_the_close_timeout() {
    let (addr, server) = raw_server(|mut peer: RawConn| {
        let close = peer.read_close().close_code();
        // Never answer; wait for the client to give up and end TCP.
        peer.expect_eof();
        close
    });
    let config = Config::default()
        .ping_interval(Some(Duration::from_millis(100)))
        .pong_timeout(Duration::from_secs(5))
        .close_timeout(Duration::from_millis(1000));
    let mut ws = connect(addr, config);
    let (before, started) = (thread_sleeps(), Instant::now());
    let result = ws.close(syncws::CloseCode::NORMAL, "");
    let (took, sleeps) = (started.elapsed(), thread_sleeps() - before);
    assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
    assert!(
        took >= Duration::from_millis(1000),
        "gave up after {took:?}"
    );
    // A few: the write, the one wait. Waking for the heartbeat would be one per millisecond.
    assert!(sleeps < 50, "{sleeps} wake-ups in {took:?} of waiting");
    assert_eq!(server.join().unwrap(), Some(1000));
}
