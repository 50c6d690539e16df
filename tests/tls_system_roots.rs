//! The system's roots on native-tls: a client trusts them unless told not to. OpenSSL reads
//! the system's roots from `SSL_CERT_FILE` when that is set, so the test runs itself again in a
//! child process whose "system" is the test CA, `tests/fixtures/ca.pem`. rustls (which wins when
//! both backends are on) trusts its bundled Mozilla roots instead and is not tested here.
#![cfg(all(feature = "tls", not(feature = "rustls")))]

mod support;

use std::process::Command;

use support::*;
use syncws::{Client, ClientTls, Error, Message, Server, TlsErrorKind};

/// Set in the child process, which runs the checks.
const CHILD: &str = "SYNCWS_SYSTEM_ROOTS_CHILD";

#[test]
fn the_systems_roots_are_trusted_unless_disabled() {
    if std::env::var_os(CHILD).is_none() {
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "the_systems_roots_are_trusted_unless_disabled",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .env("SSL_CERT_FILE", fixture_path("ca.pem"))
            .env_remove("SSL_CERT_DIR")
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&child.stdout);
        assert!(
            child.status.success(),
            "the checks in the child failed: {out}"
        );
        // Ran, not filtered out.
        assert!(out.contains("1 passed"), "{out}");
        return;
    }
    let server = Server::bind("127.0.0.1:0").unwrap().tls(test_server_tls());
    let addr = server.local_addr();
    std::thread::spawn(move || server.serve(echo));
    let url = format!("wss://localhost:{}/", addr.port());

    // The default roots are the system's: the test CA here.
    let mut ws = Client::builder().no_proxy().connect(&url).unwrap();
    ws.send("trusted").unwrap();
    assert_eq!(
        ws.recv_timeout(TIMEOUT).unwrap(),
        Some(Message::from("trusted"))
    );

    // Without them nothing vouches for the server.
    let none = ClientTls::builder()
        .disable_system_roots(true)
        .build()
        .unwrap();
    match Client::builder().tls(none).no_proxy().connect(&url) {
        Err(Error::Tls(e)) => assert_eq!(e.kind(), TlsErrorKind::UntrustedCertificate, "{e}"),
        other => panic!(
            "expected an untrusted certificate, got {:?}",
            other.map(|_| ())
        ),
    }
}
