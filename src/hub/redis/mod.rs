//! A [`Backend`] on Redis pub/sub: the rooms of every hub that points at the same Redis (and
//! prefix) span all of their processes.
//!
//! ```text
//!   Hub::publish ──> forward(): envelope into a queue     publisher thread: PUBLISH prefix+room
//!                    bounded in bytes; Full or Down  ───>  (a pipeline of what is queued), on
//!                    at once, never a wait                 its own connection
//!                                                                  │
//!                                                                Redis
//!                                                                  │
//!   Inbound::deliver <── skip our own, check the sequence <── subscriber thread: one
//!   (local members only)                                      PSUBSCRIBE prefix*, its own
//!                                                             connection
//! ```
//!
//! Files: `envelope` lays out the bytes on a channel, `link` connects and backs off,
//! `publisher` and `subscriber` are the two threads. What it promises is documented on
//! [`RedisBackend`], where users read it.

mod envelope;
mod link;
mod publisher;
mod subscriber;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use super::backend::{Backend, Inbound, NotForwarded};
use crate::error::{BackendError, BackendErrorKind, Error, Result};
use crate::message::MessageRef;
use link::Shared;

/// Settings of a [`RedisBackend`]; see [`RedisBackend::builder`].
#[derive(Debug, Clone)]
pub struct RedisBuilder {
    url: String,
    prefix: String,
    queue: usize,
    backoff: (Duration, Duration),
    timeout: Duration,
    #[cfg(feature = "redis-tls")]
    root_certificate: Option<Vec<u8>>,
}

impl RedisBuilder {
    /// The start of every channel name: a room's channel is the prefix and the room's name.
    /// Hubs that share a Redis and a prefix share their rooms; give unrelated services
    /// different prefixes. Defaults to [`RedisBackend::DEFAULT_PREFIX`], `syncws:`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The most bytes of envelopes queued for the publisher thread; a publish past it is
    /// refused with [`NotForwarded::Full`]. One message always fits into an empty queue,
    /// whatever its size. Defaults to [`RedisBackend::DEFAULT_QUEUE`], 8 MiB: enough for a
    /// burst while a round trip to Redis is slow, small beside what the members' backlogs
    /// hold.
    pub fn queue(mut self, bytes: usize) -> Self {
        self.queue = bytes;
        self
    }

    /// The waits between reconnect attempts, doubling from `min` to `max` with up to half of
    /// each taken off at random (so that instances dropped together do not come back together).
    /// Defaults to 100 ms and 5 s: a restarted Redis is found within about 5 seconds, and an
    /// instance tries at most once a few seconds while it is gone.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff = (min, max.max(min));
        self
    }

    /// How long a connect, and each command's answer, may take before the connection counts
    /// as lost. Defaults to 5 seconds: long enough for a busy Redis, short enough that a dead
    /// one is noticed. Also the longest the threads outlive a dropped backend (an operation in
    /// flight finishes first; the drop itself never waits).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// For `rediss://` URLs (cargo feature `redis-tls`): the CA certificate (PEM) that Redis's
    /// certificate must chain to, instead of the system's roots, e.g. a private CA's.
    /// Defaults to none: the system's roots.
    #[cfg(feature = "redis-tls")]
    pub fn root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificate = Some(pem.into());
        self
    }

    /// The `redis` crate's client for the URL (and root certificate).
    fn client(&self) -> redis::RedisResult<redis::Client> {
        #[cfg(feature = "redis-tls")]
        if let Some(root) = &self.root_certificate {
            let certificates = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root.clone()),
            };
            return redis::Client::build_with_tls(self.url.as_str(), certificates);
        }
        redis::Client::open(self.url.as_str())
    }

    /// Connects to Redis twice (for the publisher and the subscriber) and checks each with a
    /// `PING`; the threads start when a hub attaches it. Fails with
    /// [`Error::Backend`](crate::Error::Backend): kind `Config` for an unusable URL or prefix,
    /// `Unreachable` when Redis cannot be reached, `Refused` when it refuses the password.
    pub fn build(self) -> Result<RedisBackend> {
        if self.prefix.is_empty() {
            return Err(config("the channel prefix must not be empty").into());
        }
        let client = self
            .client()
            .map_err(|e| config(format!("{:?}: {e}", link::redact(&self.url))))?;
        let shared = Arc::new(Shared::new(&self, &client));
        let publish = link::connect(&client, self.timeout).map_err(|e| shared.start_error(&e))?;
        let subscribe = link::connect(&client, self.timeout).map_err(|e| shared.start_error(&e))?;
        log::info!(
            "redis: connected to {} as instance {:016x}, channels {:?}",
            shared.addr,
            shared.instance,
            format!("{}*", self.prefix)
        );
        Ok(RedisBackend {
            shared,
            client,
            pending: Mutex::new(Some((publish, subscribe))),
        })
    }
}

fn config(message: impl Into<String>) -> BackendError {
    BackendError::new(BackendErrorKind::Config, message)
}

/// Rooms across processes through Redis pub/sub (cargo feature `redis`): the rooms of every
/// hub that points at the same Redis and prefix span all of their processes. Built by
/// [`RedisBackend::builder`], then handed to [`HubBuilder::backend`](crate::HubBuilder::backend).
///
/// # One pattern subscription
///
/// Each process holds one subscriber connection with one `PSUBSCRIBE <prefix>*`, set when it
/// connects and never changed; messages of rooms without members here are dropped locally (a
/// lookup that finds no room). The alternative, a `SUBSCRIBE` per room with members, would
/// make every join and leave a round trip on a connection that is blocked in a read, so the
/// thread would have to poll with short read timeouts, and a room's first messages after a
/// join would be lost until the subscription was confirmed. With the pattern, a member
/// receives from the moment it joins, and a reconnect resubscribes every room with one
/// command. The cost is traffic: every instance receives every room's messages. Where that
/// matters (many rooms, each on few instances), give groups of rooms their own prefix and hub.
///
/// # On the channel
///
/// A room's channel is the prefix followed by the room's name (`syncws:lobby`). Each message
/// is an envelope of 24 bytes followed by the payload as it is (binary-safe):
///
/// ```text
///   "sw" | version 1 | kind (1 text, 2 binary) | instance u64 | publisher u32 | sequence u64
/// ```
///
/// in big-endian order. The *instance* is a random id drawn when the backend is built: a
/// subscriber skips the messages of its own instance (the hub delivered them locally
/// already). The *sequence* counts each instance's messages per room from 1, under a
/// *publisher* epoch that changes when the instance starts its sequences over (after it has
/// numbered more than 65,536 rooms). A receiver drops a message whose number is not above the
/// last it saw from that instance and epoch in that room (a duplicate), and logs a gap (lost
/// messages). Messages that are not envelopes (another program publishing on the prefix, a
/// newer version, a text payload that is not UTF-8) are ignored and logged at `warn`, at most
/// one line per 10 seconds with a count.
///
/// # Guarantees
///
/// - **At most once.** Redis pub/sub keeps nothing: a message reaches the instances whose
///   subscriber is connected when Redis receives it. Nothing is ever sent twice; a message
///   whose `PUBLISH` may or may not have gone through is counted lost, not retried.
/// - **Order per publisher per room**: one publisher thread and connection per instance, in
///   the order the hub forwarded, and one subscriber connection per instance, in the order
///   Redis sent. Messages of different instances have no order between them.
/// - **Accepted means queued.** [`Backend::forward`] (and so
///   [`Forwarded::Queued`](crate::Forwarded::Queued) in a hub's
///   [`Delivery`](crate::Delivery)) says the message is in this process's queue, not that
///   Redis or anyone has it. It refuses at once, never waiting: [`NotForwarded::Full`] when
///   the queue holds [`RedisBuilder::queue`] bytes already, [`NotForwarded::Down`] while the
///   publisher has no connection. Local members get the message either way.
/// - **While Redis is unreachable** publishes are refused with `Down` (the hub logs each at
///   `debug`; [`RedisStats::refused_down`] counts them); messages that were queued when the
///   connection failed are dropped and counted in [`RedisStats::lost`]. The publisher pings
///   an idle connection every second, so a loss shows within about a second even without
///   traffic. Both threads reconnect with backoff ([`RedisBuilder::backoff`]) and log the loss
///   of a connection at `warn` and its return at `info`; delivery resumes within the longest
///   backoff of Redis coming back. What other instances published meanwhile never arrives
///   here. Socket threads never wait for any of it.
/// - **A slow instance**: Redis buffers what a subscriber has not read, up to its
///   `client-output-buffer-limit pubsub` (default `32mb 8mb 60`: 32 MiB at once, or 8 MiB for
///   a minute), then closes that connection. The subscriber sees the close, logs it, and
///   reconnects like after any drop; what Redis discarded is lost for this instance only. The
///   subscriber thread only decodes and queues (a hub never waits on a member), so it is slow
///   only when its machine is.
/// - **Redis down at start-up is an error**: [`RedisBuilder::build`] connects both
///   connections and fails with [`Error::Backend`](crate::Error::Backend) (kind
///   [`Unreachable`](crate::BackendErrorKind::Unreachable), or
///   [`Refused`](crate::BackendErrorKind::Refused) for a wrong password), rather than serve
///   rooms that silently span one process. Retry it, or let the service manager restart the
///   process. Once built, the backend never gives up.
/// - **Subscribed when the hub is built**: [`HubBuilder::build`](crate::HubBuilder::build)
///   returns once the subscription is confirmed, so messages published by others from then on
///   reach this hub's members.
///
/// The threads (`redis-publish`, `redis-subscribe`) and their connections end when the
/// backend is dropped, which happens with the hub that owns it, within
/// [`RedisBuilder::timeout`] at worst (an operation in flight), usually within 100 ms.
///
/// # Connecting
///
/// The URL is the `redis` crate's: `redis://[[user]:password@]host[:port][/db]`, e.g.
/// `redis://:secret@127.0.0.1:6379` for a server with `requirepass secret`, or
/// `redis+unix:///run/redis.sock`. TLS (`rediss://`) needs the cargo feature `redis-tls`
/// (OpenSSL through native-tls; without it such a URL fails with kind
/// [`Config`](crate::BackendErrorKind::Config)); a private CA is given with
/// `RedisBuilder::root_certificate`.
///
/// ```no_run
/// use syncws::{Hub, RedisBackend};
/// let redis = RedisBackend::builder("redis://127.0.0.1:6379").prefix("chat:").build()?;
/// let status = redis.status(); // to watch it later
/// let hub = Hub::builder().backend(redis).build()?;
/// hub.publish("lobby", "reaches the lobby on every instance");
/// println!("{:?}", status.stats());
/// # Ok::<(), syncws::Error>(())
/// ```
pub struct RedisBackend {
    shared: Arc<Shared>,
    client: redis::Client,
    /// The connections made by `build`, until `attach` hands them to the threads.
    pending: Mutex<Option<(redis::Connection, redis::Connection)>>,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("addr", &self.shared.addr)
            .field("prefix", &self.shared.prefix)
            .field("instance", &format_args!("{:016x}", self.shared.instance))
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// The default [`RedisBuilder::prefix`].
    pub const DEFAULT_PREFIX: &str = "syncws:";

    /// The default [`RedisBuilder::queue`]: 8 MiB.
    pub const DEFAULT_QUEUE: usize = 8 << 20;

    /// Settings for a backend on the Redis at `url` (see
    /// [Connecting](RedisBackend#connecting)), with the defaults.
    pub fn builder(url: impl Into<String>) -> RedisBuilder {
        RedisBuilder {
            url: url.into(),
            prefix: Self::DEFAULT_PREFIX.to_owned(),
            queue: Self::DEFAULT_QUEUE,
            backoff: (Duration::from_millis(100), Duration::from_secs(5)),
            timeout: Duration::from_secs(5),
            #[cfg(feature = "redis-tls")]
            root_certificate: None,
        }
    }

    /// A handle that tells how the backend is doing, usable after the backend went into a hub.
    pub fn status(&self) -> RedisStatus {
        RedisStatus {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Backend for RedisBackend {
    fn attach(&self, inbound: Inbound) -> Result<()> {
        let taken = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some((publish, subscribe)) = taken else {
            return Err(config("this backend is attached to a hub already").into());
        };
        publisher::start(Arc::clone(&self.shared), self.client.clone(), publish)?;
        let (subscribed, confirmed) = mpsc::channel();
        subscriber::start(
            Arc::clone(&self.shared),
            self.client.clone(),
            subscribe,
            inbound,
            subscribed,
        )?;
        // One extra second over the subscriber's own timeout, so its answer wins the race.
        let within = self.shared.timeout + Duration::from_secs(1);
        match confirmed.recv_timeout(within) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Backend(Box::new(e))),
            Err(_) => Err(BackendError::new(
                BackendErrorKind::Unreachable,
                format!(
                    "{}: no answer to PSUBSCRIBE within {within:?}",
                    self.shared.addr
                ),
            )
            .into()),
        }
    }

    fn forward(&self, room: &str, msg: MessageRef<'_>) -> Result<(), NotForwarded> {
        self.shared.forward(room, msg)
    }
}

impl Drop for RedisBackend {
    fn drop(&mut self) {
        // The threads see it at their next look (within 100 ms, or the operation in flight)
        // and close their connections; nothing here waits for them, since the last user of the
        // hub may be dropping it from the subscriber thread itself.
        self.shared.stop();
    }
}

/// How a [`RedisBackend`] is doing: from [`RedisBackend::status`], cheap to clone, and usable
/// after the backend is gone (its numbers then stay as they were).
#[derive(Clone)]
pub struct RedisStatus {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStatus")
            .field("up", &self.is_up())
            .field("stats", &self.stats())
            .finish()
    }
}

impl RedisStatus {
    /// Whether both connections (publisher and subscriber) are up now.
    pub fn is_up(&self) -> bool {
        self.shared.is_up()
    }

    /// The random id this backend puts into its envelopes (see
    /// [On the channel](RedisBackend#on-the-channel)).
    pub fn instance(&self) -> u64 {
        self.shared.instance
    }

    /// The counters so far.
    pub fn stats(&self) -> RedisStats {
        self.shared.counters.snapshot()
    }
}

/// What a [`RedisBackend`] has done since it was built; see [`RedisStatus::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStats {
    /// Messages PUBLISHed to Redis (Redis answered).
    pub published: u64,
    /// Messages that were accepted into the queue but did not reach Redis: queued or in flight
    /// when the publisher's connection failed, or still queued when the backend was dropped.
    pub lost: u64,
    /// Publishes refused with [`NotForwarded::Full`].
    pub refused_full: u64,
    /// Publishes refused with [`NotForwarded::Down`].
    pub refused_down: u64,
    /// Messages from other instances handed to the hub.
    pub received: u64,
    /// Messages of this instance that came back from Redis and were skipped.
    pub own_skipped: u64,
    /// Channel messages that were not envelopes, ignored.
    pub malformed: u64,
    /// Messages dropped because their sequence number was not new.
    pub duplicates: u64,
    /// Messages of other instances that never arrived, as told by gaps in their sequences.
    pub gaps: u64,
    /// Connections made again after a loss (publisher and subscriber together).
    pub reconnects: u64,
}

/// The counters behind [`RedisStats`], bumped by the threads and by `forward`.
#[derive(Default)]
struct Counters {
    published: AtomicU64,
    lost: AtomicU64,
    refused_full: AtomicU64,
    refused_down: AtomicU64,
    received: AtomicU64,
    own_skipped: AtomicU64,
    malformed: AtomicU64,
    duplicates: AtomicU64,
    gaps: AtomicU64,
    reconnects: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> RedisStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RedisStats {
            published: get(&self.published),
            lost: get(&self.lost),
            refused_full: get(&self.refused_full),
            refused_down: get(&self.refused_down),
            received: get(&self.received),
            own_skipped: get(&self.own_skipped),
            malformed: get(&self.malformed),
            duplicates: get(&self.duplicates),
            gaps: get(&self.gaps),
            reconnects: get(&self.reconnects),
        }
    }
}
