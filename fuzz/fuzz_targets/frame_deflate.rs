//! Frame reading as a server that agreed to permessage-deflate: the input (format as for
//! `frame_server`, plus offer choices in bits 6 and 7 of the first byte) is what the client sends
//! after its upgrade request. Split and whole input must give the same messages, end and replies.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    syncws_fuzz::fuzz_frames_deflate(data);
});
