//! Running a test binary again as a child process, for tests that need their own environment
//! variables: the variables are process-wide and read by other test threads, and `set_var` is
//! unsafe in edition 2024.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Every variable the client reads for its proxy; removed from a child's environment before the
/// test sets the ones it wants, so the environment of whoever runs the tests cannot interfere.
pub const PROXY_VARS: [&str; 8] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// A command that runs this test binary's ignored test `env_child` alone, with the proxy
/// variables `vars` and no others, to connect to `target` (it reads `SYNCWS_CHILD_TARGET`).
pub fn env_child_command<V: AsRef<std::ffi::OsStr>>(target: &str, vars: &[(&str, V)]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "env_child",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for name in PROXY_VARS {
        cmd.env_remove(name);
    }
    for (name, value) in vars {
        cmd.env(name, value);
    }
    cmd.env("SYNCWS_CHILD_TARGET", target);
    cmd
}

/// A command for the example binary `name`, which `cargo test` builds into
/// target/<profile>/examples beside the deps directory of this test, without the proxy
/// variables of whoever runs the tests (a proxy there would stand between it and loopback).
pub fn example_command(name: &str) -> Command {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let mut cmd = Command::new(dir.join(name));
    for var in PROXY_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs `cmd` to its end, killing it after `timeout` (status `None`); returns its status and
/// output.
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> (Option<ExitStatus>, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
        thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut out);
            }
            String::from_utf8_lossy(&out).into_owned()
        })
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    (status, stdout.join().unwrap(), stderr.join().unwrap())
}
