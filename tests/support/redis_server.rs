//! A real `redis-server` for one test: on a free loopback port, persistence off, its own
//! directory; killed with `SIGKILL` by its PID (on drop, or by the test to cut Redis off) and
//! started again on the same port. Its log is printed when the test fails. Also a raw RESP
//! client that speaks to it by hand (an independent peer: not the `redis` crate).

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::{TIMEOUT, free_port, read_lossy};

/// Where Debian's `redis-server` package puts the binary.
pub const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// How long redis-server may take to answer its first `PING`.
const START_WITHIN: Duration = Duration::from_secs(5);

/// A `redis-server` process of this test; see the module docs.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    /// The password its `PING` needs, if it has `requirepass`.
    password: Option<String>,
}

impl RedisServer {
    /// A server with the standard settings and `extra` arguments (e.g. `["--requirepass",
    /// "pw"]`, given as pairs of name and value).
    pub fn start(extra: &[&str]) -> RedisServer {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("syncws-redis-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let password = extra
            .iter()
            .position(|a| *a == "--requirepass")
            .map(|i| extra[i + 1].to_owned());
        let mut server = RedisServer {
            child: None,
            port: 0,
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            password,
        };
        // The port may be taken between finding it free and redis binding it: try another.
        let mut failures = Vec::new();
        for _ in 0..3 {
            server.port = free_port();
            match server.spawn() {
                Ok(()) => return server,
                Err(why) => failures.push(why),
            }
        }
        panic!("redis-server did not start:\n{}", failures.join("\n"));
    }

    /// Runs redis-server on `self.port` and waits for it to answer.
    fn spawn(&mut self) -> Result<(), String> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("redis.log"))
            .unwrap();
        let mut cmd = Command::new(REDIS_SERVER);
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {REDIS_SERVER}: {e}"));
        let deadline = Instant::now() + START_WITHIN;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                return Err(format!(
                    "port {}: exited with {status}\n{}",
                    self.port,
                    self.log()
                ));
            }
            let auth: Vec<&[u8]> = match &self.password {
                Some(pw) => vec![b"AUTH", pw.as_bytes()],
                None => vec![b"PING"],
            };
            if resp(self.addr(), &auth).is_ok_and(|r| r == "+OK" || r == "+PONG") {
                self.child = Some(child);
                return Ok(());
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(format!(
            "port {}: no answer after {START_WITHIN:?}",
            self.port
        ))
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server with `SIGKILL` (no goodbye to its clients, only the kernel's FIN) and
    /// waits for it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "kill9 first");
        // The old process is gone and redis sets SO_REUSEADDR, so the port is ours again.
        self.spawn().unwrap_or_else(|why| panic!("restart: {why}"));
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.join("redis.log"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill9();
        if thread::panicking() {
            eprintln!("redis-server on port {}:\n{}", self.port, self.log());
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// One RESP command on `stream`, its parts as bulk strings.
pub fn resp_send(stream: &mut TcpStream, parts: &[&[u8]]) -> std::io::Result<()> {
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for part in parts {
        out.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    stream.write_all(&out)
}

/// Sends one command on a new connection and returns the first line of the answer (`+OK`,
/// `:1`, `-ERR ...`), without its line end.
pub fn resp(addr: SocketAddr, parts: &[&[u8]]) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    resp_send(&mut stream, parts)?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    Ok(line.trim_end().to_owned())
}

/// Runs each command in turn on one connection, returning their first answer lines.
pub fn resp_all(addr: SocketAddr, commands: &[Vec<&[u8]>]) -> Vec<String> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    commands
        .iter()
        .map(|parts| {
            resp_send(&mut stream, parts).unwrap();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            line.trim_end().to_owned()
        })
        .collect()
}
