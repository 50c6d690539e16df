//! Full duplex, deadlines and heartbeat: split sockets under concurrent senders, receives cut by
//! a deadline in the middle of a frame, peers that stop reading, never answer a ping or a close,
//! and a broadcast that must shed a stalled member without holding up the others.

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use support::*;
use syncws::{
    Broadcast, Client, CloseCode, Config, Error, HandlerResult, Message, State, WebSocket,
};

fn connect(addr: SocketAddr, config: Config) -> WebSocket {
    Client::builder()
        .config(config)
        .connect(&ws_url(addr, "/"))
        .unwrap()
}

// ------------------------------------------------------------------ many senders, one reader

const SENDERS: u32 = 8;
const PER_SENDER: u32 = 500;

/// Message `i` of sender `t`: sizes from empty to over 64 KiB, text and binary, some sent as
/// three fragments. The first bytes name the sender and index so the reader can check content.
fn message_of(t: u32, i: u32) -> (Message, bool) {
    let len = match i % 50 {
        0 => 70_000 + (t as usize) * 1000,
        25 => 65_536 + 3,
        _ => ((i * 37 + t * 11) % 2000) as usize,
    };
    let fragmented = i % 7 == 3;
    let msg = if i.is_multiple_of(2) {
        let mut s = format!("{t}:{i}:");
        s.push_str(&text_of_len(len));
        Message::Text(s)
    } else {
        let mut b = Vec::with_capacity(len + 8);
        b.extend_from_slice(&t.to_be_bytes());
        b.extend_from_slice(&i.to_be_bytes());
        b.extend(bytes_of_len(len).iter().map(|x| x.wrapping_add(t as u8)));
        Message::Binary(b)
    };
    (msg, fragmented)
}

/// Which sender and index a message claims to be.
fn origin_of(msg: &Message) -> (u32, u32) {
    match msg {
        Message::Text(s) => {
            let mut parts = s.splitn(3, ':');
            let t = parts.next().unwrap().parse().unwrap();
            let i = parts.next().unwrap().parse().unwrap();
            (t, i)
        }
        Message::Binary(b) => (
            u32::from_be_bytes(b[0..4].try_into().unwrap()),
            u32::from_be_bytes(b[4..8].try_into().unwrap()),
        ),
    }
}

/// Three fragments of one message: text split on character boundaries, binary anywhere.
fn send_in_fragments(writer: &syncws::Writer, msg: &Message) {
    match msg {
        Message::Text(s) => {
            let cuts: Vec<usize> = (0..=s.len()).filter(|&k| s.is_char_boundary(k)).collect();
            let (a, b) = (cuts[cuts.len() / 3], cuts[2 * cuts.len() / 3]);
            writer
                .send_fragmented([&s[..a], &s[a..b], &s[b..]])
                .unwrap();
        }
        Message::Binary(v) => {
            let (a, b) = (v.len() / 3, 2 * v.len() / 3);
            writer
                .send_fragmented([&v[..a], &v[a..b], &v[b..]])
                .unwrap();
        }
    }
}

/// What the validating raw server saw.
#[derive(Debug, Default)]
struct Seen {
    messages: usize,
    fragmented: usize,
    pings: usize,
    close: Option<u16>,
}

/// A raw server that checks every frame a client sends (masked, no RSV bits, control frames
/// whole and short, fragments of one message never interleaved with another data message),
/// echoes every message and answers pings.
fn validating_echo(mut conn: RawConn) -> Seen {
    let mut seen = Seen::default();
    // The message being assembled: opcode, payload, number of frames.
    let mut partial: Option<(u8, Vec<u8>, usize)> = None;
    loop {
        // `read_frame` itself asserts the mask bit.
        let frame = conn.read_frame();
        assert_eq!(frame.rsv, 0, "rsv bits set");
        match frame.opcode {
            PING | PONG | CLOSE => {
                assert!(frame.fin, "fragmented control frame");
                assert!(frame.payload.len() <= 125, "control frame too long");
            }
            TEXT | BINARY => assert!(
                partial.is_none(),
                "a new data message began inside a fragmented one"
            ),
            CONTINUATION => assert!(partial.is_some(), "continuation without a message"),
            op => panic!("reserved opcode {op}"),
        }
        match frame.opcode {
            PING => {
                seen.pings += 1;
                conn.send(&Frame::pong(&frame.payload).unmasked());
            }
            PONG => {}
            CLOSE => {
                seen.close = frame.close_code();
                conn.send(&Frame::close(1000, "").unmasked());
                // RFC 6455 7.1.1: the server ends TCP first.
                conn.stream.shutdown(std::net::Shutdown::Write).unwrap();
                conn.expect_eof();
                return seen;
            }
            op => {
                let (opcode, mut payload, n) = partial.take().unwrap_or((op, Vec::new(), 0));
                payload.extend_from_slice(&frame.payload);
                if frame.fin {
                    seen.messages += 1;
                    if n > 0 {
                        seen.fragmented += 1;
                    }
                    conn.send(&Frame::new(opcode, &payload).unmasked());
                } else {
                    partial = Some((opcode, payload, n + 1));
                }
            }
        }
    }
}

#[test]
fn split_client_with_eight_senders_and_a_reader_at_once() {
    let (addr, server) = raw_server(validating_echo);
    let mut ws = connect(addr, Config::default());
    let (mut reader, writer) = ws.split().unwrap();

    let start = Arc::new(Barrier::new(SENDERS as usize + 1));
    let senders: Vec<_> = (0..SENDERS)
        .map(|t| {
            let writer = writer.clone();
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                for i in 0..PER_SENDER {
                    let (msg, fragmented) = message_of(t, i);
                    if fragmented {
                        send_in_fragments(&writer, &msg);
                    } else {
                        writer.send(&msg).unwrap();
                    }
                    if i % 100 == 0 {
                        writer.ping(&i.to_be_bytes()).unwrap();
                    }
                }
            })
        })
        .collect();
    let receiving = thread::spawn(move || {
        let mut next = [0u32; SENDERS as usize];
        for _ in 0..SENDERS * PER_SENDER {
            let msg = reader
                .recv()
                .unwrap()
                .expect("closed before every echo arrived");
            let (t, i) = origin_of(&msg);
            // Each sender's messages come back in the order it sent them.
            assert_eq!(i, next[t as usize], "sender {t} out of order");
            next[t as usize] += 1;
            assert!(msg == message_of(t, i).0, "message {t}:{i} corrupted");
        }
        (reader, next)
    });
    start.wait();
    for s in senders {
        s.join().unwrap();
    }
    let (mut reader, next) = receiving.join().unwrap();
    assert_eq!(next, [PER_SENDER; SENDERS as usize]);

    reader.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(reader.state(), State::Closed);
    assert!(matches!(writer.send("late"), Err(Error::Closed)));

    let seen = server.join().unwrap();
    assert_eq!(seen.messages, (SENDERS * PER_SENDER) as usize);
    let fragmented = (0..PER_SENDER).filter(|i| i % 7 == 3).count() * SENDERS as usize;
    assert_eq!(seen.fragmented, fragmented);
    assert_eq!(seen.pings, (SENDERS * PER_SENDER.div_ceil(100)) as usize);
    assert_eq!(seen.close, Some(1000));
}

/// A server handler that splits: its reader forwards to a writer thread that echoes, so the
/// server reads and writes at once.
fn split_echo(ws: &mut WebSocket) -> HandlerResult {
    let (mut reader, writer) = ws.split()?;
    let (tx, rx) = mpsc::channel::<Message>();
    let echoer = thread::spawn(move || {
        for msg in rx {
            if writer.send(&msg).is_err() {
                break;
            }
        }
    });
    while let Some(msg) = reader.recv()? {
        tx.send(msg)?;
    }
    drop(tx);
    echoer.join().unwrap();
    Ok(())
}

#[test]
fn split_server_echoes_while_reading_and_answers_pings() {
    let addr = serve(Config::default(), split_echo);
    let mut conn = RawConn::connect(addr);
    let count = 300u32;
    // The client writes everything before reading a byte, from a second handle; megabytes of
    // echo pile up meanwhile, which only a server that reads while it writes survives.
    let mut out = RawConn {
        stream: conn.stream.try_clone().unwrap(),
        buf: Vec::new(),
        expect_masked: false,
    };
    let writing = thread::spawn(move || {
        for i in 0..count {
            let body = bytes_of_len(if i % 10 == 0 {
                100_000
            } else {
                i as usize * 13
            });
            let mut msg = i.to_be_bytes().to_vec();
            msg.extend_from_slice(&body);
            if i % 5 == 0 {
                let (a, b) = msg.split_at(msg.len() / 2);
                out.write_raw(&frames(&[
                    Frame::binary(a).fin(false),
                    Frame::ping(format!("p{i}")),
                    Frame::cont(b),
                ]));
            } else {
                out.send(&Frame::binary(&msg));
            }
        }
    });
    let mut next = 0u32;
    let mut pongs = Vec::new();
    while next < count || pongs.len() < (count / 5) as usize {
        let frame = conn.read_frame();
        match frame.opcode {
            BINARY => {
                assert!(frame.fin, "the echo is one frame");
                let i = u32::from_be_bytes(frame.payload[..4].try_into().unwrap());
                assert_eq!(i, next, "echo out of order");
                let len = if i % 10 == 0 {
                    100_000
                } else {
                    i as usize * 13
                };
                assert_eq!(&frame.payload[4..], &bytes_of_len(len)[..], "echo {i}");
                next += 1;
            }
            PONG => pongs.push(String::from_utf8(frame.payload).unwrap()),
            op => panic!("unexpected opcode {op}"),
        }
    }
    writing.join().unwrap();
    let expected: Vec<String> = (0..count).step_by(5).map(|i| format!("p{i}")).collect();
    assert_eq!(pongs, expected, "every ping answered, in order");
    conn.send(&Frame::close(1000, ""));
    assert_eq!(conn.expect_close(), Some(1000));
}

// ------------------------------------------------------------------ deadlines

#[test]
fn recv_timeout_in_the_middle_of_a_frame_leaves_the_message_intact() {
    let big = text_of_len(100_000);
    let small = "x".repeat(200);
    // Each row: the message and where the server pauses inside its frame.
    let rows: Vec<(String, usize)> = vec![
        (small.clone(), 1),  // inside the first header byte pair
        (small.clone(), 3),  // inside the 16-bit length
        (small.clone(), 4),  // header complete, no payload
        (small.clone(), 50), // mid payload
        (big.clone(), 9),    // inside the 64-bit length
        (big.clone(), 50_001),
    ];
    let (paused_tx, paused) = mpsc::channel();
    let (resume, resume_rx) = mpsc::channel::<()>();
    let server_rows = rows.clone();
    let (addr, server) = raw_server(move |mut conn| {
        for (text, at) in server_rows {
            let bytes = Frame::text(&text).unmasked().to_bytes();
            conn.write_raw(&bytes[..at]);
            paused_tx.send(()).unwrap();
            resume_rx.recv_timeout(TIMEOUT).unwrap();
            conn.write_raw(&bytes[at..]);
        }
        // Two messages in one write for try_recv, once the client has read everything else; then
        // an echo to show the socket still works.
        resume_rx.recv_timeout(TIMEOUT).unwrap();
        conn.write_raw(&frames(&[
            Frame::text("first").unmasked(),
            Frame::text("second").unmasked(),
        ]));
        let frame = conn.read_frame();
        conn.send(&Frame::new(frame.opcode, &frame.payload).unmasked());
        conn.read_close().close_code()
    });
    let mut ws = connect(addr, Config::default());
    for (text, at) in &rows {
        paused.recv_timeout(TIMEOUT).unwrap();
        let started = Instant::now();
        let r = ws.recv_timeout(Duration::from_millis(150));
        let took = started.elapsed();
        assert!(matches!(r, Err(Error::Timeout)), "split at {at}: {r:?}");
        assert!(
            took >= Duration::from_millis(140),
            "gave up early: {took:?}"
        );
        assert!(took < Duration::from_secs(2), "deadline overshot: {took:?}");
        assert_eq!(ws.state(), State::Open);
        resume.send(()).unwrap();
        let msg = ws.recv_timeout(TIMEOUT).unwrap().unwrap();
        assert!(msg.as_text() == Some(text.as_str()), "split at {at}");
    }
    assert!(matches!(ws.try_recv(), Err(Error::Timeout)));
    resume.send(()).unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::Text("first".into())));
    // "second" came in the same write as "first": it is already buffered.
    assert_eq!(ws.try_recv().unwrap(), Some(Message::Text("second".into())));
    assert!(matches!(ws.try_recv(), Err(Error::Timeout)));
    ws.send("still open").unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::Text("still open".into())));
    drop(ws);
    assert_eq!(server.join().unwrap(), Some(1001));
}

#[test]
fn try_recv_on_an_idle_socket_times_out_at_once() {
    let addr = echo_server();
    let mut ws = connect(addr, Config::default());
    let started = Instant::now();
    assert!(matches!(ws.try_recv(), Err(Error::Timeout)));
    assert!(started.elapsed() < Duration::from_millis(500));
    // Blocking mode is back: a normal round trip works.
    ws.send(vec![7u8; 100_000]).unwrap();
    assert_eq!(
        ws.recv().unwrap(),
        Some(Message::Binary(vec![7u8; 100_000]))
    );
    ws.close(CloseCode::NORMAL, "").unwrap();
}

/// A raw server that completes the handshake and then never reads; it holds the socket until
/// the test says it is done.
fn deaf_server() -> (SocketAddr, mpsc::Sender<()>) {
    let (done, done_rx) = mpsc::channel::<()>();
    let (addr, _server) = raw_server(move |conn| {
        let _ = done_rx.recv_timeout(Duration::from_secs(30));
        drop(conn);
    });
    (addr, done)
}

/// Sends 1 MiB messages until one fails; returns that error and how long the failing send took.
fn send_until_stalled(mut send: impl FnMut(&[u8]) -> syncws::Result<()>) -> (Error, Duration) {
    let payload = vec![0x5a; 1 << 20];
    for _ in 0..200 {
        let started = Instant::now();
        if let Err(e) = send(&payload) {
            return (e, started.elapsed());
        }
    }
    panic!("200 MiB went into a peer that never reads");
}

#[test]
fn send_to_a_peer_that_never_reads_fails_within_the_write_timeout() {
    let write_timeout = Duration::from_millis(500);
    let (addr, done) = deaf_server();
    let mut ws = connect(addr, Config::default().write_timeout(Some(write_timeout)));
    let started = Instant::now();
    let (err, took) = send_until_stalled(|p| ws.send(p));
    assert!(err.is_timeout() || matches!(err, Error::Io(_)), "{err:?}");
    assert!(
        took >= write_timeout - Duration::from_millis(50),
        "{took:?}"
    );
    assert!(took < write_timeout + Duration::from_secs(2), "{took:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(ws.state(), State::Closed);
    assert!(matches!(ws.send("more"), Err(Error::Closed)));
    assert!(matches!(ws.ping(b""), Err(Error::Closed)));
    done.send(()).unwrap();
}

#[test]
fn split_send_to_a_peer_that_never_reads_fails_and_ends_the_reader() {
    let write_timeout = Duration::from_millis(500);
    let (addr, done) = deaf_server();
    let mut ws = connect(addr, Config::default().write_timeout(Some(write_timeout)));
    let (mut reader, writer) = ws.split().unwrap();
    let (ended_tx, ended) = mpsc::channel();
    thread::spawn(move || ended_tx.send(reader.recv()).unwrap());
    let (err, took) = send_until_stalled(|p| writer.send(p));
    assert!(err.is_timeout() || matches!(err, Error::Io(_)), "{err:?}");
    assert!(took < write_timeout + Duration::from_secs(2), "{took:?}");
    assert!(writer.is_closed());
    assert!(matches!(writer.send("more"), Err(Error::Closed)));
    // The reader was blocked in recv; the failed write ends it too.
    let r = ended.recv_timeout(Duration::from_secs(3)).unwrap();
    assert!(r.is_err(), "{r:?}");
    done.send(()).unwrap();
}

// ------------------------------------------------------------------ heartbeat

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
/// may wake late on a busy machine and would see them closer together than they were sent).
struct Timed {
    tcp: std::net::TcpStream,
    writes: Arc<std::sync::Mutex<Vec<(Instant, u8)>>>,
}

impl std::io::Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
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
    };
    let mut ws = WebSocket::from_stream(timed, syncws::Role::Client, heartbeat_config(), &leftover);
    let started = Instant::now();
    let r = ws.recv();
    let took = started.elapsed();
    assert!(matches!(r, Err(Error::HeartbeatTimeout)), "{r:?}");
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

// ------------------------------------------------------------------ closing

const CLOSE_TIMEOUT: Duration = Duration::from_millis(500);

/// Runs a close against a peer that never answers and checks that it gave up with `Timeout`
/// after the close timeout: not before, and not much later.
fn gives_up_within_the_close_timeout(close: impl FnOnce() -> syncws::Result<()>) {
    let started = Instant::now();
    let r = close();
    let took = started.elapsed();
    assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
    assert!(
        took >= CLOSE_TIMEOUT - Duration::from_millis(50),
        "{took:?}"
    );
    assert!(took < CLOSE_TIMEOUT + Duration::from_secs(1), "{took:?}");
}

/// A raw server that reads the client's close frame and never answers it; reports the code and
/// holds the socket until the test is done.
fn mute_closer() -> (SocketAddr, mpsc::Receiver<Option<u16>>, mpsc::Sender<()>) {
    let (code_tx, code) = mpsc::channel();
    let (done, done_rx) = mpsc::channel::<()>();
    let (addr, _server) = raw_server(move |mut conn| {
        code_tx.send(conn.read_close().close_code()).unwrap();
        let _ = done_rx.recv_timeout(Duration::from_secs(30));
        drop(conn);
    });
    (addr, code, done)
}

#[test]
fn close_returns_within_the_close_timeout_when_the_peer_never_answers() {
    let (addr, code, done) = mute_closer();
    let mut ws = connect(addr, Config::default().close_timeout(CLOSE_TIMEOUT));
    gives_up_within_the_close_timeout(|| ws.close(CloseCode::NORMAL, "bye"));
    assert_eq!(ws.state(), State::Closed);
    assert_eq!(code.recv_timeout(TIMEOUT).unwrap(), Some(1000));
    done.send(()).unwrap();
}

#[test]
fn writer_close_returns_within_the_close_timeout_when_the_peer_never_answers() {
    let (addr, code, done) = mute_closer();
    let mut ws = connect(addr, Config::default().close_timeout(CLOSE_TIMEOUT));
    let (mut reader, writer) = ws.split().unwrap();
    let (ended_tx, ended) = mpsc::channel();
    thread::spawn(move || ended_tx.send(reader.recv()).unwrap());
    gives_up_within_the_close_timeout(|| writer.close(CloseCode::NORMAL, "bye"));
    assert!(writer.is_closed());
    assert_eq!(code.recv_timeout(TIMEOUT).unwrap(), Some(1000));
    // The reader, blocked in recv, is woken by the shutdown.
    let r = ended.recv_timeout(Duration::from_secs(1)).unwrap();
    assert!(r.is_err(), "{r:?}");
    done.send(()).unwrap();
}

#[test]
fn close_on_a_split_socket_returns_within_the_close_timeout() {
    // The path the server takes when a handler that split its socket returns.
    let (addr, code, done) = mute_closer();
    let mut ws = connect(addr, Config::default().close_timeout(CLOSE_TIMEOUT));
    let (reader, _writer) = ws.split().unwrap();
    let reading = thread::spawn(move || {
        let mut reader = reader;
        reader.recv()
    });
    gives_up_within_the_close_timeout(|| ws.close(CloseCode::NORMAL, ""));
    assert_eq!(code.recv_timeout(TIMEOUT).unwrap(), Some(1000));
    assert!(reading.join().unwrap().is_err());
    done.send(()).unwrap();
}

// ------------------------------------------------------------------ broadcast

#[test]
fn broadcast_drops_a_stalled_member_and_delivers_to_the_rest_in_order() {
    const HEALTHY: usize = 49;
    const CHUNK: usize = 64 << 10;
    let room: Arc<Broadcast> = Arc::new(Broadcast::new());
    let members = Arc::clone(&room);
    let (joined_tx, joined) = mpsc::channel();
    let joined_tx = std::sync::Mutex::new(joined_tx);
    let config = Config::default().write_timeout(Some(Duration::from_millis(300)));
    let addr = serve(config, move |ws| {
        let (mut reader, writer) = ws.split()?;
        members.add(writer);
        joined_tx.lock().unwrap().send(())?;
        while reader.recv()?.is_some() {}
        Ok(())
    });

    let clients: Vec<_> = (0..HEALTHY)
        .map(|_| {
            let mut ws = connect(addr, Config::default());
            thread::spawn(move || {
                let mut next = 0u32;
                loop {
                    match ws.recv().unwrap().expect("closed early") {
                        Message::Binary(b) => {
                            let i = u32::from_be_bytes(b[..4].try_into().unwrap());
                            assert_eq!(i, next, "out of order");
                            assert_eq!(b.len(), CHUNK);
                            assert!(b[4..].iter().all(|&x| x == i as u8), "message {i}");
                            next += 1;
                        }
                        Message::Text(end) => return (end, next),
                    }
                }
            })
        })
        .collect();
    // Upgrades by hand and then never reads a byte.
    let stalled = RawConn::connect(addr);
    for _ in 0..=HEALTHY {
        joined.recv_timeout(TIMEOUT).unwrap();
    }
    assert_eq!(room.len(), HEALTHY + 1);

    let started = Instant::now();
    let mut sent = 0u32;
    // Enough to fill the stalled member's socket buffers (a few MiB), then some more.
    let mut after_drop = 0;
    while after_drop < 10 {
        assert!(sent < 1000, "the stalled member was never dropped");
        let mut msg = vec![sent as u8; CHUNK];
        msg[..4].copy_from_slice(&sent.to_be_bytes());
        let delivered = room.send(&msg);
        sent += 1;
        if room.len() == HEALTHY {
            assert_eq!(delivered, HEALTHY);
            after_drop += 1;
        } else {
            assert_eq!(delivered, HEALTHY + 1);
        }
    }
    assert_eq!(room.send(format!("end {sent}")), HEALTHY);
    for c in clients {
        let (end, got) = c.join().unwrap();
        assert_eq!(end, format!("end {sent}"));
        assert_eq!(got, sent);
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert_eq!(room.len(), HEALTHY);
    drop(stalled);
}

// ------------------------------------------------------------------ every half learns

#[test]
fn when_the_peer_closes_every_half_learns_it() {
    let addr = serve(Config::default(), |ws| {
        // Close with 1000 after the first message.
        ws.recv()?;
        Ok(())
    });
    let mut ws = connect(addr, Config::default());
    let (mut reader, writer) = ws.split().unwrap();
    let other = writer.clone();
    writer.send("bye").unwrap();
    assert_eq!(reader.recv().unwrap(), None);
    assert_eq!(
        reader.close_frame().map(|f| f.code),
        Some(CloseCode::NORMAL)
    );
    assert_eq!(reader.state(), State::Closed);
    assert_eq!(
        reader.recv().unwrap(),
        None,
        "and again on every later call"
    );
    assert!(writer.is_closed() && other.is_closed());
    let from_thread = thread::spawn(move || other.send("late")).join().unwrap();
    assert!(matches!(from_thread, Err(Error::Closed)), "{from_thread:?}");
    assert!(matches!(writer.send("late"), Err(Error::Closed)));
    assert!(matches!(writer.ping(b""), Err(Error::Closed)));
    assert!(
        writer.close(CloseCode::NORMAL, "").is_ok(),
        "closing twice is a no-op"
    );
}

#[test]
fn server_halves_learn_the_client_closed() {
    let (tx, results) = mpsc::channel();
    let addr = serve(Config::default(), move |ws| {
        let (mut reader, writer) = ws.split()?;
        let r = reader.recv();
        let end = matches!(r, Ok(None));
        let code = reader.close_frame().map(|f| f.code);
        let send = writer.send("late");
        tx.send((end, code, matches!(send, Err(Error::Closed))))?;
        Ok(())
    });
    let mut conn = RawConn::connect(addr);
    conn.send(&Frame::close(4000, "done"));
    assert_eq!(conn.expect_close(), Some(4000));
    let (end, code, send_closed) = results.recv_timeout(TIMEOUT).unwrap();
    assert!(end, "reader's recv did not return Ok(None)");
    assert_eq!(code, Some(CloseCode(4000)));
    assert!(send_closed, "writer's send did not fail with Closed");
}

#[test]
fn dropping_every_half_says_going_away() {
    let (addr, server) = raw_server(|mut conn| {
        let frame = conn.read_frame();
        assert_eq!(frame.payload, b"still here");
        conn.expect_close()
    });
    let mut ws = connect(addr, Config::default());
    let (reader, writer) = ws.split().unwrap();
    let clones: Vec<_> = (0..4).map(|_| writer.clone()).collect();
    // The reader goes first; the writers still work.
    drop(reader);
    writer.send("still here").unwrap();
    thread::scope(|s| {
        for w in clones {
            s.spawn(move || drop(w));
        }
    });
    drop(writer);
    drop(ws);
    assert_eq!(server.join().unwrap(), Some(1001));
}
