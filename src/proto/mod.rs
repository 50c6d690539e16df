//! The protocol core: RFC 6455 as pure functions over byte slices. Nothing in here touches a
//! socket, a thread or a clock, so every rule can be tested by feeding bytes.

pub mod close;
#[cfg(feature = "deflate")]
pub mod compress;
#[cfg(feature = "deflate")]
pub mod deflate;
pub mod frame;
pub mod handshake;
pub mod http;
pub mod mask;
pub mod rules;
pub mod utf8;
