//! WebSockets (RFC 6455) for programs that want no async runtime: blocking I/O, one thread per
//! connection, strict conformance, bounded resources.
//!
//! # Quick start
//!
//! A server that echoes every message, one thread per client:
//!
//! ```no_run
//! syncws::Server::bind("127.0.0.1:9001")?.serve(|ws| {
//!     while let Some(msg) = ws.recv()? {
//!         ws.send(msg)?;
//!     }
//!     Ok(())
//! })?;
//! # Ok::<(), syncws::Error>(())
//! ```
//!
//! A client, e.g. in a command-line tool:
//!
//! ```no_run
//! let mut ws = syncws::Client::connect("ws://127.0.0.1:9001/chat")?;
//! ws.send("hello")?;
//! if let Some(reply) = ws.recv()? {
//!     println!("{}", reply.as_text().unwrap_or("<binary>"));
//! }
//! ws.close(syncws::CloseCode::NORMAL, "bye")?;
//! # Ok::<(), syncws::Error>(())
//! ```
//!
//! # What you get
//!
//! - [`WebSocket::send`] takes `&str`/`String` (text) and `&[u8]`/`Vec<u8>` (binary) without
//!   copying; [`WebSocket::send_fragmented`] sends one message in pieces.
//! - [`WebSocket::recv`] returns whole messages and `Ok(None)` once the connection ended
//!   normally; pings are answered for you. A `WebSocket` is also an iterator over messages.
//! - [`WebSocket::recv_stream`] returns a message of any size as a [`MessageReader`] (an
//!   `io::Read`) that yields its payload as the frames arrive, in bounded memory;
//!   [`WebSocket::send_stream`] sends one as a [`MessageWriter`] (an `io::Write`, 64 KiB
//!   fragments), and [`WebSocket::send_from`] sends all of an `io::Read` as one message.
//! - Every RFC 6455 rule is checked on receive; a violation closes with the RFC's code (1002,
//!   1007, 1009) and comes back as [`Error::Protocol`]. Text is validated as it arrives.
//! - Limits and timeouts live in [`Config`], with defaults documented there.
//! - [`ClientBuilder::reconnecting`] for clients of real networks: reconnects with backoff and
//!   jitter after drops, 1001 and 1011-1014 (not after 1000 or a refusal such as 1008 or 401),
//!   with a hook after each connect and a stop handle.
//! - Unix domain sockets both ways: [`Server::bind_unix`] (stale socket files replaced),
//!   [`Server::from_listener`] for a listener of your own, and `ws+unix:///run/app.sock:/path`
//!   URLs or [`ClientBuilder::unix_socket`] for clients.
//! - `wss://` for servers and clients through native-tls (cargo feature `tls`, on by default;
//!   OpenSSL on Linux) or rustls (feature `rustls`, no system library: build with
//!   `--no-default-features --features rustls`), with the same API and error kinds on both.
//! - permessage-deflate compression (RFC 7692) with the cargo feature `deflate`: one setting,
//!   `Config::deflate`, makes a client offer it and a server accept it; limits apply to the
//!   inflated bytes, so a decompression bomb is refused before memory grows.
//! - Rooms of a [`Hub`] across processes and machines through Redis pub/sub with the cargo
//!   feature `redis`: `RedisBackend`, on the `redis` crate's blocking client, at most once and
//!   in order per publisher per room, reconnecting by itself.
//!
//! # Errors
//!
//! One enum, [`Error`]. A normal end is not an error: `recv` returns `Ok(None)` when the peer
//! closes with 1000, 1001 or no code, when a close this side started completes, and when a
//! server's shutdown ends the connection. A peer that closes with any other code (1008, 1009,
//! 1011, 4xxx) ends it with [`Error::PeerClosed`], which carries its close frame, so a refusal
//! does not look like a goodbye; a peer that vanishes without a close frame is an
//! [`Error::Io`] of kind `UnexpectedEof`. Violations close with the RFC's code and a reason
//! that says what was wrong (`message of 2097152 bytes over the 1048576 limit`).
//!
//! # Logging
//!
//! Through the [`log`](https://docs.rs/log) crate: connection ids, peers and why each connection
//! ended at `debug`; only our own failures at `error`.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs, missing_debug_implementations)]

mod broadcast;
mod client;
mod config;
mod error;
mod hub;
mod io;
mod message;
/// The sans-IO protocol core (frames, masking, UTF-8, handshake and HTTP rules, compression).
///
/// **Not part of the API and outside semver**: public only so the fuzz targets and benchmarks
/// can drive the pure functions directly. Hidden from the docs rather than renamed to an
/// `unstable` module because no user needs it: everything a user names is re-exported at the
/// crate root.
#[doc(hidden)]
pub mod proto;
mod server;
#[cfg(any(feature = "tls", feature = "rustls"))]
mod tls;
mod websocket;

pub use broadcast::Broadcast;
pub use client::{Backoff, Client, ClientBuilder, Ending, Reconnecting, StopHandle, Url};
pub use config::Config;
#[cfg(feature = "deflate")]
pub use config::DeflateConfig;
pub use error::{
    BackendError, BackendErrorKind, Error, HandshakeError, HttpResponse, InputError, ProtocolError,
    Result, SchemeError, TlsError, TlsErrorKind, UrlError,
};
pub use hub::{
    Backend, DEFAULT_BACKLOG, Delivery, Forwarded, Hub, HubBuilder, Inbound, NotForwarded,
    Overflow, Overflowed, RETRY_BOUND,
};
#[cfg(feature = "redis")]
pub use hub::{RedisBackend, RedisBuilder, RedisStats, RedisStatus};
pub use io::{Aborter, Split, Stream, Transport};
pub use message::{CloseCode, CloseFrame, Message, MessageKind, MessageRef, ToMessage};
#[cfg(feature = "deflate")]
pub use proto::deflate::DeflateParams;
pub use proto::head::Request;
pub use server::{
    Accept, BoxError, ConnectionError, HandlerResult, Listener, Response, Server, ServerHandle,
    accept, accept_with,
};
#[cfg(any(feature = "tls", feature = "rustls"))]
pub use tls::{ClientTls, ClientTlsBuilder, ServerTls};
pub use websocket::{MemoryBudget, MessageReader, MessageWriter, Reader, State, WebSocket, Writer};
// Defined with the receive rules in `proto`; documented here, where users name it.
#[doc(inline)]
pub use websocket::Role;

/// The README's examples, compiled as doc tests so they cannot rot. They use every feature, so
/// they run with `--all-features` (as CI does).
#[cfg(all(doctest, feature = "tls", feature = "deflate"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
