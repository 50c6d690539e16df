//! Raw HTTP peers for the server tests: a client that writes exactly the bytes a test asks for and
//! parses what comes back (status, headers, a `Content-Length` body, server frames), so a test
//! sees the server's answers as they are on the wire.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long any read may block before the test fails instead of hanging.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How a connection ended when the test read past the last answer.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// Orderly EOF or a reset: the server closed it.
    Closed,
    /// Still open when the read timed out.
    Open,
}

/// A raw TCP client with a buffer of bytes read but not yet parsed.
#[derive(Debug)]
pub struct Http {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Http {
    pub fn connect(addr: SocketAddr) -> Http {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Http {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes `bytes`; a failure (the server already closed) is ignored, since the test then
    /// checks the answer that was sent before.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) -> &mut Self {
        let _ = self.stream.write_all(bytes.as_ref());
        self
    }

    /// Reads one more chunk into the buffer; false on EOF or reset.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => false,
            Err(e) => panic!("reading a response: {e} (have {:?})", self.text_so_far()),
        }
    }

    fn text_so_far(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    /// Reads one response: its head, then `Content-Length` bytes of body (none for `101`).
    pub fn response(&mut self) -> Reply {
        let end = loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            assert!(
                self.fill(),
                "connection closed before a whole response head: {:?}",
                self.text_so_far()
            );
        };
        let head = String::from_utf8(self.buf[..end].to_vec()).expect("utf-8 head");
        self.buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(
            parts.next(),
            Some("HTTP/1.1"),
            "status line {status_line:?}"
        );
        let status = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').expect("header line");
                (n.trim().to_owned(), v.trim().to_owned())
            })
            .collect();
        let mut reply = Reply {
            status,
            headers,
            body: Vec::new(),
        };
        if status != 101 {
            let len: usize = reply
                .header("content-length")
                .map(|v| v.parse().expect("numeric content-length"))
                .unwrap_or(0);
            while self.buf.len() < len {
                assert!(self.fill(), "connection closed inside a body");
            }
            reply.body = self.buf.drain(..len).collect();
        }
        reply
    }

    /// A response, or None if the server closed without sending a byte.
    pub fn response_or_end(&mut self) -> Option<Reply> {
        if self.buf.is_empty() && !self.fill() {
            return None;
        }
        Some(self.response())
    }

    /// Sends `request` and reads the response.
    pub fn exchange(&mut self, request: impl AsRef<[u8]>) -> Reply {
        self.send(request);
        self.response()
    }

    /// Waits up to `within` for the server to close; returns whether it did and asserts that no
    /// further byte arrived.
    pub fn end(&mut self, within: Duration) -> End {
        self.stream.set_read_timeout(Some(within)).unwrap();
        let mut chunk = [0u8; 1024];
        let end = match self.stream.read(&mut chunk) {
            Ok(0) => End::Closed,
            Ok(n) => panic!(
                "unexpected bytes after the last response: {:?}",
                String::from_utf8_lossy(&chunk[..n])
            ),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => End::Closed,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => End::Open,
            Err(e) => panic!("waiting for the end of the connection: {e}"),
        };
        self.stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        assert!(
            self.buf.is_empty(),
            "unparsed bytes: {:?}",
            self.text_so_far()
        );
        end
    }

    /// Reads one small unmasked frame from the server: (opcode, payload).
    pub fn frame(&mut self) -> (u8, Vec<u8>) {
        while self.buf.len() < 2 {
            assert!(self.fill(), "eof before a frame");
        }
        assert_eq!(self.buf[1] & 0x80, 0, "server frames are not masked");
        let len = usize::from(self.buf[1] & 0x7F);
        assert!(len < 126, "helper reads short frames only");
        while self.buf.len() < 2 + len {
            assert!(self.fill(), "eof inside a frame");
        }
        let opcode = self.buf[0] & 0x0F;
        let payload = self.buf[2..2 + len].to_vec();
        self.buf.drain(..2 + len);
        (opcode, payload)
    }

    /// Sends a masked frame (client to server).
    pub fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        assert!(payload.len() < 126);
        let mask = [1u8, 2, 3, 4];
        let mut out = vec![0x80 | opcode, 0x80 | payload.len() as u8];
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.send(out);
    }
}

/// A WebSocket upgrade request for `path` with extra header lines (each ending in `\r\n`).
pub fn upgrade(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// Sends a plain GET for `path` on a new connection and reads the answer.
pub fn get(addr: SocketAddr, path: &str) -> Reply {
    Http::connect(addr).exchange(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"))
}

/// Polls `cond` until it holds or `within` passes; returns whether it held. For conditions no
/// event announces (a server thread deregistering after the peer saw the close).
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
