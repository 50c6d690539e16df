//! What a socket is built from: the outcome of an opening handshake, handed over whole, and the
//! neutral signal by which whoever owns a socket asks it to close.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::message::CloseCode;
use crate::proto::head::Request;
use crate::websocket::Role;

/// Everything the opening handshake agreed, for [`WebSocket::open`](super::WebSocket::open):
/// a socket is built from it in one step and never patched afterwards.
pub(crate) struct Opening {
    pub role: Role,
    /// The upgrade request (server side).
    pub request: Option<Request>,
    /// Who the peer is, when it is not the stream's own peer address (a client behind a trusted
    /// proxy); `None` asks the stream.
    pub peer: Option<SocketAddr>,
    /// The subprotocol both ends agreed on.
    pub protocol: Option<String>,
    /// What the server's gatekeeper attached.
    pub data: Option<Box<dyn Any + Send + Sync>>,
    /// permessage-deflate as agreed; its settings come from the socket's config.
    #[cfg(feature = "deflate")]
    pub deflate: Option<crate::DeflateParams>,
    /// How the owner asks this socket to close (a server's shutdown, for one).
    pub close_request: Option<CloseRequest>,
}

impl Opening {
    /// A handshake that agreed on nothing beyond the role.
    pub fn new(role: Role) -> Self {
        Opening {
            role,
            request: None,
            peer: None,
            protocol: None,
            data: None,
            #[cfg(feature = "deflate")]
            deflate: None,
            close_request: None,
        }
    }
}

/// A request from a socket's owner to close it with a code and reason. The owner calls
/// [`request`](Self::request), then shuts the socket's reading side; the receive that wakes
/// up sends that close frame and ends the way a normal close does. The connection layer never
/// knows who asked or why.
#[derive(Debug, Clone, Default)]
pub(crate) struct CloseRequest(Arc<Mutex<Option<(CloseCode, String)>>>);

impl CloseRequest {
    /// Asks for a close with `code` and `reason`; the first request stands.
    pub fn request(&self, code: CloseCode, reason: &str) {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert_with(|| (code, reason.to_owned()));
    }

    /// The close asked for, if any.
    pub fn requested(&self) -> Option<(CloseCode, String)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether a close was asked for.
    pub fn is_requested(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }
}
