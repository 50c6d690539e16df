//! Frame reading as a server with every message received as a stream (`recv_stream`), read in
//! fuzzed pieces and, with bit 5 of the flags, every other stream dropped early (input format
//! as for `frame_server`; bit 6 agrees to permessage-deflate first, as in `frame_deflate`). It
//! must deliver what the whole-message receive does, end the same way and write the same
//! replies.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    syncws_fuzz::fuzz_frames_stream(data);
});
