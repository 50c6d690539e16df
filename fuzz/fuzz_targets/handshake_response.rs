//! The client's side of the opening handshake: `parse_response` on arbitrary bytes, then
//! `check_response` against the key and subprotocols a client sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syncws::DeflateConfig;
use syncws::proto::deflate::check_answer;
use syncws::proto::handshake::{accept_key, check_response};
use syncws::proto::head::{parse_proxy_response, parse_response};

/// The sample key of RFC 6455 1.3; the seeds carry its accept value.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fuzz_target!(|data: &[u8]| {
    let offered = [
        "chat".to_owned(),
        "superchat".to_owned(),
        "v2.json".to_owned(),
    ];
    for max_headers in [64, 4] {
        let Ok(Some((head, n))) = parse_response(data, max_headers) else {
            continue;
        };
        assert!(n > 0 && n <= data.len(), "consumed {n} of {}", data.len());
        assert_eq!(
            parse_response(&data[..n], max_headers),
            Ok(Some((head.clone(), n)))
        );
        for cut in [n - 1, n / 2, data.len() % n] {
            assert_eq!(
                parse_response(&data[..cut], max_headers),
                Ok(None),
                "prefix {cut} of {n}"
            );
        }
        if max_headers < 64 {
            assert_eq!(parse_response(data, 64), Ok(Some((head.clone(), n))));
        }
        // A proxy's answer may be HTTP/1.0; an HTTP/1.1 one parses the same either way.
        assert_eq!(
            parse_proxy_response(data, max_headers),
            Ok(Some((head.clone(), n)))
        );

        let plain = check_response(&head, KEY, &offered, false);
        if let Ok(chosen) = &plain {
            let expected = accept_key(KEY.as_bytes());
            assert_eq!(head.header("sec-websocket-accept"), Some(expected.as_str()));
            if let Some(p) = chosen {
                assert!(offered.contains(p), "chose {p:?}, not offered");
            }
            // No extension offered: an answer naming one fails the handshake.
            assert_eq!(head.header("sec-websocket-extensions"), None);
        }
        // Offering nothing, the server may choose nothing.
        if let Ok(chosen) = check_response(&head, KEY, &[], false) {
            assert_eq!(chosen, None);
        }
        // With compression offered, the extension answer is checked on its own; whatever it
        // agrees to stays within what was offered.
        if check_response(&head, KEY, &offered, true).is_ok() {
            let values = head
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-extensions"))
                .map(|(_, v)| v.as_str());
            let config = DeflateConfig::default().peer_window_bits(12);
            if let Ok(Some(agreed)) = check_answer(values, &config) {
                assert!((8..=15).contains(&agreed.window_bits), "{agreed:?}");
                assert!((8..=12).contains(&agreed.peer_window_bits), "{agreed:?}");
            }
        }
    }
    // A proxy answer on its own: no panic, and it stays within the input.
    if let Ok(Some((_, n))) = parse_proxy_response(data, 16) {
        assert!(n <= data.len());
    }
});
