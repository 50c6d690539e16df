//! Rooms that no member can stall, over real loopback sockets: members that never read, die or
//! read slowly; the overflow policies; a member's own sends between the room's messages; leaving
//! rooms when a connection ends; many publishers at once.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use support::*;
use syncws::{CloseCode, Config, Error, Hub, Message, Overflow, Overflowed, Server, WebSocket};

/// A server whose every connection joins `ROOM` of `hub` and then reads until it ends; the
/// write timeout is long, so a publish that waited on a member's socket would show. Returns its
/// address and a channel that hears of every join.
fn room_server(hub: &Hub) -> (SocketAddr, mpsc::Receiver<u64>) {
    room_server_with(hub, Server::bind("127.0.0.1:0").unwrap(), |_| None)
}

/// Like [`room_server`] on `server`; each member answers a message from its client with what
/// `answer` makes of it, through its own writer.
fn room_server_with<F>(hub: &Hub, server: Server, answer: F) -> (SocketAddr, mpsc::Receiver<u64>)
where
    F: Fn(&Message) -> Option<String> + Send + Sync + 'static,
{
    let config = Config::default().write_timeout(Some(Duration::from_secs(20)));
    room_server_on(hub, server.config(config), answer)
}

/// Reads whatever is buffered and then the end of the stream (or a reset): the server shut the
/// connection down.
fn reaches_the_end(c: &mut RawConn) {
    use std::io::Read;
    c.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut sink = vec![0u8; 1 << 16];
    loop {
        match c.stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("the connection was left open: {e}"),
        }
    }
}

/// A member that reads every message and checks it is the next in order; returns the text that
/// ends the test, how many binary messages came before it, and the socket (still open).
fn reader(mut ws: WebSocket, size: usize) -> thread::JoinHandle<(String, u32, WebSocket)> {
    thread::spawn(move || {
        let mut next = 0u32;
        loop {
            match ws.recv_timeout(TIMEOUT).unwrap().expect("closed early") {
                Message::Binary(b) => {
                    let i = u32::from_be_bytes(b[..4].try_into().unwrap());
                    assert_eq!(i, next, "out of order");
                    assert_eq!(b.len(), size);
                    assert!(b[4..].iter().all(|&x| x == i as u8), "message {i}");
                    next += 1;
                }
                Message::Text(end) => return (end, next, ws),
            }
        }
    })
}

fn numbered(i: u32, size: usize) -> Vec<u8> {
    let mut msg = vec![i as u8; size];
    msg[..4].copy_from_slice(&i.to_be_bytes());
    msg
}

/// Publishes `count` numbered messages of `size` bytes, `pause` apart; returns the longest
/// publish call.
fn publish_numbered(hub: &Hub, count: u32, size: usize, pause: Duration) -> Duration {
    let mut longest = Duration::ZERO;
    for i in 0..count {
        let msg = numbered(i, size);
        let started = Instant::now();
        hub.publish(ROOM, &msg[..]);
        longest = longest.max(started.elapsed());
        thread::sleep(pause);
    }
    longest
}

#[test]
fn stalled_members_are_disconnected_and_the_rest_get_everything_in_order() {
    const HEALTHY: usize = 10;
    const STALLED: usize = 5;
    const SIZE: usize = 8 << 10;
    let events = Arc::new(Mutex::new(Vec::<Overflowed>::new()));
    let seen = Arc::clone(&events);
    // A backlog that gives healthy members (debug builds, a busy machine) slack for a while.
    let hub = Hub::builder()
        .backlog(4 << 20)
        .on_overflow(move |e| seen.lock().unwrap().push(e.clone()))
        .build()
        .unwrap();
    let (addr, joins) = room_server(&hub);
    let healthy: Vec<_> = (0..HEALTHY)
        .map(|_| reader(connect(addr, Config::default()), SIZE))
        .collect();
    // Upgraded by hand, then never read a byte.
    let stalled: Vec<RawConn> = (0..STALLED).map(|_| RawConn::connect(addr)).collect();
    joined(&joins, HEALTHY + STALLED);
    assert_eq!(hub.count(ROOM), HEALTHY + STALLED);

    // 16 MB for each member: far past a stalled one's socket buffers (a few MiB) and backlog.
    let count = 2000;
    let started = Instant::now();
    let longest = publish_numbered(&hub, count, SIZE, Duration::from_millis(1));
    hub.publish(ROOM, format!("end {count}"));
    let mut open = Vec::new();
    for h in healthy {
        let (end, got, ws) = h.join().unwrap();
        assert_eq!(end, format!("end {count}"));
        assert_eq!(got, count, "a healthy member missed messages");
        open.push(ws);
    }
    // Nothing waited on a stalled socket's 20 s write timeout.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(
        longest < Duration::from_secs(1),
        "a publish took {longest:?}"
    );
    assert_eq!(hub.count(ROOM), HEALTHY, "the stalled members were dropped");
    let events = events.lock().unwrap();
    assert_eq!(events.len(), STALLED, "{events:?}");
    assert!(events.iter().all(|e| e.action == Overflow::Disconnect));
    // One event for each stalled member, each naming its own connection.
    let members: std::collections::HashSet<u64> = events.iter().map(|e| e.member).collect();
    assert_eq!(members.len(), STALLED, "{events:?}");
    // Their connections were shut down at once.
    for mut c in stalled {
        reaches_the_end(&mut c);
    }
}

#[test]
fn a_room_that_drops_messages_keeps_the_member_and_counts() {
    const SIZE: usize = 16 << 10;
    let events = Arc::new(Mutex::new(Vec::<Overflowed>::new()));
    let seen = Arc::clone(&events);
    let hub = Hub::builder()
        .backlog(2 << 20)
        .overflow(Overflow::DropMessages)
        .on_overflow(move |e| seen.lock().unwrap().push(e.clone()))
        .build()
        .unwrap();
    let (addr, joins) = room_server(&hub);
    let healthy = reader(connect(addr, Config::default()), SIZE);
    let stalled = RawConn::connect(addr);
    joined(&joins, 2);
    // 13 MB: past the stalled member's socket buffers and backlog. Each publish says whom it
    // queued for and for whom it dropped the message.
    let count = 800;
    let mut dropped = 0;
    for i in 0..count {
        let d = hub.publish(ROOM, &numbered(i, SIZE)[..]);
        assert_eq!(d.queued + d.dropped, 2, "message {i}: {d:?}");
        dropped += d.dropped;
        thread::sleep(Duration::from_millis(1));
    }
    dropped += hub.publish(ROOM, format!("end {count}")).dropped;
    let (end, got, _open) = healthy.join().unwrap();
    assert_eq!((end.as_str(), got), ("end 800", count));
    assert_eq!(hub.count(ROOM), 2, "the slow member stays");
    let events = events.lock().unwrap();
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| e.action == Overflow::DropMessages));
    let last = events.last().unwrap();
    assert_eq!(last.dropped, events.len() as u64, "counted one by one");
    assert_eq!(
        dropped,
        events.len(),
        "the publishes' counts and the events'"
    );
    drop(stalled);
}

#[test]
fn a_dead_member_leaves_its_rooms() {
    let hub = Hub::new().unwrap();
    let (addr, joins) = room_server(&hub);
    let ws = connect(addr, Config::default());
    let gone = RawConn::connect(addr);
    joined(&joins, 2);
    assert_eq!(hub.count(ROOM), 2);
    // Gone without a close frame.
    drop(gone);
    assert!(wait_until(PROMPTLY, || {
        hub.publish(ROOM, "tick");
        hub.count(ROOM) == 1
    }));
    assert_eq!(hub.rooms(), vec![ROOM.to_owned()]);
    drop(ws);
    assert!(wait_until(PROMPTLY, || hub.count(ROOM) == 0));
    assert!(hub.rooms().is_empty(), "an empty room is forgotten");
}

#[test]
fn a_members_own_sends_go_between_the_rooms_messages_whole() {
    // The member's handler answers each of its client's messages while the room publishes to
    // it: every frame must arrive whole and valid (the client checks every frame), the room's
    // messages in order.
    const SIZE: usize = 40 << 10;
    // Room for everything: this test is about frames, not overflow.
    let hub = Hub::builder().backlog(64 << 20).build().unwrap();
    let server = Server::bind("127.0.0.1:0").unwrap();
    let (addr, joins) = room_server_with(&hub, server, |msg| {
        Some(format!("own {}", msg.as_text().unwrap_or("")))
    });
    let mut ws = connect(addr, Config::default());
    joined(&joins, 1);
    let (mut client_reader, client_writer) = ws.split().unwrap();
    let publishing = {
        let hub = hub.clone();
        thread::spawn(move || publish_numbered(&hub, 300, SIZE, Duration::from_micros(200)))
    };
    let asking = thread::spawn(move || {
        for i in 0..300 {
            client_writer.send(format!("{i}")).unwrap();
        }
        client_writer
    });
    let (mut next_room, mut next_own) = (0u32, 0u32);
    while next_room < 300 || next_own < 300 {
        match client_reader.recv_timeout(TIMEOUT).unwrap().expect("open") {
            Message::Binary(b) => {
                let i = u32::from_be_bytes(b[..4].try_into().unwrap());
                assert_eq!(i, next_room);
                assert_eq!(b, numbered(i, SIZE));
                next_room += 1;
            }
            Message::Text(t) => {
                assert_eq!(t, format!("own {next_own}"));
                next_own += 1;
            }
        }
    }
    publishing.join().unwrap();
    let _ = asking.join().unwrap();
}

#[test]
fn thirty_two_publishers_at_once_each_in_order() {
    const PUBLISHERS: u32 = 32;
    const EACH: u32 = 100;
    let hub = Hub::new().unwrap();
    let (addr, joins) = room_server(&hub);
    let members: Vec<_> = (0..4)
        .map(|_| {
            let mut ws = connect(addr, Config::default());
            thread::spawn(move || {
                let mut next = vec![0u32; PUBLISHERS as usize];
                for _ in 0..PUBLISHERS * EACH {
                    let msg = ws.recv_timeout(TIMEOUT).unwrap().expect("open");
                    let text = msg.as_text().unwrap().to_owned();
                    let (p, i) = text.split_once(':').unwrap();
                    let (p, i): (usize, u32) = (p.parse().unwrap(), i.parse().unwrap());
                    assert_eq!(i, next[p], "publisher {p} out of order");
                    next[p] += 1;
                }
                next
            })
        })
        .collect();
    joined(&joins, 4);
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let hub = hub.clone();
            thread::spawn(move || {
                for i in 0..EACH {
                    assert_eq!(hub.publish(ROOM, format!("{p}:{i}")).queued, 4);
                }
            })
        })
        .collect();
    for p in publishers {
        p.join().unwrap();
    }
    for m in members {
        assert_eq!(m.join().unwrap(), vec![EACH; PUBLISHERS as usize]);
    }
}

#[test]
fn a_clients_socket_cannot_join() {
    let hub = Hub::new().unwrap();
    let addr = echo_server();
    let mut ws = connect(addr, Config::default());
    let (_reader, writer) = ws.split().unwrap();
    let r = hub.join(ROOM, &writer);
    assert!(
        matches!(
            r,
            Err(Error::InvalidInput(syncws::InputError::ClientSocket))
        ),
        "{r:?}"
    );
}

fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// The client of the member at `addr` does not read while the room publishes 128 messages of
/// 64 KiB (8 MB) to it, so most of that waits in the member's queue; then it sends `ask` to its
/// handler, and reads: all of the room's messages must come first, in order. Returns the
/// client, for what its handler did to come next.
fn ask_behind_a_full_queue(
    hub: &Hub,
    addr: SocketAddr,
    joins: &mpsc::Receiver<u64>,
    ask: &str,
) -> WebSocket {
    const SIZE: usize = 64 << 10;
    const COUNT: u32 = 128;
    let mut ws = connect(addr, Config::default());
    joined(joins, 1);
    for i in 0..COUNT {
        assert_eq!(hub.publish(ROOM, &numbered(i, SIZE)[..]).queued, 1);
    }
    ws.send(ask).unwrap();
    for i in 0..COUNT {
        match ws.recv_timeout(TIMEOUT).unwrap() {
            Some(Message::Binary(b)) => assert_eq!(b, numbered(i, SIZE), "message {i}"),
            other => panic!("message {i}: {other:?}"),
        }
    }
    ws
}

#[test]
fn a_members_own_send_goes_behind_what_the_room_queued_for_it() {
    let hub = Hub::builder().backlog(64 << 20).build().unwrap();
    let server = Server::bind("127.0.0.1:0").unwrap();
    let (addr, joins) = room_server_with(&hub, server, |_| Some("own".into()));
    let mut ws = ask_behind_a_full_queue(&hub, addr, &joins, "go");
    assert_eq!(
        ws.recv_timeout(TIMEOUT).unwrap(),
        Some(Message::Text("own".into()))
    );
}

#[test]
fn a_members_close_goes_behind_what_the_room_queued_for_it() {
    // The handler answers its client's message by closing: the close frame must come after
    // every one of the room's queued messages, and nothing after it.
    let hub = Hub::builder().backlog(64 << 20).build().unwrap();
    let server = Server::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr();
    let members = hub.clone();
    let (joined_tx, joins) = mpsc::channel();
    let joined_tx = Mutex::new(joined_tx);
    thread::spawn(move || {
        server.serve(move |ws| {
            let (mut reader, writer) = ws.split()?;
            members.join(ROOM, &writer)?;
            joined_tx.lock().unwrap().send(writer.id())?;
            if reader.recv()?.is_some() {
                reader.close(CloseCode::NORMAL, "done")?;
            }
            Ok(())
        })
    });
    let mut ws = ask_behind_a_full_queue(&hub, addr, &joins, "close, please");
    assert_eq!(
        ws.recv_timeout(TIMEOUT).unwrap(),
        None,
        "the close came last"
    );
}

#[test]
fn a_pong_waits_for_a_room_frame_the_kernel_took_in_part() {
    // One large message fills the member's socket and stays written in part; the client's ping
    // is answered with a pong, which must come after the rest of that frame, not inside it.
    let hub = Hub::builder().backlog(64 << 20).build().unwrap();
    let (addr, joins) = room_server(&hub);
    // Above the default 16 MiB, so that the kernel takes it in part whatever its buffers.
    let limits = Config::default()
        .max_frame_size(32 << 20)
        .max_message_size(32 << 20);
    let mut ws = connect(addr, limits);
    joined(&joins, 1);
    let big = numbered(7, 24 << 20);
    hub.publish(ROOM, &big[..]);
    // Let the flusher write what the kernel takes.
    thread::sleep(Duration::from_millis(300));
    ws.ping(b"between?").unwrap();
    assert_eq!(
        ws.recv_timeout(TIMEOUT).unwrap(),
        Some(Message::Binary(big))
    );
    hub.publish(ROOM, "after");
    assert_eq!(
        ws.recv_timeout(TIMEOUT).unwrap(),
        Some(Message::Text("after".into()))
    );
    assert!(ws.rtt().is_some(), "the pong came");
}

/// A `wss://` room server of `hub` on the test certificate: its joins, and a way to connect a
/// member that trusts the test CA.
#[cfg(any(feature = "tls", feature = "rustls"))]
fn tls_room(hub: &Hub) -> (mpsc::Receiver<u64>, impl Fn() -> WebSocket) {
    let server = Server::bind("127.0.0.1:0").unwrap().tls(test_server_tls());
    let (addr, joins) = room_server_with(hub, server, |_| None);
    let url = format!("wss://localhost:{}/", addr.port());
    (joins, move || test_ca_client().connect(&url).unwrap())
}

#[cfg(any(feature = "tls", feature = "rustls"))]
#[test]
fn rooms_work_over_tls_with_a_stalled_member() {
    const HEALTHY: usize = 4;
    const SIZE: usize = 8 << 10;
    let hub = Hub::builder().backlog(2 << 20).build().unwrap();
    let (joins, wss) = tls_room(&hub);
    let healthy: Vec<_> = (0..HEALTHY).map(|_| reader(wss(), SIZE)).collect();
    // Connected over TLS, then never reads.
    let stalled = wss();
    joined(&joins, HEALTHY + 1);
    // 12 MB each: past the stalled member's buffers and backlog.
    let count = 1500;
    publish_numbered(&hub, count, SIZE, Duration::from_micros(500));
    hub.publish(ROOM, format!("end {count}"));
    let mut open = Vec::new();
    for h in healthy {
        let (end, got, ws) = h.join().unwrap();
        assert_eq!((end, got), (format!("end {count}"), count));
        open.push(ws);
    }
    assert_eq!(hub.count(ROOM), HEALTHY, "the stalled member was dropped");
    drop(stalled);
}

/// A TLS member that falls behind and catches up gets every message whole and in order: while
/// it does not read, its socket fills, and the flusher's non-blocking writes find the session
/// taking a record the socket takes only part of. That record is taken (the rest goes out
/// first on the next try); were it reported as not taken, it would be given again and the
/// member would read it twice, a corrupt stream.
#[cfg(any(feature = "tls", feature = "rustls"))]
#[test]
fn a_tls_member_that_falls_behind_gets_everything_whole_once_it_reads() {
    const SIZE: usize = 8 << 10;
    // Room for everything published: the member is slow, not stalled.
    let hub = Hub::builder().backlog(64 << 20).build().unwrap();
    let (joins, wss) = tls_room(&hub);
    let ws = wss();
    joined(&joins, 1);
    // 12 MB, far past the socket buffers, before the member reads anything.
    let count = 1500;
    publish_numbered(&hub, count, SIZE, Duration::ZERO);
    hub.publish(ROOM, format!("end {count}"));
    thread::sleep(Duration::from_millis(300));
    let (end, got, _ws) = reader(ws, SIZE).join().unwrap();
    assert_eq!((end, got), (format!("end {count}"), count));
    assert_eq!(hub.count(ROOM), 1, "the member is still in the room");
}

/// A member server whose handler splits, joins `ROOM` and then holds its halves without
/// reading until the returned sender is used or dropped. Reports the member's id.
fn silent_member_server(hub: &Hub) -> (SocketAddr, mpsc::Receiver<u64>, mpsc::Sender<()>) {
    let (joined_tx, joined) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let joined_tx = Mutex::new(joined_tx);
    let released = Mutex::new(released);
    let members = hub.clone();
    let addr = serve(Config::default(), move |ws| {
        let (reader, writer) = ws.split()?;
        members.join(ROOM, &writer)?;
        let _ = joined_tx.lock().unwrap().send(writer.id());
        let _ = released.lock().unwrap().recv_timeout(TIMEOUT);
        drop((reader, writer));
        Ok(())
    });
    (addr, joined, release)
}

/// A member whose connection was reset while nobody reads it is found out by the room's
/// flusher, whose write fails: the member leaves the room, instead of being retried as if
/// its socket were only full.
#[test]
fn a_reset_member_nobody_reads_leaves_when_a_write_to_it_fails() {
    let hub = Hub::new().unwrap();
    let (addr, joined, release) = silent_member_server(&hub);
    let raw = RawConn::connect(addr);
    joined.recv_timeout(TIMEOUT).unwrap();
    raw.reset();
    let started = Instant::now();
    while hub.count(ROOM) > 0 && started.elapsed() < Duration::from_secs(3) {
        let _ = hub.publish(ROOM, "anyone there?");
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(hub.count(ROOM), 0, "the reset member is still in the room");
    drop(release);
}
