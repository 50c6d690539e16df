//! An external daemon for one test (tinyproxy, nginx, ...): started in the foreground on a free
//! loopback port with its own directory (config, logs), ready once it says so and its port
//! accepts connections, stopped and its directory removed on drop. When the test fails, the
//! drop prints the files the test named, so a failure shows what the daemon saw.
//!
//! ```ignore
//! let proxy = Daemon::builder("tinyproxy")
//!     .show("tinyproxy.log")
//!     .ready_when(|d| d.read("tinyproxy.log").contains("Accepting connections"))
//!     .start(|dir, port| {
//!         std::fs::write(dir.join("tinyproxy.conf"), format!("Port {port}\n...")).unwrap();
//!         let mut cmd = Command::new("/usr/bin/tinyproxy");
//!         cmd.arg("-d").arg("-c").arg(dir.join("tinyproxy.conf"));
//!         cmd
//!     });
//! ```

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// The file in a daemon's directory that gets its stdout and stderr.
pub const DAEMON_OUTPUT: &str = "output.txt";

/// How often readiness and exit are polled: there is no event to wait on for another process.
const POLL: Duration = Duration::from_millis(20);

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A file's content as text, empty when it cannot be read (not written yet).
pub fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// How a daemon is stopped.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Kill,
    /// `SIGTERM`, then a kill if it is still running after this long.
    Term(Duration),
}

/// How to start a [`Daemon`]; see the module docs.
pub struct DaemonBuilder {
    name: String,
    start_within: Duration,
    stop: Stop,
    show: Vec<String>,
    ready: Box<dyn Fn(&Daemon) -> bool>,
}

/// A daemon process of this test; see the module docs.
pub struct Daemon {
    name: String,
    child: Child,
    port: u16,
    dir: PathBuf,
    stop: Stop,
    show: Vec<String>,
}

impl Daemon {
    /// A daemon called `name` (in messages and its directory's name). Defaults: ready once its
    /// port accepts connections, 5 s to get there, killed on drop.
    pub fn builder(name: &str) -> DaemonBuilder {
        DaemonBuilder {
            name: name.to_owned(),
            start_within: Duration::from_secs(5),
            stop: Stop::Kill,
            show: vec![DAEMON_OUTPUT.to_owned()],
            ready: Box::new(|_| true),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The daemon's own directory, where its config and logs go.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The file `name` in the daemon's directory, empty while it does not exist.
    pub fn read(&self, name: &str) -> String {
        read_lossy(&self.dir.join(name))
    }

    /// Stops the daemon (as configured) and waits for it; does nothing once it has ended.
    pub fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        if let Stop::Term(within) = self.stop {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + within;
            while Instant::now() < deadline {
                if self.child.try_wait().ok().flatten().is_some() {
                    return;
                }
                thread::sleep(Duration::from_millis(10));
            }
            eprintln!(
                "{} (pid {}) ignored SIGTERM; killing it",
                self.name,
                self.child.id()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The files to show, each under its name.
    fn dump(&self) -> String {
        self.show
            .iter()
            .map(|name| format!("--- {name}\n{}", self.read(name)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn wait_ready(
        &mut self,
        ready: &dyn Fn(&Daemon) -> bool,
        within: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let addr = self.addr();
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!(
                    "port {}: {} exited with {status}\n{}",
                    self.port,
                    self.name,
                    self.dump()
                ));
            }
            if ready(self) && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            {
                return Ok(());
            }
            thread::sleep(POLL);
        }
        Err(format!(
            "port {}: not accepting connections after {within:?}\n{}",
            self.port,
            self.dump()
        ))
    }
}

impl DaemonBuilder {
    /// How long the daemon may take to be ready.
    pub fn start_within(mut self, within: Duration) -> Self {
        self.start_within = within;
        self
    }

    /// Stop with `SIGTERM` (e.g. so a master process stops its workers), killing the daemon
    /// if it has not ended `within`.
    pub fn stop_with_sigterm(mut self, within: Duration) -> Self {
        self.stop = Stop::Term(within);
        self
    }

    /// A file in the daemon's directory to print when the test fails (its output always is).
    pub fn show(mut self, name: &str) -> Self {
        self.show.push(name.to_owned());
        self
    }

    /// Ready only once `ready` holds too (e.g. a log line), besides the port accepting.
    pub fn ready_when(mut self, ready: impl Fn(&Daemon) -> bool + 'static) -> Self {
        self.ready = Box::new(ready);
        self
    }

    /// Starts the daemon: `command` gets a fresh directory and a free port, writes what the
    /// daemon needs there and returns the command that runs it in the foreground; its stdout
    /// and stderr go to [`DAEMON_OUTPUT`]. The port may be taken by someone else before the
    /// daemon binds it, so a start that fails is tried again (three times in all) on another.
    pub fn start(self, mut command: impl FnMut(&Path, u16) -> Command) -> Daemon {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let mut failures = Vec::new();
        for _ in 0..3 {
            let n = STARTED.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!(
                "syncws-{}-{}-{n}",
                self.name,
                std::process::id()
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            let port = free_port();
            let mut cmd = command(&dir, port);
            let output = fs::File::create(dir.join(DAEMON_OUTPUT)).unwrap();
            let child = cmd
                .stdin(Stdio::null())
                .stdout(output.try_clone().unwrap())
                .stderr(output)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", self.name));
            let mut daemon = Daemon {
                name: self.name.clone(),
                child,
                port,
                dir,
                stop: self.stop,
                show: self.show.clone(),
            };
            match daemon.wait_ready(&*self.ready, self.start_within) {
                Ok(()) => return daemon,
                Err(why) => failures.push(why),
            }
        }
        panic!("{} did not start:\n{}", self.name, failures.join("\n"));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            eprintln!(
                "{} on port {} ({}):\n{}",
                self.name,
                self.port,
                self.dir.display(),
                self.dump()
            );
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
