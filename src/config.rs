//! Limits and timeouts of a connection, shared by server and client.

use std::time::Duration;

/// Limits and timeouts for one WebSocket connection.
///
/// A plain struct with public fields and chainable setters; start from [`Config::default`]:
///
/// ```
/// use std::time::Duration;
/// let config = syncws::Config::default()
///     .max_message_size(1 << 20)
///     .close_timeout(Duration::from_secs(2));
/// assert_eq!(config.max_message_size, 1 << 20);
/// ```
///
/// Every limit is checked before memory is allocated for what it limits: a frame header that
/// announces more than `max_frame_size` fails the connection with 1009 before a byte of its payload
/// is buffered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Largest payload of a single frame, in bytes. Larger frames fail the connection with 1009.
    /// Defaults to 64 MiB, the same as `max_message_size`, so that a peer may send any acceptable
    /// message in one frame; lower it to bound the memory a single frame header can ask for.
    pub max_frame_size: usize,
    /// Largest message (sum of its fragments), in bytes. Larger messages fail the connection with
    /// 1009. Defaults to 64 MiB: big enough for file transfers, small enough that a few hostile
    /// peers cannot exhaust a server's memory. Memory grows only as bytes arrive.
    pub max_message_size: usize,
    /// Most frames one message may be split into. Defaults to 100,000: generous for streaming,
    /// while a flood of empty continuation frames cannot keep a thread busy forever.
    pub max_fragments: usize,
    /// Size of the per-connection read buffer, in bytes. One `read` fills it and every complete
    /// frame in it is parsed before the next `read`. Defaults to 8 KiB: many small messages per
    /// system call, little memory per idle connection. Payloads larger than it are read straight
    /// into the message's own buffer.
    pub read_buffer_size: usize,
    /// How long `close` (and a close started by the peer or by an error) waits for the other side
    /// to finish the closing handshake. Defaults to 5 seconds; a dead peer cannot hold a thread
    /// longer than that.
    pub close_timeout: Duration,
    /// Total time allowed for the opening handshake (reading the whole request or response), not
    /// per read. Defaults to 10 seconds: slow mobile links finish, stalled peers are dropped.
    pub handshake_timeout: Duration,
    /// Most bytes of HTTP request or response head (request line plus headers). Larger heads are
    /// answered with 431. Defaults to 16 KiB, above what browsers send with cookies.
    pub max_header_bytes: usize,
    /// Most header lines in an HTTP request or response head. More are answered with 431.
    /// Defaults to 64.
    pub max_headers: usize,
    /// How long one `write` may make no progress before the send fails and the connection is
    /// closed (a frame cut in half cannot be continued). `None` waits forever. Defaults to 30
    /// seconds: a peer that stops reading cannot hold a sending thread longer than that.
    pub write_timeout: Option<Duration>,
    /// After this long without receiving anything, a thread waiting in `recv` sends a ping.
    /// `None` turns the heartbeat off. Defaults to 30 seconds, below the 60-second idle timeout
    /// of common proxies (nginx), so a quiet connection stays open and a dead one is found.
    pub ping_interval: Option<Duration>,
    /// How long to wait for the pong to a heartbeat ping before closing with 1011 and ending the
    /// receive with [`Error::HeartbeatTimeout`](crate::Error::HeartbeatTimeout). Defaults to 20
    /// seconds: generous for slow links, yet a dead peer frees its thread within 50 seconds.
    pub pong_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: 64 << 20,
            max_message_size: 64 << 20,
            max_fragments: 100_000,
            read_buffer_size: 8 << 10,
            close_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            max_header_bytes: 16 << 10,
            max_headers: 64,
            write_timeout: Some(Duration::from_secs(30)),
            ping_interval: Some(Duration::from_secs(30)),
            pong_timeout: Duration::from_secs(20),
        }
    }
}

impl Config {
    /// Sets [`Config::max_frame_size`].
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Sets [`Config::max_message_size`].
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Sets [`Config::max_fragments`].
    pub fn max_fragments(mut self, count: usize) -> Self {
        self.max_fragments = count;
        self
    }

    /// Sets [`Config::read_buffer_size`].
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.read_buffer_size = bytes;
        self
    }

    /// Sets [`Config::close_timeout`].
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets [`Config::handshake_timeout`].
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets [`Config::max_header_bytes`].
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes;
        self
    }

    /// Sets [`Config::max_headers`].
    pub fn max_headers(mut self, count: usize) -> Self {
        self.max_headers = count;
        self
    }

    /// Sets [`Config::write_timeout`].
    pub fn write_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Sets [`Config::ping_interval`].
    pub fn ping_interval(mut self, interval: Option<Duration>) -> Self {
        self.ping_interval = interval;
        self
    }

    /// Sets [`Config::pong_timeout`].
    pub fn pong_timeout(mut self, timeout: Duration) -> Self {
        self.pong_timeout = timeout;
        self
    }

    /// The read buffer size actually used: at least 256 bytes so that a frame header and a control
    /// frame always fit.
    pub(crate) fn effective_read_buffer(&self) -> usize {
        self.read_buffer_size.max(256)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_set() {
        let c = Config::default()
            .max_frame_size(1)
            .max_message_size(2)
            .max_fragments(3)
            .read_buffer_size(4)
            .close_timeout(Duration::from_millis(5))
            .handshake_timeout(Duration::from_millis(6))
            .max_header_bytes(7)
            .max_headers(8);
        assert_eq!(
            (
                c.max_frame_size,
                c.max_message_size,
                c.max_fragments,
                c.read_buffer_size
            ),
            (1, 2, 3, 4)
        );
        assert_eq!(c.close_timeout, Duration::from_millis(5));
        assert_eq!(c.handshake_timeout, Duration::from_millis(6));
        assert_eq!((c.max_header_bytes, c.max_headers), (7, 8));
        assert_eq!(c.effective_read_buffer(), 256);
    }
}
