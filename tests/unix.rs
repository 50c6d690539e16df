//! Unix domain sockets on both sides, over real sockets in a temporary directory: a server bound
//! to a path (stale socket files replaced, live ones and non-sockets left alone, the file
//! removed at shutdown), a listener the program made itself (`from_listener`), clients through
//! a `ws+unix://` URL and through `ClientBuilder::unix_socket`, and what a peer without an IP
//! address means for the peer filter, per-IP limits, trusted proxies and logs; then what runs
//! on top of the stream: split connections in full duplex, a reconnecting client finding a
//! restarted server, a Hub room dropping a member that never reads. nginx in front of a Unix
//! socket is in `tests/nginx.rs`.
#![cfg(unix)]

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use support::*;
use syncws::{Client, Error, Message, Server, ServerHandle, WebSocket};

/// A directory of this test's own under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("syncws-unix-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What an echo handler saw of each connection: its peer address and path.
type Seen = Arc<Mutex<Vec<(Option<SocketAddr>, String)>>>;

/// Starts `server` with an echo handler that records each connection's peer and path.
fn start_echo(server: Server) -> (ServerHandle, Seen) {
    let seen: Seen = Arc::default();
    let record = Arc::clone(&seen);
    let handle = server
        .start(move |ws| {
            let path = ws.path().unwrap_or("").to_owned();
            record.lock().unwrap().push((ws.peer_addr(), path));
            echo(ws)
        })
        .unwrap();
    (handle, seen)
}

/// `text` there and back over `ws`, then a normal close.
fn assert_round_trip(ws: &mut WebSocket, text: &str) {
    ws.send(text).unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::Text(text.to_owned())));
    ws.close(syncws::CloseCode::NORMAL, "").unwrap();
}

fn unix_url(socket: &Path, target: &str) -> String {
    format!("ws+unix://{}:{target}", socket.display())
}

/// Sends an upgrade request with `extra` header lines over a raw Unix socket connection and
/// returns the status line of the answer (with the socket, still open).
fn raw_upgrade(socket: &Path, extra: &str) -> (String, UnixStream) {
    let mut unix = UnixStream::connect(socket).unwrap();
    unix.set_read_timeout(Some(TIMEOUT)).unwrap();
    let request = upgrade_request("/raw").replace("\r\n\r\n", &format!("\r\n{extra}\r\n"));
    unix.write_all(request.as_bytes()).unwrap();
    let head = read_head(&mut unix, &mut Vec::new());
    let status = head.lines().next().unwrap_or("").to_owned();
    (status, unix)
}

/// One text frame there and back over a raw connection: once it is back, the handler has
/// recorded the connection.
fn raw_echo(unix: &mut UnixStream) {
    unix.write_all(&Frame::text("x").to_bytes()).unwrap();
    let mut echoed = [0u8; 3];
    unix.read_exact(&mut echoed).unwrap();
    assert_eq!(echoed, [0x81, 1, b'x']);
}

#[test]
fn server_and_clients_speak_over_a_unix_socket() {
    capture_logs();
    let dir = TempDir::new();
    let socket = dir.path("ws.sock");
    let server = Server::bind_unix(&socket).unwrap();
    assert_eq!(server.local_path(), Some(socket.as_path()));
    let (handle, seen) = start_echo(server);
    assert_eq!(handle.local_path(), Some(socket.as_path()));

    // Node's URL form: the socket, then the request target.
    let mut ws = Client::connect(&unix_url(&socket, "/chat?room=1")).unwrap();
    assert!(ws.get_ref().unix().is_some() && ws.get_ref().tcp().is_none());
    let big = "x".repeat(200_000);
    assert_round_trip(&mut ws, &big);
    // The builder option: the URL names host and path, the socket is given apart.
    let mut ws = Client::builder()
        .unix_socket(&socket)
        .connect("ws://localhost/builder")
        .unwrap();
    assert_round_trip(&mut ws, "hello");
    handle.shutdown();

    let seen = seen.lock().unwrap().clone();
    // A Unix peer has no IP address.
    assert_eq!(
        seen,
        [(None, "/chat".to_owned()), (None, "/builder".to_owned())]
    );
    let needle = format!("listening on unix:{}", socket.display());
    assert_eq!(logged(log::Level::Info, &needle).len(), 1, "{needle}");
    assert!(
        !logged(
            log::Level::Debug,
            "open from unix socket, path \"/builder\""
        )
        .is_empty()
    );
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = TempDir::new();
    let socket = dir.path("stale.sock");
    // A server that died: its socket file stays, nobody accepts on it.
    drop(UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let (handle, _) = start_echo(Server::bind_unix(&socket).unwrap());
    let mut ws = Client::connect(&unix_url(&socket, "/")).unwrap();
    assert_round_trip(&mut ws, "fresh");
    assert!(handle.shutdown());
}

#[test]
fn a_live_socket_is_not_taken_over() {
    let dir = TempDir::new();
    let socket = dir.path("live.sock");
    let (handle, _) = start_echo(Server::bind_unix(&socket).unwrap());
    let err = Server::bind_unix(&socket).unwrap_err();
    assert!(
        matches!(&err, Error::Io(e) if e.kind() == ErrorKind::AddrInUse),
        "{err:?}"
    );
    // The first server still has its socket.
    let mut ws = Client::connect(&unix_url(&socket, "/")).unwrap();
    assert_round_trip(&mut ws, "still mine");
    assert!(handle.shutdown());
}

#[test]
fn a_path_that_is_no_socket_is_left_alone() {
    let dir = TempDir::new();
    let path = dir.path("notes.txt");
    std::fs::write(&path, "keep me").unwrap();
    let err = Server::bind_unix(&path).unwrap_err();
    assert!(
        matches!(&err, Error::Io(e) if e.kind() == ErrorKind::AlreadyExists),
        "{err:?}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
}

#[test]
fn shutdown_closes_unix_connections_and_removes_the_socket_file() {
    let dir = TempDir::new();
    let socket = dir.path("down.sock");
    let (handle, _) = start_echo(Server::bind_unix(&socket).unwrap());
    let mut ws = Client::connect(&unix_url(&socket, "/")).unwrap();
    ws.send("hi").unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::Text("hi".into())));
    let (tx, rx) = mpsc::channel();
    let stopper = handle.clone();
    std::thread::spawn(move || tx.send(stopper.shutdown()).unwrap());
    // The handler blocked in recv is woken: the client hears 1001, a normal end.
    assert_eq!(ws.recv().unwrap(), None);
    assert_eq!(
        rx.recv_timeout(TIMEOUT),
        Ok(true),
        "shutdown finished in time"
    );
    assert!(!socket.exists(), "socket file removed");
    let err = Client::connect(&unix_url(&socket, "/")).unwrap_err();
    assert!(
        matches!(&err, Error::Io(e) if e.kind() == ErrorKind::NotFound),
        "{err:?}"
    );
}

#[test]
fn from_listener_serves_a_listener_the_program_made() {
    // TCP: e.g. one with SO_REUSEPORT set, or inherited from systemd.
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = tcp.local_addr().unwrap();
    let server = Server::from_listener(tcp).unwrap();
    assert_eq!(server.local_addr(), addr);
    let (handle, _) = start_echo(server);
    let mut ws = Client::connect(&ws_url(addr, "/")).unwrap();
    assert_round_trip(&mut ws, "tcp");
    assert!(handle.shutdown());

    // Unix: the socket file belongs to the program and stays.
    let dir = TempDir::new();
    let socket = dir.path("mine.sock");
    let server = Server::from_listener(UnixListener::bind(&socket).unwrap()).unwrap();
    assert_eq!(server.local_path(), Some(socket.as_path()));
    let (handle, _) = start_echo(server);
    let mut ws = Client::connect(&unix_url(&socket, "/")).unwrap();
    assert_round_trip(&mut ws, "unix");
    assert!(handle.shutdown());
    assert!(socket.exists(), "a socket file the program made is its own");
}

#[test]
fn unix_peers_pass_the_peer_filter_and_are_not_counted_per_ip() {
    let dir = TempDir::new();
    let socket = dir.path("limits.sock");
    let server = Server::bind_unix(&socket)
        .unwrap()
        .peer_filter(|_| false)
        .max_connections_per_ip(1)
        .rate_limit(1, Duration::from_secs(60));
    let (handle, _) = start_echo(server);
    // Three at once, opened within the window: all served.
    let mut open: Vec<WebSocket> = (0..3)
        .map(|_| Client::connect(&unix_url(&socket, "/")).unwrap())
        .collect();
    for (n, ws) in open.iter_mut().enumerate() {
        assert_round_trip(ws, &format!("client {n}"));
    }
    assert!(handle.shutdown());
}

#[test]
fn a_trusted_unix_proxy_names_the_client() {
    let dir = TempDir::new();
    let socket = dir.path("proxied.sock");
    let server = Server::bind_unix(&socket)
        .unwrap()
        .trusted_unix_proxy(true)
        .max_connections_per_ip(1);
    let (handle, seen) = start_echo(server);
    let (status, mut first) = raw_upgrade(&socket, "X-Forwarded-For: 203.0.113.7\r\n");
    assert!(status.contains("101"), "{status}");
    raw_echo(&mut first);
    // The same client again while its first connection is open: over its per-IP limit.
    let (status, _) = raw_upgrade(&socket, "X-Forwarded-For: 203.0.113.7\r\n");
    assert!(status.contains("429"), "{status}");
    // Another client through the same proxy.
    let (status, mut other) = raw_upgrade(&socket, "X-Forwarded-For: 198.51.100.2\r\n");
    assert!(status.contains("101"), "{status}");
    raw_echo(&mut other);
    // Requests that name no client: no IP, not counted.
    let (status, mut local) = raw_upgrade(&socket, "");
    assert!(status.contains("101"), "{status}");
    raw_echo(&mut local);
    let (status, mut local2) = raw_upgrade(&socket, "");
    assert!(status.contains("101"), "{status}");
    raw_echo(&mut local2);
    let mut peers: Vec<_> = seen.lock().unwrap().iter().map(|(p, _)| *p).collect();
    peers.sort();
    let ip = |s: &str| Some(SocketAddr::new(s.parse().unwrap(), 0));
    assert_eq!(peers, [None, None, ip("198.51.100.2"), ip("203.0.113.7")]);
    drop((first, other, local, local2));
    handle.shutdown();
}

#[test]
fn an_untrusted_unix_peer_names_nobody() {
    let dir = TempDir::new();
    let socket = dir.path("plain.sock");
    let server = Server::bind_unix(&socket).unwrap();
    let (handle, seen) = start_echo(server);
    let (status, mut unix) = raw_upgrade(&socket, "X-Forwarded-For: 203.0.113.7\r\n");
    assert!(status.contains("101"), "{status}");
    raw_echo(&mut unix);
    assert_eq!(seen.lock().unwrap()[0].0, None, "forwarded header ignored");
    drop(unix);
    handle.shutdown();
}

#[test]
fn tls_over_a_unix_socket_is_refused_up_front() {
    let dir = TempDir::new();
    let socket = dir.path("tls.sock");
    let err = Client::builder()
        .unix_socket(&socket)
        .connect("wss://localhost/")
        .unwrap_err();
    assert!(
        matches!(&err, Error::Io(e) if e.kind() == ErrorKind::Unsupported),
        "{err:?}"
    );
    #[cfg(any(feature = "tls", feature = "rustls"))]
    {
        let fixture = |name: &str| format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let tls = syncws::ServerTls::from_pem_files(fixture("server.pem"), fixture("server.key"))
            .unwrap();
        let server = Server::bind_unix(&socket).unwrap().tls(tls);
        let err = server.start(echo).unwrap_err();
        assert!(
            matches!(&err, Error::Io(e) if e.kind() == ErrorKind::Unsupported),
            "{err:?}"
        );
    }
}

#[test]
fn plain_http_over_a_unix_socket_gets_its_answer_and_the_close() {
    let dir = TempDir::new();
    let socket = dir.path("eof.sock");
    let (handle, _) = start_echo(Server::bind_unix(&socket).unwrap());
    let mut unix = UnixStream::connect(&socket).unwrap();
    unix.set_read_timeout(Some(TIMEOUT)).unwrap();
    unix.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    unix.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 426"), "{answer}");
    handle.shutdown();
}

#[test]
fn a_reconnecting_client_finds_a_restarted_server_on_the_same_socket() {
    let dir = TempDir::new();
    let socket = dir.path("restart.sock");
    let named = |name: &'static str| {
        move |ws: &mut WebSocket| -> syncws::HandlerResult {
            ws.send(name)?;
            echo(ws)
        }
    };
    let first = Server::bind_unix(&socket)
        .unwrap()
        .start(named("A"))
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let url = unix_url(&socket, "/feed");
    let hooks = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hooks);
    let client = std::thread::spawn(move || {
        let backoff = syncws::Backoff::default()
            .initial(Duration::from_millis(10))
            .max(Duration::from_millis(50));
        Client::builder()
            .reconnecting(&url)
            .backoff(backoff)
            .on_connect(move |_| {
                counted.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
            .run(|ws| {
                let Some(Message::Text(name)) = ws.recv()? else {
                    return Ok(());
                };
                tx.send(name.clone()).unwrap();
                if name == "B" {
                    return Ok(()); // closes with 1000: the loop ends
                }
                while ws.recv()?.is_some() {}
                Ok(())
            })
    });
    assert_eq!(rx.recv_timeout(TIMEOUT).unwrap(), "A");
    // The server goes away (1001, its socket file removed: connects fail with NotFound
    // meanwhile) and another takes the same path.
    assert!(first.shutdown());
    let second = Server::bind_unix(&socket)
        .unwrap()
        .start(named("B"))
        .unwrap();
    assert_eq!(rx.recv_timeout(TIMEOUT).unwrap(), "B");
    client.join().unwrap().unwrap();
    assert_eq!(
        hooks.load(Ordering::SeqCst),
        2,
        "the hook ran on each connection"
    );
    assert!(second.shutdown());
}

#[test]
fn split_connections_read_and_write_at_once_on_both_sides() {
    let dir = TempDir::new();
    let socket = dir.path("duplex.sock");
    // The server echoes from a writer thread while its reader reads.
    let handle = Server::bind_unix(&socket)
        .unwrap()
        .start(split_echo)
        .unwrap();
    let mut ws = Client::connect(&unix_url(&socket, "/")).unwrap();
    let (mut reader, writer) = ws.split().unwrap();
    // Megabytes each way, more than the socket buffers hold: only both sides reading while
    // they write get through.
    let count = 100;
    let sender = std::thread::spawn(move || {
        for i in 0..count {
            writer.send(bytes_of_len(64 << 10 | i)).unwrap();
        }
        writer
    });
    for i in 0..count {
        match reader.recv_timeout(TIMEOUT).unwrap() {
            Some(Message::Binary(b)) => assert_eq!(b, bytes_of_len(64 << 10 | i)),
            other => panic!("message {i}: {other:?}"),
        }
    }
    drop(sender.join().unwrap());
    // The reader closes: it sends the close and reads the answer itself.
    reader.close(syncws::CloseCode::NORMAL, "").unwrap();
    assert!(handle.shutdown());
}

#[test]
fn a_room_over_unix_sockets_drops_a_stalled_member_and_serves_the_rest() {
    const SIZE: usize = 8 << 10;
    let dir = TempDir::new();
    let socket = dir.path("room.sock");
    let hub = syncws::Hub::builder().backlog(1 << 20).build().unwrap();
    let members = hub.clone();
    let (joined_tx, joined) = mpsc::channel::<()>();
    let joined_tx = Mutex::new(joined_tx);
    let config = syncws::Config::default().write_timeout(Some(Duration::from_secs(20)));
    let handle = Server::bind_unix(&socket)
        .unwrap()
        .config(config)
        .start(move |ws| {
            let (mut reader, writer) = ws.split()?;
            members.join("room", &writer)?;
            joined_tx.lock().unwrap().send(())?;
            while reader.recv()?.is_some() {}
            Ok(())
        })
        .unwrap();
    let mut healthy = Client::connect(&unix_url(&socket, "/")).unwrap();
    // Upgraded by hand, then never read a byte.
    let (status, mut stalled) = raw_upgrade(&socket, "");
    assert!(status.contains("101"), "{status}");
    for _ in 0..2 {
        joined.recv_timeout(TIMEOUT).unwrap();
    }
    let count = 1000u32;
    let publisher = {
        let hub = hub.clone();
        std::thread::spawn(move || {
            let mut longest = Duration::ZERO;
            for i in 0..count {
                let mut msg = vec![i as u8; SIZE];
                msg[..4].copy_from_slice(&i.to_be_bytes());
                let started = std::time::Instant::now();
                hub.publish("room", &msg[..]);
                longest = longest.max(started.elapsed());
                std::thread::sleep(Duration::from_millis(1));
            }
            hub.publish("room", "end");
            longest
        })
    };
    // 8 MB: far past the stalled member's socket buffer and backlog; the healthy one gets all.
    for i in 0..count {
        match healthy.recv_timeout(TIMEOUT).unwrap() {
            Some(Message::Binary(b)) => assert_eq!(b[..4], i.to_be_bytes(), "in order"),
            other => panic!("message {i}: {other:?}"),
        }
    }
    assert_eq!(
        healthy.recv_timeout(TIMEOUT).unwrap(),
        Some(Message::Text("end".into()))
    );
    let longest = publisher.join().unwrap();
    assert!(
        longest < Duration::from_secs(1),
        "a publish took {longest:?}"
    );
    assert_eq!(hub.count("room"), 1, "the stalled member was dropped");
    // Its socket was shut down: what was buffered, then the end.
    let mut sink = vec![0u8; 1 << 16];
    loop {
        match stalled.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the stalled connection was left open: {e}"),
        }
    }
    healthy.close(syncws::CloseCode::NORMAL, "").unwrap();
    assert!(handle.shutdown());
}
