//! The I/O layer: the per-connection read buffer and the byte stream under a connection.
//! It knows `std::io`, never what a message is.

mod buffer;
mod deadline;
mod head;
mod socket;
mod stream;

pub(crate) use buffer::ReadBuf;
pub(crate) use deadline::Deadline;
pub(crate) use head::{read_head, read_to_len, write_all_by};
pub(crate) use socket::Socket;
pub(crate) use stream::drain_until;
pub use stream::{Aborter, Split, Stream, Transport};
#[cfg(any(feature = "tls", feature = "rustls"))]
pub(crate) use stream::{PhaseDeadline, TcpRef};
