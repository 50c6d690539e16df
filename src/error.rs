//! The one error type of the crate.

use std::fmt;
use std::io;

use crate::message::{CloseCode, CloseFrame};

/// A shorthand for `Result<T, syncws::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in syncws.
///
/// The enum is small (two words) so that `Result<Message>` stays cheap to move; rare, large details
/// (an HTTP response the client did not expect) are boxed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The socket failed: the peer reset the connection, a write timed out, the network went away.
    /// A connection that ended without a close frame (RFC 6455 code 1006, "abnormal closure") shows
    /// up here with kind [`io::ErrorKind::UnexpectedEof`].
    Io(io::Error),
    /// The peer broke RFC 6455 or went past one of this endpoint's limits (sizes, the memory
    /// budget). The connection has been failed: a close frame with [`ProtocolError::close_code`]
    /// was sent and the TCP connection closed.
    Protocol(ProtocolError),
    /// The opening handshake failed: the peer is not speaking WebSocket, or refused us.
    Handshake(HandshakeError),
    /// The server answered the client's upgrade request with something other than `101`.
    /// Carries the status, headers and (the start of) the body.
    Http(Box<HttpResponse>),
    /// The URL given to the client is not a usable `ws://` URL.
    Url(UrlError),
    /// The operation needs an open connection, but it has been closed (by either side, or after an
    /// error). A receive returns `Ok(None)` instead when the connection ended normally, and
    /// [`Error::PeerClosed`] when the peer closed it with an error code.
    Closed,
    /// The peer closed the connection with a code that is not a normal end: anything but 1000,
    /// 1001 or no code (see [`CloseCode::is_normal`]), e.g. 1008 (policy), 1009 (message too
    /// big), 1011 (server error) or an application's 4000-4999. Carries the peer's close frame.
    ///
    /// The closing handshake is complete (the code was echoed) and the connection is closed;
    /// later receives return this error again. It is the peer's word, not a failure of this
    /// endpoint: a close this side started ends with `Ok(None)` whatever code the peer echoes.
    PeerClosed(Box<CloseFrame>),
    /// A receive with a deadline ([`WebSocket::recv_timeout`](crate::WebSocket::recv_timeout))
    /// ran out of time. The connection stays usable.
    Timeout,
    /// The peer did not answer a heartbeat ping within
    /// [`Config::pong_timeout`](crate::Config::pong_timeout); the connection was closed with 1011.
    HeartbeatTimeout,
    /// The caller passed something that cannot be sent, e.g. a close code that must not appear on
    /// the wire or a close reason longer than 123 bytes.
    InvalidInput(InputError),
    /// TLS failed: the certificate is not trusted or names another host, the peer does not speak
    /// TLS, or the TLS settings are unusable. See [`TlsError::kind`].
    Tls(Box<TlsError>),
    /// A hub's backend (the link to other instances, e.g. Redis) could not start: its server is
    /// unreachable, refused the credentials, or the settings are unusable. See
    /// [`BackendError::kind`]. Only [`HubBuilder::build`](crate::HubBuilder::build) and a
    /// backend's own constructor return it; once running, a backend reconnects by itself.
    Backend(Box<BackendError>),
}

impl Error {
    /// The peer's close frame, for [`Error::PeerClosed`].
    pub fn peer_close(&self) -> Option<&CloseFrame> {
        match self {
            Error::PeerClosed(frame) => Some(frame),
            _ => None,
        }
    }

    /// True for [`Error::Timeout`] and for I/O errors that are timeouts.
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Timeout => true,
            Error::Io(e) => is_timeout_kind(e.kind()),
            _ => false,
        }
    }

    /// This error as the `io::Error` that a streamed message's reads and writes return
    /// ([`MessageReader`](crate::MessageReader), [`MessageWriter`](crate::MessageWriter)): an
    /// I/O error as it was, anything else carried inside one (`From<io::Error>` takes it out
    /// again) with the kind an `io` user expects; `ended` is the kind for a closed connection.
    pub(crate) fn into_io(self, ended: io::ErrorKind) -> io::Error {
        let kind = match self {
            Error::Io(e) => return e,
            Error::Timeout => io::ErrorKind::TimedOut,
            Error::Protocol(_) | Error::InvalidInput(_) => io::ErrorKind::InvalidData,
            Error::Closed | Error::PeerClosed(_) => ended,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, self)
    }
}

pub(crate) fn is_timeout_kind(kind: io::ErrorKind) -> bool {
    matches!(kind, io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "i/o error: {e}"),
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
            Error::Handshake(e) => write!(f, "handshake failed: {e}"),
            Error::Http(r) => {
                write!(f, "server answered {} instead of 101", r.status)?;
                match r.summary() {
                    Some(summary) => write!(f, ": {summary}"),
                    None => Ok(()),
                }
            }
            Error::Url(e) => write!(f, "invalid url: {e}"),
            Error::Closed => f.write_str("connection closed"),
            Error::PeerClosed(frame) if frame.reason.is_empty() => {
                write!(f, "peer closed the connection with {}", frame.code)
            }
            Error::PeerClosed(frame) => write!(
                f,
                "peer closed the connection with {}: {}",
                frame.code,
                frame.reason.escape_debug()
            ),
            Error::Timeout => f.write_str("timed out"),
            Error::HeartbeatTimeout => f.write_str("peer did not answer a ping in time"),
            Error::InvalidInput(e) => write!(f, "invalid input: {e}"),
            Error::Tls(e) => write!(f, "tls: {e}"),
            Error::Backend(e) => write!(f, "hub backend: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Backend(e) => Some(&**e),
            _ => None,
        }
    }
}

/// An `io::Error` that carries an [`Error`] (as the reads of a
/// [`MessageReader`](crate::MessageReader) return) gives it back, so `?` on a streamed read
/// reports what went wrong; any other becomes [`Error::Io`].
impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            let inner = e.into_inner().expect("checked above");
            return *inner.downcast::<Error>().expect("checked above");
        }
        Error::Io(e)
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Error::Protocol(e)
    }
}

impl From<InputError> for Error {
    fn from(e: InputError) -> Self {
        Error::InvalidInput(e)
    }
}

impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Self {
        Error::Handshake(e)
    }
}

impl From<TlsError> for Error {
    fn from(e: TlsError) -> Self {
        Error::Tls(Box::new(e))
    }
}

impl From<BackendError> for Error {
    fn from(e: BackendError) -> Self {
        Error::Backend(Box::new(e))
    }
}

impl From<UrlError> for Error {
    fn from(e: UrlError) -> Self {
        Error::Url(e)
    }
}

/// A violation of RFC 6455 by the peer, or a limit it went past; each maps to the close code the
/// RFC asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// An RSV bit was set that no negotiated extension defines, or RSV1 (compressed) on a control
    /// frame or a continuation frame.
    ReservedBits,
    /// The frame used a reserved opcode (3-7 or 11-15).
    ReservedOpcode(u8),
    /// A control frame had FIN clear.
    FragmentedControl,
    /// A control frame carried more than 125 bytes.
    ControlTooLong,
    /// A continuation frame arrived while no message was in progress.
    UnexpectedContinuation,
    /// A text or binary frame arrived while a fragmented message was still in progress.
    ExpectedContinuation,
    /// A client sent an unmasked frame (servers must see every frame masked).
    UnmaskedFrame,
    /// A server sent a masked frame (clients must see no frame masked).
    MaskedFrame,
    /// The payload length was not encoded in the minimal number of bytes, or its top bit was set.
    BadLength,
    /// A close frame carried a one-byte payload.
    ClosePayloadTooShort,
    /// A close frame carried a code that must not appear on the wire.
    InvalidCloseCode(u16),
    /// A text message or close reason was not valid UTF-8.
    InvalidUtf8,
    /// A frame was larger than [`Config::max_frame_size`](crate::Config::max_frame_size).
    FrameTooLarge,
    /// A message was larger than [`Config::max_message_size`](crate::Config::max_message_size).
    MessageTooLarge,
    /// A message came in more fragments than [`Config::max_fragments`](crate::Config::max_fragments).
    TooManyFragments,
    /// A compressed message (permessage-deflate) did not inflate: corrupt deflate data, or data
    /// after a final block.
    BadCompressedData,
    /// Not the peer's mistake but ours to refuse: the message's buffer would have grown past the
    /// [`MemoryBudget`](crate::MemoryBudget) this connection shares with others (a server's
    /// [`max_message_memory`](crate::Server::max_message_memory)). Closed with 1013, try again
    /// later.
    OverMemoryBudget,
}

impl ProtocolError {
    /// The close code sent to the peer for this violation: 1007 for bad UTF-8, 1009 for sizes,
    /// 1013 for a spent memory budget, 1002 for everything else.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::OverMemoryBudget => CloseCode::TRY_AGAIN_LATER,
            ProtocolError::InvalidUtf8 | ProtocolError::BadCompressedData => {
                CloseCode::INVALID_DATA
            }
            ProtocolError::FrameTooLarge
            | ProtocolError::MessageTooLarge
            | ProtocolError::TooManyFragments => CloseCode::TOO_BIG,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::ReservedBits => f.write_str("reserved bits set"),
            ProtocolError::ReservedOpcode(op) => write!(f, "reserved opcode {op}"),
            ProtocolError::FragmentedControl => f.write_str("fragmented control frame"),
            ProtocolError::ControlTooLong => f.write_str("control frame longer than 125 bytes"),
            ProtocolError::UnexpectedContinuation => {
                f.write_str("continuation frame without a message in progress")
            }
            ProtocolError::ExpectedContinuation => {
                f.write_str("new message while a fragmented message is in progress")
            }
            ProtocolError::UnmaskedFrame => f.write_str("unmasked frame from a client"),
            ProtocolError::MaskedFrame => f.write_str("masked frame from a server"),
            ProtocolError::BadLength => f.write_str("badly encoded payload length"),
            ProtocolError::ClosePayloadTooShort => f.write_str("close payload of one byte"),
            ProtocolError::InvalidCloseCode(c) => write!(f, "invalid close code {c}"),
            ProtocolError::InvalidUtf8 => f.write_str("invalid utf-8"),
            ProtocolError::FrameTooLarge => f.write_str("frame too large"),
            ProtocolError::MessageTooLarge => f.write_str("message too large"),
            ProtocolError::TooManyFragments => f.write_str("too many fragments"),
            ProtocolError::BadCompressedData => f.write_str("corrupt compressed data"),
            ProtocolError::OverMemoryBudget => {
                f.write_str("memory budget for incoming messages spent")
            }
        }
    }
}

impl std::error::Error for ProtocolError {}

/// Why an opening handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The bytes are not a well-formed HTTP/1.1 request or response.
    MalformedHttp,
    /// The request did not use `GET`.
    NotGet,
    /// The request or response was not HTTP/1.1.
    NotHttp11,
    /// A plain HTTP request without `Upgrade: websocket`.
    NotUpgrade,
    /// `Connection` does not list `upgrade`.
    MissingConnectionUpgrade,
    /// `Sec-WebSocket-Version` is missing or not 13.
    UnsupportedVersion,
    /// `Sec-WebSocket-Key` is missing or not the base64 of 16 bytes.
    BadKey,
    /// More header lines than [`Config::max_headers`](crate::Config::max_headers).
    TooManyHeaders,
    /// More header bytes than [`Config::max_header_bytes`](crate::Config::max_header_bytes).
    HeadersTooLarge,
    /// The response's `Sec-WebSocket-Accept` does not match our key.
    BadAccept,
    /// The server chose a subprotocol or extension the client did not offer, or answered the
    /// client's permessage-deflate offer with a parameter it may not send (a larger window than
    /// offered, `client_max_window_bits` when the client did not offer it) or without one it had
    /// to send (`server_no_context_takeover` or `server_max_window_bits` the client asked for).
    UnexpectedNegotiation,
    /// A `Sec-WebSocket-Extensions` answer the client cannot read: malformed, an unknown or
    /// repeated permessage-deflate parameter, or a window size outside 8..=15.
    BadExtension,
    /// The connection closed before the handshake completed.
    Eof,
    /// The request's `Origin` is not allowed (answered with 403).
    OriginRefused,
    /// The server's gatekeeper refused the request (answered with its response).
    Refused,
    /// The handshake did not complete within
    /// [`Config::handshake_timeout`](crate::Config::handshake_timeout).
    Timeout,
    /// The client followed more redirects than
    /// [`ClientBuilder::max_redirects`](crate::ClientBuilder::max_redirects) allows.
    TooManyRedirects,
    /// A redirect from `wss://` to `ws://` (or `http://`), which would drop encryption: refused.
    InsecureRedirect,
    /// A redirect without a usable `Location`.
    BadRedirect,
    /// The HTTP proxy answered `CONNECT` with this status instead of 200 (407: it wants
    /// credentials).
    ProxyRefused(u16),
    /// The SOCKS5 proxy refused to connect to the target, with this RFC 1928 reply code (1
    /// general failure, 2 not allowed by its rules, 3 network unreachable, 4 host unreachable,
    /// 5 connection refused, 6 TTL expired, 7 command or 8 address type not supported).
    SocksRefused(u8),
    /// The SOCKS5 proxy accepts none of the authentication methods offered: it wants a user
    /// name and password and the proxy URL has none, or a method this client does not speak.
    SocksNoMethod,
    /// The SOCKS5 proxy rejected the user name and password (RFC 1929).
    SocksAuthFailed,
    /// The proxy's answer is not SOCKS5: a wrong version byte, a method that was not offered, an
    /// unknown address type.
    MalformedSocks,
    /// An HTTP/1.1 request without `Host` (answered with 400).
    MissingHost,
    /// A request with more than one `Host`, `Origin`, `Sec-WebSocket-Key` or
    /// `Sec-WebSocket-Version` (answered with 400).
    DuplicateHeader,
    /// A `Content-Length` that is not plain digits, copies of it that differ, or one beside
    /// `Transfer-Encoding` (answered with 400: the request could be read two ways).
    BadContentLength,
    /// An upgrade request that announces a body (answered with 400: its bytes would be read as
    /// frames).
    UpgradeWithBody,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandshakeError::MalformedHttp => "malformed http",
            HandshakeError::NotGet => "method is not GET",
            HandshakeError::NotHttp11 => "not HTTP/1.1",
            HandshakeError::NotUpgrade => "not a websocket upgrade",
            HandshakeError::MissingConnectionUpgrade => "connection header lacks upgrade",
            HandshakeError::UnsupportedVersion => "unsupported websocket version",
            HandshakeError::BadKey => "bad sec-websocket-key",
            HandshakeError::TooManyHeaders => "too many headers",
            HandshakeError::HeadersTooLarge => "headers too large",
            HandshakeError::BadAccept => "sec-websocket-accept does not match",
            HandshakeError::UnexpectedNegotiation => "server chose something not offered",
            HandshakeError::BadExtension => "malformed sec-websocket-extensions answer",
            HandshakeError::Eof => "connection closed during handshake",
            HandshakeError::Timeout => "handshake timed out",
            HandshakeError::OriginRefused => "origin not allowed",
            HandshakeError::Refused => "refused by the gatekeeper",
            HandshakeError::TooManyRedirects => "too many redirects",
            HandshakeError::InsecureRedirect => "refused a redirect from wss to ws",
            HandshakeError::BadRedirect => "redirect without a usable location",
            HandshakeError::MissingHost => "http/1.1 request without host",
            HandshakeError::DuplicateHeader => {
                "host, origin, sec-websocket-key or sec-websocket-version sent twice"
            }
            HandshakeError::BadContentLength => "ambiguous or malformed content-length",
            HandshakeError::UpgradeWithBody => "upgrade request with a body",
            HandshakeError::ProxyRefused(status) => {
                return write!(f, "proxy answered {status} to connect");
            }
            HandshakeError::SocksRefused(code) => {
                let meaning = crate::proto::socks::reply_meaning(*code);
                return write!(
                    f,
                    "socks5 proxy refused to connect: {meaning} (code {code})"
                );
            }
            HandshakeError::SocksNoMethod => {
                "socks5 proxy accepts none of the offered authentication methods \
                 (does it want a user name and password?)"
            }
            HandshakeError::SocksAuthFailed => "socks5 proxy rejected the user name or password",
            HandshakeError::MalformedSocks => "proxy answer is not socks5",
        })
    }
}

impl std::error::Error for HandshakeError {}

/// An HTTP response that was not the `101 Switching Protocols` the client asked for.
///
/// Its `Debug` shows the body as text when it is UTF-8 (the first 200 bytes of it), since
/// refusals are usually a line of text saying why.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code, e.g. 403.
    pub status: u16,
    /// The header fields, in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, or its first 64 KiB.
    pub body: Vec<u8>,
}

/// Most body bytes `HttpResponse`'s `Debug` shows.
const DEBUG_BODY: usize = 200;

/// Most characters of the body `Error::Http`'s `Display` shows.
const DISPLAY_BODY: usize = 100;

impl HttpResponse {
    /// The body as text, if it is UTF-8; a body cut at 64 KiB may end inside a character,
    /// which is left off.
    fn text(&self) -> Option<&str> {
        match std::str::from_utf8(&self.body) {
            Ok(text) => Some(text),
            Err(e) if e.error_len().is_none() => {
                std::str::from_utf8(&self.body[..e.valid_up_to()]).ok()
            }
            Err(_) => None,
        }
    }

    /// The body's first non-empty line, trimmed, without control characters and at most
    /// [`DISPLAY_BODY`] characters (`...` marks a cut); `None` for an empty or binary body.
    fn summary(&self) -> Option<String> {
        let line = self
            .text()?
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())?;
        let mut chars = line.chars().filter(|c| !c.is_control());
        let mut out: String = chars.by_ref().take(DISPLAY_BODY).collect();
        if chars.next().is_some() {
            out.push_str("...");
        }
        Some(out)
    }
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &BodyDebug(self))
            .finish()
    }
}

/// An `HttpResponse` body in `Debug`: quoted text when it is UTF-8, cut at [`DEBUG_BODY`]
/// bytes with the full length after it; otherwise only its length.
struct BodyDebug<'a>(&'a HttpResponse);

impl fmt::Debug for BodyDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = self.0.body.len();
        let Some(text) = self.0.text() else {
            return write!(f, "<{len} bytes, not utf-8>");
        };
        if len <= DEBUG_BODY {
            return write!(f, "{text:?}");
        }
        let mut end = DEBUG_BODY;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        write!(f, "{:?}... ({len} bytes)", &text[..end])
    }
}

/// What is wrong with something the caller asked to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputError {
    /// The close code may not be sent: 1005, 1006, 1015, or a reserved range.
    CloseCode,
    /// The close reason is longer than 123 bytes.
    CloseReasonTooLong,
    /// A ping or pong payload is longer than 125 bytes.
    ControlTooLong,
    /// A fragmented message mixed text and binary fragments.
    MixedFragments,
    /// Bytes written to a streamed text message
    /// ([`MessageWriter`](crate::MessageWriter)) are not valid UTF-8, or the message ended
    /// inside a character. The bytes were refused; nothing invalid went out.
    InvalidUtf8,
    /// A header name that is not an HTTP token (RFC 9110 5.1): empty, or with spaces,
    /// separators such as `:`, control or non-ASCII characters.
    HeaderName,
    /// A header value with CR, LF, NUL or another control character (RFC 9110 5.5), which could
    /// forge further headers or a second response.
    HeaderValue,
    /// A header the library writes itself and that may not be set or contradicted: for
    /// responses `Content-Length`, `Transfer-Encoding` and `Connection` (other than `close` or
    /// `keep-alive`); for a `101` also `Upgrade` and the `Sec-WebSocket-*` answers; for a
    /// client's request `Host`, `Upgrade`, `Connection` and the `Sec-WebSocket-*` fields (use
    /// [`ClientBuilder::protocol`](crate::ClientBuilder::protocol) for subprotocols).
    ReservedHeader,
    /// The same header given twice where one copy is allowed (a client's `Origin`).
    DuplicateHeader,
    /// A client's socket offered to a [`Hub`](crate::Hub): hub frames are encoded once,
    /// unmasked, for servers' sockets.
    ClientSocket,
    /// A SOCKS5 proxy's user name or password is empty or longer than 255 bytes (RFC 1929), or
    /// a host name for a `socks5h://` proxy to resolve is longer than 255 bytes (RFC 1928):
    /// refused before connecting.
    SocksField,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputError::CloseCode => "close code may not be sent on the wire",
            InputError::CloseReasonTooLong => "close reason longer than 123 bytes",
            InputError::ControlTooLong => "control payload longer than 125 bytes",
            InputError::MixedFragments => "fragments mix text and binary",
            InputError::InvalidUtf8 => "text is not valid utf-8",
            InputError::HeaderName => "header name is not an http token",
            InputError::HeaderValue => "header value contains a control character (cr, lf, nul)",
            InputError::ReservedHeader => "header is written by the library and may not be set",
            InputError::DuplicateHeader => "header may be given only once",
            InputError::ClientSocket => "a hub takes servers' sockets only",
            InputError::SocksField => {
                "socks5 user name and password must be 1 to 255 bytes, host names at most 255"
            }
        })
    }
}

impl std::error::Error for InputError {}

/// A TLS failure, sorted into what a caller can act on, with the TLS library's own message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    kind: TlsErrorKind,
    message: String,
}

/// The kinds of [`TlsError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsErrorKind {
    /// The server's certificate is valid but for another name than the one in the URL.
    NameMismatch,
    /// The server's certificate does not chain to a trusted root (self-signed, unknown CA,
    /// expired). Add the CA with `ClientTlsBuilder::add_root_file`.
    UntrustedCertificate,
    /// The TLS handshake failed otherwise: the peer does not speak TLS, no common protocol
    /// version or cipher, the connection dropped.
    Handshake,
    /// A certificate, key or archive could not be read or used.
    Config,
    /// A `wss://` URL or TLS setting was used in a build without the `tls` or `rustls` feature.
    NotEnabled,
}

impl TlsError {
    pub(crate) fn new(kind: TlsErrorKind, message: String) -> Self {
        TlsError { kind, message }
    }

    /// What went wrong.
    pub fn kind(&self) -> TlsErrorKind {
        self.kind
    }

    /// The TLS library's description (OpenSSL's or rustls's, depending on the backend).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            TlsErrorKind::NameMismatch => "certificate is for another name",
            TlsErrorKind::UntrustedCertificate => "certificate not trusted",
            TlsErrorKind::Handshake => "handshake failed",
            TlsErrorKind::Config => "bad settings",
            TlsErrorKind::NotEnabled => "built without the tls feature",
        };
        write!(f, "{what}: {}", self.message)
    }
}

impl std::error::Error for TlsError {}

/// Why a hub's backend could not start ([`Error::Backend`]), sorted into what a caller can act
/// on, with the backend's own message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendError {
    kind: BackendErrorKind,
    message: String,
}

/// The kinds of [`BackendError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendErrorKind {
    /// Its server could not be reached: refused, timed out, or the connection dropped during
    /// the set-up. Worth trying again later.
    Unreachable,
    /// Its server refused us: a wrong or missing password, a user without the rights needed.
    /// Trying again with the same settings will not help.
    Refused,
    /// The settings are unusable: a malformed URL, an unsupported scheme, a bad value, a TLS
    /// certificate of the server's that they do not trust.
    Config,
}

impl BackendError {
    /// An error of `kind` with `message` (which should name the server), for implementations
    /// of [`Backend`](crate::Backend) to return from their constructor or `attach`.
    pub fn new(kind: BackendErrorKind, message: impl Into<String>) -> Self {
        BackendError {
            kind,
            message: message.into(),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> BackendErrorKind {
        self.kind
    }

    /// The backend's description, e.g. the server's own error.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            BackendErrorKind::Unreachable => "unreachable",
            BackendErrorKind::Refused => "refused",
            BackendErrorKind::Config => "bad settings",
        };
        write!(f, "{what}: {}", self.message)
    }
}

impl std::error::Error for BackendError {}

/// What is wrong with a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    /// The scheme is missing or not one accepted here: `ws`, `wss` (which needs the `tls`
    /// feature) or `ws+unix` for a WebSocket URL, also `http` and `https` in a redirect; `http`, `https`,
    /// `socks5` or `socks5h` for a proxy.
    /// Says which scheme it got and which it accepts.
    ///
    /// Boxed to keep [`Error`] two words: a `Box<str>` is two words itself, and with the other
    /// variants' tag would make `UrlError`, and so `Error`, three.
    UnsupportedScheme(Box<SchemeError>),
    /// The host is missing or malformed.
    BadHost,
    /// The port is not a number from 1 to 65535.
    BadPort,
    /// WebSocket URLs must not have a fragment (`#...`).
    Fragment,
    /// The URL contains spaces or control characters.
    BadCharacter,
    /// A `ws+unix://` URL without an absolute socket path (`ws+unix:///run/app.sock:/path`).
    BadSocketPath,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlError::UnsupportedScheme(e) => return write!(f, "{e}"),
            UrlError::BadHost => "missing or malformed host",
            UrlError::BadPort => "bad port",
            UrlError::Fragment => "websocket urls must not have a fragment",
            UrlError::BadSocketPath => "ws+unix urls need an absolute socket path",
            UrlError::BadCharacter => "space or control character in url",
        })
    }
}

impl std::error::Error for UrlError {}

/// The scheme of a URL that was refused with [`UrlError::UnsupportedScheme`], and the ones
/// that would have been accepted there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemeError {
    got: String,
    supported: &'static [(&'static str, u16)],
}

impl SchemeError {
    /// `got` refused where `supported` (scheme, default port) are accepted.
    pub(crate) fn new(got: &str, supported: &'static [(&'static str, u16)]) -> Self {
        SchemeError {
            got: got.to_owned(),
            supported,
        }
    }

    /// The scheme as written in the URL (empty when it had none).
    pub fn scheme(&self) -> &str {
        &self.got
    }

    /// The schemes accepted where the URL was given, e.g. `ws` and `wss`.
    pub fn supported(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.supported.iter().map(|(name, _)| *name)
    }
}

impl fmt::Display for SchemeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The scheme is the caller's text: quoted, so spaces or an empty one still read clearly.
        match self.got.as_str() {
            "" => f.write_str("no scheme")?,
            got => write!(f, "unsupported scheme {got:?}")?,
        }
        f.write_str(", expected ")?;
        for (i, name) in self.supported().enumerate() {
            match i {
                0 => {}
                i if i + 1 == self.supported.len() => f.write_str(" or ")?,
                _ => f.write_str(", ")?,
            }
            write!(f, "{name}://")?;
            if name == "wss" && !cfg!(feature = "tls") {
                f.write_str(" (with the tls feature)")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_two_words() {
        assert!(std::mem::size_of::<Error>() <= 2 * std::mem::size_of::<usize>());
    }

    #[test]
    fn close_codes_follow_the_rfc() {
        assert_eq!(ProtocolError::InvalidUtf8.close_code().0, 1007);
        assert_eq!(ProtocolError::MessageTooLarge.close_code().0, 1009);
        assert_eq!(ProtocolError::FrameTooLarge.close_code().0, 1009);
        assert_eq!(ProtocolError::TooManyFragments.close_code().0, 1009);
        assert_eq!(ProtocolError::ReservedBits.close_code().0, 1002);
        assert_eq!(ProtocolError::UnmaskedFrame.close_code().0, 1002);
        assert_eq!(ProtocolError::OverMemoryBudget.close_code().0, 1013);
    }

    fn http(status: u16, body: &[u8]) -> Error {
        Error::Http(Box::new(HttpResponse {
            status,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: body.to_vec(),
        }))
    }

    #[test]
    fn http_display_says_the_start_of_the_body() {
        let rows: &[(&[u8], &str)] = &[
            (
                b"wrong token\n",
                "server answered 403 instead of 101: wrong token",
            ),
            (b"", "server answered 403 instead of 101"),
            (b"\xff\xfe binary", "server answered 403 instead of 101"),
            (
                b"\r\n  \n  first\tline  \nsecond",
                "server answered 403 instead of 101: firstline",
            ),
            (
                "caf\u{e9} \u{1b}[31mred".as_bytes(),
                "server answered 403 instead of 101: caf\u{e9} [31mred",
            ),
            // A body cut at 64 KiB inside a character is still text.
            (b"cut \xc3", "server answered 403 instead of 101: cut"),
        ];
        for (body, want) in rows {
            assert_eq!(http(403, body).to_string(), *want, "{body:?}");
        }
        let long = http(403, "x".repeat(500).as_bytes()).to_string();
        assert_eq!(
            long,
            format!("server answered 403 instead of 101: {}...", "x".repeat(100))
        );
    }

    #[test]
    fn http_debug_shows_a_text_body_as_text() {
        let e = http(403, b"wrong token\n");
        assert_eq!(
            format!("{e:?}"),
            "Http(HttpResponse { status: 403, headers: [(\"Content-Type\", \"text/plain\")], \
             body: \"wrong token\\n\" })"
        );
        let long = format!("{:?}", http(500, "\u{e9}".repeat(300).as_bytes()));
        let shown = format!("\"{}\"... (600 bytes)", "\u{e9}".repeat(100));
        assert!(long.ends_with(&format!("body: {shown} }})")), "{long}");
        let binary = format!("{:?}", http(500, &[0xff; 1_000]));
        assert!(
            binary.ends_with("body: <1000 bytes, not utf-8> })"),
            "{binary}"
        );
    }

    #[test]
    fn unsupported_scheme_names_the_scheme_and_the_supported_ones() {
        const WS: &[(&str, u16)] = &[("ws", 80), ("wss", 443)];
        const PROXY: &[(&str, u16)] = &[("http", 80)];
        let tls = if cfg!(feature = "tls") {
            ""
        } else {
            " (with the tls feature)"
        };
        let rows = [
            (
                "http",
                WS,
                format!("unsupported scheme \"http\", expected ws:// or wss://{tls}"),
            ),
            ("", WS, format!("no scheme, expected ws:// or wss://{tls}")),
            (
                "socks5",
                PROXY,
                "unsupported scheme \"socks5\", expected http://".to_owned(),
            ),
        ];
        for (got, supported, want) in rows {
            let e = UrlError::UnsupportedScheme(Box::new(SchemeError::new(got, supported)));
            assert_eq!(e.to_string(), want);
        }
        let e = SchemeError::new("ftp", &[("ws", 80), ("wss", 443), ("http", 80)]);
        let want = format!("expected ws://, wss://{tls} or http://");
        assert!(e.to_string().ends_with(&want), "{e}");
    }

    #[test]
    fn display_is_lowercase() {
        for e in [
            Error::Closed,
            Error::Timeout,
            Error::Protocol(ProtocolError::ReservedBits),
            Error::Handshake(HandshakeError::BadKey),
            Error::Url(UrlError::Fragment),
        ] {
            let s = e.to_string();
            assert_eq!(s, s.to_lowercase(), "{s}");
        }
    }
}
