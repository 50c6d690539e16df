//! The client's SOCKS5 parsers (`proto::socks`) on arbitrary bytes: a proxy's method choice,
//! username/password answer and CONNECT reply. Each either asks for more (a total past what it
//! has and within `MAX_REPLY`), fails, or is complete within the input; a complete reply parses
//! the same from exactly its bytes, and every shorter prefix asks for more.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syncws::proto::socks::{MAX_REPLY, Status, parse_auth_reply, parse_choice, parse_reply};

fuzz_target!(|data: &[u8]| {
    for with_credentials in [false, true] {
        if let Ok(Status::Partial(need)) = parse_choice(data, with_credentials) {
            assert!(need > data.len() && need == 2);
        }
    }
    if let Ok(Status::Partial(need)) = parse_auth_reply(data) {
        assert!(need > data.len() && need == 2);
    }
    match parse_reply(data) {
        Ok(Status::Partial(need)) => {
            assert!(
                need > data.len() && need <= MAX_REPLY,
                "need {need} of {}",
                data.len()
            )
        }
        Ok(Status::Complete(n)) => {
            assert!(n <= data.len() && n <= MAX_REPLY, "{n} of {}", data.len());
            assert_eq!(parse_reply(&data[..n]), Ok(Status::Complete(n)));
            for cut in 0..n {
                match parse_reply(&data[..cut]) {
                    Ok(Status::Partial(need)) => assert!(need > cut && need <= n),
                    other => panic!("prefix {cut} of {n}: {other:?}"),
                }
            }
        }
        Err(_) => {}
    }
});
