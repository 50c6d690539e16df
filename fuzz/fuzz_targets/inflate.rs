//! The permessage-deflate codec on its own (input format: `syncws_fuzz::InflateSetup`): any
//! payload inflates the same whole and in pieces, the same as a one-shot inflate, within its
//! limit; any message survives compression and inflation unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    syncws_fuzz::fuzz_inflate(data);
});
