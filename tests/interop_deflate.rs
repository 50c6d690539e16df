//! Our client against Python `websockets` echo servers with permessage-deflate, one per server
//! setting. Run by `scripts/interop_deflate.sh`, which starts the servers and passes their URLs
//! in `SYNCWS_INTEROP_SERVERS` (`name=url` pairs separated by `;`); ignored otherwise.
//!
//! For each server: compression must be negotiated (our end says so, and the server's first
//! message names what it agreed), every message of the set must come back byte for byte,
//! whole and fragmented, and the socket must carry far fewer bytes than the payloads.

#![cfg(feature = "deflate")]

mod support;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use support::json_like;
use syncws::{Client, CloseCode, Config, DeflateConfig, Message, Transport, Url};

/// A TCP stream that counts the bytes it reads and writes.
struct Counted {
    tcp: TcpStream,
    read: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.tcp.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.tcp.write(buf)?;
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

impl Transport for Counted {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp.set_read_timeout(timeout)
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp.set_write_timeout(timeout)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.tcp.shutdown(std::net::Shutdown::Write)
    }
}

fn messages() -> Vec<Message> {
    let mut x = 7u32;
    let random: Vec<u8> = (0..1024)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    let unicode: String = "validé ✓ 🎉 ünïcödé ".repeat(60_000);
    vec![
        Message::Text(String::new()),
        Message::Text("hi".into()),
        Message::Text("x".repeat(63)),
        Message::Text(json_like(1 << 10)),
        Message::Text(json_like(100 << 10)),
        Message::Text(unicode),
        Message::Binary(Vec::new()),
        Message::Binary(random),
        Message::Binary(vec![0; 1 << 20]),
        Message::Binary(json_like(300 << 10).into_bytes()),
    ]
}

/// The message in three pieces, cut on character boundaries for text.
fn thirds(msg: &Message) -> Vec<Message> {
    match msg {
        Message::Text(t) => {
            let mut cuts = vec![0, t.len() / 3, 2 * t.len() / 3, t.len()];
            for c in &mut cuts {
                while !t.is_char_boundary(*c) {
                    *c += 1;
                }
            }
            cuts.windows(2)
                .map(|w| Message::Text(t[w[0]..w[1]].to_owned()))
                .collect()
        }
        Message::Binary(b) => {
            let third = b.len() / 3;
            vec![
                Message::Binary(b[..third].to_vec()),
                Message::Binary(b[third..2 * third].to_vec()),
                Message::Binary(b[2 * third..].to_vec()),
            ]
        }
    }
}

#[test]
#[ignore = "needs the Python servers of scripts/interop_deflate.sh"]
fn our_client_against_python_websockets_servers() {
    let Ok(servers) = std::env::var("SYNCWS_INTEROP_SERVERS") else {
        eprintln!("SYNCWS_INTEROP_SERVERS not set: run scripts/interop_deflate.sh");
        return;
    };
    let msgs = messages();
    let payload: u64 = 2 * msgs.iter().map(|m| m.len() as u64).sum::<u64>();
    let settings = [
        ("default", DeflateConfig::default()),
        (
            "small windows, no takeover",
            DeflateConfig::default()
                .window_bits(9)
                .peer_window_bits(9)
                .no_context_takeover(true)
                .peer_no_context_takeover(true),
        ),
    ];
    let mut pairs = 0;
    for entry in servers.split(';').filter(|e| !e.is_empty()) {
        let (name, url) = entry.split_once('=').expect("name=url");
        for (ours, deflate) in &settings {
            let what = format!("python server {name:?}, our client {ours:?}");
            let url = Url::parse(url).unwrap();
            let tcp = TcpStream::connect((url.host.as_str(), url.port)).unwrap();
            tcp.set_nodelay(true).unwrap();
            let read = Arc::new(AtomicU64::new(0));
            let written = Arc::new(AtomicU64::new(0));
            let stream = Counted {
                tcp,
                read: Arc::clone(&read),
                written: Arc::clone(&written),
            };
            let config = Config::default()
                .max_message_size(16 << 20)
                .deflate(Some(deflate.clone()));
            let mut ws = Client::builder()
                .config(config)
                .handshake(stream, &url)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let agreed = ws.compression();
            assert!(agreed.is_some(), "{what}: compression not negotiated");
            let told = ws.recv().unwrap().and_then(Message::into_text).unwrap();
            assert!(
                told.contains("PerMessageDeflate"),
                "{what}: server says {told}"
            );
            let (read0, written0) = (
                read.load(Ordering::Relaxed),
                written.load(Ordering::Relaxed),
            );
            for msg in &msgs {
                ws.send(msg).unwrap();
                let echo = ws.recv().unwrap();
                assert!(
                    echo.as_ref() == Some(msg),
                    "{what}: echo of {} bytes differs",
                    msg.len()
                );
                ws.send_fragmented(thirds(msg)).unwrap();
                let echo = ws.recv().unwrap();
                assert!(
                    echo.as_ref() == Some(msg),
                    "{what}: fragmented echo of {} bytes",
                    msg.len()
                );
            }
            let up = written.load(Ordering::Relaxed) - written0;
            let down = read.load(Ordering::Relaxed) - read0;
            println!(
                "ok  {what}: agreed {agreed:?}\n    server: {told}\n    up {up}, down {down} bytes for {payload} each way"
            );
            // Only the 1 KiB of random bytes does not compress; everything else does, a lot.
            assert!(
                up < payload / 4 && down < payload / 4,
                "{what}: not compressed ({up}/{down})"
            );
            ws.close(CloseCode::NORMAL, "").unwrap();
            pairs += 1;
        }
    }
    assert!(pairs > 0, "no servers in SYNCWS_INTEROP_SERVERS");
}
