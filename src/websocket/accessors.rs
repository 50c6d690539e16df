//! What a whole socket and the reading half of a split one tell about their connection, written
//! once: both hold the connection's state as `self.conn`.

/// Expands, inside an `impl` of a type with a `conn: Conn<_>` field, to the accessors that
/// [`WebSocket`](crate::WebSocket) and [`Reader`](crate::Reader) share.
macro_rules! connection_accessors {
    () => {
        /// Server or client.
        pub fn role(&self) -> crate::Role {
            self.conn.role
        }

        /// Open, closing or closed, as any half of the connection last saw it.
        pub fn state(&self) -> crate::State {
            self.conn.state()
        }

        /// The connection's id, as used in log lines.
        pub fn id(&self) -> u64 {
            self.conn.info.id
        }

        /// The peer's address, if the stream has one (behind a trusted proxy, the client's, with
        /// port 0); `None` for a peer on a Unix socket.
        pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
            self.conn.info.peer
        }

        /// Server side: the upgrade request the client sent.
        pub fn request(&self) -> Option<&crate::Request> {
            self.conn.info.request.as_deref()
        }

        /// Server side: the request path without the query, e.g. `/chat`.
        pub fn path(&self) -> Option<&str> {
            self.request().map(crate::Request::path)
        }

        /// Server side: the request header `name` (case-insensitive).
        pub fn header(&self, name: &str) -> Option<&str> {
            self.request().and_then(|r| r.header(name))
        }

        /// Server side: the `Origin` the client sent, if any.
        pub fn origin(&self) -> Option<&str> {
            self.request().and_then(crate::Request::origin)
        }

        /// The subprotocol agreed in the handshake, if any.
        pub fn protocol(&self) -> Option<&str> {
            self.conn.info.protocol.as_deref()
        }

        /// The permessage-deflate parameters agreed in the handshake, or `None` when messages
        /// go uncompressed both ways (not configured, not offered, or declined by the peer).
        ///
        /// ```no_run
        /// use syncws::{Client, Config, DeflateConfig};
        /// let config = Config::default().deflate(Some(DeflateConfig::default()));
        /// let ws = Client::builder().config(config).connect("ws://127.0.0.1:9001/")?;
        /// println!("compressed: {}", ws.compression().is_some());
        /// # Ok::<(), syncws::Error>(())
        /// ```
        #[cfg(feature = "deflate")]
        pub fn compression(&self) -> Option<crate::DeflateParams> {
            self.conn.info.deflate
        }

        /// Server side: the value the gatekeeper attached with
        /// [`Accept::data`](crate::Accept::data), if it has type `T`.
        pub fn data<T: std::any::Any>(&self) -> Option<&T> {
            self.conn.info.data.as_deref()?.downcast_ref()
        }

        /// The peer's close frame, once the peer has sent one.
        pub fn close_frame(&self) -> Option<&crate::CloseFrame> {
            self.conn.peer_close.as_ref()
        }

        /// Round-trip time of the last heartbeat ping the peer answered
        /// (see [`Config::ping_interval`](crate::Config::ping_interval)).
        pub fn rtt(&self) -> Option<std::time::Duration> {
            self.conn.rtt()
        }

        /// The configuration this connection runs with.
        pub fn config(&self) -> &crate::Config {
            &self.conn.config
        }
    };
}

pub(crate) use connection_accessors;
