//! Echoes every text and binary message back to its sender.
//!
//! `cargo run --release --example echo_server -- [ADDR]` (ADDR defaults to 127.0.0.1:9001).
//! Set `RUST_LOG=debug` to see every connection open and end.

fn main() -> Result<(), syncws::Error> {
    env_logger::init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let server = syncws::Server::bind(&addr)?;
    println!("echo server on ws://{}", server.local_addr()?);
    server.serve(|ws| {
        while let Some(msg) = ws.recv()? {
            ws.send(&msg)?;
        }
        Ok(())
    })
}
