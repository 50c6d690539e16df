//! The connection's rules on top of the receiver: answering pings, the closing handshake,
//! failing on violations, and the clocks (the caller's deadline, the close deadline, the
//! heartbeat). Written once, for the whole socket and for the reader of a split one; how replies
//! reach the wire is the [`Link`]'s business.

use std::any::Any;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::opening::CloseRequest;
use super::read_clock::{self, Clocked};
use super::receiver::{Event, Fault, Receiver};
use super::{Role, State};
use crate::config::Config;
use crate::error::{Error, Result, is_timeout_kind};
use crate::io::{Transport, drain_until};
use crate::message::{CloseCode, CloseFrame, Message, MessageKind};
use crate::proto::close;
use crate::proto::frame::OpCode;
use crate::proto::head::Request;

/// How long a server reads stray bytes after a completed closing handshake before it drops the
/// socket; with nothing unread, dropping cannot cause a reset that loses our close frame.
const SERVER_LINGER: Duration = Duration::from_millis(100);

/// The sending side as the receive loop sees it.
pub(crate) trait Link {
    /// What the receive loop reads from.
    type Read: Transport + ?Sized;
    /// The stream to read from.
    fn read_half(&mut self) -> &mut Self::Read;
    /// Writes one whole frame; `compress` lets a data message be compressed (when
    /// permessage-deflate was negotiated). A failure closes the connection for every half.
    fn write_frame(
        &mut self,
        opcode: OpCode,
        fin: bool,
        payload: &[u8],
        compress: bool,
    ) -> Result<()>;
    /// Claims the right to send the one close frame; false if it already went out.
    fn begin_close(&mut self) -> bool;
    /// Whether a close frame went out (from any half).
    fn close_sent(&self) -> bool;
    /// Records that the connection is over and tells every other half.
    fn set_closed(&mut self);
    /// Whether the connection is over (possibly ended by another half).
    fn is_closed(&self) -> bool;
    /// Half-closes the sending direction.
    fn shutdown_write(&mut self);
    /// When a ping with this payload went out (from any half), if it was the last ping sent;
    /// forgets it, so one ping is answered once.
    fn ping_answered(&mut self, payload: &[u8]) -> Option<Instant>;
    /// Records that the peer answered our close or ended the stream, so a close waiting on
    /// another half knows it completed.
    fn set_answered(&mut self);
    /// The peer started the closing handshake with `frame` (it is not the echo of ours), for
    /// other halves to read once the reader is gone.
    fn peer_started_close(&mut self, _frame: &CloseFrame) {}
    /// Writes the fed messages (`WebSocket::feed`), if any; a failure closes the connection.
    fn flush_queued(&mut self) -> Result<()> {
        Ok(())
    }
    /// Bounds every socket call the reads make by `until` (`None` lifts it), for a stream that
    /// makes several per read (a TLS session reading a record; see
    /// [`Transport::set_deadline`]). Only a link that owns the whole stream does: a split
    /// stream's writers share that bound.
    fn bound_reads(&mut self, _until: Option<Instant>) {}
}

/// The last ping a link wrote, so the pong that answers it gives a round-trip time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SentPing {
    at: Instant,
    len: u8,
    payload: [u8; 125],
}

impl SentPing {
    /// A ping written now; `payload` is at most 125 bytes (a control frame's limit).
    pub fn now(payload: &[u8]) -> Self {
        let mut copy = [0u8; 125];
        let len = payload.len().min(125);
        copy[..len].copy_from_slice(&payload[..len]);
        SentPing {
            at: Instant::now(),
            len: len as u8,
            payload: copy,
        }
    }

    /// When this ping went out, if `pong` carries its payload.
    pub fn answered_by(&self, pong: &[u8]) -> Option<Instant> {
        (pong == &self.payload[..usize::from(self.len)]).then_some(self.at)
    }
}

/// Who the connection is with, for accessors and logs.
pub(crate) struct Info {
    pub id: u64,
    pub peer: Option<SocketAddr>,
    pub request: Option<Box<Request>>,
    pub protocol: Option<String>,
    /// What the server's gatekeeper attached (e.g. the authenticated user).
    pub data: Option<Box<dyn Any + Send + Sync>>,
    /// How the socket's owner asks it to close: the owner then shuts the reading side, and the
    /// receive that wakes up closes with the code asked for.
    pub close_request: Option<CloseRequest>,
    /// The permessage-deflate parameters agreed in the handshake.
    #[cfg(feature = "deflate")]
    pub deflate: Option<crate::DeflateParams>,
}

impl Info {
    pub fn new(id: u64, peer: Option<SocketAddr>) -> Self {
        Info {
            id,
            peer,
            request: None,
            protocol: None,
            data: None,
            close_request: None,
            #[cfg(feature = "deflate")]
            deflate: None,
        }
    }
}

impl std::fmt::Debug for Info {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Info")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Heartbeat {
    /// When bytes last arrived.
    last_rx: Instant,
    /// The outstanding heartbeat ping: when it went out and its payload.
    ping: Option<(Instant, [u8; 8])>,
    seq: u64,
    rtt: Option<Duration>,
}

/// One connection's receive-side rules over a [`Link`].
#[derive(Debug)]
pub(crate) struct Conn<L: Link> {
    pub link: L,
    pub rx: Receiver,
    pub role: Role,
    pub state: State,
    pub config: Config,
    pub info: Info,
    pub peer_close: Option<CloseFrame>,
    /// The connection ended as intended: the peer closed with a normal code, a closing handshake
    /// we started completed (whatever code the peer echoed), or our owner closed it. Receives
    /// then return `Ok(None)`.
    normal_end: bool,
    /// The code of the close frame we sent, for logs.
    sent_close: Option<CloseCode>,
    /// The peer's close frame opened the closing handshake rather than answering ours: a
    /// reconnecting client reconnects on the peer's word, never on the echo of its own close.
    peer_started: bool,
    /// Set while `try_recv` runs: the stream is non-blocking and timeouts are not armed.
    pub nonblocking: bool,
    read_timeout: Option<Duration>,
    close_deadline: Option<Instant>,
    hb: Heartbeat,
    /// When the last read of a streamed message returned to the application, which may take
    /// its time before the next: the heartbeat does not count that time against the peer.
    stream_paused: Option<Instant>,
}

impl<L: Link> Conn<L> {
    pub fn new(link: L, role: Role, config: Config, leftover: &[u8], info: Info) -> Self {
        let rx = Receiver::new(role, &config, leftover);
        Conn {
            link,
            rx,
            role,
            state: State::Open,
            config,
            info,
            peer_close: None,
            normal_end: false,
            sent_close: None,
            peer_started: false,
            nonblocking: false,
            // Unknown (the handshake left some timeout set); zero never fits, so the first
            // receive sets the one it needs.
            read_timeout: Some(Duration::ZERO),
            close_deadline: None,
            hb: Heartbeat {
                last_rx: Instant::now(),
                ping: None,
                seq: 0,
                rtt: None,
            },
            stream_paused: None,
        }
    }

    /// Moves everything but the link to a new link (used by `split`).
    pub fn relink<M: Link>(self, link: M) -> Conn<M> {
        Conn {
            link,
            rx: self.rx,
            role: self.role,
            state: self.state,
            config: self.config,
            info: self.info,
            peer_close: self.peer_close,
            normal_end: self.normal_end,
            sent_close: self.sent_close,
            peer_started: self.peer_started,
            nonblocking: false,
            read_timeout: self.read_timeout,
            close_deadline: self.close_deadline,
            hb: self.hb,
            stream_paused: self.stream_paused,
        }
    }

    /// The state, taking into account what other halves did.
    pub fn state(&self) -> State {
        if self.link.is_closed() {
            State::Closed
        } else if self.link.close_sent() {
            State::Closing
        } else {
            self.state
        }
    }

    /// Round-trip time of the last answered ping (the heartbeat's or one the user sent).
    pub fn rtt(&self) -> Option<Duration> {
        self.hb.rtt
    }

    /// The code of the close frame this side sent, if it sent one.
    pub fn sent_close(&self) -> Option<CloseCode> {
        self.sent_close
    }

    /// The peer's close frame if the peer started the closing handshake (not an echo of ours).
    pub fn peer_started_close(&self) -> Option<&CloseFrame> {
        self.peer_close.as_ref().filter(|_| self.peer_started)
    }

    /// What a receive on a closed connection returns: `Ok(None)` after a normal end, the peer's
    /// close frame as an error after a close it started with another code, and
    /// [`Error::Closed`] when the connection ended any other way (an error already reported).
    fn ended<T>(&self) -> Result<Option<T>> {
        match &self.peer_close {
            _ if self.normal_end => Ok(None),
            Some(frame) => Err(Error::PeerClosed(Box::new(frame.clone()))),
            None => Err(Error::Closed),
        }
    }

    /// Receives the next data message, or `None` once the peer has closed, giving up with
    /// [`Error::Timeout`] at `deadline`.
    pub fn recv_until(&mut self, deadline: Option<Instant>) -> Result<Option<Message>> {
        if self.rx.streaming() && self.end_stream(deadline)?.is_none() {
            return Ok(None);
        }
        self.recv_with(
            deadline,
            |rx, s| rx.next_event(s),
            |rx, kind| rx.take_message(kind.expect("whole messages")),
        )
    }

    /// Like `recv_until`, swapping the message into `out` instead of allocating one.
    pub fn recv_into(
        &mut self,
        out: &mut Vec<u8>,
        deadline: Option<Instant>,
    ) -> Result<Option<MessageKind>> {
        if self.rx.streaming() && self.end_stream(deadline)?.is_none() {
            return Ok(None);
        }
        self.recv_with(
            deadline,
            |rx, s| rx.next_event(s),
            |rx, kind| {
                rx.swap_message(out);
                kind.expect("whole messages")
            },
        )
    }

    /// The receive loop, whole or streamed: `next` reads the next event, `deliver` hands out a
    /// message (`Some(kind)`: a whole message, or a streamed one's end) or, streaming, the
    /// start of a message or bytes of it (`None`).
    fn recv_with<T>(
        &mut self,
        deadline: Option<Instant>,
        mut next: impl FnMut(
            &mut Receiver,
            &mut Clocked<'_, L::Read>,
        ) -> std::result::Result<Event, Fault>,
        mut deliver: impl FnMut(&mut Receiver, Option<MessageKind>) -> T,
    ) -> Result<Option<T>> {
        loop {
            if self.state != State::Closed && self.link.is_closed() {
                self.state = State::Closed;
            }
            match self.state {
                State::Closed => return self.ended(),
                State::Open if self.link.close_sent() => self.start_closing(),
                _ => {}
            }
            let wake = self.run_clocks(deadline)?;
            if !self.nonblocking {
                let now = Instant::now();
                self.arm(
                    wake.map(|w| w.saturating_duration_since(now)),
                    wake == deadline,
                )?;
            }
            // Fed messages go out before the receive would wait for the peer, which may be
            // waiting for them; while complete frames are buffered they keep gathering.
            if !self.rx.event_buffered()
                && let Err(e) = self.link.flush_queued()
            {
                self.state = State::Closed;
                return Err(e);
            }
            let before = self.rx.bytes_received();
            // The caller's deadline and the close timeout bound every read of this step; the
            // heartbeat's wake-up waits for the step (bytes arriving show the peer is alive).
            let until = [deadline, self.close_deadline].into_iter().flatten().min();
            let until = until.filter(|_| !self.nonblocking);
            if until.is_some() {
                self.link.bound_reads(until);
            }
            let stream = self.link.read_half();
            let result = next(
                &mut self.rx,
                &mut Clocked::new(stream, until, &mut self.read_timeout),
            );
            if until.is_some() {
                self.link.bound_reads(None);
                // A bounded stream arms its socket itself: the timeout in force is unknown.
                self.read_timeout = Some(Duration::ZERO);
            }
            if self.rx.bytes_received() != before {
                self.hb.last_rx = Instant::now();
            }
            match result {
                Ok(Event::Message(kind)) if self.state == State::Open => {
                    return Ok(Some(deliver(&mut self.rx, Some(kind))));
                }
                Ok(Event::Data) if self.state == State::Open => {
                    return Ok(Some(deliver(&mut self.rx, None)));
                }
                // RFC 6455 1.4: after sending a close frame, data may still arrive; drop it.
                Ok(Event::Message(kind)) => drop(self.rx.take_message(kind)),
                Ok(Event::Data) => self.rx.stream_discard(),
                Ok(Event::Ping) => {
                    if self.state == State::Open && !self.link.close_sent() {
                        let mut payload = [0u8; 125];
                        let n = self.rx.control_payload().len();
                        payload[..n].copy_from_slice(self.rx.control_payload());
                        // RFC 6455 5.5.2: answer a ping with a pong carrying the same data.
                        self.write(OpCode::Pong, &payload[..n])?;
                    }
                }
                Ok(Event::Pong) => self.on_pong(),
                Ok(Event::Close) => {
                    self.on_peer_close()?;
                    return self.ended();
                }
                Err(Fault::Protocol(e)) => {
                    let reason = self.rx.violation().to_owned();
                    return Err(self.fail(e.close_code(), &reason, e.into()));
                }
                Err(Fault::Io(e)) if is_timeout_kind(e.kind()) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(Error::Timeout);
                    }
                }
                Err(Fault::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(Fault::Io(_)) if self.close_requested().is_some() => {
                    // Our owner asked for a close and shut our reading side to wake us.
                    let (code, reason) = self.close_requested().expect("checked above");
                    log::debug!("ws#{} closing with {code} as its owner asked", self.info.id);
                    let _ = self.say_goodbye(Some(code), &reason);
                    self.link.shutdown_write();
                    self.state = State::Closed;
                    self.link.set_closed();
                    // Not an error for whoever receives: the connection ended as its owner
                    // meant it to (a server's shutdown, say), like a normal close.
                    self.normal_end = true;
                    return Ok(None);
                }
                Err(Fault::Io(e)) => {
                    if e.kind() == io::ErrorKind::UnexpectedEof {
                        self.link.set_answered();
                    }
                    let other_half_closed = self.link.is_closed();
                    self.state = State::Closed;
                    self.link.set_closed();
                    if other_half_closed {
                        return Err(Error::Closed);
                    }
                    log::debug!("ws#{} ended: {e}", self.info.id);
                    return Err(Error::Io(e));
                }
            }
        }
    }

    /// Starts receiving the next message as a stream and returns its kind once its first frame
    /// arrived; `None` once the peer has closed, as `recv_until`. The rest of a stream dropped
    /// before its end is skipped first.
    /// The flag says whether the message already ended (then nothing is left to read).
    pub fn recv_stream(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Option<(MessageKind, bool)>> {
        if self.rx.stream_kind().is_some() && self.end_stream(deadline)?.is_none() {
            return Ok(None);
        }
        self.stream_paused = None;
        self.rx.begin_stream(self.config.max_stream_size);
        // A whole receive that a timeout cut off continues as this stream.
        if let Some(kind) = self.rx.stream_kind() {
            return Ok(Some((kind, false)));
        }
        self.recv_with(
            deadline,
            |rx, s| rx.next_chunk(s),
            |rx, end| {
                let kind = end.or(rx.stream_kind()).expect("a message started");
                (kind, end.is_some())
            },
        )
    }

    /// The next bytes of the streamed message, at most `out.len()`; `Ok(0)` at its end. A
    /// connection that ended before it is an error: the message was cut short.
    pub fn stream_read(&mut self, out: &mut [u8], deadline: Option<Instant>) -> Result<usize> {
        if let Some(paused) = self.stream_paused.take() {
            let pause = paused.elapsed();
            self.hb.last_rx += pause;
            if let Some((sent, _)) = &mut self.hb.ping {
                *sent += pause;
            }
        }
        let result = self.stream_step(out, deadline);
        if self.rx.streaming() {
            self.stream_paused = Some(Instant::now());
        }
        result
    }

    fn stream_step(&mut self, out: &mut [u8], deadline: Option<Instant>) -> Result<usize> {
        loop {
            let data = self.rx.stream_data();
            if !data.is_empty() {
                let n = data.len().min(out.len());
                out[..n].copy_from_slice(&data[..n]);
                self.rx.stream_consume(n);
                return Ok(n);
            }
            if !self.rx.streaming() {
                return Err(self.cut_short());
            }
            match self.recv_with(deadline, |rx, s| rx.next_chunk(s), |_, end| end.is_some())? {
                Some(false) => {}
                Some(true) => return Ok(0),
                None => return Err(self.cut_short()),
            }
        }
    }

    /// A streamed message cut short by the end of the connection: the close frame of a peer
    /// that closed as an error (whatever its code, as the message is incomplete), else
    /// `Closed` (this side closed, or the connection ended without a close frame).
    fn cut_short(&self) -> Error {
        match self.peer_started_close() {
            Some(frame) => Error::PeerClosed(Box::new(frame.clone())),
            None => Error::Closed,
        }
    }

    /// Ends a streamed receive: skips the rest of a message being streamed (its frames are
    /// still checked, and count against the streamed-message limit). `None` if the connection
    /// ended meanwhile.
    fn end_stream(&mut self, deadline: Option<Instant>) -> Result<Option<()>> {
        while self.rx.stream_kind().is_some() {
            self.rx.stream_discard();
            let step = self.recv_with(
                deadline,
                |rx, s| rx.next_chunk(s),
                |rx, _| rx.stream_discard(),
            );
            if step?.is_none() {
                return Ok(None);
            }
        }
        self.stream_paused = None;
        self.rx.end_stream();
        Ok(Some(()))
    }

    fn close_requested(&self) -> Option<(CloseCode, String)> {
        self.info.close_request.as_ref()?.requested()
    }

    /// Acts on whichever clocks ran out; returns the next time one will.
    fn run_clocks(&mut self, deadline: Option<Instant>) -> Result<Option<Instant>> {
        let now = Instant::now();
        if self.close_deadline.is_some_and(|close_by| now >= close_by) {
            log::debug!("ws#{} peer did not answer our close in time", self.info.id);
            self.end_tcp();
            return Err(Error::Timeout);
        }
        let mut heartbeat = None;
        if let Some(interval) = self.config.ping_interval {
            let pong_timeout = self.config.pong_timeout;
            match self.hb.ping {
                Some((sent, _)) if now >= sent + pong_timeout => {
                    log::debug!("ws#{} no pong within {pong_timeout:?}", self.info.id);
                    let reason = format!("no pong within {pong_timeout:?}");
                    let err = Error::HeartbeatTimeout;
                    return Err(self.fail(CloseCode::INTERNAL_ERROR, &reason, err));
                }
                None if self.state == State::Open && now >= self.hb.last_rx + interval => {
                    self.hb.seq += 1;
                    let payload = self.hb.seq.to_be_bytes();
                    self.write(OpCode::Ping, &payload)?;
                    self.hb.ping = Some((now, payload));
                }
                _ => {}
            }
            // The next heartbeat event: the pong due (also for the ping just sent), or the
            // next ping.
            heartbeat = match self.hb.ping {
                Some((sent, _)) => Some(sent + pong_timeout),
                None if self.state != State::Open => None,
                None => Some(self.hb.last_rx + interval),
            };
        }
        // The caller's deadline is checked only after an attempt made no progress, so bytes
        // already buffered (or one non-blocking read in `try_recv`) still yield a message.
        Ok([deadline, self.close_deadline, heartbeat]
            .into_iter()
            .flatten()
            .min())
    }

    /// Sets the stream's read timeout (see [`read_clock::arm`]).
    fn arm(&mut self, want: Option<Duration>, precise: bool) -> Result<()> {
        read_clock::arm(self.link.read_half(), &mut self.read_timeout, want, precise)?;
        Ok(())
    }

    /// A pong arrived: if it answers the last ping we sent (or the heartbeat's), that gives the
    /// round-trip time. Unsolicited pongs are allowed and otherwise ignored (RFC 6455 5.5.3).
    fn on_pong(&mut self) {
        let payload = self.rx.control_payload();
        let mut sent = self.link.ping_answered(payload);
        if let Some((at, heartbeat)) = self.hb.ping
            && payload == heartbeat
        {
            sent = sent.or(Some(at));
            self.hb.ping = None;
        }
        if let Some(at) = sent {
            self.hb.rtt = Some(at.elapsed());
        }
    }

    fn write(&mut self, opcode: OpCode, payload: &[u8]) -> Result<()> {
        let result = self.link.write_frame(opcode, true, payload, false);
        if result.is_err() {
            self.state = State::Closed;
        }
        result
    }

    fn start_closing(&mut self) {
        if self.state == State::Open {
            self.state = State::Closing;
            self.close_deadline = Some(Instant::now() + self.config.close_timeout);
        }
    }

    /// Starts the closing handshake and waits for the peer's answer up to the close timeout.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        close::check_outgoing(code, reason).map_err(Error::InvalidInput)?;
        if self.state == State::Closed || self.link.is_closed() {
            return Ok(());
        }
        self.say_goodbye(Some(code), reason)?;
        self.start_closing();
        match self.recv_until(None) {
            Ok(_) | Err(Error::Closed) => Ok(()),
            // The peer dropped TCP after our close instead of answering: closed all the same.
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Sends our one close frame, unless one already went out (from any half).
    fn say_goodbye(&mut self, code: Option<CloseCode>, reason: &str) -> Result<()> {
        if !self.link.begin_close() {
            return Ok(());
        }
        self.sent_close = code;
        self.write(OpCode::Close, close::encode(code, reason).as_bytes())
    }

    /// The peer's close frame arrived: check it, answer it, end the connection.
    fn on_peer_close(&mut self) -> Result<()> {
        let frame = match close::parse(self.rx.control_payload()) {
            Ok(frame) => frame,
            Err(e) => return Err(self.fail(e.close_code(), &e.to_string(), e.into())),
        };
        log::debug!(
            "ws#{} peer closed with {} {:?}",
            self.info.id,
            frame.code,
            frame.reason
        );
        // A closing handshake we started ends normally whatever code the peer echoes.
        self.peer_started = !self.link.close_sent();
        self.normal_end = !self.peer_started || frame.code.is_normal();
        if self.peer_started {
            self.link.peer_started_close(&frame);
        }
        // RFC 6455 5.5.1: answer with a close frame, typically echoing the status code.
        let echo = (frame.code != CloseCode::NO_STATUS).then_some(frame.code);
        let _ = self.say_goodbye(echo, "");
        self.peer_close = Some(frame);
        self.link.set_answered();
        self.end_tcp_after_handshake();
        Ok(())
    }

    /// Fails the connection (RFC 6455 7.1.7): sends `code` with `reason` (what was wrong) unless
    /// a close already went out, ends TCP, and hands back `err` for the caller.
    fn fail(&mut self, code: CloseCode, reason: &str, err: Error) -> Error {
        log::debug!("ws#{} failing with {code} ({reason}): {err}", self.info.id);
        if self.state != State::Closed {
            let _ = self.say_goodbye(Some(code), close::fit_reason(reason));
        }
        self.end_tcp();
        err
    }

    /// The lingering TCP close: the server shuts down its sending side first (RFC 6455 7.1.1),
    /// then both read and discard until the peer's end-of-stream or the close timeout, so a close
    /// frame is not lost to a TCP reset.
    ///
    /// The whole close stays within one close timeout: if the closing handshake already used
    /// part of it, only the rest is spent here.
    fn end_tcp(&mut self) {
        let deadline = self.close_deadline.take();
        let deadline = deadline.unwrap_or_else(|| Instant::now() + self.config.close_timeout);
        self.linger_until(deadline);
    }

    /// Both close frames are exchanged: the server only lingers long enough to swallow stray
    /// bytes (a lazy client that keeps its socket open must not hold the thread for the whole
    /// close timeout); the client still waits for the server to close first.
    fn end_tcp_after_handshake(&mut self) {
        let deadline = self.close_deadline.take();
        let full = deadline.unwrap_or_else(|| Instant::now() + self.config.close_timeout);
        let deadline = match self.role {
            Role::Server => full.min(Instant::now() + SERVER_LINGER),
            Role::Client => full,
        };
        self.linger_until(deadline);
    }

    fn linger_until(&mut self, deadline: Instant) {
        self.state = State::Closed;
        if self.role == Role::Server {
            self.link.shutdown_write();
        }
        if !self.link.is_closed() {
            drain_until(self.link.read_half(), deadline);
            // The stream's read timeout is now unknown; zero never fits, so it is set anew.
            self.read_timeout = Some(Duration::ZERO);
        }
        if self.role == Role::Client {
            self.link.shutdown_write();
        }
        self.link.set_closed();
    }

    /// Gives up a streamed message whose first fragments went out: RFC 6455 cannot abandon a
    /// message, so the connection starts closing with 1011 (unless a close went out already).
    /// Nothing waits for the answer here; the next receive completes the handshake.
    pub fn abandon_message(&mut self) {
        if self.state() != State::Open {
            return;
        }
        log::debug!("ws#{} streamed message dropped unfinished", self.info.id);
        if self
            .say_goodbye(Some(CloseCode::INTERNAL_ERROR), "message abandoned")
            .is_ok()
        {
            self.start_closing();
        }
    }

    /// Sends a data or control frame from the user, refusing once closing has begun.
    pub fn send_frame(
        &mut self,
        opcode: OpCode,
        fin: bool,
        payload: &[u8],
        compress: bool,
    ) -> Result<()> {
        if self.state() != State::Open {
            return Err(Error::Closed);
        }
        let result = self.link.write_frame(opcode, fin, payload, compress);
        if result.is_err() {
            self.state = State::Closed;
        }
        result
    }
}
