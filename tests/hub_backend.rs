//! The hub's seam to other instances, with a backend written here: two or three servers in this
//! process, each with its own hub, joined by an in-memory bus that carries what one forwards to
//! the others (and drops an instance's own messages, as the `Backend` rules ask). Members on
//! every instance get each message once, in order per publisher; a backend that refuses is
//! reported to the publisher while local members still get the message.

mod support;

use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use support::*;
use syncws::{
    Backend, Forwarded, Hub, Inbound, Message, MessageRef, NotForwarded, Server, WebSocket,
};

/// Every instance attached to one bus; what one forwards goes to all of them, tagged with the
/// sender, and each skips its own.
#[derive(Default)]
struct Bus {
    instances: Mutex<Vec<(u32, Inbound)>>,
}

/// One instance's backend: a bounded queue to a thread of its own that hands each message to
/// the bus.
struct Local {
    id: u32,
    bus: Arc<Bus>,
    queue: SyncSender<(String, Message)>,
    taken: Mutex<Option<Receiver<(String, Message)>>>,
    /// When set, `forward` refuses everything (the link is down).
    down: Arc<Mutex<bool>>,
}

impl Local {
    fn new(id: u32, bus: &Arc<Bus>, capacity: usize) -> Local {
        let (queue, rx) = mpsc::sync_channel(capacity);
        Local {
            id,
            bus: Arc::clone(bus),
            queue,
            taken: Mutex::new(Some(rx)),
            down: Arc::new(Mutex::new(false)),
        }
    }
}

impl Backend for Local {
    fn attach(&self, inbound: Inbound) -> syncws::Result<()> {
        self.bus.instances.lock().unwrap().push((self.id, inbound));
        let rx = self.taken.lock().unwrap().take().expect("attached once");
        let (bus, from) = (Arc::clone(&self.bus), self.id);
        thread::spawn(move || {
            for (room, msg) in rx {
                let instances = bus.instances.lock().unwrap().clone();
                for (id, inbound) in instances {
                    if id != from {
                        inbound.deliver(&room, &msg);
                    }
                }
            }
        });
        Ok(())
    }

    fn forward(&self, room: &str, msg: MessageRef<'_>) -> Result<(), NotForwarded> {
        if *self.down.lock().unwrap() {
            return Err(NotForwarded::Down("the test cut the link".into()));
        }
        let owned = match msg {
            MessageRef::Text(t) => Message::Text(t.to_owned()),
            MessageRef::Binary(b) => Message::Binary(b.to_vec()),
        };
        self.queue
            .try_send((room.to_owned(), owned))
            .map_err(|e| match e {
                TrySendError::Full(_) => NotForwarded::Full,
                TrySendError::Disconnected(_) => NotForwarded::Down("stopped".into()),
            })
    }
}

/// A server whose every connection joins `ROOM` of `hub` and reads until it ends.
fn room_server(hub: &Hub) -> (SocketAddr, Receiver<u64>) {
    room_server_on(hub, Server::bind("127.0.0.1:0").unwrap(), |_| None)
}

/// `n` clients of the server at `addr`, joined, with their connection ids on the server.
fn members(addr: SocketAddr, joins: &Receiver<u64>, n: usize) -> Vec<(WebSocket, u64)> {
    (0..n)
        .map(|_| {
            let ws = connect(addr, Default::default());
            let id = joins.recv_timeout(TIMEOUT).expect("joined");
            (ws, id)
        })
        .collect()
}

fn text(ws: &mut WebSocket) -> String {
    match ws.recv_timeout(TIMEOUT).unwrap() {
        Some(Message::Text(t)) => t,
        other => panic!("expected text, got {other:?}"),
    }
}

/// Nothing more arrives within a short wait.
fn nothing_more(ws: &mut WebSocket) {
    match ws.recv_timeout(Duration::from_millis(150)) {
        Err(e) if e.is_timeout() => {}
        other => panic!("expected nothing, got {other:?}"),
    }
}

#[test]
fn a_publish_reaches_the_members_of_every_instance_once() {
    let bus = Arc::new(Bus::default());
    let hubs: Vec<Hub> = (0..3)
        .map(|i| {
            Hub::builder()
                .backend(Local::new(i, &bus, 1024))
                .build()
                .unwrap()
        })
        .collect();
    let mut all: Vec<Vec<(WebSocket, u64)>> = hubs
        .iter()
        .map(|hub| {
            let (addr, joins) = room_server(hub);
            members(addr, &joins, 2)
        })
        .collect();
    // Each backend can see the rooms with members on its instance (to subscribe per room).
    for (_, inbound) in bus.instances.lock().unwrap().iter() {
        assert_eq!(inbound.rooms(), [ROOM.to_owned()]);
    }

    let d = hubs[0].publish(ROOM, "from the first");
    assert_eq!((d.queued, d.forwarded), (2, Forwarded::Queued));
    for (ws, _) in all.iter_mut().flatten() {
        assert_eq!(text(ws), "from the first");
    }
    // except leaves out the sender on its own instance only
    let sender = all[1][0].1;
    let d = hubs[1].publish_except(ROOM, "from the second", sender);
    assert_eq!((d.queued, d.forwarded), (1, Forwarded::Queued));
    for (i, (ws, id)) in all.iter_mut().flatten().enumerate() {
        if *id == sender && i / 2 == 1 {
            continue;
        }
        assert_eq!(text(ws), "from the second");
    }
    // a room with no member here still reaches the others
    let mut alone = all.remove(2);
    for (_, id) in &all[0] {
        assert!(hubs[0].leave(ROOM, *id));
    }
    let d = hubs[0].publish(ROOM, "from an empty room");
    assert_eq!((d.queued, d.forwarded), (0, Forwarded::Queued));
    for (ws, _) in all[1].iter_mut().chain(alone.iter_mut()) {
        assert_eq!(text(ws), "from an empty room");
    }
    for (ws, _) in all.iter_mut().flatten().chain(alone.iter_mut()) {
        nothing_more(ws);
    }
}

#[test]
fn publishers_on_two_instances_keep_their_order_with_nothing_lost_or_doubled() {
    const EACH: u32 = 500;
    let bus = Arc::new(Bus::default());
    let hubs: Vec<Hub> = (0..2)
        .map(|i| {
            Hub::builder()
                .backend(Local::new(i, &bus, 4096))
                .build()
                .unwrap()
        })
        .collect();
    let mut all: Vec<(WebSocket, u64)> = hubs
        .iter()
        .flat_map(|hub| {
            let (addr, joins) = room_server(hub);
            members(addr, &joins, 2)
        })
        .collect();
    let publishers: Vec<_> = hubs
        .iter()
        .enumerate()
        .map(|(i, hub)| {
            let hub = hub.clone();
            thread::spawn(move || {
                for n in 0..EACH {
                    let d = hub.publish(ROOM, format!("{i} {n}"));
                    assert_eq!(d.forwarded, Forwarded::Queued);
                }
            })
        })
        .collect();
    for p in publishers {
        p.join().unwrap();
    }
    for (ws, _) in &mut all {
        let mut next = [0u32; 2];
        for _ in 0..2 * EACH {
            let t = text(ws);
            let (from, n) = t.split_once(' ').unwrap();
            let (from, n): (usize, u32) = (from.parse().unwrap(), n.parse().unwrap());
            assert_eq!(
                n, next[from],
                "from instance {from}: out of order, lost or doubled"
            );
            next[from] += 1;
        }
        assert_eq!(next, [EACH, EACH]);
        nothing_more(ws);
    }
}

#[test]
fn a_refusing_backend_is_reported_and_local_members_still_get_the_message() {
    let bus = Arc::new(Bus::default());
    let first = Local::new(0, &bus, 1);
    let down = Arc::clone(&first.down);
    let hubs = [
        Hub::builder().backend(first).build().unwrap(),
        Hub::builder()
            .backend(Local::new(1, &bus, 16))
            .build()
            .unwrap(),
    ];
    let (addr, joins) = room_server(&hubs[0]);
    let mut here = members(addr, &joins, 1);
    let (addr, joins) = room_server(&hubs[1]);
    let mut there = members(addr, &joins, 1);

    *down.lock().unwrap() = true;
    let d = hubs[0].publish(ROOM, "cut off");
    assert_eq!((d.queued, d.forwarded), (1, Forwarded::Refused));
    assert_eq!(text(&mut here[0].0), "cut off");
    nothing_more(&mut there[0].0);

    *down.lock().unwrap() = false;
    let d = hubs[0].publish(ROOM, "back");
    assert_eq!(d.forwarded, Forwarded::Queued);
    assert_eq!(text(&mut here[0].0), "back");
    assert_eq!(text(&mut there[0].0), "back");

    // a hub without a backend says so
    assert_eq!(
        Hub::new().unwrap().publish(ROOM, "x").forwarded,
        Forwarded::NoBackend
    );
}

#[test]
fn an_inbound_outliving_its_hub_does_nothing() {
    let bus = Arc::new(Bus::default());
    let hub = Hub::builder()
        .backend(Local::new(0, &bus, 4))
        .build()
        .unwrap();
    let inbound = bus.instances.lock().unwrap()[0].1.clone();
    assert!(inbound.is_alive());
    assert_eq!(
        inbound.deliver(ROOM, "x").map(|d| d.forwarded),
        Some(Forwarded::Inbound)
    );
    drop(hub);
    assert!(!inbound.is_alive());
    assert_eq!(inbound.deliver(ROOM, "x"), None);
    assert!(inbound.rooms().is_empty());
}
