//! Fan-out: a broadcast that must shed a stalled member without holding up the others.

mod support;

use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use support::*;
use syncws::{Broadcast, Config, Message};

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

#[test]
fn a_removed_member_gets_no_more_and_removing_it_again_says_so() {
    let room: Arc<Broadcast> = Arc::new(Broadcast::new());
    let members = Arc::clone(&room);
    let (joined_tx, joined) = mpsc::channel();
    let joined_tx = std::sync::Mutex::new(joined_tx);
    let addr = serve(Config::default(), move |ws| {
        let (mut reader, writer) = ws.split()?;
        let id = writer.id();
        members.add(writer);
        joined_tx.lock().unwrap().send(id)?;
        while reader.recv()?.is_some() {}
        Ok(())
    });
    let mut kept = connect(addr, Config::default());
    let kept_id = joined.recv_timeout(TIMEOUT).unwrap();
    let mut removed = connect(addr, Config::default());
    let removed_id = joined.recv_timeout(TIMEOUT).unwrap();
    assert_eq!(room.len(), 2);

    assert!(room.remove(removed_id), "it was a member");
    assert!(!room.remove(removed_id), "it is no longer one");
    assert!(
        !room.remove(removed_id.max(kept_id) + 1000),
        "never a member"
    );
    assert_eq!(room.len(), 1);
    assert_eq!(room.send("only the kept"), 1);
    assert_eq!(
        kept.recv_timeout(TIMEOUT).unwrap(),
        Some(Message::from("only the kept"))
    );
    // The removed connection stays open, and nothing comes to it.
    assert!(matches!(
        removed.recv_timeout(Duration::from_millis(200)),
        Err(syncws::Error::Timeout)
    ));
    removed.send("still here").unwrap();
}
