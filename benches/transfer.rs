//! File transfer benchmark (issue 17): the `transfer` example against a raw TCP copy that does the
//! same file reads, writes and checksum, in the same run. Prints MB/s and each process's peak RSS.
//!
//! ```text
//! cargo bench --bench transfer                  # a 1 GiB file, 3 rounds of each
//! cargo bench --bench transfer -- --mib 4096    # the 4 GiB of the issue's bar
//! cargo bench --bench transfer -- --rounds 5
//! cargo bench --bench transfer -- --dir target/tmp   # on disk instead of in memory
//! ```
//!
//! It builds the example's release binary first (`cargo build --release --example transfer`).
//! Both copies run as two processes each (receiver and sender) over loopback, reading the source
//! from and writing the copy to a directory in `/dev/shm` (memory) by default, so that the figures
//! are those of the two programs and not of a disk (here the disk moved 90-170 MB/s from one run
//! to the next, either way); `--dir` puts the files elsewhere:
//!
//! - `transfer`: `transfer serve 127.0.0.1:0 DIR` and `transfer send URL FILE`: the file as one
//!   streamed binary message, SHA-1 on both sides, the receiver's `sync_all` and rename, the
//!   digest checked by both.
//! - `raw tcp`: this binary re-executed as receiver and sender: an 8-byte length, then the
//!   content read from the file in 256 KiB blocks, hashed and written to the socket; the
//!   receiver reads it in 256 KiB blocks, hashes it, writes it through a 256 KiB `BufWriter`,
//!   calls `sync_all`, renames and answers with its 20-byte digest, which the sender checks.
//!
//! MB/s is the file's size (MB = 10^6 bytes) over the sender's wall time from start to the
//! receiver's answer. The source file is written once, before the rounds, from a fixed
//! pseudo-random pattern; the copies and the source are removed at the end.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/reap.rs"]
mod reap;
use reap::wait_rss;

/// How long one side of a transfer may run before it is killed (and the run fails).
const REAP_WITHIN: Duration = Duration::from_secs(1200);

const RAW_ENV: &str = "SYNCWS_RAW_TRANSFER";
const BLOCK: usize = 256 << 10;

fn main() {
    if let Ok(spec) = std::env::var(RAW_ENV) {
        raw_child(&spec);
        return;
    }
    let (mut mib, mut rounds) = (1024u64, 3usize);
    let shm = Path::new("/dev/shm");
    let mut base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().expect("a value");
        match arg.as_str() {
            "--mib" => mib = value().parse().expect("a number"),
            "--rounds" => rounds = value().parse().expect("a number"),
            "--dir" => base = PathBuf::from(value()),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--example", "transfer"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo");
    assert!(status.success(), "building the transfer example failed");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/examples");

    let work = base.join(format!("syncws-transfer-bench-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    let (from, to) = (work.join("from"), work.join("to"));
    fs::create_dir_all(&from).unwrap();
    fs::create_dir_all(&to).unwrap();
    let source = from.join("file.bin");
    write_source(&source, mib);
    let bytes = mib << 20;

    println!(
        "file transfer over loopback: {mib} MiB in {}, {rounds} rounds; MB/s and peak RSS (MiB)",
        base.display()
    );
    println!(
        "{:<10} {:>6} {:>10} {:>12} {:>12}",
        "impl", "round", "MB/s", "sender RSS", "receiver RSS"
    );
    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        for imp in ["transfer", "raw tcp"] {
            let _ = fs::remove_file(to.join("file.bin"));
            let run = if imp == "transfer" {
                run_transfer(&examples, &source, &to)
            } else {
                run_raw(&source, &to)
            };
            let mbps = bytes as f64 / run.took.as_secs_f64() / 1e6;
            println!(
                "{imp:<10} {round:>6} {mbps:>10.1} {:>12.1} {:>12.1}",
                run.sender_kib as f64 / 1024.0,
                run.receiver_kib as f64 / 1024.0
            );
            assert_eq!(
                fs::metadata(to.join("file.bin")).unwrap().len(),
                bytes,
                "{imp}: the copy has another size"
            );
            if imp == "transfer" {
                ours.push(mbps);
            } else {
                raw.push(mbps);
            }
        }
    }
    let (ours, raw) = (median(ours), median(raw));
    println!(
        "median: transfer {ours:.1} MB/s, raw tcp {raw:.1} MB/s, ratio {:.2}",
        ours / raw
    );
    let _ = fs::remove_dir_all(&work);
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `mib` blocks of 1 MiB: one pseudo-random block, its number in front of each copy.
fn write_source(path: &Path, mib: u64) {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut block: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut file = BufWriter::new(File::create(path).unwrap());
    for i in 0..mib {
        block[..8].copy_from_slice(&i.to_be_bytes());
        file.write_all(&block).unwrap();
    }
    file.into_inner().unwrap().sync_all().unwrap();
}

struct Run {
    took: Duration,
    sender_kib: u64,
    receiver_kib: u64,
}

/// Starts a receiver whose first stdout line names its address after `prefix`; the child and
/// that address.
fn start_receiver(mut cmd: Command, prefix: &str) -> (Child, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    lines.read_line(&mut first).unwrap();
    // Keep reading, so that the receiver's later prints never fail.
    std::thread::spawn(move || for _ in lines.lines() {});
    let addr = first
        .strip_prefix(prefix)
        .and_then(|rest| rest.split([',', ' ', '\n']).next())
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    (child, addr)
}

fn run_transfer(examples: &Path, source: &Path, to: &Path) -> Run {
    let mut serve = Command::new(examples.join("transfer"));
    serve.arg("serve").arg("127.0.0.1:0").arg(to);
    let (receiver, addr) = start_receiver(serve, "transfer server on ws://");
    let mut send = Command::new(examples.join("transfer"));
    send.arg("send").arg(format!("ws://{addr}/")).arg(source);
    finish(send, receiver)
}

fn run_raw(source: &Path, to: &Path) -> Run {
    let exe = std::env::current_exe().unwrap();
    let mut serve = Command::new(&exe);
    serve.env(RAW_ENV, format!("serve {}", to.display()));
    let (receiver, addr) = start_receiver(serve, "raw receiver on ");
    let mut send = Command::new(&exe);
    send.env(RAW_ENV, format!("send {addr} {}", source.display()));
    finish(send, receiver)
}

/// Runs the sender to its end, then stops the receiver; the sender's wall time and both peaks.
fn finish(mut send: Command, mut receiver: Child) -> Run {
    let began = Instant::now();
    let sender = send
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (ok, sender_kib) = wait_rss(sender, REAP_WITHIN);
    let took = began.elapsed();
    assert!(ok, "the sender failed");
    let _ = receiver.kill();
    let (_, receiver_kib) = wait_rss(receiver, REAP_WITHIN);
    Run {
        took,
        sender_kib,
        receiver_kib,
    }
}

/// The raw copy's two sides: `serve DIR` or `send ADDR FILE`.
fn raw_child(spec: &str) {
    let parts: Vec<&str> = spec.splitn(3, ' ').collect();
    match parts[..] {
        ["serve", dir] => raw_receive(Path::new(dir)),
        ["send", addr, file] => raw_send(addr, Path::new(file)),
        _ => panic!("bad {RAW_ENV}: {spec}"),
    }
}

fn raw_receive(dir: &Path) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    println!("raw receiver on {}", listener.local_addr().unwrap());
    std::io::stdout().flush().unwrap();
    let (mut s, _) = listener.accept().unwrap();
    let mut len = [0u8; 8];
    s.read_exact(&mut len).unwrap();
    let len = u64::from_be_bytes(len);
    let part: PathBuf = dir.join(".file.bin.part");
    let mut file = BufWriter::with_capacity(BLOCK, File::create(&part).unwrap());
    let mut sha = sha1_smol::Sha1::new();
    let mut buf = vec![0u8; BLOCK];
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(left as usize);
        let n = s.read(&mut buf[..want]).unwrap();
        assert!(n > 0, "the sender stopped early");
        sha.update(&buf[..n]);
        file.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    file.into_inner().unwrap().sync_all().unwrap();
    fs::rename(&part, dir.join("file.bin")).unwrap();
    s.write_all(&sha.digest().bytes()).unwrap();
    // Wait to be stopped, as the transfer receiver does.
    std::thread::sleep(Duration::from_secs(3600));
}

fn raw_send(addr: &str, path: &Path) {
    let mut file = File::open(path).unwrap();
    let len = file.metadata().unwrap().len();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(&len.to_be_bytes()).unwrap();
    let mut sha = sha1_smol::Sha1::new();
    let mut buf = vec![0u8; BLOCK];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        s.write_all(&buf[..n]).unwrap();
    }
    let mut digest = [0u8; 20];
    s.read_exact(&mut digest).unwrap();
    assert_eq!(
        digest,
        sha.digest().bytes(),
        "the receiver's digest differs"
    );
}
