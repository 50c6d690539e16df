//! The `echo_server` and `client` examples as a user runs them: wss with the test CA, headers,
//! subprotocols, `--insecure`, and clear failures. `cargo test` builds the examples first.
#![cfg(feature = "tls")]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::thread;

use support::*;
use syncws::{Accept, Server};

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the client example with `args`, feeding `input`; returns (exit ok, stdout, stderr).
fn run_client(args: &[&str], input: &str) -> (bool, String, String) {
    let mut child = example_command("client")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn wss_echo_server_and_client_from_the_command_line() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Killed(
        example_command("echo_server")
            .args([
                &format!("127.0.0.1:{port}"),
                "--tls-cert",
                &fixture("server.pem"),
                "--tls-key",
                &fixture("server.key"),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Wait for its banner, so the port is open.
    let mut banner = String::new();
    BufReader::new(server.0.stdout.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    assert_eq!(
        banner.trim(),
        format!("echo server on wss://127.0.0.1:{port}")
    );
    let url = format!("wss://localhost:{port}/");
    let (ok, out, err) = run_client(&[&url, "--ca", &fixture("ca.pem")], "one\ntwo\nthree\n");
    assert!(ok, "{err}");
    assert_eq!(out, "one\ntwo\nthree\n");
    // Untrusted without the CA: a clear error and exit status 1.
    let (ok, out, err) = run_client(&[&url], "x\n");
    assert!(!ok && out.is_empty());
    assert!(err.contains("certificate not trusted"), "{err}");
    let (ok, out, err) = run_client(&[&url, "--insecure"], "insecure\n");
    assert!(ok, "{err}");
    assert_eq!(out, "insecure\n");
}

/// `echo_server unix:PATH` and `client ws+unix://PATH:/`; a killed server's socket file is
/// stale, and the next one replaces it.
#[cfg(unix)]
#[test]
fn unix_socket_echo_server_and_client_from_the_command_line() {
    let dir = std::env::temp_dir().join(format!("syncws-cli-unix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let socket = dir.join("echo.sock");
    for run in ["first", "after a kill"] {
        let mut server = Killed(
            example_command("echo_server")
                .arg(format!("unix:{}", socket.display()))
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mut banner = String::new();
        BufReader::new(server.0.stdout.take().unwrap())
            .read_line(&mut banner)
            .unwrap();
        let url = format!("ws+unix://{}:/", socket.display());
        assert_eq!(banner.trim(), format!("echo server on {url}"), "{run}");
        let (ok, out, err) = run_client(&[&url], "one\ntwo\n");
        assert!(ok, "{run}: {err}");
        assert_eq!(out, "one\ntwo\n", "{run}");
        // SIGKILL: the socket file stays behind.
        drop(server);
        assert!(socket.exists(), "{run}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn client_sends_headers_and_protocols() {
    let (tx, rx) = mpsc::channel();
    let server = Server::bind("127.0.0.1:0")
        .unwrap()
        .protocols(["v1", "chat"])
        .gatekeeper(move |req| {
            let _ = tx.send((
                req.header("authorization").map(str::to_owned),
                req.header("x-trace").map(str::to_owned),
                req.protocols().join(","),
            ));
            Ok(Accept::new())
        });
    let addr = server.local_addr();
    thread::spawn(move || server.serve(echo));
    let (ok, out, err) = run_client(
        &[
            &ws_url(addr, "/"),
            "-H",
            "Authorization: Bearer abc",
            "-H",
            "X-Trace:42",
            "--protocol",
            "chat",
            "--protocol",
            "v1",
        ],
        "hello\n",
    );
    assert!(ok, "{err}");
    assert_eq!(out, "hello\n");
    assert!(err.contains("subprotocol: v1"), "{err}");
    let (auth, trace, protocols) = rx.recv_timeout(TIMEOUT).unwrap();
    assert_eq!(auth.as_deref(), Some("Bearer abc"));
    assert_eq!(trace.as_deref(), Some("42"));
    assert_eq!(protocols, "chat,v1");
    let (ok, _, err) = run_client(&["-H", "no colon"], "");
    assert!(!ok && err.contains("-H wants 'Name: value'"), "{err}");
}
