//! The testee client for the Autobahn testsuite (`wstest -m fuzzingserver`): runs every case,
//! echoing each message, then asks the suite to write its reports.
//!
//! `cargo run --release --example autobahn_client -- [URL] [--deflate]` (URL defaults to
//! ws://127.0.0.1:9001). `--deflate` offers permessage-deflate (needs `--features deflate`).

use syncws::{Client, ClientBuilder, Config, Error, Message};

const AGENT: &str = "syncws";

fn main() -> Result<(), Error> {
    env_logger::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let deflate = args.iter().any(|a| a == "--deflate");
    let base = args.iter().find(|a| !a.starts_with('-'));
    let base = base.map_or("ws://127.0.0.1:9001", String::as_str);
    let base = base.trim_end_matches('/');
    let count = case_count(base)?;
    println!("running {count} cases against {base}");
    let client = Client::builder().config(config(deflate));
    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={AGENT}");
        if let Err(e) = echo_case(&client, &url) {
            log::debug!("case {case}: {e}");
        }
    }
    let mut ws = Client::connect(&format!("{base}/updateReports?agent={AGENT}"))?;
    while ws.recv()?.is_some() {}
    println!("reports updated");
    Ok(())
}

fn config(deflate: bool) -> Config {
    let config = Config::default();
    #[cfg(feature = "deflate")]
    let config = config.deflate(deflate.then(syncws::DeflateConfig::default));
    #[cfg(not(feature = "deflate"))]
    if deflate {
        eprintln!("--deflate needs a build with --features deflate");
        std::process::exit(2);
    }
    config
}

fn case_count(base: &str) -> Result<u32, Error> {
    let mut ws = Client::connect(&format!("{base}/getCaseCount"))?;
    let mut count = 0;
    while let Some(msg) = ws.recv()? {
        if let Message::Text(t) = msg {
            count = t.trim().parse().unwrap_or(0);
        }
    }
    Ok(count)
}

fn echo_case(client: &ClientBuilder, url: &str) -> Result<(), Error> {
    let mut ws = client.connect(url)?;
    while let Some(msg) = ws.recv()? {
        ws.send(&msg)?;
    }
    Ok(())
}
