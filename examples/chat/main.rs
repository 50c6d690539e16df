//! A chat room: an HTML page at `/` whose script connects back to `/chat`, several browser tabs
//! talking to each other, join and leave notices. Shows HTTP beside WebSocket on one port,
//! gatekeeping (same-origin policy plus a token in the URL) and a hub room.
//!
//! `cargo run --example chat -- [ADDR] [--seconds N] [--allow-origin ORIGIN]... [--redis URL]`
//! (ADDR defaults to 127.0.0.1:8000); open the printed URL in a few tabs. Stops on Ctrl-C, or
//! after N seconds. `--allow-origin` (repeatable) also lets pages from that origin join, e.g.
//! `http://localhost:5173` for a page served by a dev server (`'*'`: any origin); the page
//! served here always may. `--redis redis://127.0.0.1:6379` (built with `--features redis`)
//! shares the room with every chat instance on that Redis: run two on different ports, and a
//! tab on one sees what is typed on the other.

use std::time::Duration;

use syncws::{Accept, Config, Hub, Message, Response, Server};

const PAGE: &str = include_str!("page.html");

struct Name(String);

/// The one room every tab joins.
const ROOM: &str = "chat";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let mut args = std::env::args().skip(1);
    let (mut addr, mut seconds, mut origins) = ("127.0.0.1:8000".to_owned(), None, Vec::new());
    let mut redis: Option<String> = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = Some(args.next().ok_or("--seconds needs a value")?.parse()?),
            "--allow-origin" => {
                origins.push(args.next().ok_or("--allow-origin needs a value")?);
            }
            "--redis" => redis = Some(args.next().ok_or("--redis needs a URL")?),
            "-h" | "--help" => {
                println!(
                    "usage: chat [ADDR] [--seconds N] [--allow-origin ORIGIN]... [--redis URL]"
                );
                return Ok(());
            }
            _ => addr = arg,
        }
    }
    let token = std::env::var("CHAT_TOKEN").unwrap_or_else(|_| "letmein".into());
    // One room; a tab that stops reading fills its backlog and is dropped, without holding up
    // the others (publishing never waits for a socket).
    let members = hub(redis.as_deref())?;
    let config = Config::default().write_timeout(Some(Duration::from_secs(1)));
    let gate_token = token.clone();
    let mut server = Server::bind(&addr)?;
    if !origins.is_empty() {
        // A list replaces the same-origin default, so name this server's own page too.
        let here = server.local_addr();
        origins.push(format!("http://{here}"));
        if here.ip().is_loopback() {
            origins.push(format!("http://localhost:{}", here.port()));
        }
        server = server.allowed_origins(origins);
    }
    let server = server
        .config(config)
        .http(|req| match req.path() {
            "/" => Response::html(PAGE),
            _ => Response::not_found(),
        })
        .gatekeeper(move |req| {
            if req.path() != "/chat"
                || req.query_param("token").as_deref() != Some(gate_token.as_str())
            {
                return Err(Response::text(403, "wrong token\n"));
            }
            let name: String = req
                .query_param("name")
                .unwrap_or_default()
                .chars()
                .take(24)
                .collect();
            Ok(Accept::new().data(Name(if name.is_empty() {
                "guest".into()
            } else {
                name
            })))
        });
    let handle = server.handle();
    println!("chat on http://{}/?token={token}", server.local_addr());
    let stopper = handle.clone();
    ctrlc::set_handler(move || {
        stopper.shutdown();
    })?;
    if let Some(secs) = seconds {
        let stopper = handle.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(secs));
            stopper.shutdown();
        });
    }
    server.serve(move |ws| {
        let name = ws
            .data::<Name>()
            .map_or("guest".to_owned(), |n| n.0.clone());
        let (mut reader, writer) = ws.split()?;
        let id = writer.id();
        members.join(ROOM, &writer)?;
        members.publish(ROOM, format!("* {name} joined"));
        let mut ended = Ok(());
        loop {
            match reader.recv() {
                Ok(Some(Message::Text(text))) => {
                    members.publish(ROOM, format!("{name}: {text}"));
                }
                Ok(Some(Message::Binary(_))) => {}
                Ok(None) => break,
                Err(e) => {
                    ended = Err(e);
                    break;
                }
            }
        }
        members.leave(ROOM, id);
        members.publish(ROOM, format!("* {name} left"));
        Ok(ended?)
    })?;
    println!("chat stopped");
    Ok(())
}

/// The room's hub: this process only, or every instance on the Redis at `redis`.
fn hub(redis: Option<&str>) -> Result<Hub, Box<dyn std::error::Error>> {
    let Some(url) = redis else {
        return Ok(Hub::new()?);
    };
    #[cfg(feature = "redis")]
    {
        let backend = syncws::RedisBackend::builder(url).prefix("chat:").build()?;
        Ok(Hub::builder().backend(backend).build()?)
    }
    #[cfg(not(feature = "redis"))]
    {
        Err(
            format!("--redis {url}: built without the redis feature (cargo run --features redis)")
                .into(),
        )
    }
}
