//! Writes the seed corpora into `fuzz/corpus/<target>/`: real frames, handshakes and UTF-8
//! samples, with descriptive file names. Run it again after changing a target's input format:
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example seed_corpus
//! ```
//!
//! It adds and overwrites its own files and leaves the others (inputs the fuzzer found and
//! someone chose to keep) alone.

use std::fs;
use std::path::{Path, PathBuf};

use syncws::proto::deflate::Compressor;
use syncws::proto::handshake::{accept_key, client_request, response_101};
use syncws::proto::http::{Persist, response};
use syncws_fuzz::{MASK, encode_input, frame, raw_frame};

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONT: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// The sample key of RFC 6455 1.3.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut total = 0;
    // frame_stream reads the frame_server format (bit 5 drops every other stream early).
    for (role, masked) in [
        ("frame_server", true),
        ("frame_client", false),
        ("frame_stream", true),
    ] {
        for (name, wire) in frame_samples(masked) {
            // The same bytes read whole, byte by byte, in odd chunks with failing reads, small
            // limits and the smallest read buffer, and with only the smallest read buffer (so
            // payloads over 256 bytes are read straight into the message).
            let variants = [
                ("whole", encode_input(0x00, &[], &wire)),
                ("bytewise", encode_input(0x20, &[1], &wire)),
                ("chunks_small", encode_input(0x18, &[7, 0, 250, 2], &wire)),
                ("smallbuf", encode_input(0x10, &[100, 0, 37], &wire)),
            ];
            for (how, input) in variants {
                total += write(&root, role, &format!("{name}.{how}"), &input);
            }
        }
    }
    for (name, raw) in request_samples() {
        total += write(&root, "handshake_request", name, &raw);
    }
    for (name, raw) in response_samples() {
        total += write(&root, "handshake_response", name, &raw);
    }
    for (name, text) in utf8_samples() {
        // whole; in pieces of 1, 2 and 3 bytes; byte by byte after a 5-byte piece
        for (how, lengths) in [
            ("whole", &[][..]),
            ("pieces123", &[1, 2, 3]),
            ("5then1", &[5, 1]),
        ] {
            let mut input = vec![lengths.len() as u8];
            input.extend_from_slice(lengths);
            input.extend_from_slice(&text);
            total += write(&root, "utf8", &format!("{name}.{how}"), &input);
        }
    }
    for (name, input) in inflate_samples() {
        total += write(&root, "inflate", name, &input);
    }
    for (name, wire) in deflate_frame_samples() {
        // frame_stream with compression agreed (bit 6), whole and in odd chunks dropping streams
        let variants = [
            ("whole", encode_input(0x40, &[], &wire)),
            (
                "chunks_dropping",
                encode_input(0x60, &[3, 0, 1, 200], &wire),
            ),
        ];
        for (how, input) in variants {
            total += write(
                &root,
                "frame_stream",
                &format!("deflate_{name}.{how}"),
                &input,
            );
        }
    }
    for (name, wire) in deflate_frame_samples() {
        // with context takeover, without, and with a 9-bit window; whole and in odd chunks
        let variants = [
            ("whole", encode_input(0x00, &[], &wire)),
            ("chunks", encode_input(0x20, &[3, 0, 1, 200], &wire)),
            ("no_takeover", encode_input(0x40, &[], &wire)),
            (
                "small_window_small_limits",
                encode_input(0x98, &[5, 0], &wire),
            ),
        ];
        for (how, input) in variants {
            total += write(&root, "frame_deflate", &format!("{name}.{how}"), &input);
        }
    }
    for (name, raw) in socks_samples() {
        total += write(&root, "socks_reply", name, &raw);
    }
    println!("seed corpora written to {}: {total} bytes", root.display());
}

/// Text that compresses well, as a chat or JSON API would send.
fn json_text(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < n {
        out.extend_from_slice(
            format!("{{\"id\":{i},\"user\":\"é{}\",\"ok\":true}},", i % 7).as_bytes(),
        );
        i += 1;
    }
    out.truncate(n);
    out
}

/// One message compressed with syncws's compressor in the given pieces (the frames' payloads).
fn compressed(bits: u8, no_takeover: bool, pieces: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut c = Compressor::new(bits, 6, no_takeover);
    pieces
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut out = Vec::new();
            c.compress(p, i + 1 == pieces.len(), &mut out).unwrap();
            out
        })
        .collect()
}

/// `inflate` inputs: compressed payloads (valid, a bomb, truncated, garbage) and plain text
/// for the round trip, with various windows, levels, limits and piece lengths.
fn inflate_samples() -> Vec<(&'static str, Vec<u8>)> {
    let input = |flags: u8, bits: u8, level: u8, pieces: &[u8], payload: &[u8]| {
        let mut v = vec![
            (flags & !0x07) | pieces.len() as u8,
            (bits - 8) | (level << 3),
        ];
        v.extend_from_slice(pieces);
        v.extend_from_slice(payload);
        v
    };
    let text = json_text(2000);
    let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let whole = compressed(15, false, &[&text]).concat();
    let small = compressed(9, false, &[&text]).concat();
    let bomb = compressed(15, false, &[&vec![0u8; 200_000]]).concat();
    vec![
        ("rfc7692_hello", input(0, 15, 6, &[], &hello)),
        ("rfc7692_hello_bytewise", input(0, 15, 6, &[1], &hello)),
        ("json_whole", input(0, 15, 6, &[], &whole)),
        ("json_pieces", input(0x10, 15, 1, &[17, 0, 250], &whole)),
        ("json_9bit_window", input(0, 9, 9, &[100], &small)),
        (
            "json_truncated",
            input(0, 15, 6, &[], &whole[..whole.len() / 2]),
        ),
        ("bomb_small_limit", input(0x08, 15, 6, &[64], &bomb)),
        ("bomb_1mib_limit", input(0, 15, 6, &[], &bomb)),
        ("garbage", input(0, 12, 3, &[2], b"\xff\xfe\x00\x01zlib?")),
        (
            "plain_text_roundtrip",
            input(0x10, 8, 0, &[5, 1, 0], b"hello hello hello"),
        ),
        ("empty", input(0, 15, 6, &[], b"")),
    ]
}

/// What a client that agreed to permessage-deflate sends after its upgrade request.
fn deflate_frame_samples() -> Vec<(&'static str, Vec<u8>)> {
    let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let text = json_text(600);
    let parts = compressed(15, false, &[&text[..200], &text[200..]]);
    let second = {
        let mut c = Compressor::new(15, 6, false);
        let mut a = Vec::new();
        c.compress(&text, true, &mut a).unwrap();
        let mut b = Vec::new();
        c.compress(&text, true, &mut b).unwrap();
        [a, b]
    };
    let bomb = compressed(15, false, &[&vec![b'a'; 100_000]]).concat();
    let close = frame(CLOSE, true, &close_payload(1000, b""), true);
    vec![
        (
            "rfc7692_hello_then_close",
            [raw_frame(0xC1, &hello, true), close.clone()].concat(),
        ),
        (
            "fragmented_compressed_with_ping",
            [
                raw_frame(0x41, &parts[0], true),
                frame(PING, true, b"ping", true),
                frame(CONT, true, &parts[1], true),
                close.clone(),
            ]
            .concat(),
        ),
        (
            "context_takeover_two_messages",
            [
                raw_frame(0xC1, &second[0], true),
                raw_frame(0xC1, &second[1], true),
                frame(TEXT, true, b"plain", true),
                close.clone(),
            ]
            .concat(),
        ),
        (
            "bomb",
            [raw_frame(0xC2, &bomb, true), close.clone()].concat(),
        ),
        (
            "rsv1_on_continuation",
            [
                raw_frame(0x41, &hello[..3], true),
                raw_frame(0xC0, &hello[3..], true),
            ]
            .concat(),
        ),
        ("rsv1_on_ping", raw_frame(0xC9, b"x", true)),
        ("corrupt", raw_frame(0xC1, &[0xff, 0xff, 0xff], true)),
        (
            "invalid_utf8_inside",
            raw_frame(
                0xC1,
                &compressed(15, false, &[b"a\xc0\xafb"]).concat(),
                true,
            ),
        ),
        (
            "pong_and_binary",
            [
                frame(PONG, true, b"", true),
                raw_frame(
                    0xC2,
                    &compressed(15, false, &[&[0u8, 1, 2, 3]]).concat(),
                    true,
                ),
                close,
            ]
            .concat(),
        ),
    ]
}

/// SOCKS5 replies (RFC 1928 6): each address type, the longest name, a refusal, truncations.
fn socks_samples() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("choice_no_auth", vec![5, 0]),
        ("choice_password", vec![5, 2]),
        ("auth_ok", vec![1, 0]),
        ("reply_ipv4", vec![5, 0, 0, 1, 127, 0, 0, 1, 0x1F, 0x90]),
        (
            "reply_ipv6",
            [&[5, 0, 0, 4][..], &[0; 15], &[1, 0, 80]].concat(),
        ),
        (
            "reply_name",
            [&[5, 0, 0, 3, 9][..], b"localhost", &[0, 80]].concat(),
        ),
        (
            "reply_longest_name",
            [&[5, 0, 0, 3, 255][..], &[b'a'; 255], &[0, 80]].concat(),
        ),
        ("reply_refused", vec![5, 5, 0, 1, 0, 0, 0, 0, 0, 0]),
        ("reply_cut", vec![5, 0, 0, 3, 200, b'a']),
    ]
}

fn write(root: &Path, target: &str, name: &str, bytes: &[u8]) -> usize {
    let dir: PathBuf = root.join(target);
    fs::create_dir_all(&dir).expect("create corpus directory");
    fs::write(dir.join(name), bytes).expect("write seed");
    bytes.len()
}

fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// Peer traffic after the handshake; `masked` for what a client sends to a server.
fn frame_samples(m: bool) -> Vec<(&'static str, Vec<u8>)> {
    let f = |op, fin, p: &[u8]| frame(op, fin, p, m);
    let close = |code, reason: &[u8]| f(CLOSE, true, &close_payload(code, reason));
    let normal_close = close(1000, b"bye");
    let cat = |parts: &[Vec<u8>]| parts.concat();
    let pattern = |n: usize| (0..n).map(|i| (i % 251) as u8).collect::<Vec<u8>>();
    let many_small: Vec<Vec<u8>> = (0..20)
        .map(|i| f(TEXT, true, format!("message {i}").as_bytes()))
        .collect();
    // A header announcing 65,536 bytes (the 64-bit length form), with only 100 of them sent.
    let mut len127_truncated = raw_frame(0x82, &pattern(65_536), m);
    len127_truncated.truncate(if m { 14 } else { 10 } + 100);
    vec![
        (
            "text_hello_then_close",
            cat(&[f(TEXT, true, b"Hello"), normal_close.clone()]),
        ),
        (
            "binary_empty_then_empty_close",
            cat(&[f(BINARY, true, b""), f(CLOSE, true, b"")]),
        ),
        (
            "fragmented_text_with_ping_between",
            cat(&[
                f(TEXT, false, b"Hel"),
                f(PING, true, b"hi"),
                f(CONT, true, b"lo"),
                close(1001, b"going away"),
            ]),
        ),
        (
            "fragmented_binary_five_parts",
            cat(&[
                f(BINARY, false, &pattern(40)),
                f(CONT, false, &pattern(40)),
                f(CONT, false, b""),
                f(CONT, false, &pattern(40)),
                f(CONT, true, &pattern(40)),
                normal_close.clone(),
            ]),
        ),
        (
            "binary_len125",
            cat(&[f(BINARY, true, &pattern(125)), normal_close.clone()]),
        ),
        (
            "binary_len126_16bit",
            cat(&[f(BINARY, true, &pattern(126)), normal_close.clone()]),
        ),
        (
            "binary_len1000_16bit",
            cat(&[f(BINARY, true, &pattern(1000)), normal_close.clone()]),
        ),
        (
            "text_len300_16bit",
            cat(&[f(TEXT, true, &[b'x'; 300]), normal_close.clone()]),
        ),
        ("binary_len65536_64bit_truncated", len127_truncated),
        (
            "ping125_pong_unsolicited",
            cat(&[
                f(PING, true, &pattern(125)),
                f(PONG, true, b"pong"),
                normal_close.clone(),
            ]),
        ),
        (
            "many_small_text",
            cat(&[many_small.concat(), normal_close.clone()]),
        ),
        (
            "utf8_text_multibyte",
            cat(&[
                f(TEXT, true, "κόσμε a€b𝄞c".as_bytes()),
                normal_close.clone(),
            ]),
        ),
        (
            "utf8_euro_split_across_fragments",
            cat(&[
                f(TEXT, false, &"€".as_bytes()[..1]),
                f(CONT, false, &"€".as_bytes()[1..2]),
                f(CONT, true, &"€".as_bytes()[2..]),
                normal_close.clone(),
            ]),
        ),
        ("close_1000_reason", close(1000, b"done")),
        ("close_3000", close(3000, b"")),
        ("close_4999_utf8_reason", close(4999, "fin ✓".as_bytes())),
        ("close_empty", f(CLOSE, true, b"")),
        ("eof_without_close", f(TEXT, true, b"no close follows")),
        // Violations, each after a good message: the connection must fail with the RFC's code.
        (
            "bad_utf8_overlong",
            cat(&[f(TEXT, true, b"ok"), f(TEXT, true, &[b'a', 0xC0, 0xAF])]),
        ),
        ("bad_utf8_surrogate", f(TEXT, true, &[0xED, 0xA0, 0x80])),
        (
            "bad_utf8_truncated_at_end",
            f(TEXT, true, &[b'a', 0xF0, 0x9F, 0x98]),
        ),
        ("bad_utf8_close_reason", close(1000, &[0xFF])),
        ("bad_close_code_1005", close(1005, b"")),
        ("bad_close_code_999", close(999, b"")),
        ("bad_close_one_byte", f(CLOSE, true, &[0x03])),
        ("bad_reserved_opcode_3", raw_frame(0x83, b"", m)),
        ("bad_reserved_opcode_11", raw_frame(0x8B, b"", m)),
        ("bad_rsv1_set", raw_frame(0xC1, b"rsv", m)),
        ("bad_continuation_first", f(CONT, true, b"orphan")),
        (
            "bad_new_message_inside_fragmented",
            cat(&[f(TEXT, false, b"a"), f(BINARY, true, b"b")]),
        ),
        ("bad_fragmented_ping", f(PING, false, b"")),
        ("bad_ping_126", f(PING, true, &pattern(126))),
        // 16-bit length form for 100 bytes: not minimal.
        ("bad_length_not_minimal", {
            let mut fr = vec![0x82, if m { 0x80 } else { 0 } | 126, 0, 100];
            if m {
                fr.extend_from_slice(&MASK);
            }
            fr.extend_from_slice(&[0; 100]);
            fr
        }),
        // 64-bit length with the top bit set.
        ("bad_length_top_bit", {
            let mut fr = vec![
                0x82,
                if m { 0x80 } else { 0 } | 127,
                0x80,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
            ];
            if m {
                fr.extend_from_slice(&MASK);
            }
            fr
        }),
        // The other role's masking: unmasked to a server, masked to a client.
        ("bad_wrong_masking", frame(TEXT, true, b"Hello", !m)),
    ]
}

fn request_samples() -> Vec<(&'static str, Vec<u8>)> {
    let rfc = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";
    let swap = |from: &str, to: &str| rfc.replace(from, to).into_bytes();
    let extra = |name: &str, value: &str| (name.to_owned(), value.to_owned());
    let mut with_frame = rfc.as_bytes().to_vec();
    with_frame.extend_from_slice(&frame(TEXT, true, b"Hello", true));
    let many: String = (0..10).map(|i| format!("X-Header-{i}: {i}\r\n")).collect();
    vec![
        ("rfc6455_example", rfc.as_bytes().to_vec()),
        (
            "deflate_offers",
            swap(
                "Sec-WebSocket-Version: 13\r\n",
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: x-webkit-deflate-frame, \
                 permessage-deflate; client_max_window_bits; server_max_window_bits=10, \
                 permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n",
            ),
        ),
        (
            "client_request_with_headers",
            client_request(
                "localhost:9001",
                "/chat?room=1",
                KEY,
                &[extra("Sec-WebSocket-Protocol", "chat.v2, chat.v1")],
                &[
                    extra("Origin", "https://app.example"),
                    extra("Cookie", "session=abc"),
                ],
            )
            .expect("valid fields"),
        ),
        (
            "query_percent_escapes",
            swap("/chat", "/c?token=a%20b&x=1+2&bad=%zz&%&empty&=v"),
        ),
        ("lowercase_and_token_lists", {
            rfc.to_ascii_lowercase()
                .replace(
                    "sec-websocket-key: dghlihnhbxbszsbub25jzq==",
                    "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
                )
                .replace("connection: upgrade", "connection: keep-alive, Upgrade")
                .into_bytes()
        }),
        (
            "bare_lf_line_endings",
            rfc.replace("\r\n", "\n").into_bytes(),
        ),
        ("followed_by_a_frame", with_frame),
        ("http10", swap("HTTP/1.1", "HTTP/1.0")),
        ("post", swap("GET", "POST")),
        ("version_8", swap("Version: 13", "Version: 8")),
        (
            "short_key",
            swap("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZQ=="),
        ),
        (
            "no_upgrade_plain_get",
            b"GET /index.html HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n".to_vec(),
        ),
        ("many_headers", swap("\r\n\r\n", &format!("\r\n{many}\r\n"))),
        (
            "obs_fold_and_spaces",
            swap("Upgrade: websocket", "Upgrade:   websocket  \r\n\tfolded"),
        ),
        (
            "tls_client_hello",
            vec![
                0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03,
            ],
        ),
        ("truncated", rfc.as_bytes()[..rfc.len() - 3].to_vec()),
    ]
}

fn response_samples() -> Vec<(&'static str, Vec<u8>)> {
    let accept = accept_key(KEY.as_bytes());
    let good = response_101(&accept, None, None, &[]).expect("valid");
    let good_str = String::from_utf8(good.clone()).expect("ascii");
    let with = |header: &str| {
        good_str
            .replace("\r\n\r\n", &format!("\r\n{header}\r\n\r\n"))
            .into_bytes()
    };
    let mut with_frame = good.clone();
    with_frame.extend_from_slice(&frame(TEXT, true, b"Hello", false));
    vec![
        ("rfc6455_101", good.clone()),
        ("protocol_chat", with("Sec-WebSocket-Protocol: chat")),
        (
            "protocol_not_offered",
            with("Sec-WebSocket-Protocol: other"),
        ),
        (
            "protocol_list",
            with("Sec-WebSocket-Protocol: chat, superchat"),
        ),
        (
            "extension_unasked",
            with("Sec-WebSocket-Extensions: permessage-deflate"),
        ),
        (
            "deflate_answer_params",
            with(
                "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
                 client_max_window_bits=10; server_max_window_bits=12",
            ),
        ),
        (
            "deflate_answer_twice",
            with("Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate"),
        ),
        (
            "wrong_accept",
            good_str
                .replace(&accept, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
                .into_bytes(),
        ),
        (
            "connection_close",
            good_str
                .replace("Connection: Upgrade", "Connection: close")
                .into_bytes(),
        ),
        ("followed_by_a_frame", with_frame),
        (
            "http10_101",
            good_str.replace("HTTP/1.1", "HTTP/1.0").into_bytes(),
        ),
        (
            "proxy_connect_200_http10",
            b"HTTP/1.0 200 Connection established\r\nProxy-agent: tinyproxy\r\n\r\n".to_vec(),
        ),
        (
            "redirect_302",
            b"HTTP/1.1 302 Found\r\nLocation: /elsewhere?x=1\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ),
        (
            "bad_request_400_with_body",
            response(400, &[], b"no websocket here\n", Persist::Close).expect("valid"),
        ),
        ("bare_lf", good_str.replace("\r\n", "\n").into_bytes()),
        ("truncated", good[..good.len() - 2].to_vec()),
    ]
}

fn utf8_samples() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("ascii", b"Hello, world!".to_vec()),
        ("greek_kosme", "κόσμε".as_bytes().to_vec()),
        ("mixed_widths", "a€b𝄞c✓é".as_bytes().to_vec()),
        (
            "boundaries",
            "\u{7F}\u{80}\u{7FF}\u{800}\u{FFFF}\u{10000}\u{10FFFF}"
                .as_bytes()
                .to_vec(),
        ),
        ("bad_overlong_slash", vec![b'a', 0xC0, 0xAF, b'b']),
        ("bad_overlong_3byte", vec![0xE0, 0x80, 0xAF]),
        ("bad_surrogate", vec![b'o', b'k', 0xED, 0xA0, 0x80, b'x']),
        ("bad_above_10ffff", vec![0xF4, 0x90, 0x80, 0x80]),
        ("bad_lone_continuation", vec![b'a', 0x80, b'b']),
        ("bad_ff", vec![0xFF]),
        ("bad_truncated_4byte_at_end", vec![b'x', 0xF0, 0x9F, 0x98]),
        ("bad_truncated_then_ascii", vec![0xE2, 0x82, b'a']),
    ]
}
