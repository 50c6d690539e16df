//! Messages, close codes and what `send` accepts.

use std::fmt;

/// A whole WebSocket data message, as `recv` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message; its UTF-8 has been validated.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

impl Message {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(s) => s.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// The text, if this is a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(s) => Some(s),
            Message::Binary(_) => None,
        }
    }

    /// True for a text message.
    pub fn is_text(&self) -> bool {
        matches!(self, Message::Text(_))
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// True if the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payload, giving up the message.
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Message::Text(s) => s.into_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// The text of a text message, giving up the message; `None` for binary.
    pub fn into_text(self) -> Option<String> {
        match self {
            Message::Text(s) => Some(s),
            Message::Binary(_) => None,
        }
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Message::Text(s)
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Self {
        Message::Text(s.to_owned())
    }
}

impl From<Vec<u8>> for Message {
    fn from(b: Vec<u8>) -> Self {
        Message::Binary(b)
    }
}

impl From<&[u8]> for Message {
    fn from(b: &[u8]) -> Self {
        Message::Binary(b.to_vec())
    }
}

/// Whether a message is text or binary, as [`WebSocket::recv_into`](crate::WebSocket::recv_into)
/// reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// A text message; its bytes are valid UTF-8.
    Text,
    /// A binary message.
    Binary,
}

/// A borrowed view of a message to send: what [`ToMessage`] turns things into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageRef<'a> {
    /// Text, sent with opcode 1.
    Text(&'a str),
    /// Bytes, sent with opcode 2.
    Binary(&'a [u8]),
}

impl MessageRef<'_> {
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            MessageRef::Text(s) => s.as_bytes(),
            MessageRef::Binary(b) => b,
        }
    }
}

/// What `send` accepts without copying: `&str` and `String` go as text, `&[u8]`, `Vec<u8>` and
/// byte arrays as binary, and a [`Message`] as what it is.
pub trait ToMessage {
    /// Borrow `self` as a text or binary payload.
    fn to_message(&self) -> MessageRef<'_>;
}

impl ToMessage for str {
    fn to_message(&self) -> MessageRef<'_> {
        MessageRef::Text(self)
    }
}

impl ToMessage for String {
    fn to_message(&self) -> MessageRef<'_> {
        MessageRef::Text(self)
    }
}

impl ToMessage for [u8] {
    fn to_message(&self) -> MessageRef<'_> {
        MessageRef::Binary(self)
    }
}

impl<const N: usize> ToMessage for [u8; N] {
    fn to_message(&self) -> MessageRef<'_> {
        MessageRef::Binary(self)
    }
}

impl ToMessage for Vec<u8> {
    fn to_message(&self) -> MessageRef<'_> {
        MessageRef::Binary(self)
    }
}

impl ToMessage for Message {
    fn to_message(&self) -> MessageRef<'_> {
        match self {
            Message::Text(s) => MessageRef::Text(s),
            Message::Binary(b) => MessageRef::Binary(b),
        }
    }
}

impl ToMessage for MessageRef<'_> {
    fn to_message(&self) -> MessageRef<'_> {
        *self
    }
}

impl<T: ToMessage + ?Sized> ToMessage for &T {
    fn to_message(&self) -> MessageRef<'_> {
        (**self).to_message()
    }
}

/// A close status code (RFC 6455 section 7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: closed without a close frame (never sent on the wire).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: a message's data was inconsistent with its type (bad UTF-8).
    pub const INVALID_DATA: CloseCode = CloseCode(1007);
    /// 1008: a message violated the endpoint's policy.
    pub const POLICY: CloseCode = CloseCode(1008);
    /// 1009: a message was too big to process.
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client needed an extension the server did not negotiate.
    pub const EXTENSION_REQUIRED: CloseCode = CloseCode(1010);
    /// 1011: the server hit an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting.
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later.
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1014: a gateway got a bad response upstream.
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);
    /// 1015: the TLS handshake failed (never sent on the wire).
    pub const TLS_HANDSHAKE: CloseCode = CloseCode(1015);

    /// Whether this code may appear in a close frame: 1000-1003, 1007-1014 and 3000-4999.
    pub fn is_valid_on_wire(self) -> bool {
        // RFC 6455 7.4.1/7.4.2: 1004 is reserved, 1005, 1006 and 1015 MUST NOT be set by an
        // endpoint, 1016-2999 are reserved for future RFCs, 5000+ is not defined.
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// Whether a peer closing with this code ended the connection as intended: 1000 (normal),
    /// 1001 (going away) or a close frame without a code (1005). A receive ends with `Ok(None)`
    /// for these and with [`Error::PeerClosed`](crate::Error::PeerClosed) for any other code.
    pub fn is_normal(self) -> bool {
        matches!(
            self,
            CloseCode::NORMAL | CloseCode::GOING_AWAY | CloseCode::NO_STATUS
        )
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

/// The code and reason of a close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code; [`CloseCode::NO_STATUS`] when the frame carried none.
    pub code: CloseCode,
    /// The reason, possibly empty.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_validity_of_close_codes() {
        let valid = |c: u16| CloseCode(c).is_valid_on_wire();
        for c in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
        ] {
            assert!(valid(c), "{c}");
        }
        for c in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
        ] {
            assert!(!valid(c), "{c}");
        }
        assert!(valid(3000) && valid(4999));
    }

    #[test]
    fn a_message_is_empty_when_its_payload_is() {
        for (msg, len) in [
            (Message::from(""), 0),
            (Message::Binary(Vec::new()), 0),
            (Message::from("héllo"), 6),
            (Message::Binary(vec![0]), 1),
        ] {
            assert_eq!((msg.len(), msg.is_empty()), (len, len == 0), "{msg:?}");
        }
    }

    #[test]
    fn to_message_kinds() {
        assert_eq!("a".to_message(), MessageRef::Text("a"));
        assert_eq!(String::from("a").to_message(), MessageRef::Text("a"));
        assert_eq!(b"a".to_message(), MessageRef::Binary(b"a"));
        assert_eq!(vec![1u8].to_message(), MessageRef::Binary(&[1]));
        assert_eq!(
            Message::Text("x".into()).to_message(),
            MessageRef::Text("x")
        );
    }
}
