//! A server and a client in one process: the client sends a few messages, the server echoes
//! them, and both close cleanly. `cargo run --example demo`

use syncws::{Client, CloseCode, Message, Server};

fn main() -> Result<(), syncws::Error> {
    let server = Server::bind("127.0.0.1:0")?;
    let addr = server.local_addr();
    std::thread::spawn(move || {
        server.serve(|ws| {
            println!(
                "server: {ws} from {:?}, path {:?}",
                ws.peer_addr(),
                ws.path()
            );
            while let Some(msg) = ws.recv()? {
                ws.send(&msg)?;
            }
            Ok(())
        })
    });

    let mut ws = Client::connect(&format!("ws://{addr}/demo"))?;
    println!("client: {ws} connected to {addr}");
    for text in ["hello", "wörld", "🎉"] {
        ws.send(text)?;
        if let Some(Message::Text(echo)) = ws.recv()? {
            println!("client: sent {text:?}, got back {echo:?}");
        }
    }
    ws.send(vec![0u8, 1, 2, 255])?;
    println!("client: binary echo {:?}", ws.recv()?);
    ws.close(CloseCode::NORMAL, "done")?;
    println!("client: closed, server answered {:?}", ws.close_frame());
    Ok(())
}
