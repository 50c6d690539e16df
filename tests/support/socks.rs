//! A SOCKS5 server written by hand for the tests: it records every request byte for byte, so a
//! test can check what the client sent (a name or an address, the credentials), and it can
//! answer with a script instead of relaying, to play a broken or hostile proxy.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::{TIMEOUT, guard};

/// What one client sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SocksSeen {
    /// The greeting: version, method count, methods.
    pub greeting: Vec<u8>,
    /// User name and password, if the client sent them.
    pub credentials: Option<(Vec<u8>, Vec<u8>)>,
    /// The CONNECT request, whole.
    pub request: Vec<u8>,
}

impl SocksSeen {
    /// The request's address type: 1 IPv4, 3 a name, 4 IPv6.
    pub fn address_type(&self) -> u8 {
        self.request[3]
    }

    /// The requested name, for address type 3.
    pub fn name(&self) -> &[u8] {
        &self.request[5..self.request.len() - 2]
    }
}

/// How the server behaves.
#[derive(Debug, Clone)]
pub enum SocksScript {
    /// A working proxy, wanting these credentials if given; relays to the target.
    Relay(Option<(String, String)>),
    /// After the greeting, writes each chunk with `pause` before it, then reads until the
    /// client leaves (the connection stays open, so a client waiting for more times out).
    Answer(Vec<Vec<u8>>, Duration),
}

/// A hand-written SOCKS5 server on 127.0.0.1:0, serving until the test process ends.
pub struct FakeSocks {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<SocksSeen>>>,
    accepted: Arc<AtomicUsize>,
}

impl FakeSocks {
    pub fn start(script: SocksScript) -> FakeSocks {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (seen2, accepted2) = (Arc::clone(&seen), Arc::clone(&accepted));
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                accepted2.fetch_add(1, Ordering::SeqCst);
                let (script, seen) = (script.clone(), Arc::clone(&seen2));
                thread::spawn(move || {
                    let _ = serve_one(conn, &script, &seen);
                });
            }
        });
        FakeSocks {
            addr,
            seen,
            accepted,
        }
    }

    /// `scheme://[userinfo@]127.0.0.1:port`.
    pub fn url(&self, scheme: &str, userinfo: Option<&str>) -> String {
        match userinfo {
            Some(u) => format!("{scheme}://{u}@{}", self.addr),
            None => format!("{scheme}://{}", self.addr),
        }
    }

    /// Every client's exchange so far (those that got as far as the greeting).
    pub fn seen(&self) -> Vec<SocksSeen> {
        self.seen.lock().unwrap().clone()
    }

    /// How many TCP connections were accepted.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn read_n(conn: &mut TcpStream, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; n];
    conn.read_exact(&mut buf)?;
    Ok(buf)
}

fn serve_one(
    mut conn: TcpStream,
    script: &SocksScript,
    log: &Mutex<Vec<SocksSeen>>,
) -> io::Result<()> {
    guard(&conn);
    let mut seen = SocksSeen::default();
    let head = read_n(&mut conn, 2)?;
    let methods = read_n(&mut conn, head[1] as usize)?;
    seen.greeting = [head, methods.clone()].concat();
    let record = |seen: &SocksSeen| log.lock().unwrap().push(seen.clone());
    let want = match script {
        SocksScript::Answer(chunks, pause) => {
            record(&seen);
            for chunk in chunks {
                thread::sleep(*pause);
                conn.write_all(chunk)?;
            }
            let _ = io::copy(&mut conn, &mut io::sink());
            return Ok(());
        }
        SocksScript::Relay(want) => want,
    };
    if let Some((user, password)) = want {
        if !methods.contains(&2) {
            record(&seen);
            return conn.write_all(&[5, 0xFF]);
        }
        conn.write_all(&[5, 2])?;
        let ulen = read_n(&mut conn, 2)?[1] as usize;
        let got_user = read_n(&mut conn, ulen)?;
        let plen = read_n(&mut conn, 1)?[0] as usize;
        let got_password = read_n(&mut conn, plen)?;
        let ok = got_user == user.as_bytes() && got_password == password.as_bytes();
        seen.credentials = Some((got_user, got_password));
        if !ok {
            record(&seen);
            return conn.write_all(&[1, 1]);
        }
        conn.write_all(&[1, 0])?;
    } else {
        conn.write_all(&[5, 0])?;
    }
    let mut request = read_n(&mut conn, 4)?;
    let port_and_addr = match request[3] {
        1 => read_n(&mut conn, 4 + 2)?,
        4 => read_n(&mut conn, 16 + 2)?,
        3 => {
            let len = read_n(&mut conn, 1)?;
            [len.clone(), read_n(&mut conn, len[0] as usize + 2)?].concat()
        }
        _ => Vec::new(),
    };
    request.extend_from_slice(&port_and_addr);
    seen.request = request.clone();
    record(&seen);
    let port = u16::from_be_bytes([request[request.len() - 2], request[request.len() - 1]]);
    let addrs: Vec<SocketAddr> = match request[3] {
        1 => vec![SocketAddr::from((
            <[u8; 4]>::try_from(&request[4..8]).unwrap(),
            port,
        ))],
        4 => vec![SocketAddr::from((
            <[u8; 16]>::try_from(&request[4..20]).unwrap(),
            port,
        ))],
        _ => {
            let name = String::from_utf8_lossy(&request[5..request.len() - 2]).into_owned();
            (name.as_str(), port)
                .to_socket_addrs()
                .map(|a| a.collect())
                .unwrap_or_default()
        }
    };
    let Some(upstream) = addrs
        .iter()
        .find_map(|a| TcpStream::connect_timeout(a, TIMEOUT).ok())
    else {
        // 5: connection refused.
        return conn.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]);
    };
    let bound = upstream.local_addr()?;
    let mut reply = vec![5, 0, 0];
    match bound {
        SocketAddr::V4(a) => {
            reply.push(1);
            reply.extend(a.ip().octets());
        }
        SocketAddr::V6(a) => {
            reply.push(4);
            reply.extend(a.ip().octets());
        }
    }
    reply.extend(bound.port().to_be_bytes());
    conn.write_all(&reply)?;
    relay(conn, upstream);
    Ok(())
}

/// Copies both ways until either side ends.
fn relay(client: TcpStream, upstream: TcpStream) {
    for s in [&client, &upstream] {
        s.set_read_timeout(None).unwrap();
    }
    let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let up = thread::spawn(move || {
        let _ = io::copy(&mut c2, &mut u2);
        let _ = u2.shutdown(Shutdown::Write);
    });
    let (mut client, mut upstream) = (client, upstream);
    let _ = io::copy(&mut upstream, &mut client);
    let _ = client.shutdown(Shutdown::Write);
    let _ = up.join();
}
