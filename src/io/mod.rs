//! The I/O layer: the per-connection read buffer and the byte stream under a connection
//! (`transport`: what a connection needs of a stream; `stream`: the one it runs over;
//! `tls_stream`: that stream's TLS session).
//! It knows `std::io`, never what a message is.

mod buffer;
mod deadline;
mod head;
mod socket;
mod stream;
#[cfg(any(feature = "tls", feature = "rustls"))]
mod tls_stream;
mod transport;

pub(crate) use buffer::ReadBuf;
pub(crate) use deadline::Deadline;
pub(crate) use head::{read_head, read_to_len, write_all_by};
pub(crate) use socket::Socket;
#[cfg(any(feature = "tls", feature = "rustls"))]
pub(crate) use stream::PhaseDeadline;
pub use stream::Stream;
#[cfg(any(feature = "tls", feature = "rustls"))]
pub(crate) use tls_stream::TcpRef;
pub(crate) use transport::drain_until;
pub use transport::{Aborter, Split, Transport};
