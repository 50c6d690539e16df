//! nginx (the Debian package) for one test: a [`Daemon`] in the foreground on a free loopback
//! port, with a config that needs nothing outside the daemon's directory. A test gives the
//! inside of the `http` block, usually one `server` whose `location` does the standard
//! WebSocket proxying ([`ws_location`]).
//!
//! ```ignore
//! let nginx = start_nginx("scripts/nginx_test.sh", 64, |_, port| {
//!     format!(
//!         "server {{ listen 127.0.0.1:{port}; {} }}",
//!         ws_location("http://127.0.0.1:9001", "")
//!     )
//! });
//! ```

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::Daemon;

/// Where Debian's nginx packages put the binary.
pub const NGINX: &str = "/usr/sbin/nginx";

/// How long nginx may take to accept connections after it was started, and to stop (it closes
/// its connections at once on `SIGTERM`).
const NGINX_WITHIN: Duration = Duration::from_secs(10);

/// Starts nginx with `http(dir, port)` as its `http` block's directives (after the logs and
/// temporary paths, which stay in `dir`) and `worker_connections` per worker. Fails the test,
/// naming `script` (which installs nginx), when nginx is not installed. When the test fails, the
/// daemon's drop prints the config and both logs.
pub fn start_nginx(
    script: &str,
    worker_connections: usize,
    http: impl FnOnce(&Path, u16) -> String,
) -> Daemon {
    assert!(
        Path::new(NGINX).exists(),
        "nginx is not installed ({NGINX}); run {script}"
    );
    let mut http = Some(http);
    Daemon::builder("nginx")
        .start_within(NGINX_WITHIN)
        // A fast shutdown (`SIGTERM`) lets the master stop its worker first; killing the
        // master outright would leave the worker running.
        .stop_with_sigterm(NGINX_WITHIN)
        .show("nginx.conf")
        .show("error.log")
        .show("access.log")
        .start(|dir, port| {
            let body = http.take().expect("nginx starts once")(dir, port);
            let d = dir.display();
            let conf = format!(
                "worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{
    worker_connections {worker_connections};
}}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
{body}
}}
"
            );
            fs::write(dir.join("nginx.conf"), conf).unwrap();
            let mut cmd = Command::new(NGINX);
            cmd.arg("-p")
                .arg(dir)
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-g")
                .arg("daemon off;");
            cmd
        })
}

/// A `location /` that proxies WebSocket upgrades to `pass` (`proxy_http_version 1.1`, the
/// `Upgrade` and `Connection` headers, `Host`, a 60 s read timeout), with `extra` directives.
pub fn ws_location(pass: &str, extra: &str) -> String {
    format!(
        "location / {{
            proxy_pass {pass};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection \"upgrade\";
            proxy_set_header Host $host;
            proxy_read_timeout 60s;
            {extra}
        }}"
    )
}
