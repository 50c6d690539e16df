//! The echo server the Autobahn testsuite (`wstest -m fuzzingclient`) tests.
//!
//! `cargo run --release --example autobahn_server -- [ADDR]` (defaults to 127.0.0.1:9002).

fn main() -> Result<(), syncws::Error> {
    env_logger::init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".into());
    let server = syncws::Server::bind(&addr)?;
    println!("autobahn echo server on {}", server.local_addr()?);
    server.serve(|ws| {
        while let Some(msg) = ws.recv()? {
            ws.send(&msg)?;
        }
        Ok(())
    })
}
