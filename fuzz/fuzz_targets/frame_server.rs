//! Frame reading as a server: the input (after a few bytes that choose read sizes and limits, see
//! `syncws_fuzz`) is what a client sends after the handshake. Split and whole input must give the
//! same messages, the same end and the same bytes written back.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    syncws_fuzz::fuzz_frames(syncws::Role::Server, data);
});
