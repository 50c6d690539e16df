//! The HTTP side of a hand-made upgrade: the request, and reading a head off a socket.

use std::io::Read;

/// The sample key of RFC 6455 1.3 and the accept value the RFC gives for it, so the raw client
/// checks the server's accept key against an independent source.
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A valid upgrade request for `path` with the RFC's sample key.
pub fn upgrade_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Reads from `stream` into `buf` until it holds a whole HTTP head; returns the head (without
/// the blank line) and leaves the bytes behind it in `buf`.
pub fn read_head<S: Read>(stream: &mut S, buf: &mut Vec<u8>) -> String {
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
