//! The server's side of the opening handshake: `parse_request` on arbitrary bytes, then the
//! HTTP request rules (framing, duplicates, `Expect`), `check_request`, the request's accessors
//! and the permessage-deflate negotiation on whatever parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syncws::DeflateConfig;
use syncws::proto::deflate::accept_offer;
use syncws::proto::extensions::parse_extensions;
use syncws::proto::handshake::{accept_key, check_request, is_upgrade};
use syncws::proto::head::parse_request;
use syncws::proto::http::{self, Framing};

fuzz_target!(|data: &[u8]| {
    // The default `Config::max_headers`, and a small limit so that TooManyHeaders is reached.
    for max_headers in [64, 4] {
        let Ok(Some((req, n))) = parse_request(data, max_headers) else {
            continue;
        };
        assert!(n > 0 && n <= data.len(), "consumed {n} of {}", data.len());
        // The head ends exactly at n: a server reading it in pieces stops there, and every
        // shorter prefix asks for more rather than failing.
        let again = parse_request(&data[..n], max_headers);
        assert_eq!(again, Ok(Some((req.clone(), n))));
        for cut in [n - 1, n / 2, data.len() % n] {
            assert_eq!(
                parse_request(&data[..cut], max_headers),
                Ok(None),
                "prefix {cut} of {n}"
            );
        }
        // More header slots cannot change a success.
        if max_headers < 64 {
            assert_eq!(parse_request(data, 64), Ok(Some((req.clone(), n))));
        }

        // Accessors slice the target and decode the query: none may panic.
        let (target, path) = (req.target(), req.path());
        assert!(target.starts_with(path));
        if let Some(query) = req.query() {
            assert_eq!(target, format!("{path}?{query}"));
        }
        let _ = req.query_param("token");
        let _ = req.query_param("");
        for p in req.protocols() {
            assert!(!p.is_empty() && p.trim() == p, "{p:?}");
        }
        let _ = (
            req.header("host"),
            req.origin(),
            req.headers().len(),
            req.body().len(),
        );
        assert!(req.http_minor_version() <= 1);

        // The HTTP rules: one meaning or a refusal.
        let count = |name: &str| {
            req.headers()
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .count()
        };
        let framing = http::check_request(&req);
        if let Ok(framing) = framing {
            assert!(count("host") <= 1 && count("origin") <= 1);
            assert!(count("host") == 1 || req.http_minor_version() == 0);
            let length = req.header("content-length");
            match framing {
                Framing::None => assert!(length.is_none() && count("transfer-encoding") == 0),
                Framing::Length(n) => {
                    assert_eq!(count("transfer-encoding"), 0);
                    let first = length.expect("a length was read");
                    let first = first.split(',').next().unwrap_or("").trim();
                    assert_eq!(first.parse::<u64>().ok(), Some(n), "{first:?}");
                }
                Framing::Encoded => assert!(length.is_none()),
            }
        }
        let _ = http::expectation(&req);

        if let Ok(accept) = check_request(&req) {
            assert!(is_upgrade(&req));
            assert!(matches!(framing, Ok(Framing::None | Framing::Length(0))));
            assert_eq!(req.method(), "GET");
            assert_eq!(req.http_minor_version(), 1);
            let key = req.header("sec-websocket-key").expect("a key was checked");
            assert_eq!(accept, accept_key(key.as_bytes()));
            assert_eq!(accept.len(), 28, "base64 of a SHA-1");

            // permessage-deflate: whatever the server agrees to, its answer is one well-formed
            // extension and both windows are in range.
            let offers = req
                .headers()
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-extensions"))
                .map(|(_, v)| v.as_str());
            let config = DeflateConfig::default();
            if let Some((agreed, answer)) = accept_offer(offers, &config) {
                let parsed = parse_extensions([answer.as_str()]).expect("our answer parses");
                assert_eq!(parsed.len(), 1, "{answer}");
                assert!((8..=15).contains(&agreed.window_bits), "{agreed:?}");
                assert!((8..=15).contains(&agreed.peer_window_bits), "{agreed:?}");
            }
        }
    }
});
