//! Raw peers: a client or server that speaks WebSocket by hand over TCP, so tests can send
//! exactly what a well-behaved library never would, and read every frame the other side sends.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};

use super::{
    CLOSE, EOF_WITHIN, Frame, Len, SAMPLE_ACCEPT, guard, head_header, read_head, upgrade_request,
};

/// Both ends of a fresh loopback TCP connection: the one that connected, and the one accepted.
pub fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let connected = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    (connected, accepted)
}

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

    /// Resets the connection (linger 0: RST instead of FIN) as it goes.
    pub fn reset(self) {
        reset_tcp(self.stream);
    }
}

/// Closes `tcp` with a reset (linger 0: RST instead of FIN).
pub fn reset_tcp(tcp: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor, and a pointer to a linger of the size given.
    let rc = unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}

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
