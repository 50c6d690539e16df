//! A received message as a [`std::io::Read`]: [`MessageReader`], from
//! [`WebSocket::recv_stream`](crate::WebSocket::recv_stream) and
//! [`Reader::recv_stream`](crate::Reader::recv_stream).

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use super::conn::{Conn, Link};
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::message::MessageKind;

/// What a [`MessageReader`] reads from: a connection, whole or the reader of a split one.
pub(crate) trait StreamSource {
    fn stream_read(&mut self, out: &mut [u8], deadline: Option<Instant>) -> Result<usize>;
}

impl<L: Link> StreamSource for Conn<L> {
    fn stream_read(&mut self, out: &mut [u8], deadline: Option<Instant>) -> Result<usize> {
        Conn::stream_read(self, out, deadline)
    }
}

/// One incoming message, read as its frames arrive: the receive for messages of any size.
///
/// Made by [`WebSocket::recv_stream`](crate::WebSocket::recv_stream) (or
/// [`Reader::recv_stream`](crate::Reader::recv_stream)) once the message's first frame arrived,
/// so its [`kind`](Self::kind) is known before a byte is read. Each [`read`](io::Read::read)
/// gives the next payload bytes (inflated, if the message is compressed) and `Ok(0)` only at the
/// message's real end. Memory stays at the connection's read buffer, one 64 KiB chunk and the
/// inflater's window, whatever the message's size; [`Config::max_stream_size`] bounds it (not
/// `max_message_size`), and the frame size and fragment limits apply as to any message.
///
/// While the message is read, pings are answered and pongs noted as they are reached, and the
/// heartbeat runs; the time the application spends between two reads does not count against
/// the peer's pong. Text is checked as it arrives: a read that reaches invalid UTF-8 fails
/// (the connection is closed with 1007), so bytes handed out are always a valid prefix.
///
/// How a read fails (the [`Error`] is inside the `io::Error`, and `Error::from` or `?` in a
/// function returning [`syncws::Result`](crate::Result) takes it out again):
/// - kind `TimedOut` with [`Error::Timeout`] after [`set_timeout`](Self::set_timeout)'s time; the
///   stream stays usable and the next read continues where it stopped;
/// - kind `InvalidData` with [`Error::Protocol`] when the peer broke the protocol or a limit
///   (1007 for bad UTF-8, 1009 for a streamed message over its limit, 1002 otherwise);
/// - kind `UnexpectedEof` when the connection ended before the message did, so a message cut
///   short never looks complete: [`Error::PeerClosed`] with the peer's close frame (even one
///   with a normal code, since the message is incomplete), or [`Error::Closed`] when this side
///   closed it. The next `recv` then reports the end as it always does: `Ok(None)` after a
///   normal close, `Error::PeerClosed` otherwise;
/// - any other kind: the connection failed ([`Error::Io`]'s error, unwrapped).
///
/// Dropping the reader before the end is safe: the rest of the message is skipped by the next
/// receive on the connection (its frames still checked, within `max_stream_size`), and the
/// connection stays usable. Skipping rather than closing keeps the common "read the header,
/// ignore the rest" case cheap on both sides; skipping lazily rather than in `drop` keeps a
/// drop from blocking on a slow peer and lets the next receive report what went wrong. To stop
/// a peer from sending the rest, close the connection instead.
///
/// ```no_run
/// use std::io::Read;
/// let mut ws = syncws::Client::connect("ws://127.0.0.1:9001/")?;
/// while let Some(mut message) = ws.recv_stream()? {
///     let mut file = std::fs::File::create("incoming.bin")?;
///     let bytes = std::io::copy(&mut message, &mut file)?;
///     println!("{:?}: {bytes} bytes", message.kind());
/// }
/// # Ok::<(), syncws::Error>(())
/// ```
///
/// [`Config::max_stream_size`]: crate::Config::max_stream_size
pub struct MessageReader<'a> {
    conn: &'a mut dyn StreamSource,
    kind: MessageKind,
    timeout: Option<Duration>,
    /// The message's end was read: later reads give `Ok(0)` without touching the connection.
    done: bool,
}

impl<'a> MessageReader<'a> {
    /// Starts the next message of `conn` as a stream, the start and every read bounded by
    /// `timeout` (`None`: no limit): `recv_stream` and `recv_stream_timeout` of a `WebSocket`
    /// and of a `Reader`.
    pub(crate) fn start<L: Link + 'a>(
        conn: &'a mut Conn<L>,
        timeout: Option<Duration>,
    ) -> Result<Option<Self>> {
        let started = conn.recv_stream(timeout.map(|t| Instant::now() + t))?;
        Ok(started.map(|(kind, done)| MessageReader::new(conn, kind, done, timeout)))
    }

    pub(crate) fn new(
        conn: &'a mut dyn StreamSource,
        kind: MessageKind,
        done: bool,
        timeout: Option<Duration>,
    ) -> Self {
        MessageReader {
            conn,
            kind,
            timeout,
            done,
        }
    }

    /// Whether the message is text or binary.
    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// Gives every later read up to `timeout` (`None`: no limit) before it fails with kind
    /// `TimedOut`; the stream stays usable. A stream from `recv_stream_timeout` starts with that
    /// call's timeout, one from `recv_stream` with none.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// Whether the message's end was read.
    pub fn is_finished(&self) -> bool {
        self.done
    }
}

impl io::Read for MessageReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.done || out.is_empty() {
            return Ok(0);
        }
        let deadline = self.timeout.map(|t| Instant::now() + t);
        match self.conn.stream_read(out, deadline) {
            Ok(0) => {
                self.done = true;
                Ok(0)
            }
            Ok(n) => Ok(n),
            Err(e) => Err(e.into_io(io::ErrorKind::UnexpectedEof)),
        }
    }
}

impl fmt::Debug for MessageReader<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageReader")
            .field("kind", &self.kind)
            .field("finished", &self.done)
            .finish_non_exhaustive()
    }
}
