//! Reading an HTTP head (request or response) under one total deadline.

use std::io;
use std::time::Instant;

use crate::error::{Error, HandshakeError, is_timeout_kind};
use crate::io::{Deadline, Transport};

/// Reads into `buf` until `parse` finds a complete head, returning it and its length; bytes past
/// the head stay in `buf` for whoever speaks next.
///
/// The deadline bounds the whole head, not each read: a peer trickling one byte a second cannot
/// stretch it. More than `max_bytes` without a complete head fails with
/// [`HandshakeError::HeadersTooLarge`].
pub(crate) fn read_head<S, T, P>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    deadline: Instant,
    max_bytes: usize,
    mut parse: P,
) -> Result<(T, usize), Error>
where
    S: Transport + ?Sized,
    P: FnMut(&[u8]) -> Result<Option<(T, usize)>, HandshakeError>,
{
    let mut chunk = [0u8; 2048];
    loop {
        if !buf.is_empty()
            && let Some(done) = parse(buf)?
        {
            return Ok(done);
        }
        if buf.len() >= max_bytes {
            return Err(HandshakeError::HeadersTooLarge.into());
        }
        match Deadline::at(deadline).arm_read(stream) {
            Err(e) if is_timeout_kind(e.kind()) => return Err(HandshakeError::Timeout.into()),
            other => other?,
        }
        // Never read past the limit by more than one chunk.
        let room = (max_bytes - buf.len()).min(chunk.len());
        match stream.read(&mut chunk[..room]) {
            Ok(0) => return Err(HandshakeError::Eof.into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout_kind(e.kind()) => return Err(HandshakeError::Timeout.into()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Appends to `buf` until it holds `len` bytes (an HTTP body after its head), never past
/// `deadline`. Returns false if the peer ended, a read failed or the deadline came first; what
/// arrived stays in `buf`.
pub(crate) fn read_to_len<S: Transport + ?Sized>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    len: usize,
    deadline: Instant,
) -> bool {
    let mut chunk = [0u8; 4096];
    while buf.len() < len {
        if Deadline::at(deadline).arm_read(stream).is_err() {
            return false;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// Writes all of `bytes` before `deadline`: each write gets only the time left, so a peer that
/// reads a little at a time cannot stretch it (each partial write would restart a plain socket
/// timeout).
pub(crate) fn write_all_by<S: Transport + ?Sized>(
    stream: &mut S,
    mut bytes: &[u8],
    deadline: Instant,
) -> io::Result<()> {
    while !bytes.is_empty() {
        Deadline::at(deadline).arm_write(stream)?;
        match stream.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Duration;

    /// Serves its bytes in pieces of a fixed size.
    struct Pieces(Vec<u8>, usize);

    impl Read for Pieces {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(out.len()).min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0.drain(..n);
            Ok(n)
        }
    }
    impl Write for Pieces {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl Transport for Pieces {}

    /// Fails its first call with `Interrupted` (a signal), then reads or writes `inner`.
    struct Interrupted<T>(bool, T);

    impl<T: Read> Read for Interrupted<T> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if !std::mem::replace(&mut self.0, true) {
                return Err(io::ErrorKind::Interrupted.into());
            }
            self.1.read(out)
        }
    }
    impl<T: Write> Write for Interrupted<T> {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if !std::mem::replace(&mut self.0, true) {
                return Err(io::ErrorKind::Interrupted.into());
            }
            self.1.write(b)
        }
        fn flush(&mut self) -> io::Result<()> {
            self.1.flush()
        }
    }
    impl<T: Read + Write> Transport for Interrupted<T> {}

    /// Takes at most `1` bytes a write (none: `Ok(0)`), keeping them in `0`.
    struct Sink(Vec<u8>, usize);

    impl Read for Sink {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Ok(0)
        }
    }
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let n = self.1.min(b.len());
            self.0.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl Transport for Sink {}

    #[test]
    fn an_interrupted_read_is_retried() {
        let raw = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        let mut s = Interrupted(false, Pieces(raw.clone(), 7));
        let (_, n) = read_head(&mut s, &mut Vec::new(), later(), 1000, |b| {
            crate::proto::head::parse_request(b, 8)
        })
        .unwrap();
        assert_eq!(n, raw.len());
        let mut s = Interrupted(false, Pieces(b"body".to_vec(), 1));
        let mut buf = Vec::new();
        assert!(read_to_len(&mut s, &mut buf, 4, later()));
        assert_eq!(buf, b"body");
    }

    /// Every read fails with `kind`; setting a timeout fails with `arm` if given.
    struct Failing(io::ErrorKind, Option<io::ErrorKind>);

    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(self.0.into())
        }
    }
    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(self.0.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl Transport for Failing {
        fn set_read_timeout(&mut self, _: Option<Duration>) -> io::Result<()> {
            self.1.map_or(Ok(()), |kind| Err(kind.into()))
        }
    }

    #[test]
    fn a_failed_read_is_that_error_at_once_and_an_expired_one_a_timeout() {
        let parse = |b: &[u8]| crate::proto::head::parse_request(b, 8);
        let soon = Instant::now() + Duration::from_secs(2);
        let io_kind = |e: Error| match e {
            Error::Io(e) => Some(e.kind()),
            _ => None,
        };
        // A reset is reported as itself, not retried until the deadline nor called a timeout.
        let mut s = Failing(io::ErrorKind::ConnectionReset, None);
        let e = read_head(&mut s, &mut Vec::new(), soon, 1000, parse).unwrap_err();
        assert_eq!(io_kind(e), Some(io::ErrorKind::ConnectionReset));
        assert!(Instant::now() < soon, "not retried until the deadline");
        // So is a socket that refuses its timeout.
        let mut s = Failing(io::ErrorKind::TimedOut, Some(io::ErrorKind::NotConnected));
        let e = read_head(&mut s, &mut Vec::new(), soon, 1000, parse).unwrap_err();
        assert_eq!(io_kind(e), Some(io::ErrorKind::NotConnected));
        // A body or a head written: false or the error at once, too.
        let mut s = Failing(io::ErrorKind::ConnectionReset, None);
        assert!(!read_to_len(&mut s, &mut Vec::new(), 10, soon));
        let e = write_all_by(&mut s, b"head", soon).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
        assert!(Instant::now() < soon, "not retried until the deadline");
        // A socket timeout that fires is the handshake's timeout.
        for kind in [io::ErrorKind::WouldBlock, io::ErrorKind::TimedOut] {
            let mut s = Failing(kind, None);
            let e = read_head(&mut s, &mut Vec::new(), soon, 1000, parse).unwrap_err();
            assert!(
                matches!(e, Error::Handshake(HandshakeError::Timeout)),
                "{kind:?}: {e}"
            );
        }
    }

    #[test]
    fn bodies_are_read_to_their_length_and_no_further() {
        // What is already in the buffer counts; pieces of 3 stop at the first read past 5.
        let mut s = Pieces(b"llo world".to_vec(), 3);
        let mut buf = b"he".to_vec();
        assert!(read_to_len(&mut s, &mut buf, 5, later()));
        assert_eq!(buf, b"hello");
        assert!(read_to_len(&mut s, &mut buf, 5, later()), "already there");
        assert_eq!(buf, b"hello");
        // The peer ends early: false, and what came stays.
        let mut s = Pieces(b"abc".to_vec(), 2);
        let mut buf = Vec::new();
        assert!(!read_to_len(&mut s, &mut buf, 10, later()));
        assert_eq!(buf, b"abc");
        // A passed deadline reads nothing.
        let mut s = Pieces(b"abc".to_vec(), 2);
        let mut buf = Vec::new();
        assert!(!read_to_len(&mut s, &mut buf, 3, Instant::now()));
        assert!(buf.is_empty());
    }

    #[test]
    fn writes_go_out_whole_in_pieces_or_fail() {
        let bytes: Vec<u8> = (0..100).collect();
        let mut s = Sink(Vec::new(), 7);
        write_all_by(&mut s, &bytes, later()).unwrap();
        assert_eq!(s.0, bytes);
        let mut s = Interrupted(false, Sink(Vec::new(), 64));
        write_all_by(&mut s, &bytes, later()).unwrap();
        assert_eq!(s.1.0, bytes);
        // A stream that takes nothing is an error, not a loop.
        let e = write_all_by(&mut Sink(Vec::new(), 0), &bytes, later()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WriteZero);
        let e = write_all_by(&mut Sink(Vec::new(), 7), &bytes, Instant::now()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        write_all_by(&mut Sink(Vec::new(), 0), b"", Instant::now()).unwrap();
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[test]
    fn keeps_bytes_after_the_head_at_every_piece_size() {
        let raw = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nREST".to_vec();
        for size in 1..raw.len() {
            let mut s = Pieces(raw.clone(), size);
            let mut buf = Vec::new();
            let (req, n) = read_head(&mut s, &mut buf, later(), 1000, |b| {
                crate::proto::head::parse_request(b, 8)
            })
            .unwrap();
            assert_eq!(req.path(), "/");
            let mut rest = buf[n..].to_vec();
            s.read_to_end(&mut rest).unwrap();
            assert_eq!(rest, b"REST");
        }
    }

    #[test]
    fn limits_eof_and_deadline() {
        let parse = |b: &[u8]| crate::proto::head::parse_request(b, 8);
        // Pieces of 300 never take the buffer past the limit: the last read asks for 100.
        let mut s = Pieces(vec![b'a'; 5000], 300);
        let mut buf = Vec::new();
        let e = read_head(&mut s, &mut buf, later(), 1000, parse).unwrap_err();
        assert!(
            matches!(e, Error::Handshake(HandshakeError::HeadersTooLarge)),
            "{e}"
        );
        assert_eq!(buf.len(), 1000);
        let mut s = Pieces(b"GET / HT".to_vec(), 100);
        let e = read_head(&mut s, &mut Vec::new(), later(), 1000, parse).unwrap_err();
        assert!(matches!(e, Error::Handshake(HandshakeError::Eof)), "{e}");
        let mut s = Pieces(b"GET / HTTP/1.1\r\n".to_vec(), 100);
        let e = read_head(&mut s, &mut Vec::new(), Instant::now(), 1000, parse).unwrap_err();
        assert!(
            matches!(e, Error::Handshake(HandshakeError::Timeout)),
            "{e}"
        );
    }
}
