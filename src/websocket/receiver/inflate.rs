//! The receiver's compressed path (permessage-deflate, RFC 7692): the payload loop puts each
//! piece of a compressed message's bytes into [`Inflate::input`] and calls `inflate_input`, so
//! the message limit, the memory budget and UTF-8 apply to the inflated bytes, piece by piece.

use super::Receiver;
use crate::error::ProtocolError;
use crate::message::MessageKind;
use crate::proto::deflate::{Decompressor, InflateError};

/// The receive side of permessage-deflate.
#[derive(Debug)]
pub(super) struct Inflate {
    pub(super) decompressor: Decompressor,
    /// Unmasked compressed bytes waiting to be inflated (one read's worth at most).
    pub(super) input: Vec<u8>,
    /// How much of `input` a streamed receive inflated so far (it inflates in bounded steps).
    pub(super) at: usize,
}

impl Receiver {
    /// Turns on permessage-deflate for received messages.
    pub fn set_inflate(&mut self, peer_window_bits: u8, peer_no_context_takeover: bool) {
        self.limits.compression = true;
        self.inflate = Some(Box::new(Inflate {
            decompressor: Decompressor::new(peer_window_bits, peer_no_context_takeover),
            input: Vec::new(),
            at: 0,
        }));
    }

    /// Inflates the pending input into the message and validates what came out.
    pub(super) fn inflate_input(&mut self) -> Result<(), ProtocolError> {
        let inflate = self.inflate.as_deref_mut().expect("inflating");
        let start = self.buf.len();
        let account = &mut self.account;
        let result = inflate.decompressor.inflate_with(
            &inflate.input,
            &mut self.buf,
            self.limits.max_message,
            &mut |from, to| account.grow(from, to),
        );
        self.check_inflated(result, start)
    }

    /// Ends the compressed message: inflates what the decompressor still holds.
    pub(super) fn finish_inflate(&mut self) -> Result<(), ProtocolError> {
        let inflate = self.inflate.as_deref_mut().expect("inflating");
        let start = self.buf.len();
        let account = &mut self.account;
        let result = inflate.decompressor.finish_with(
            &mut self.buf,
            self.limits.max_message,
            &mut |from, to| account.grow(from, to),
        );
        self.check_inflated(result, start)
    }

    /// Checks the new text for UTF-8 and maps an inflate result to the RFC's errors.
    ///
    /// What inflated before a failure is checked too, so the first violation in the inflated
    /// stream decides the close code: bad UTF-8 followed by corrupt data or a bomb is 1007
    /// however the frame was cut into reads (a whole frame inflates in one call, a trickled
    /// one in many).
    fn check_inflated(
        &mut self,
        result: Result<(), InflateError>,
        start: usize,
    ) -> Result<(), ProtocolError> {
        let text = self.msg.kind == Some(MessageKind::Text);
        let bad_text = text && self.utf8.feed(&self.buf[start..]).is_err();
        let failed = match result {
            _ if bad_text => ProtocolError::InvalidUtf8,
            Ok(()) => return Ok(()),
            Err(InflateError::TooLarge) => ProtocolError::MessageTooLarge,
            Err(InflateError::Corrupt) => ProtocolError::BadCompressedData,
            Err(InflateError::Refused) => ProtocolError::OverMemoryBudget,
        };
        // The connection is failed; drop what the bad message grew.
        if let Some(inflate) = self.inflate.as_deref_mut() {
            inflate.decompressor.reset();
        }
        self.drop_message();
        Err(failed)
    }
}
