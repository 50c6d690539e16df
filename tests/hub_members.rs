//! One room, every kind of member at once, over real loopback sockets: healthy members that
//! read everything, stalled ones that never read, dead ones whose connection was reset, and
//! slow ones that read 1 KB a second. 40 MB go to the room; the healthy members get every
//! message in order, the stalled and slow ones are dropped by the room's policy as their
//! backlog fills, the dead ones leave, and the heap of this whole process (server and members)
//! never grows by more than the members' backlogs and a little: without the backlog it would
//! hold what the stalled members did not read, tens of megabytes.

mod heap;
mod support;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use support::*;
use syncws::{Config, Hub, Message, Overflow, Overflowed, Server};

#[global_allocator]
static GLOBAL: heap::Peak = heap::Peak;

const HEALTHY: usize = 4;
const STALLED: usize = 4;
const DEAD: usize = 3;
const SLOW: usize = 2;
const SIZE: usize = 4 << 10;
const COUNT: u32 = 10_000;
const BACKLOG: usize = 2 << 20;

fn room_server(hub: &Hub) -> (SocketAddr, mpsc::Receiver<u64>) {
    let server = Server::bind("127.0.0.1:0")
        .unwrap()
        .config(Config::default().write_timeout(Some(Duration::from_secs(20))));
    room_server_on(hub, server, |_| None)
}

fn set_int_option(tcp: &TcpStream, level: libc::c_int, name: libc::c_int, value: libc::c_int) {
    // SAFETY: a valid socket descriptor, and a pointer to an int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt {name}");
}

/// A member upgraded by hand whose receive buffer is fixed at 4 KiB, so it fills at once.
fn small_member(addr: SocketAddr) -> RawConn {
    let raw = RawConn::connect(addr);
    set_int_option(&raw.stream, libc::SOL_SOCKET, libc::SO_RCVBUF, 4096);
    raw
}

/// Reads 1 KB a second until the connection ends or `stop` is set; returns the bytes read.
/// (A dropped member's connection is shut down at once, but what the kernel already holds for
/// it still trickles out at its pace before the end of the stream does.)
fn slow_reader(mut raw: RawConn, stop: Arc<AtomicBool>) -> thread::JoinHandle<usize> {
    thread::spawn(move || {
        raw.stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut kb = [0u8; 1024];
        let mut total = 0;
        while !stop.load(Ordering::SeqCst) {
            match raw.stream.read(&mut kb) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
            thread::sleep(Duration::from_secs(1));
        }
        total
    })
}

fn numbered(i: u32) -> Vec<u8> {
    let mut msg = vec![i as u8; SIZE];
    msg[..4].copy_from_slice(&i.to_be_bytes());
    msg
}

#[test]
fn healthy_members_get_everything_while_stalled_slow_and_dead_ones_are_dealt_with() {
    let events = Arc::new(Mutex::new(Vec::<Overflowed>::new()));
    let seen = Arc::clone(&events);
    let hub = Hub::builder()
        .backlog(BACKLOG)
        .overflow(Overflow::Disconnect)
        .on_overflow(move |e| seen.lock().unwrap().push(e.clone()))
        .build()
        .unwrap();
    let (addr, joins) = room_server(&hub);
    let healthy: Vec<_> = (0..HEALTHY)
        .map(|_| {
            let mut ws = connect(addr, Config::default());
            thread::spawn(move || {
                let mut next = 0u32;
                loop {
                    match ws.recv_timeout(TIMEOUT).unwrap().expect("open") {
                        Message::Binary(b) => {
                            let i = u32::from_be_bytes(b[..4].try_into().unwrap());
                            assert_eq!((i, b.len()), (next, SIZE), "in order, whole");
                            assert!(b[4..].iter().all(|&x| x == i as u8));
                            next += 1;
                        }
                        Message::Text(_) => return (next, ws),
                    }
                }
            })
        })
        .collect();
    let stalled: Vec<RawConn> = (0..STALLED).map(|_| small_member(addr)).collect();
    let dead: Vec<RawConn> = (0..DEAD).map(|_| RawConn::connect(addr)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let slow: Vec<_> = (0..SLOW)
        .map(|_| slow_reader(small_member(addr), Arc::clone(&stop)))
        .collect();
    joined(&joins, HEALTHY + STALLED + DEAD + SLOW);
    dead.into_iter().for_each(RawConn::reset);

    let base = heap::mark();
    let started = Instant::now();
    let mut longest = Duration::ZERO;
    for i in 0..COUNT {
        let msg = numbered(i);
        let t = Instant::now();
        hub.publish(ROOM, &msg[..]);
        longest = longest.max(t.elapsed());
        if i % 10 == 9 {
            thread::sleep(Duration::from_millis(2));
        }
    }
    hub.publish(ROOM, "end");
    let published = started.elapsed();
    let mut open = Vec::new();
    for h in healthy {
        let (got, ws) = h.join().unwrap();
        assert_eq!(got, COUNT, "a healthy member missed messages");
        open.push(ws);
    }
    let grew = heap::growth_since(base);
    let took = started.elapsed();
    eprintln!(
        "published {} MB in {published:?}, all read by {took:?}; heap grew by {} KiB at most",
        COUNT as usize * SIZE / 1_000_000,
        grew >> 10
    );

    // Nothing waited on a socket: not the publisher, not the healthy members.
    assert!(
        longest < Duration::from_secs(1),
        "a publish took {longest:?}"
    );
    assert!(took < Duration::from_secs(15), "the run took {took:?}");
    // The stalled and the slow were dropped when their backlog filled.
    let events = events.lock().unwrap().clone();
    assert_eq!(events.len(), STALLED + SLOW, "{events:?}");
    assert!(events.iter().all(|e| e.action == Overflow::Disconnect));
    stop.store(true, Ordering::SeqCst);
    for s in slow {
        let read = s.join().unwrap();
        assert!(
            read > 0 && read < 64 << 10,
            "a slow member read {read} bytes"
        );
    }
    // (That their connections are shut at once is checked in tests/hub.rs; here their tiny
    // receive windows would make reading to the end take minutes.)
    drop(stalled);
    // The dead left; only the healthy remain.
    assert_eq!(hub.count(ROOM), HEALTHY);
    // A published frame is shared by every queue it is in, and each queue holds the most recent
    // frames of the one sequence, so all of them together hold at most one backlog's worth of
    // distinct frames (and one message over). The rest is the connections' own buffers: the
    // healthy members' messages as they are read, read buffers, frames in flight.
    let bound = BACKLOG + SIZE + (4 << 20);
    assert!(grew <= bound, "the heap grew by {} KiB", grew >> 10);
}
