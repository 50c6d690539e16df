//! The echo server the Autobahn testsuite (`wstest -m fuzzingclient`) tests.
//!
//! `cargo run --release --example autobahn_server -- [ADDR] [--deflate]` (ADDR defaults to
//! 127.0.0.1:9002). `--deflate` accepts permessage-deflate (needs `--features deflate`).

fn main() -> Result<(), syncws::Error> {
    env_logger::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let deflate = args.iter().any(|a| a == "--deflate");
    let addr = args.iter().find(|a| !a.starts_with('-'));
    let addr = addr.map_or("127.0.0.1:9002", String::as_str);
    let server = syncws::Server::bind(addr)?.config(config(deflate));
    println!("autobahn echo server on {}", server.local_addr());
    server.serve(|ws| {
        while let Some(msg) = ws.recv()? {
            ws.send(&msg)?;
        }
        Ok(())
    })
}

fn config(deflate: bool) -> syncws::Config {
    let config = syncws::Config::default();
    #[cfg(feature = "deflate")]
    let config = config.deflate(deflate.then(syncws::DeflateConfig::default));
    #[cfg(not(feature = "deflate"))]
    if deflate {
        eprintln!("--deflate needs a build with --features deflate");
        std::process::exit(2);
    }
    config
}
