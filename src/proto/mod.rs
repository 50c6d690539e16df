//! The protocol core: RFC 6455 as pure functions over byte slices. Nothing in here touches a
//! socket, a thread or a clock, so every rule can be tested by feeding bytes.
//!
//! | file | job |
//! |---|---|
//! | `frame.rs`, `mask.rs`, `utf8.rs`, `close.rs` | frame headers, masking, incremental UTF-8, close payloads |
//! | `rules.rs` | the receive rules a frame header must pass given the message in progress (RFC 6455 5) |
//! | `head.rs` | HTTP request and response heads, parsed complete-or-partial |
//! | `http.rs` | HTTP rules: which fields may be written, body framing, `Expect`, plain responses |
//! | `handshake.rs` | RFC 6455 section 4: the upgrade's checks, accept key, `101` and client request |
//! | `extensions.rs` | the `Sec-WebSocket-Extensions` grammar (RFC 6455 9.1) |
//! | `socks.rs` | the client's SOCKS5 messages and reply parsers (RFC 1928, RFC 1929) |
//! | `deflate/` | permessage-deflate (RFC 7692): `negotiation.rs` and `codec.rs` |

pub mod close;
#[cfg(feature = "deflate")]
pub mod deflate;
pub mod extensions;
pub mod frame;
pub mod handshake;
pub mod head;
pub mod http;
pub mod mask;
pub mod rules;
pub mod socks;
pub mod utf8;
