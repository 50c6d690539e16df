//! Helpers shared by the integration tests: servers on port 0, and raw peers that speak
//! WebSocket byte by byte so tests can send exactly what a well-behaved library never would.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use syncws::{Config, HandlerResult, Server, WebSocket};

/// How long any blocking read in a test may wait before the test fails instead of hanging.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// How long a peer may take to end TCP after the closing handshake: less than the default close
/// timeout (5 s), so a server that lingers until its timeout instead of closing fails the test.
pub const EOF_WITHIN: Duration = Duration::from_secs(3);

/// The sample key of RFC 6455 1.3 and the accept value the RFC gives for it, so the raw client
/// checks the server's accept key against an independent source.
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The masking key raw clients use (the one from the examples in RFC 6455 5.7).
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

pub const CONTINUATION: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

// ------------------------------------------------------------------ servers

/// Starts a syncws server on 127.0.0.1:0 with `handler` and returns its address. The server
/// thread is leaked; it dies with the test process.
pub fn serve<F>(config: Config, handler: F) -> SocketAddr
where
    F: Fn(&mut WebSocket) -> HandlerResult + Send + Sync + 'static,
{
    let server = Server::bind("127.0.0.1:0").unwrap().config(config);
    let addr = server.local_addr().unwrap();
    thread::spawn(move || server.serve(handler));
    addr
}

/// Sends every message back until the peer closes.
pub fn echo(ws: &mut WebSocket) -> HandlerResult {
    while let Some(msg) = ws.recv()? {
        ws.send(&msg)?;
    }
    Ok(())
}

/// An echo server with the default config.
pub fn echo_server() -> SocketAddr {
    serve(Config::default(), echo)
}

/// An echo server with `config`.
pub fn echo_server_with(config: Config) -> SocketAddr {
    serve(config, echo)
}

pub fn ws_url(addr: SocketAddr, path: &str) -> String {
    format!("ws://{addr}{path}")
}

// ------------------------------------------------------------------ frames

/// How a raw frame encodes its payload length. Anything but `Auto` may lie or be non-minimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Len {
    /// The minimal encoding of the real payload length.
    Auto,
    /// This 7-bit length (0..=125) in the second byte.
    Short(u8),
    /// 126 followed by this 16-bit length.
    Ext16(u16),
    /// 127 followed by this 64-bit length.
    Ext64(u64),
}

/// A frame to write (or one that was read) with every header field under the test's control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    /// RSV1..RSV3 as the low three bits (RSV1 = 4).
    pub rsv: u8,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub payload: Vec<u8>,
    pub len: Len,
}

impl Frame {
    /// A final, masked frame (as a client sends it) with the minimal length encoding.
    pub fn new(opcode: u8, payload: impl AsRef<[u8]>) -> Frame {
        Frame {
            fin: true,
            rsv: 0,
            opcode,
            mask: Some(MASK),
            payload: payload.as_ref().to_vec(),
            len: Len::Auto,
        }
    }

    pub fn text(payload: impl AsRef<[u8]>) -> Frame {
        Frame::new(TEXT, payload)
    }

    pub fn binary(payload: impl AsRef<[u8]>) -> Frame {
        Frame::new(BINARY, payload)
    }

    pub fn cont(payload: impl AsRef<[u8]>) -> Frame {
        Frame::new(CONTINUATION, payload)
    }

    pub fn ping(payload: impl AsRef<[u8]>) -> Frame {
        Frame::new(PING, payload)
    }

    pub fn pong(payload: impl AsRef<[u8]>) -> Frame {
        Frame::new(PONG, payload)
    }

    /// A close frame with a code and a reason.
    pub fn close(code: u16, reason: impl AsRef<[u8]>) -> Frame {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_ref());
        Frame::new(CLOSE, payload)
    }

    pub fn fin(mut self, fin: bool) -> Frame {
        self.fin = fin;
        self
    }

    pub fn rsv(mut self, rsv: u8) -> Frame {
        self.rsv = rsv;
        self
    }

    pub fn unmasked(mut self) -> Frame {
        self.mask = None;
        self
    }

    pub fn masked(mut self, key: [u8; 4]) -> Frame {
        self.mask = Some(key);
        self
    }

    pub fn len(mut self, len: Len) -> Frame {
        self.len = len;
        self
    }

    /// The frame on the wire. With a `len` other than `Auto` the header says what `len` says,
    /// whatever the payload really is.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![(u8::from(self.fin) << 7) | ((self.rsv & 7) << 4) | (self.opcode & 0xF)];
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let n = self.payload.len() as u64;
        let len = match self.len {
            Len::Auto if n < 126 => Len::Short(n as u8),
            Len::Auto if n <= 0xFFFF => Len::Ext16(n as u16),
            Len::Auto => Len::Ext64(n),
            other => other,
        };
        match len {
            Len::Short(v) => out.push(mask_bit | v),
            Len::Ext16(v) => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&v.to_be_bytes());
            }
            Len::Ext64(v) => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&v.to_be_bytes());
            }
            Len::Auto => unreachable!("resolved above"),
        }
        match self.mask {
            Some(key) => {
                out.extend_from_slice(&key);
                out.extend(self.payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
            }
            None => out.extend_from_slice(&self.payload),
        }
        out
    }

    /// The close code of a close frame's payload, `None` for an empty payload.
    pub fn close_code(&self) -> Option<u16> {
        assert_eq!(self.opcode, CLOSE, "not a close frame: {self:?}");
        match self.payload.len() {
            0 => None,
            1 => panic!("close payload of one byte"),
            _ => Some(u16::from_be_bytes([self.payload[0], self.payload[1]])),
        }
    }
}

/// Several frames as one byte string, to go out in a single write.
pub fn frames(list: &[Frame]) -> Vec<u8> {
    list.iter().flat_map(Frame::to_bytes).collect()
}

// ------------------------------------------------------------------ raw peers

/// One end of a WebSocket spoken by hand over TCP: a client (expects unmasked frames from the
/// server) or a server (expects masked frames from the client).
#[derive(Debug)]
pub struct RawConn {
    pub stream: TcpStream,
    /// Bytes read but not yet decoded (e.g. the ones right behind the handshake).
    pub buf: Vec<u8>,
    /// True on the server side: incoming frames must be masked.
    pub expect_masked: bool,
}

/// Sets both socket timeouts to [`TIMEOUT`] so a broken build fails instead of hanging.
pub fn guard(stream: &TcpStream) {
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
}

/// A valid upgrade request for `path` with the RFC's sample key.
pub fn upgrade_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Reads from `stream` into `buf` until it holds a whole HTTP head; returns the head (without
/// the blank line) and leaves the bytes behind it in `buf`.
pub fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> String {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(buf[..end].to_vec()).expect("head is not utf-8");
            buf.drain(..end + 4);
            return head;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).expect("reading an http head");
        assert!(n > 0, "eof before the end of the http head: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The value of header `name` in a head (case-insensitive name).
pub fn head_header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

impl RawConn {
    /// Connects to a WebSocket server and upgrades by hand.
    pub fn connect(addr: SocketAddr) -> RawConn {
        RawConn::connect_with(addr, b"")
    }

    /// Like [`RawConn::connect`], sending `extra` in the same write as the upgrade request.
    pub fn connect_with(addr: SocketAddr, extra: &[u8]) -> RawConn {
        RawConn::upgrade(addr, "", extra).0
    }

    /// Upgrades with extra request header lines (each ending in CRLF); returns the connection
    /// and the server's `101` head, e.g. to read its `Sec-WebSocket-Extensions`.
    pub fn connect_with_headers(addr: SocketAddr, headers: &str) -> (RawConn, String) {
        RawConn::upgrade(addr, headers, b"")
    }

    fn upgrade(addr: SocketAddr, headers: &str, extra: &[u8]) -> (RawConn, String) {
        let mut stream = TcpStream::connect(addr).unwrap();
        guard(&stream);
        stream.set_nodelay(true).unwrap();
        let request = upgrade_request("/");
        let mut request = request
            .strip_suffix("\r\n")
            .expect("ends with a blank line")
            .to_owned()
            .into_bytes();
        request.extend_from_slice(headers.as_bytes());
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(extra);
        stream.write_all(&request).unwrap();
        let mut buf = Vec::new();
        let head = read_head(&mut stream, &mut buf);
        assert!(head.starts_with("HTTP/1.1 101 "), "not upgraded: {head}");
        assert_eq!(
            head_header(&head, "sec-websocket-accept"),
            Some(SAMPLE_ACCEPT)
        );
        let conn = RawConn {
            stream,
            buf,
            expect_masked: false,
        };
        (conn, head)
    }

    pub fn send(&mut self, frame: &Frame) {
        self.write_raw(&frame.to_bytes());
    }

    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads until `buf` holds `n` bytes; panics on EOF.
    fn fill_to(&mut self, n: usize) {
        let mut chunk = [0u8; 64 << 10];
        while self.buf.len() < n {
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("eof in the middle of a frame ({:?})", self.buf),
                Ok(k) => self.buf.extend_from_slice(&chunk[..k]),
                Err(e) => panic!("reading a frame: {e}"),
            }
        }
    }

    /// Reads and decodes one frame; checks the mask direction.
    pub fn read_frame(&mut self) -> Frame {
        self.fill_to(2);
        let (b0, b1) = (self.buf[0], self.buf[1]);
        let masked = b1 & 0x80 != 0;
        assert_eq!(
            masked, self.expect_masked,
            "mask bit of a frame from the peer"
        );
        let (len, mut at) = match b1 & 0x7F {
            126 => {
                self.fill_to(4);
                (u64::from(u16::from_be_bytes([self.buf[2], self.buf[3]])), 4)
            }
            127 => {
                self.fill_to(10);
                let mut v = [0u8; 8];
                v.copy_from_slice(&self.buf[2..10]);
                (u64::from_be_bytes(v), 10)
            }
            n => (u64::from(n), 2),
        };
        let mask = masked.then(|| {
            self.fill_to(at + 4);
            let key = [
                self.buf[at],
                self.buf[at + 1],
                self.buf[at + 2],
                self.buf[at + 3],
            ];
            at += 4;
            key
        });
        let len = usize::try_from(len).unwrap();
        self.fill_to(at + len);
        let mut payload: Vec<u8> = self.buf.drain(..at + len).skip(at).collect();
        if let Some(key) = mask {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= key[i % 4];
            }
        }
        Frame {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 7,
            opcode: b0 & 0xF,
            mask: None,
            payload,
            len: Len::Auto,
        }
    }

    /// Reads frames until a close frame, skipping anything else, and returns it.
    pub fn read_close(&mut self) -> Frame {
        loop {
            let frame = self.read_frame();
            if frame.opcode == CLOSE {
                return frame;
            }
        }
    }

    /// Reads frames until a close frame, returns its code, and checks that the peer then ends
    /// the TCP connection.
    pub fn expect_close(&mut self) -> Option<u16> {
        let code = self.read_close().close_code();
        self.expect_eof();
        code
    }

    /// Checks that nothing but end-of-stream follows, within [`EOF_WITHIN`].
    pub fn expect_eof(&mut self) {
        assert!(self.buf.is_empty(), "bytes after the close: {:?}", self.buf);
        self.stream.set_read_timeout(Some(EOF_WITHIN)).unwrap();
        let mut chunk = [0u8; 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => {}
            Ok(n) => panic!("expected eof, got {:?}", &chunk[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                panic!("expected eof, the peer kept the connection open")
            }
            Err(e) => panic!("expected eof, got {e}"),
        }
    }
}

// ------------------------------------------------------------------ raw servers

/// Accepts one connection on 127.0.0.1:0 in a thread, reads the request head, and hands the
/// stream and head to `f`, which answers however the test likes.
pub fn raw_http_server<F, T>(f: F) -> (SocketAddr, JoinHandle<T>)
where
    F: FnOnce(TcpStream, String) -> T + Send + 'static,
    T: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        guard(&stream);
        let mut buf = Vec::new();
        let head = read_head(&mut stream, &mut buf);
        assert!(buf.is_empty(), "client sent bytes before the 101");
        f(stream, head)
    });
    (addr, handle)
}

/// Accepts one WebSocket connection, completes the handshake by hand, and runs `f` on it: a
/// hostile server for testing the client.
pub fn raw_server<F, T>(f: F) -> (SocketAddr, JoinHandle<T>)
where
    F: FnOnce(RawConn) -> T + Send + 'static,
    T: Send + 'static,
{
    raw_server_with_headers(String::new(), f)
}

/// Like [`raw_server`], adding `headers` (lines ending in CRLF) to the `101`, e.g. an
/// extension answer.
pub fn raw_server_with_headers<F, T>(headers: String, f: F) -> (SocketAddr, JoinHandle<T>)
where
    F: FnOnce(RawConn) -> T + Send + 'static,
    T: Send + 'static,
{
    raw_http_server(move |mut stream, head| {
        assert!(head.starts_with("GET "), "{head}");
        let key = head_header(&head, "sec-websocket-key").expect("no key");
        // tungstenite's implementation, so the client is checked against an independent one.
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n{headers}\r\n"
        );
        stream.write_all(response.as_bytes()).unwrap();
        f(RawConn {
            stream,
            buf: Vec::new(),
            expect_masked: true,
        })
    })
}

// ------------------------------------------------------------------ payloads

/// `n` bytes of valid UTF-8 mixing one- to four-byte characters, so chunk and buffer boundaries
/// fall inside characters.
pub fn text_of_len(n: usize) -> String {
    let mut s = String::with_capacity(n);
    let pattern = ['a', 'é', '€', '𝄞', ' ', 'z'];
    for c in pattern.iter().cycle() {
        if s.len() + c.len_utf8() > n {
            break;
        }
        s.push(*c);
    }
    while s.len() < n {
        s.push('.');
    }
    s
}

/// `n` bytes that are not a repeating short pattern.
pub fn bytes_of_len(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i ^ (i >> 8) ^ (i >> 16)) as u8).collect()
}

/// JSON-like text that compresses well (for the compression tests).
pub fn json_like(n: usize) -> String {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < n {
        s.push_str(&format!(
            "{{\"id\":{i},\"user\":\"user{}\",\"active\":{},\"tags\":[\"a\",\"b\"]}},",
            i % 17,
            i % 3 == 0
        ));
        i += 1;
    }
    s.truncate(n);
    s
}
