//! The testee client for the Autobahn testsuite (`wstest -m fuzzingserver`): runs every case,
//! echoing each message, then asks the suite to write its reports.
//!
//! `cargo run --release --example autobahn_client -- [URL]` (defaults to ws://127.0.0.1:9001).

use syncws::{Client, Error, Message};

const AGENT: &str = "syncws";

fn main() -> Result<(), Error> {
    env_logger::init();
    let base = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9001".into());
    let base = base.trim_end_matches('/');
    let count = case_count(base)?;
    println!("running {count} cases against {base}");
    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={AGENT}");
        if let Err(e) = echo_case(&url) {
            log::debug!("case {case}: {e}");
        }
    }
    let mut ws = Client::connect(&format!("{base}/updateReports?agent={AGENT}"))?;
    while ws.recv()?.is_some() {}
    println!("reports updated");
    Ok(())
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

fn echo_case(url: &str) -> Result<(), Error> {
    let mut ws = Client::connect(url)?;
    while let Some(msg) = ws.recv()? {
        ws.send(&msg)?;
    }
    Ok(())
}
