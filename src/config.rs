//! Limits and timeouts of a connection, shared by server and client.

use std::time::Duration;

use crate::websocket::MemoryBudget;

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
    /// Defaults to 16 MiB, the same as `max_message_size`, so that a peer may send any acceptable
    /// message in one frame. The length a header announces is only checked against this limit,
    /// never reserved: the message's buffer grows as payload bytes arrive.
    pub max_frame_size: usize,
    /// Largest message (sum of its fragments), in bytes. Larger messages fail the connection with
    /// 1009. Memory grows only as bytes arrive.
    ///
    /// Defaults to 16 MiB. Whole messages are for what fits in memory comfortably (JSON
    /// documents, images, game state); larger data has its own path,
    /// [`WebSocket::recv_stream`](crate::WebSocket::recv_stream), which holds no message whole
    /// and has its own limit ([`Config::max_stream_size`]). It was 64 MiB before streams
    /// existed; Python `websockets` defaults to 1 MiB, tungstenite to 64 MiB. 16 MiB
    /// keeps ordinary large messages working while 64 hostile peers, not 16, fill a server's
    /// default 1 GiB message memory.
    pub max_message_size: usize,
    /// Largest message received as a stream ([`WebSocket::recv_stream`]), in bytes: its inflated
    /// bytes if it is compressed, and the skipped rest of a stream dropped before its end count
    /// too. Larger fail the connection with 1009 once the limit is crossed, in the middle of the
    /// message (the reads before it succeeded). Separate from `max_message_size` because a
    /// streamed message costs no memory beyond the read buffer, one 64 KiB chunk and the
    /// inflater's window whatever its size: this limit bounds time and bandwidth, not memory.
    /// `max_frame_size` and `max_fragments` still apply to each streamed message.
    ///
    /// Defaults to unlimited (`usize::MAX`): an application that asks for a stream is prepared
    /// for large messages (a 71 GB JSON-RPC response has been seen in the field), can stop
    /// reading whenever it likes, and knows its own bound better than a library default; set one
    /// when a peer must not keep a connection busy forever.
    ///
    /// [`WebSocket::recv_stream`]: crate::WebSocket::recv_stream
    pub max_stream_size: usize,
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
    /// Total time allowed for the opening handshake, not per read: the TLS handshake (for `wss`),
    /// the whole request or response head and the `101`, every socket call in them armed with
    /// the time left, so a peer that trickles bytes (inside a TLS record too) cannot stretch it.
    /// A server also gives each later request of a keep-alive HTTP connection this long for its
    /// head and body; an error answer (a 408 for a timed-out request) may take up to one second
    /// past it. Defaults to 10 seconds: slow mobile links finish, stalled peers are dropped.
    pub handshake_timeout: Duration,
    /// Most bytes of HTTP request or response head (request line plus headers). Larger heads are
    /// answered with 431. Defaults to 16 KiB, above what browsers send with cookies.
    pub max_header_bytes: usize,
    /// Most header lines in an HTTP request or response head. More are answered with 431.
    /// Defaults to 64.
    pub max_headers: usize,
    /// How long writing one frame may take in total: a message sent with `send`, one piece of
    /// `send_fragmented`, one fragment of a streamed message (`send_stream`, `send_from`), a ping, a pong, an automatic reply, a close frame. The time counts from
    /// when the frame's write began, and partial writes do not restart it: a send to a peer that
    /// reads slowly or not at all fails within `write_timeout` plus one system call (over TLS,
    /// plus the socket writes of the one record in progress) with a timeout error, and the
    /// connection is closed (a frame cut in half cannot be continued). Waiting for another
    /// thread's message on a split connection (also a streamed one, for as long as it lasts)
    /// does not count. `None` waits forever. Defaults to
    /// 30 seconds: a peer that stops reading cannot hold a sending thread longer than that.
    pub write_timeout: Option<Duration>,
    /// After this long without receiving anything, a thread waiting in `recv` sends a ping.
    /// `None` turns the heartbeat off. Defaults to 30 seconds, below the 60-second idle timeout
    /// of common proxies (nginx), so a quiet connection stays open and a dead one is found.
    pub ping_interval: Option<Duration>,
    /// How long to wait for the pong to a heartbeat ping before closing with 1011 and ending the
    /// receive with [`Error::HeartbeatTimeout`](crate::Error::HeartbeatTimeout). Defaults to 20
    /// seconds: generous for slow links, yet a dead peer frees its thread within 50 seconds.
    pub pong_timeout: Duration,
    /// A byte budget that this connection's incoming messages (their assembly and inflation)
    /// share with other connections given the same [`MemoryBudget`]: a buffer that would grow
    /// past it fails the connection with 1013 (try again later). `max_message_size` bounds one
    /// message; this bounds them all together. Defaults to `None` (no shared budget) for a
    /// socket built from this `Config`; a [`Server`](crate::Server) gives all its connections
    /// one budget of its own ([`Server::max_message_memory`](crate::Server::max_message_memory))
    /// unless this is set, in which case this one is used (e.g. to share a budget between
    /// several servers).
    pub memory_budget: Option<MemoryBudget>,
    /// permessage-deflate compression (RFC 7692), offered by a client and accepted by a server
    /// when set. Defaults to `None`: no compression, and nothing of it on the send or receive
    /// path. Compression trades CPU and memory per connection (about 420 KiB of heap once a
    /// compressed message went each way, with the defaults of [`DeflateConfig`]) for fewer bytes
    /// on the wire (JSON-like text: 16% of its size at the default level).
    #[cfg(feature = "deflate")]
    pub deflate: Option<DeflateConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: 16 << 20,
            max_message_size: 16 << 20,
            max_stream_size: usize::MAX,
            max_fragments: 100_000,
            read_buffer_size: 8 << 10,
            close_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            max_header_bytes: 16 << 10,
            max_headers: 64,
            write_timeout: Some(Duration::from_secs(30)),
            ping_interval: Some(Duration::from_secs(30)),
            pong_timeout: Duration::from_secs(20),
            memory_budget: None,
            #[cfg(feature = "deflate")]
            deflate: None,
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

    /// Sets [`Config::max_stream_size`].
    pub fn max_stream_size(mut self, bytes: usize) -> Self {
        self.max_stream_size = bytes;
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

    /// Sets [`Config::memory_budget`].
    pub fn memory_budget(mut self, budget: Option<MemoryBudget>) -> Self {
        self.memory_budget = budget;
        self
    }

    /// Sets [`Config::deflate`]: `Some(DeflateConfig::default())` turns compression on.
    ///
    /// ```
    /// use syncws::{Config, DeflateConfig};
    /// let config = Config::default().deflate(Some(DeflateConfig::default()));
    /// assert_eq!(config.deflate.unwrap().threshold, 64);
    /// ```
    #[cfg(feature = "deflate")]
    pub fn deflate(mut self, deflate: Option<DeflateConfig>) -> Self {
        self.deflate = deflate;
        self
    }

    /// The read buffer size actually used: at least 256 bytes so that a frame header and a control
    /// frame always fit.
    pub(crate) fn effective_read_buffer(&self) -> usize {
        self.read_buffer_size.max(256)
    }
}

/// How this endpoint compresses with permessage-deflate (RFC 7692), and what it asks of the peer.
///
/// The same settings serve a client (they become its offer) and a server (they shape its answer
/// to the first acceptable offer). Fields are named from this endpoint's point of view: "own"
/// settings apply to the messages it sends, `peer_*` settings to the messages it receives. In
/// RFC terms a client's own settings are the `client_*` parameters and a server's own settings
/// the `server_*` ones.
///
/// Memory (measured by `benches/deflate.rs`): a compressor holds 371 KiB at 15 window bits,
/// 259 KiB at 12 and 245 KiB at 9 (below 12 bits zlib's fixed hash table and buffers dominate);
/// a decompressor 46 KiB whatever the window. Both are created when the first compressed
/// message goes out or comes in; with context takeover they stay for the life of the connection
/// (they hold the window that later messages refer to), without it they are freed after every
/// message. Smaller windows and no context takeover cost ratio.
///
/// ```
/// use syncws::DeflateConfig;
/// // small windows and no state kept between messages: little memory per idle connection
/// let frugal = DeflateConfig::default()
///     .window_bits(10)
///     .peer_window_bits(10)
///     .no_context_takeover(true)
///     .peer_no_context_takeover(true);
/// assert_eq!(frugal.level, 6);
/// ```
#[cfg(feature = "deflate")]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// Compression level of what this endpoint sends, 0 (store) to 9 (smallest); larger values
    /// are taken as 9. Defaults to 6, zlib's own default (and Python websockets' and Node ws').
    /// On JSON-like text level 1 compresses about 6 times as fast for 1.7 times the bytes, level
    /// 3 about 2.3 times as fast for 15% more bytes: lower it when CPU is scarcer than bandwidth.
    pub level: u32,
    /// Messages shorter than this many bytes are sent uncompressed (their RSV1 bit clear). Defaults
    /// to 64: below that the frame header dominates and compressing costs more CPU than it saves
    /// bytes. Fragmented messages are always compressed, whatever the size of their pieces.
    pub threshold: usize,
    /// Base-2 logarithm of the largest LZ77 window this endpoint compresses with, 8 to 15
    /// (values outside are clamped). The peer may ask for less; it is never more. Defaults to 15
    /// (32 KiB window, the best ratio).
    pub window_bits: u8,
    /// Base-2 logarithm of the largest window this endpoint asks the peer to compress with, 8 to
    /// 15; it bounds the decompressor's memory. A client asks with `server_max_window_bits`; a
    /// server can only ask a client that offered `client_max_window_bits`. Defaults to 15 (ask
    /// nothing).
    pub peer_window_bits: u8,
    /// Compress every message on its own, forgetting the previous ones (`client_no_context_takeover`
    /// from a client, `server_no_context_takeover` from a server). Defaults to true: a
    /// connection then holds no compressor between messages (one with context takeover keeps
    /// about 370 KiB per connection for as long as it lives; idle compressors are shared
    /// through a small process-wide pool instead), and a [`Hub`](crate::Hub) compresses a
    /// message once for all such members rather than once per member. The price is ratio on
    /// small messages, which can no longer refer to earlier ones: 1 KiB JSON-like records go
    /// out at about 33% of their size instead of 20%; from 16 KiB on the difference is a few
    /// percent. Set it to false for a connection that sends many small, similar messages and
    /// can spend the memory.
    pub no_context_takeover: bool,
    /// Ask the peer to compress every message on its own, so that the decompressor can be freed
    /// between messages. Defaults to false.
    pub peer_no_context_takeover: bool,
}

#[cfg(feature = "deflate")]
impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            level: 6,
            threshold: 64,
            window_bits: 15,
            peer_window_bits: 15,
            no_context_takeover: true,
            peer_no_context_takeover: false,
        }
    }
}

#[cfg(feature = "deflate")]
impl DeflateConfig {
    /// Sets [`DeflateConfig::level`].
    pub fn level(mut self, level: u32) -> Self {
        self.level = level;
        self
    }

    /// Sets [`DeflateConfig::threshold`].
    pub fn threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }

    /// Sets [`DeflateConfig::window_bits`].
    pub fn window_bits(mut self, bits: u8) -> Self {
        self.window_bits = bits;
        self
    }

    /// Sets [`DeflateConfig::peer_window_bits`].
    pub fn peer_window_bits(mut self, bits: u8) -> Self {
        self.peer_window_bits = bits;
        self
    }

    /// Sets [`DeflateConfig::no_context_takeover`].
    pub fn no_context_takeover(mut self, yes: bool) -> Self {
        self.no_context_takeover = yes;
        self
    }

    /// Sets [`DeflateConfig::peer_no_context_takeover`].
    pub fn peer_no_context_takeover(mut self, yes: bool) -> Self {
        self.peer_no_context_takeover = yes;
        self
    }

    /// [`DeflateConfig::window_bits`] within 8..=15.
    pub(crate) fn own_bits(&self) -> u8 {
        self.window_bits.clamp(8, 15)
    }

    /// [`DeflateConfig::peer_window_bits`] within 8..=15.
    pub(crate) fn peer_bits(&self) -> u8 {
        self.peer_window_bits.clamp(8, 15)
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
            .max_stream_size(9)
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
        assert_eq!(c.max_stream_size, 9);
        assert_eq!(c.close_timeout, Duration::from_millis(5));
        assert_eq!(c.handshake_timeout, Duration::from_millis(6));
        assert_eq!((c.max_header_bytes, c.max_headers), (7, 8));
        assert_eq!(c.effective_read_buffer(), 256);
    }
}
