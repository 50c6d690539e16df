//! The command-line examples behave like tools: the `client` ends by itself when the server
//! closes, with an exit status that says how, and closes cleanly on Ctrl-C; `echo_server` and
//! `chat` let pages from other origins in with `--allow-origin`. Real processes over loopback.
//! Gated on `tls` only because the `client` and `echo_server` examples require it.
#![cfg(feature = "tls")]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use support::*;
use syncws::{CloseCode, Config};

/// How soon the client must be gone once the server has closed (its stdin still open).
const EXIT_WITHIN: Duration = Duration::from_secs(1);

/// A child process that is killed if the test ends (or panics) before it exits.
struct Process(Child);

impl Process {
    /// Its exit status, if it exits within `within`.
    fn exit_within(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// All it wrote to stderr; call after it exited.
    fn stderr(&mut self) -> String {
        let mut err = String::new();
        self.0
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        err
    }

    /// Sends it SIGINT, as Ctrl-C in a terminal would.
    fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -INT failed");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the client example on `url`; returns it and its stdin, which stays open as long as
/// the test holds it.
fn client(url: &str) -> (Process, ChildStdin) {
    let mut child = example_command("client")
        .arg(url)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    (Process(child), stdin)
}

#[test]
fn client_exits_when_the_server_closes_with_stdin_still_open() {
    // (code the server closes with, its reason, the client's exit status)
    let rows = [
        (CloseCode::GOING_AWAY, "restarting", 0),
        (CloseCode::INTERNAL_ERROR, "it broke", 1),
    ];
    for (code, reason, want) in rows {
        let (closed, closed_at) = mpsc::channel();
        let addr = serve(Config::default(), move |ws| {
            let _ = closed.send(Instant::now());
            ws.close(code, reason)?;
            Ok(())
        });
        let (mut client, _stdin) = client(&ws_url(addr, "/"));
        let since = closed_at
            .recv_timeout(TIMEOUT)
            .expect("client never connected");
        let status = client.exit_within(EXIT_WITHIN + TIMEOUT);
        let took = since.elapsed();
        let status = status.unwrap_or_else(|| panic!("close {code}: client still running"));
        assert!(
            took <= EXIT_WITHIN,
            "close {code}: client took {took:?} to exit"
        );
        let err = client.stderr();
        assert_eq!(status.code(), Some(want), "close {code}: {err}");
        assert!(
            err.contains(&code.to_string()) && err.contains(reason),
            "close {code}: stderr does not show the close: {err}"
        );
    }
}

#[test]
fn client_ends_on_a_close_without_a_code_and_on_a_dropped_connection() {
    // (send a close frame without a code before ending TCP, exit status, what stderr says)
    let rows = [
        (true, 0, "without a code"),
        (false, 1, "without a close frame"),
    ];
    for (close_frame, want, says) in rows {
        let (addr, server) = raw_server(move |mut peer| {
            if close_frame {
                peer.send(&Frame::new(CLOSE, b"").unmasked());
                peer.read_close();
            }
        });
        let (mut client, _stdin) = client(&ws_url(addr, "/"));
        server.join().unwrap();
        let status = client
            .exit_within(EXIT_WITHIN)
            .expect("client still running");
        let err = client.stderr();
        assert_eq!(status.code(), Some(want), "{err}");
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn client_closes_with_1000_on_sigint() {
    let (echoed, first_echo) = mpsc::channel();
    let (ended, close_code) = mpsc::channel();
    let addr = serve(Config::default(), move |ws| {
        // Report how it ended in every case, a dropped connection (an error) included.
        let result = (|| {
            while let Some(msg) = ws.recv()? {
                ws.send(&msg)?;
                let _ = echoed.send(());
            }
            Ok(())
        })();
        let _ = ended.send(ws.close_frame().map(|f| f.code));
        result
    });
    let (mut client, mut stdin) = client(&ws_url(addr, "/"));
    // A line arriving means the client is past setting up its Ctrl-C handler (stdin is read
    // only after that), so the signal cannot beat it.
    stdin.write_all(b"hello\n").unwrap();
    first_echo.recv_timeout(TIMEOUT).expect("no line arrived");
    client.interrupt();
    let code = close_code
        .recv_timeout(TIMEOUT)
        .expect("server never saw the end");
    assert_eq!(code, Some(CloseCode::NORMAL));
    let status = client.exit_within(TIMEOUT).expect("client still running");
    assert!(status.success(), "{status}: {}", client.stderr());
}

/// Starts an example server on 127.0.0.1:0 with `args` and returns it with the address its
/// banner (first stdout line, ending in `://ADDR` and maybe a path) names.
fn server(name: &str, args: &[&str]) -> (Process, SocketAddr) {
    let mut child = example_command(name)
        .arg("127.0.0.1:0")
        .env_remove("CHAT_TOKEN")
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let process = Process(child);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut banner = String::new();
        let _ = BufReader::new(stdout).read_line(&mut banner);
        let _ = tx.send(banner);
    });
    let banner = rx.recv_timeout(TIMEOUT).expect("no banner");
    let after_scheme = banner
        .trim()
        .rsplit_once("://")
        .expect("no URL in banner")
        .1;
    let addr = after_scheme.split('/').next().unwrap();
    (process, addr.parse().unwrap())
}

/// The status code a WebSocket upgrade to `path` with `origin` gets.
fn upgrade_status(addr: SocketAddr, path: &str, origin: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).unwrap();
    guard(&stream);
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let head = read_head(&mut stream, &mut Vec::new());
    head.split(' ').nth(1).unwrap().parse().unwrap()
}

const FOREIGN: &str = "http://evil.example:3000";
const DEV_SERVER: &str = "http://localhost:5173";

#[test]
fn echo_server_allows_the_origins_named_on_its_command_line() {
    // (flags, origin of the request, status); "SELF" stands for the server's own origin.
    let rows: [(&[&str], &str, u16); 5] = [
        (&[], FOREIGN, 403),
        (&[], "SELF", 101),
        (&["--allow-origin", DEV_SERVER], DEV_SERVER, 101),
        (&["--allow-origin", DEV_SERVER], FOREIGN, 403),
        (
            &["--allow-origin", FOREIGN, "--allow-origin", DEV_SERVER],
            FOREIGN,
            101,
        ),
    ];
    for (flags, origin, want) in rows {
        let (_server, addr) = server("echo_server", flags);
        let origin = origin.replace("SELF", &format!("http://{addr}"));
        let got = upgrade_status(addr, "/", &origin);
        assert_eq!(got, want, "{flags:?}, Origin: {origin}");
    }
}

#[test]
fn echo_server_allows_any_origin_with_a_star() {
    let (_server, addr) = server("echo_server", &["--allow-origin", "*"]);
    assert_eq!(upgrade_status(addr, "/", FOREIGN), 101);
    assert_eq!(upgrade_status(addr, "/", "https://any.example"), 101);
    // Without the flag the same page is refused.
    let (_server, addr) = server("echo_server", &[]);
    assert_eq!(upgrade_status(addr, "/", FOREIGN), 403);
}

#[test]
fn chat_allows_named_origins_and_still_its_own_page() {
    let (_server, addr) = server("chat", &["--allow-origin", DEV_SERVER]);
    let path = "/chat?token=letmein&name=t";
    assert_eq!(upgrade_status(addr, path, DEV_SERVER), 101);
    assert_eq!(upgrade_status(addr, path, &format!("http://{addr}")), 101);
    let port = addr.port();
    assert_eq!(
        upgrade_status(addr, path, &format!("http://localhost:{port}")),
        101
    );
    assert_eq!(upgrade_status(addr, path, FOREIGN), 403);
}

/// Starts the client example with `--reconnect` on `url`; returns it, its stdin and its stdout
/// lines as they come.
fn reconnecting_client(url: &str) -> (Process, ChildStdin, mpsc::Receiver<String>) {
    let mut child = example_command("client")
        .args([url, "--reconnect"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (Process(child), stdin, lines)
}

#[test]
fn client_with_reconnect_comes_back_after_a_server_restart_and_keeps_echoing() {
    let first = syncws::Server::bind("127.0.0.1:0")
        .unwrap()
        .start(echo)
        .unwrap();
    let addr = first.local_addr();
    let (mut client, mut stdin, lines) = reconnecting_client(&ws_url(addr, "/"));
    stdin.write_all(b"one\n").unwrap();
    assert_eq!(lines.recv_timeout(TIMEOUT).unwrap(), "one");
    // The server restarts: its clients get 1001, and the port refuses for a moment.
    assert!(first.shutdown());
    thread::sleep(Duration::from_millis(300));
    let second = syncws::Server::bind(addr).unwrap().start(echo).unwrap();
    stdin.write_all(b"two\n").unwrap();
    assert_eq!(lines.recv_timeout(TIMEOUT).unwrap(), "two");
    // End of input still closes with 1000 and exits 0.
    drop(stdin);
    let status = client.exit_within(TIMEOUT).expect("client still running");
    let err = client.stderr();
    assert!(status.success(), "{status}: {err}");
    assert!(
        err.contains("1001") && err.contains("reconnecting"),
        "{err}"
    );
    second.shutdown();
}
