//! `wss://` peers on the test certificate in `tests/fixtures` (for `localhost`, signed by
//! `ca.pem`), and what a client of them checks. Only built with a TLS backend.

use std::net::SocketAddr;
use std::sync::{Mutex, mpsc};
use std::thread;

use syncws::{Client, ClientBuilder, ClientTls, Config, Message, Server, ServerTls, WebSocket};

use super::TIMEOUT;

/// The path of a file in `tests/fixtures`.
pub fn fixture_path(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The test certificate and key as a server identity.
pub fn test_server_tls() -> ServerTls {
    ServerTls::from_pem_files(fixture_path("server.pem"), fixture_path("server.key")).unwrap()
}

/// A client trusting the test CA, without a proxy.
pub fn test_ca_client() -> ClientBuilder {
    let tls = ClientTls::builder()
        .add_root_file(fixture_path("ca.pem"))
        .build()
        .unwrap();
    Client::builder().tls(tls).no_proxy()
}

/// The payload [`send_until_refused`] sends as message `i`: its number, then padding.
fn numbered(i: usize, len: usize) -> Vec<u8> {
    let mut bytes = format!("{i:08}").into_bytes();
    bytes.resize(len, b'.');
    bytes
}

/// A `wss://` server whose handler reads nothing until the returned sender is used or
/// dropped, then receives until the connection ends and reports how many of the messages
/// [`send_until_refused`] numbers arrived whole and in order (`usize::MAX` for one out of
/// order).
fn wss_reading_later() -> (SocketAddr, mpsc::Sender<()>, mpsc::Receiver<usize>) {
    let (go, wait) = mpsc::channel::<()>();
    let (report, counted) = mpsc::channel();
    let wait = Mutex::new(wait);
    let report = Mutex::new(report);
    let server = Server::bind("127.0.0.1:0").unwrap().tls(test_server_tls());
    let addr = server.local_addr();
    thread::spawn(move || {
        server.serve(move |ws: &mut WebSocket| {
            let _ = wait.lock().unwrap().recv_timeout(TIMEOUT * 3);
            let mut arrived = 0;
            while let Ok(Some(Message::Binary(bytes))) = ws.recv_timeout(TIMEOUT) {
                arrived = match bytes == numbered(arrived, bytes.len()) {
                    true => arrived + 1,
                    false => usize::MAX,
                };
                if arrived == usize::MAX {
                    break;
                }
            }
            let _ = report.lock().unwrap().send(arrived);
            Ok(())
        })
    });
    (addr, go, counted)
}

/// Sends numbered binary messages of `len` bytes (one TLS record each for `len` under 16 KiB)
/// until a send fails, and returns how many sends reported success. Panics if none fails
/// within 20,000 messages.
fn send_until_refused(ws: &mut WebSocket, len: usize) -> usize {
    for i in 0..20_000 {
        if ws.send(&numbered(i, len)[..]).is_err() {
            return i;
        }
    }
    panic!("20,000 sends of {len} bytes to a peer that reads nothing all succeeded");
}

/// Checks that over TLS a send that reports success is on the wire. `connect` opens the
/// client, given the port of a `wss://` server (the test certificate, for `localhost`) that
/// reads nothing until the client gave up, and a config whose write timeout (300 ms) fails a
/// send once the socket takes nothing. The client sends one-record messages until a send
/// fails and is dropped; then the server reads, and must find exactly the messages the client
/// was told went, whole and in order.
pub fn check_every_send_reported_done_arrives(connect: impl FnOnce(u16, Config) -> WebSocket) {
    let (addr, go, counted) = wss_reading_later();
    let config = Config::default().write_timeout(Some(std::time::Duration::from_millis(300)));
    let mut ws = connect(addr.port(), config);
    let sent = send_until_refused(&mut ws, 8000);
    drop(ws);
    drop(go);
    let arrived = counted
        .recv_timeout(std::time::Duration::from_secs(30))
        .unwrap();
    println!("{sent} sends reported done, {arrived} messages arrived");
    assert_eq!(
        arrived, sent,
        "messages arrived against sends reported done"
    );
}

/// Checks that a split TLS connection to an echo server whose reader starts `late` still gets
/// every echo: by then every buffer on the way is full and the writer waits for the socket,
/// so the reader must decrypt while it waits. Sends 64 binary messages of 256 KiB, then closes.
pub fn check_a_late_reader_gets_every_echo(
    mut reader: syncws::Reader,
    writer: syncws::Writer,
    late: std::time::Duration,
) {
    const N: usize = 64;
    const SIZE: usize = 256 << 10;
    let sender = thread::spawn(move || {
        for i in 0..N {
            writer.send(vec![i as u8; SIZE]).unwrap();
        }
        writer
    });
    thread::sleep(late);
    for i in 0..N {
        let got = reader.recv_timeout(TIMEOUT).unwrap().expect("a message");
        assert!(got == Message::Binary(vec![i as u8; SIZE]), "message {i}");
    }
    let writer = sender.join().unwrap();
    // The writer's close waits for the reader to see the answer.
    let closer = thread::spawn(move || writer.close(syncws::CloseCode::NORMAL, "bye"));
    assert_eq!(reader.recv_timeout(TIMEOUT).unwrap(), None);
    closer.join().unwrap().unwrap();
}
