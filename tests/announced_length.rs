//! A frame header costs no memory for the payload it announces: the message buffer grows only as
//! payload bytes arrive. A server in its own process, under a 4 GiB address-space limit
//! (`RLIMIT_AS`, as `prlimit --as` sets it), holds 1,000 connections that each sent only the
//! header of a 64 MiB frame (within its 64 MiB limits, above the 16 MiB default so that the
//! 4 GiB limit is far short of what reserving would take) and nothing more. The server must
//! stay alive and echo for a healthy client meanwhile. Reserving the announced length up front
//! asks for 64 GiB of address space here, and the server aborts on the first allocation the
//! limit refuses.
//!
//! The server is this test binary re-executed (the ignored test `child_server`) with
//! `MALLOC_ARENA_MAX=2`, so glibc's per-thread malloc arenas (64 MiB of address space each) do not
//! eat the limit on their own. Loopback only; every loop is bounded in count and time.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{Frame, Len, echo, upgrade_request};
use syncws::{Client, Message, Server};

const CHILD_ENV: &str = "SYNCWS_ANNOUNCED_SERVE";
const ADDRESS_SPACE: u64 = 4 << 30;
const CONNECTIONS: usize = 1000;
const ANNOUNCED: u64 = 64 << 20;

fn set_limit(resource: libc::__rlimit_resource_t, cur: Option<u64>) {
    // SAFETY: rlimit is plain data passed by pointer.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(resource, &mut r) == 0 {
            r.rlim_cur = cur.unwrap_or(r.rlim_max);
            assert_eq!(libc::setrlimit(resource, &r), 0, "setrlimit");
        }
    }
}

/// The server process: an echo server with 64 MiB frame and message limits, under the limit.
#[test]
#[ignore = "the server process of `headers_alone_reserve_nothing`, which starts it"]
fn child_server() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    set_limit(libc::RLIMIT_NOFILE, None);
    set_limit(libc::RLIMIT_AS, Some(ADDRESS_SPACE));
    let server = Server::bind("127.0.0.1:0").unwrap().config(
        syncws::Config::default()
            .max_frame_size(ANNOUNCED as usize)
            .max_message_size(ANNOUNCED as usize),
    );
    let port = server.local_addr().port();
    let handle = server.start(echo).unwrap();
    println!("port {port}");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    handle.shutdown();
}

struct ServerProc {
    child: Child,
    addr: SocketAddr,
}

impl ServerProc {
    fn start() -> ServerProc {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["child_server", "--exact", "--ignored", "--nocapture"])
            .env(CHILD_ENV, "1")
            .env("MALLOC_ARENA_MAX", "2")
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let port = out
            .lines()
            .take(20)
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("port ")?.trim().parse::<u16>().ok())
            .expect("the server printed its port");
        ServerProc {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    /// `Some(status)` once the process has ended.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// A field of /proc/<pid>/status, in KiB.
    fn status_kib(&self, name: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens a connection, upgrades it, and sends the header of a masked binary frame announcing
/// `ANNOUNCED` bytes, with no payload.
fn announce(addr: SocketAddr) -> Result<TcpStream, String> {
    let mut tcp = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(upgrade_request("/").as_bytes())
        .map_err(|e| format!("request: {e}"))?;
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut chunk) {
            Ok(0) => return Err("eof before the 101".into()),
            Ok(n) => head.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("reading the 101: {e}")),
        }
    }
    if !head.starts_with(b"HTTP/1.1 101 ") {
        return Err(format!("not upgraded: {}", String::from_utf8_lossy(&head)));
    }
    let header = Frame::binary(b"").len(Len::Ext64(ANNOUNCED)).to_bytes();
    tcp.write_all(&header)
        .map_err(|e| format!("frame header: {e}"))?;
    Ok(tcp)
}

/// Bytes the kernel holds unread on the server's established sockets, and how many there are,
/// from /proc/net/tcp (all loopback, so the server's sockets are the ones on its port).
fn unread_on_server(port: u16) -> (usize, u64) {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let mut sockets = 0;
    let mut unread = 0;
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(state), Some(queues)) =
            (fields.get(1), fields.get(3), fields.get(4))
        else {
            continue;
        };
        let local_port = local
            .rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok());
        if local_port != Some(port) || *state != "01" {
            continue;
        }
        sockets += 1;
        let rx = queues.rsplit(':').next().unwrap_or("0");
        unread += u64::from_str_radix(rx, 16).unwrap_or(0);
    }
    (sockets, unread)
}

#[test]
fn headers_alone_reserve_nothing() {
    set_limit(libc::RLIMIT_NOFILE, None);
    let mut srv = ServerProc::start();
    let started = Instant::now();
    let mut held = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        match announce(srv.addr) {
            Ok(tcp) => held.push(tcp),
            Err(e) => panic!(
                "connection {i} of {CONNECTIONS}: {e}; server process: {:?}",
                srv.exited()
            ),
        }
    }
    // Wait (bounded) until the server has read every header: its sockets hold nothing unread.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (sockets, unread) = unread_on_server(srv.addr.port());
        if let Some(status) = srv.exited() {
            panic!("the server process ended ({status}) after reading frame headers");
        }
        if sockets >= CONNECTIONS && unread == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server still has {unread} bytes unread on {sockets} sockets"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (vm, rss) = (srv.status_kib("VmSize:"), srv.status_kib("VmRSS:"));

    // A healthy client is served meanwhile, a large message too.
    let mut ws = Client::builder()
        .no_proxy()
        .connect(&format!("ws://{}/", srv.addr))
        .expect("a healthy client connects");
    ws.send("still there?").unwrap();
    let got = ws.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(got, Some(Message::Text("still there?".into())));
    let big = vec![7u8; 4 << 20];
    ws.send(&big[..]).unwrap();
    let got = ws.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(got.map(|m| m.len()), Some(big.len()));
    assert!(srv.exited().is_none(), "the server process ended");
    println!(
        "{CONNECTIONS} connections each announced a {} MiB frame and sent nothing more: server \
         alive under a {} GiB address-space limit, VmSize {} MiB, VmRSS {} MiB, healthy client \
         echoed; {:.1} s",
        ANNOUNCED >> 20,
        ADDRESS_SPACE >> 30,
        vm >> 10,
        rss >> 10,
        started.elapsed().as_secs_f64()
    );
    drop(held);
}
