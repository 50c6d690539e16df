//! Moves files over a WebSocket, each as one streamed binary message: memory stays at a few
//! buffers whatever the file's size, on both sides.
//!
//! ```text
//! cargo run --release --example transfer -- serve [ADDR] DIR     # ADDR defaults to 127.0.0.1:9002
//! cargo run --release --example transfer -- send URL FILE...     # e.g. ws://127.0.0.1:9002/
//! ```
//!
//! For each file the sender sends three messages, and the receiver answers with one:
//!
//! ```text
//! sender   text    "file NAME SIZE"   NAME is the file's own name (no directory), SIZE its bytes
//! sender   binary  the SIZE bytes     one message, streamed in fragments (`send_from`)
//! sender   text    "sha1 HEX"         the SHA-1 of the bytes it read
//! receiver text    "stored NAME HEX"  the SHA-1 of the bytes it wrote, once the two agree
//! ```
//!
//! Both sides compute SHA-1 (RFC 3174) over the content as it passes, and both check: the
//! receiver keeps a file only if its digest equals the sender's (otherwise it deletes it and
//! answers "mismatch NAME HEX"), and the sender fails unless the receiver's digest equals its
//! own. SHA-1 catches accidents (a truncated copy, a disk that lied), not an attacker who picks
//! the content; it is here because the crate already uses it for the handshake.
//!
//! The receiver writes to `DIR/.NAME.part` and renames it to `DIR/NAME` when the digests agree
//! (replacing a file of that name). A name with a `/` or `\`, `.`, `..` or a leading dot, or a
//! content of another size than announced, ends the connection with 1008 and keeps nothing.
//! Both sides print progress to stderr once a second and a summary line with MB/s to stdout.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::exit;
use std::time::{Duration, Instant};

use syncws::{CloseCode, Message, MessageKind, WebSocket};

const USAGE: &str = "usage: transfer serve [ADDR] DIR\n       transfer send URL FILE...";

/// Reads and writes of file content go through buffers of this size.
const CHUNK: usize = 256 << 10;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn usage(problem: &str) -> ! {
    eprintln!("{problem}\n{USAGE}");
    exit(2)
}

fn main() {
    env_logger::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => match &args[1..] {
            [dir] => serve("127.0.0.1:9002", Path::new(dir)),
            [addr, dir] => serve(addr, Path::new(dir)),
            _ => usage("serve takes [ADDR] DIR"),
        },
        Some("send") => match &args[1..] {
            [url, files @ ..] if !files.is_empty() => send(url, files),
            _ => usage("send takes URL FILE..."),
        },
        Some("-h" | "--help") => usage("moves files over a WebSocket"),
        _ => usage("serve or send?"),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        exit(1);
    }
}

// ---- the receiving side ----

fn serve(addr: &str, dir: &Path) -> Result<(), BoxError> {
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()).into());
    }
    let dir = dir.to_path_buf();
    let server = syncws::Server::bind(addr)?;
    println!(
        "transfer server on ws://{}, storing in {}",
        server.local_addr(),
        dir.display()
    );
    server.serve(move |ws| receive_files(ws, &dir))?;
    Ok(())
}

/// Receives files until the sender closes.
fn receive_files(ws: &mut WebSocket, dir: &Path) -> syncws::HandlerResult {
    loop {
        let header = match ws.recv()? {
            None => return Ok(()),
            Some(Message::Text(header)) => header,
            Some(_) => return refuse(ws, "expected a \"file NAME SIZE\" message"),
        };
        let Some((name, size)) = parse_header(&header) else {
            return refuse(ws, "bad file header (a plain file name and its size)");
        };
        let part = dir.join(format!(".{name}.part"));
        let started = Instant::now();
        let stored = match receive_content(ws, &part, &name, size) {
            Ok(Some(digest)) => digest,
            Ok(None) => {
                let _ = std::fs::remove_file(&part);
                return refuse(ws, "the content is not the announced size");
            }
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                return Err(e);
            }
        };
        let claimed = match ws.recv()? {
            Some(Message::Text(t)) => t.strip_prefix("sha1 ").map(str::to_owned),
            _ => None,
        };
        if claimed.as_deref() != Some(stored.as_str()) {
            let _ = std::fs::remove_file(&part);
            ws.send(format!("mismatch {name} {stored}"))?;
            eprintln!("{name}: the sender's SHA-1 is not {stored}; not kept");
            continue;
        }
        std::fs::rename(&part, dir.join(&name))?;
        // Not println!: a receiver whose output went away (a closed pipe) keeps receiving.
        let line = format!(
            "stored {name}: {}, sha1 {stored}",
            rate(size, started.elapsed())
        );
        let _ = writeln!(io::stdout(), "{line}");
        ws.send(format!("stored {name} {stored}"))?;
    }
}

/// Writes the next message, which must be binary and `size` bytes long, to `path`; its SHA-1,
/// or `None` if it was not binary or not that size.
fn receive_content(
    ws: &mut WebSocket,
    path: &Path,
    name: &str,
    size: u64,
) -> Result<Option<String>, BoxError> {
    let Some(mut content) = ws.recv_stream()? else {
        return Ok(None);
    };
    if content.kind() != MessageKind::Binary {
        return Ok(None);
    }
    let mut file = BufWriter::with_capacity(CHUNK, File::create(path)?);
    let mut sha = sha1_smol::Sha1::new();
    let mut progress = Progress::new(name, size);
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = content.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > size {
            return Ok(None);
        }
        sha.update(&buf[..n]);
        file.write_all(&buf[..n])?;
        progress.at(total);
    }
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok((total == size).then(|| sha.digest().to_string()))
}

/// "file NAME SIZE" with a plain file name.
fn parse_header(header: &str) -> Option<(String, u64)> {
    let rest = header.strip_prefix("file ")?;
    let (name, size) = rest.rsplit_once(' ')?;
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && Path::new(name).file_name() == Some(std::ffi::OsStr::new(name));
    if !plain {
        return None;
    }
    Some((name.to_owned(), size.parse().ok()?))
}

fn refuse(ws: &mut WebSocket, why: &str) -> syncws::HandlerResult {
    eprintln!("refused a sender: {why}");
    ws.close(CloseCode::POLICY, why)?;
    Ok(())
}

// ---- the sending side ----

fn send(url: &str, files: &[String]) -> Result<(), BoxError> {
    let mut ws = syncws::Client::connect(url)?;
    for path in files.iter().map(PathBuf::from) {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("{}: no file name", path.display()))?
            .to_owned();
        let file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let size = file.metadata()?.len();
        let started = Instant::now();
        ws.send(format!("file {name} {size}"))?;
        let mut hashing = Hashing {
            inner: file,
            sha: sha1_smol::Sha1::new(),
            progress: Progress::new(&name, size),
            total: 0,
        };
        let sent = ws.send_from(MessageKind::Binary, &mut hashing)?;
        if sent != size {
            return Err(format!("{name}: read {sent} bytes, expected {size} (it changed?)").into());
        }
        let digest = hashing.sha.digest().to_string();
        ws.send(format!("sha1 {digest}"))?;
        match ws.recv()? {
            Some(Message::Text(reply)) if reply == format!("stored {name} {digest}") => {}
            Some(Message::Text(reply)) => {
                return Err(format!("{name}: the receiver said {reply:?}").into());
            }
            _ => return Err(format!("{name}: the receiver closed without an answer").into()),
        }
        println!(
            "sent {name}: {}, sha1 {digest}",
            rate(size, started.elapsed())
        );
    }
    ws.close(CloseCode::NORMAL, "done")?;
    Ok(())
}

/// A file read through SHA-1 and a progress line.
struct Hashing {
    inner: File,
    sha: sha1_smol::Sha1,
    progress: Progress,
    total: u64,
}

impl Read for Hashing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.total += n as u64;
        self.progress.at(self.total);
        Ok(n)
    }
}

// ---- progress ----

/// Prints "NAME: X of Y MiB, R MB/s" to stderr at most once a second.
struct Progress {
    name: String,
    size: u64,
    started: Instant,
    next: Instant,
}

impl Progress {
    fn new(name: &str, size: u64) -> Progress {
        let now = Instant::now();
        Progress {
            name: name.to_owned(),
            size,
            started: now,
            next: now + Duration::from_secs(1),
        }
    }

    fn at(&mut self, done: u64) {
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.next = now + Duration::from_secs(1);
        eprintln!(
            "{}: {:.1} of {:.1} MiB, {}",
            self.name,
            done as f64 / (1 << 20) as f64,
            self.size as f64 / (1 << 20) as f64,
            rate(done, now - self.started)
        );
    }
}

/// "N bytes in T s, R MB/s" (MB = 10^6 bytes).
fn rate(bytes: u64, took: Duration) -> String {
    let secs = took.as_secs_f64().max(1e-9);
    format!(
        "{bytes} bytes in {secs:.2} s, {:.1} MB/s",
        bytes as f64 / secs / 1e6
    )
}
