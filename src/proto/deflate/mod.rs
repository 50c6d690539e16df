//! permessage-deflate (RFC 7692): the negotiation of its parameters in the handshake, then the
//! codec that compresses and inflates message payloads under those parameters.

mod codec;
mod negotiation;
mod pool;

pub use codec::*;
pub use negotiation::*;
pub use pool::{POOL_MAX, pooled};
