//! Rooms on connections that negotiated permessage-deflate, over real loopback sockets: a
//! message compressed once for every member that compresses each message on its own (the
//! default), members that keep their context compressing for themselves in the order they
//! send, and every member inflating what it gets.

#![cfg(feature = "deflate")]

mod support;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use support::*;
use syncws::proto::deflate::Decompressor;
use syncws::{Client, Config, DeflateConfig, Hub, Message, Server};

const RSV1: u8 = 0b100;

/// A server with `deflate` whose every connection joins `ROOM` and answers each message from
/// its client with `reply` through its own writer.
fn room_server(
    hub: &Hub,
    deflate: DeflateConfig,
    reply: String,
) -> (SocketAddr, mpsc::Receiver<u64>) {
    let server = Server::bind("127.0.0.1:0")
        .unwrap()
        .config(Config::default().deflate(Some(deflate)));
    room_server_on(hub, server, move |_| Some(reply.clone()))
}

/// A raw member that offered permessage-deflate (`offer`), or nothing.
fn raw_member(addr: SocketAddr, offer: Option<&str>) -> RawConn {
    let headers = offer.map_or(String::new(), |o| {
        format!("Sec-WebSocket-Extensions: {o}\r\n")
    });
    let (raw, head) = RawConn::connect_with_headers(addr, &headers);
    assert_eq!(
        head_header(&head, "sec-websocket-extensions").is_some(),
        offer.is_some(),
        "{head}"
    );
    raw
}

#[test]
fn members_without_context_share_one_compression_per_publish() {
    let hub = Hub::new().unwrap();
    let (addr, joins) = room_server(&hub, DeflateConfig::default(), String::new());
    let mut raws: Vec<RawConn> = (0..3)
        .map(|_| raw_member(addr, Some("permessage-deflate")))
        .collect();
    let mut plain = raw_member(addr, None);
    let mut ours = Client::builder()
        .config(Config::default().deflate(Some(DeflateConfig::default())))
        .connect(&ws_url(addr, "/"))
        .unwrap();
    joined(&joins, 5);

    let big = varied_text(4000);
    let mut first_bytes = None;
    for round in 0..2 {
        let d = hub.publish(ROOM, &big);
        assert_eq!((d.queued, d.compressions), (5, 1), "round {round}");
        for raw in &mut raws {
            let f = raw.read_frame();
            assert_eq!(f.rsv, RSV1, "compressed");
            assert!(f.payload.len() < big.len() * 3 / 4, "{}", f.payload.len());
            // each message on its own: a fresh decompressor inflates every one
            let mut fresh = Decompressor::new(15, true);
            assert_eq!(inflate_with(&mut fresh, &f.payload), big.as_bytes());
            // the same bytes for every member, and for the same message again
            assert_eq!(first_bytes.get_or_insert(f.payload.clone()), &f.payload);
        }
        let f = plain.read_frame();
        assert_eq!((f.rsv, &f.payload[..]), (0, big.as_bytes()));
        assert_eq!(
            ours.recv_timeout(TIMEOUT).unwrap(),
            Some(Message::Text(big.clone()))
        );
    }

    // under the threshold (64 bytes): plain for everyone, nothing compressed
    let d = hub.publish(ROOM, "short");
    assert_eq!((d.queued, d.compressions), (5, 0));
    for raw in raws.iter_mut().chain([&mut plain]) {
        let f = raw.read_frame();
        assert_eq!((f.rsv, &f.payload[..]), (0, &b"short"[..]));
    }
    assert_eq!(
        ours.recv_timeout(TIMEOUT).unwrap(),
        Some(Message::Text("short".into()))
    );

    // exactly the threshold: compressed, as the threshold is the shortest message that is
    let edge = varied_text(64)[..64].to_string();
    let d = hub.publish(ROOM, &edge);
    assert_eq!((d.queued, d.compressions), (5, 1));
    for raw in &mut raws {
        let f = raw.read_frame();
        assert_eq!(f.rsv, RSV1, "compressed at the threshold");
        let mut fresh = Decompressor::new(15, true);
        assert_eq!(inflate_with(&mut fresh, &f.payload), edge.as_bytes());
    }
    assert_eq!(plain.read_frame().payload, edge.as_bytes());
    assert_eq!(
        ours.recv_timeout(TIMEOUT).unwrap(),
        Some(Message::Text(edge))
    );

    // a smaller window asked for by one member: a second compression, for that member alone
    let mut small = raw_member(addr, Some("permessage-deflate; server_max_window_bits=10"));
    joined(&joins, 1);
    let d = hub.publish(ROOM, &big);
    assert_eq!((d.queued, d.compressions), (6, 2));
    let f = small.read_frame();
    assert_eq!(f.rsv, RSV1);
    assert_eq!(
        inflate_with(&mut Decompressor::new(10, true), &f.payload),
        big.as_bytes()
    );
    for raw in &mut raws {
        assert_eq!(Some(&raw.read_frame().payload), first_bytes.as_ref());
    }
}

#[test]
fn members_with_context_compress_for_themselves_in_the_order_they_send() {
    let hub = Hub::new().unwrap();
    let reply = varied_text(3000);
    let takeover = DeflateConfig::default().no_context_takeover(false);
    let (addr, joins) = room_server(&hub, takeover.clone(), reply.clone());
    let mut raws: Vec<RawConn> = (0..2)
        .map(|_| raw_member(addr, Some("permessage-deflate")))
        .collect();
    let mut ours = Client::builder()
        .config(Config::default().deflate(Some(takeover)))
        .connect(&ws_url(addr, "/"))
        .unwrap();
    joined(&joins, 3);
    // one decompressor per member for the whole conversation: each message may refer back to
    // any before it, the member's own replies included
    let mut contexts: Vec<Decompressor> =
        raws.iter().map(|_| Decompressor::new(15, false)).collect();

    let big = varied_text(4000);
    let d = hub.publish(ROOM, &big);
    assert_eq!(
        (d.queued, d.compressions),
        (3, 0),
        "each member compresses it itself"
    );
    let mut first_len = Vec::new();
    for (raw, d) in raws.iter_mut().zip(&mut contexts) {
        let f = raw.read_frame();
        assert_eq!(f.rsv, RSV1);
        assert_eq!(inflate_with(d, &f.payload), big.as_bytes());
        first_len.push(f.payload.len());
        // the member's own message between the room's, compressed in the same context
        raw.send(&Frame::text("go"));
        let f = raw.read_frame();
        assert_eq!(f.rsv, RSV1);
        assert_eq!(inflate_with(d, &f.payload), reply.as_bytes());
    }
    assert_eq!(
        ours.recv_timeout(TIMEOUT).unwrap(),
        Some(Message::Text(big.clone()))
    );
    ours.send("go").unwrap();
    assert_eq!(
        ours.recv_timeout(TIMEOUT).unwrap(),
        Some(Message::Text(reply.clone()))
    );

    // the same message again refers back to the first copy: a few bytes per member
    hub.publish(ROOM, &big);
    for ((raw, d), first) in raws.iter_mut().zip(&mut contexts).zip(&first_len) {
        let f = raw.read_frame();
        assert_eq!(f.rsv, RSV1);
        assert!(
            f.payload.len() * 10 < *first,
            "{} vs {first}",
            f.payload.len()
        );
        assert_eq!(inflate_with(d, &f.payload), big.as_bytes());
    }
    assert_eq!(
        ours.recv_timeout(TIMEOUT).unwrap(),
        Some(Message::Text(big.clone()))
    );

    // each member's own compression keeps the threshold (64 bytes) too: one byte short goes
    // plain, exactly the threshold is compressed
    let edge = varied_text(64)[..64].to_string();
    for text in [&edge[..63], &edge[..]] {
        hub.publish(ROOM, text);
        for (raw, d) in raws.iter_mut().zip(&mut contexts) {
            let f = raw.read_frame();
            if text.len() < 64 {
                assert_eq!((f.rsv, &f.payload[..]), (0, text.as_bytes()));
            } else {
                assert_eq!(f.rsv, RSV1, "compressed at the threshold");
                assert_eq!(inflate_with(d, &f.payload), text.as_bytes());
            }
        }
        assert_eq!(
            ours.recv_timeout(TIMEOUT).unwrap(),
            Some(Message::Text(text.to_string()))
        );
    }

    // a message over 64 KiB (its plain frame has the 8-byte length) arrives whole as well
    let huge = varied_text(100_000);
    hub.publish(ROOM, &huge);
    for (raw, d) in raws.iter_mut().zip(&mut contexts) {
        let f = raw.read_frame();
        assert_eq!(f.rsv, RSV1);
        assert!(
            inflate_with(d, &f.payload) == huge.as_bytes(),
            "not the message"
        );
    }
    assert_eq!(
        ours.recv_timeout(TIMEOUT).unwrap(),
        Some(Message::Text(huge))
    );
}

#[test]
fn many_messages_queued_at_once_keep_their_order_under_each_context() {
    // Published faster than the members read, so the flushers compress and write queues of
    // many frames; every member must still inflate each message in order.
    let hub = Hub::new().unwrap();
    for deflate in [
        DeflateConfig::default(),
        DeflateConfig::default().no_context_takeover(false),
    ] {
        let takeover = !deflate.no_context_takeover;
        let (addr, joins) = room_server(&hub, deflate, String::new());
        let mut raws: Vec<RawConn> = (0..4)
            .map(|_| raw_member(addr, Some("permessage-deflate")))
            .collect();
        joined(&joins, 4);
        let msgs: Vec<String> = (0..200)
            .map(|i| format!("{i:04} {}", varied_text(500 + i * 7)))
            .collect();
        for m in &msgs {
            hub.publish(ROOM, m);
        }
        for raw in &mut raws {
            let mut d = Decompressor::new(15, !takeover);
            for m in &msgs {
                let f = raw.read_frame();
                assert_eq!(f.rsv, RSV1, "takeover {takeover}");
                assert_eq!(inflate_with(&mut d, &f.payload), m.as_bytes());
            }
        }
        for id in hub.members(ROOM) {
            hub.leave(ROOM, id);
        }
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_members_own_send_compresses_the_queue_it_writes_first() {
    // The member does not read while the room publishes, so its socket fills and the rest of
    // the room's messages wait in its queue, still to be compressed. Its own reply then writes
    // that queue first, under the write lock: compressed in the member's context, in order,
    // then the reply.
    let hub = Hub::builder().backlog(64 << 20).build().unwrap();
    let reply = varied_text(3000);
    let takeover = DeflateConfig::default().no_context_takeover(false).level(1);
    let (addr, joins) = room_server(&hub, takeover, reply.clone());
    let mut raw = raw_member(addr, Some("permessage-deflate"));
    shrink_receive_buffer(&raw.stream);
    joined(&joins, 1);
    // Noise does not compress, so 8 MiB stay 8 MiB on the wire: more than the member's small
    // receive buffer and the server's send buffer (4 MiB at most) hold.
    let mut x = 7u64;
    let msgs: Vec<Vec<u8>> = (0..1000)
        .map(|_| {
            (0..8192)
                .map(|_| {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    (x >> 56) as u8
                })
                .collect()
        })
        .collect();
    for m in &msgs {
        assert_eq!(hub.publish(ROOM, &m[..]).queued, 1);
    }
    // Time for the flushers to fill the socket (level 1 compresses noise at 100 MB/s or more)
    // and for the reply to take the write lock before the member starts reading. Were either
    // late, the queue would reach the socket through the flushers and the test pass without
    // telling anything; the order and the compression would still be checked.
    thread::sleep(Duration::from_millis(300));
    raw.send(&Frame::text("go"));
    thread::sleep(Duration::from_millis(300));
    let mut d = Decompressor::new(15, false);
    for (i, m) in msgs
        .iter()
        .map(|m| &m[..])
        .chain([reply.as_bytes()])
        .enumerate()
    {
        let f = raw.read_frame();
        assert_eq!(f.rsv, RSV1, "message {i} compressed");
        assert_eq!(inflate_with(&mut d, &f.payload), m, "message {i}");
    }
}

/// Fixes a socket's receive buffer at 64 KiB (the kernel would grow it to 32 MiB), so a peer
/// that does not read fills it soon.
fn shrink_receive_buffer(tcp: &std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 64 << 10;
    // SAFETY: a valid socket descriptor, and a pointer to an int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt SO_RCVBUF");
}
