//! The state several instances share and downstream services read: per-user status (alerts
//! firing, latest baselines, last event time), silences, and cooldown and dedup keys.
//!
//! With `redis.url` set it lives in Redis (key layout: [`keys`], `docs/redis.md`); without it
//! (the embedded default) the same behaviour runs in process ([`user::LocalStatus`]) and
//! silences are kept in the history database ([`db_silences`]).
//!
//! The engine never waits for any of it. [`StatusStore`] runs on a thread of its own: the run
//! loop hands it each batch's last event times and outputs, and reads the silences from a
//! snapshot that thread refreshes every [`SILENCE_REFRESH`]. While Redis is away, status
//! writes queue (last event times coalesced per user, outputs in order) and are retried with
//! backoff; the silences in force are the last ones read, expiring on time.

pub mod buffer;
pub mod db_silences;
pub mod keys;
pub mod redis_store;
pub mod silence;
pub mod user;

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::history::HistoryStore;
use crate::telemetry::metrics::Dependency;
use crate::telemetry::Check;
use redis_store::RedisStore;
use silence::SilenceSet;
use user::{LocalStatus, StatusOutput, UserStatus};

/// How often every instance reads the silences again: a new silence is honoured everywhere
/// within about this long.
pub const SILENCE_REFRESH: Duration = Duration::from_secs(1);
/// How often queued outputs are written to the status.
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// How often users' last event times are written: every user who sends anything is one
/// script call per write, so at 20 000 users sending 1 Hz a 200 ms cadence would cost Redis
/// 20 000 calls a second (measured: the engine's p99 latency rose from 70 to 315 ms on this
/// 2-core machine); every 5 s costs 4 000 and keeps the time 5 s fresh.
const TOUCH_EVERY: Duration = Duration::from_secs(5);
/// Outputs written per round trip.
const OUTPUTS_PER_WRITE: usize = 5_000;
/// Outputs kept while Redis is away; past this the oldest are dropped (and counted).
const MAX_QUEUED_OUTPUTS: usize = 1_000_000;
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LAST_RETRY: Duration = Duration::from_secs(30);

/// Why the shared state could not start.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("redis.url: {0}")]
    BadUrl(redis::RedisError),
    #[error("cannot start the shared-state thread: {0}")]
    Start(std::io::Error),
}

/// Where the shared state lives and how long each Redis call may take.
#[derive(Clone, Debug)]
pub struct StatusOptions {
    pub redis_url: Option<String>,
    pub key_prefix: String,
    /// Without Redis: the history database the silences are read from (`None`: no silences).
    pub silence_database: Option<String>,
    pub timeout: Duration,
    /// Without Redis: forget a user this long after their latest event, as the engine's state
    /// TTL does (Redis expires a user's status by itself, `STATUS_TTL` after its last write).
    pub state_ttl_ms: Option<i64>,
    /// How far ahead of the other users one user's clock may be and still count (see
    /// [`crate::engine::clock`]), for the in-process status's TTL.
    pub max_future_skew_ms: i64,
}

/// What health checks, `/readyz` and metrics read.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StoreStatus {
    /// `redis` or `in-process`.
    pub backend: &'static str,
    /// The last call to the store succeeded.
    pub reachable: bool,
    pub queued_outputs: usize,
    pub queued_users: usize,
    /// Outputs that changed a status (each id counted once, across instances).
    pub applied: u64,
    /// Outputs dropped because the queue was full while the store was away.
    pub dropped: u64,
    pub retries: u64,
    pub silences: usize,
    pub last_error: Option<String>,
}

impl StoreStatus {
    /// What `/readyz` says of it: Redis away is degraded, not unready, since the engine goes
    /// on and the status catches up.
    pub fn readiness(&self) -> Check {
        let queued = self.queued_outputs + self.queued_users;
        if self.reachable {
            Check::ready(format!(
                "{}; {} silences; {queued} changes queued",
                self.backend, self.silences
            ))
        } else {
            Check::degraded(format!(
                "unreachable, retrying ({}); {queued} changes wait",
                self.last_error.as_deref().unwrap_or("no answer")
            ))
        }
    }
}

enum Message {
    Batch {
        touched: Vec<(String, i64)>,
        outputs: Vec<StatusOutput>,
    },
    Close(Instant),
}

enum Store {
    Redis(Box<RedisStore>),
    Local(Arc<Mutex<LocalStatus>>),
}

/// The running shared state (see the module documentation).
pub struct StatusStore {
    sender: Option<mpsc::Sender<Message>>,
    silences: Arc<RwLock<Arc<SilenceSet>>>,
    status: Arc<Mutex<StoreStatus>>,
    local: Option<Arc<Mutex<LocalStatus>>>,
    thread: Option<JoinHandle<()>>,
}

impl StatusStore {
    /// Starts the thread, after one attempt to read the silences (so the first events
    /// already honour them). An unreachable store is not an error: it is retried.
    pub fn start(options: StatusOptions) -> Result<StatusStore, StatusError> {
        let (store, local) = match &options.redis_url {
            Some(url) => (
                Store::Redis(Box::new(
                    RedisStore::new(url, &options.key_prefix, options.timeout)
                        .map_err(StatusError::BadUrl)?,
                )),
                None,
            ),
            None => {
                let local = match options.state_ttl_ms {
                    Some(ttl) => LocalStatus::with_ttl(ttl, options.max_future_skew_ms),
                    None => LocalStatus::default(),
                };
                let local = Arc::new(Mutex::new(local));
                (Store::Local(Arc::clone(&local)), Some(local))
            }
        };
        let status = Arc::new(Mutex::new(StoreStatus {
            backend: if local.is_some() {
                "in-process"
            } else {
                "redis"
            },
            reachable: local.is_some(),
            ..StoreStatus::default()
        }));
        let silences = Arc::new(RwLock::new(Arc::new(SilenceSet::default())));
        let mut worker = Worker {
            store,
            silence_db: options.silence_database.clone().map(SilenceDb::new),
            timeout: options.timeout,
            silences: Arc::clone(&silences),
            status: Arc::clone(&status),
            touched: HashMap::new(),
            outputs: VecDeque::new(),
            retry_at: None,
            backoff: FIRST_RETRY,
        };
        worker.refresh_silences();
        let (sender, receiver) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("vigil-shared-state".into())
            .spawn(move || worker.run(&receiver))
            .map_err(StatusError::Start)?;
        Ok(StatusStore {
            sender: Some(sender),
            silences,
            status,
            local,
            thread: Some(thread),
        })
    }

    /// The silences in force (a snapshot; cheap).
    pub fn silences(&self) -> Arc<SilenceSet> {
        self.silences
            .read()
            .map(|s| Arc::clone(&s))
            .unwrap_or_default()
    }

    /// Hands over a batch's last event times (user, ms) and outputs.
    pub fn send(&self, touched: Vec<(String, i64)>, outputs: Vec<StatusOutput>) {
        if touched.is_empty() && outputs.is_empty() {
            return;
        }
        if let Some(sender) = &self.sender {
            // The thread only ends after Close: a failed send cannot lose anything it had.
            let _ = sender.send(Message::Batch { touched, outputs });
        }
    }

    pub fn status(&self) -> StoreStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The readiness condition of the shared state, for `/readyz`.
    pub fn readiness_probe(&self) -> impl Fn() -> Check + Send + Sync + 'static {
        let status = Arc::clone(&self.status);
        move || {
            status
                .lock()
                .map(|s| s.readiness())
                .unwrap_or_else(|_| Check::not_ready("the shared-state thread panicked"))
        }
    }

    /// A user's status in the in-process store (`None` with Redis: read Redis).
    pub fn local_user(&self, user: &str) -> Option<UserStatus> {
        self.local.as_ref()?.lock().ok()?.user(user)
    }

    /// Writes what is queued, waiting at most `timeout`, and stops the thread.
    pub fn close(mut self, timeout: Duration) -> StoreStatus {
        self.shutdown(timeout);
        self.status()
    }

    fn shutdown(&mut self, timeout: Duration) {
        if let Some(sender) = self.sender.take() {
            let _ = sender.send(Message::Close(Instant::now() + timeout));
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for StatusStore {
    fn drop(&mut self) {
        self.shutdown(Duration::from_secs(2));
    }
}

/// The history database the silences are read from when there is no Redis.
struct SilenceDb {
    url: String,
    runtime: Option<tokio::runtime::Runtime>,
    store: Option<HistoryStore>,
}

impl SilenceDb {
    fn new(url: String) -> SilenceDb {
        SilenceDb {
            url,
            runtime: None,
            store: None,
        }
    }

    fn active(&mut self, timeout: Duration) -> Result<Vec<silence::Silence>, String> {
        if self.runtime.is_none() {
            self.runtime = Some(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?,
            );
        }
        let Some(runtime) = &self.runtime else {
            return Err("no runtime".into());
        };
        let url = self.url.clone();
        let store = self.store.clone();
        let result = runtime.block_on(async move {
            let store = match store {
                Some(s) => s,
                None => {
                    let s = HistoryStore::connect(&url, timeout)
                        .await
                        .map_err(|e| e.to_string())?;
                    s.migrate().await.map_err(|e| e.to_string())?;
                    s
                }
            };
            let now = chrono::Utc::now();
            match tokio::time::timeout(timeout, db_silences::active(&store, now)).await {
                Ok(Ok(list)) => Ok((store, list)),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {timeout:?}")),
            }
        });
        match result {
            Ok((store, list)) => {
                self.store = Some(store);
                Ok(list)
            }
            Err(e) => {
                self.store = None;
                Err(e)
            }
        }
    }
}

fn update(status: &Mutex<StoreStatus>, f: impl FnOnce(&mut StoreStatus)) {
    if let Ok(mut s) = status.lock() {
        f(&mut s);
    }
}

struct Worker {
    store: Store,
    silence_db: Option<SilenceDb>,
    timeout: Duration,
    silences: Arc<RwLock<Arc<SilenceSet>>>,
    status: Arc<Mutex<StoreStatus>>,
    touched: HashMap<String, i64>,
    outputs: VecDeque<StatusOutput>,
    retry_at: Option<Instant>,
    backoff: Duration,
}

impl Worker {
    fn run(&mut self, receiver: &mpsc::Receiver<Message>) {
        let mut next_flush = Instant::now() + FLUSH_EVERY;
        let mut next_touch = Instant::now() + TOUCH_EVERY;
        let mut next_refresh = Instant::now() + SILENCE_REFRESH;
        let mut closing: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let due = next_flush.min(next_refresh).max(now);
            match receiver.recv_timeout(due - now) {
                Ok(Message::Batch { touched, outputs }) => self.queue(touched, outputs),
                Ok(Message::Close(deadline)) => closing = Some(deadline),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    closing.get_or_insert(Instant::now() + Duration::from_secs(2));
                }
            }
            let now = Instant::now();
            if now >= next_refresh {
                self.refresh_silences();
                next_refresh = now + SILENCE_REFRESH;
            }
            if closing.is_some() || now >= next_flush {
                // In process a touch is cheap, and the status's TTL goes by the times it
                // touches: every flush, or a fast run would hold seconds of users unexpired.
                let local = matches!(self.store, Store::Local(_));
                let touch = closing.is_some() || local || now >= next_touch;
                self.flush(closing.is_some(), touch);
                next_flush = now + FLUSH_EVERY;
                if touch {
                    next_touch = now + TOUCH_EVERY;
                }
            }
            if let Some(deadline) = closing {
                if self.is_empty() || Instant::now() >= deadline {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50).min(deadline - Instant::now()));
            }
        }
    }

    fn queue(&mut self, touched: Vec<(String, i64)>, outputs: Vec<StatusOutput>) {
        for (user, ms) in touched {
            let slot = self.touched.entry(user).or_insert(ms);
            *slot = (*slot).max(ms);
        }
        self.outputs.extend(outputs);
        let excess = self.outputs.len().saturating_sub(MAX_QUEUED_OUTPUTS);
        if excess > 0 {
            self.outputs.drain(..excess);
            self.update(|s| s.dropped += excess as u64);
        }
        self.publish_queue();
    }

    fn is_empty(&self) -> bool {
        self.touched.is_empty() && self.outputs.is_empty()
    }

    fn update(&self, f: impl FnOnce(&mut StoreStatus)) {
        update(&self.status, f);
    }

    fn publish_queue(&self) {
        let (outputs, users) = (self.outputs.len(), self.touched.len());
        self.update(|s| {
            s.queued_outputs = outputs;
            s.queued_users = users;
        });
    }

    /// Writes what is queued, unless a retry is not due yet (`closing` retries at once).
    /// Writes the queued outputs, and with `touch` the last event times too.
    fn flush(&mut self, closing: bool, touch: bool) {
        if self.outputs.is_empty() && (!touch || self.touched.is_empty()) {
            return;
        }
        if !closing && self.retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        let status = Arc::clone(&self.status);
        match &mut self.store {
            Store::Local(local) => {
                let now = Instant::now();
                if let Ok(mut local) = local.lock() {
                    local.prune(now);
                    if touch {
                        for (user, ms) in self.touched.drain() {
                            local.touch(&user, ms);
                        }
                    }
                    let applied = self
                        .outputs
                        .drain(..)
                        .filter(|o| local.apply(o, now))
                        .count();
                    update(&status, |s| s.applied += applied as u64);
                }
            }
            Store::Redis(redis) => loop {
                let touched: Vec<(String, i64)> = if touch {
                    self.touched
                        .iter()
                        .map(|(u, ms)| (u.clone(), *ms))
                        .collect()
                } else {
                    Vec::new()
                };
                let take = self.outputs.len().min(OUTPUTS_PER_WRITE);
                let outputs: Vec<StatusOutput> = self.outputs.range(..take).cloned().collect();
                match redis.apply(&touched, &outputs) {
                    Ok(applied) => {
                        if touch {
                            self.touched.clear();
                        }
                        self.outputs.drain(..take);
                        if self.retry_at.take().is_some() {
                            tracing::warn!("shared state: Redis is back; catching up");
                        }
                        self.backoff = FIRST_RETRY;
                        update(&status, |s| {
                            s.applied += applied;
                            s.reachable = true;
                            s.last_error = None;
                        });
                        if self.outputs.is_empty() {
                            break;
                        }
                    }
                    Err(e) => {
                        if self.retry_at.is_none() {
                            tracing::warn!(
                                error = %e,
                                "shared state: Redis is unreachable; status writes are queued \
                                 and retried"
                            );
                        }
                        crate::telemetry::metrics().dependency_retry(Dependency::Redis);
                        self.retry_at = Some(Instant::now() + self.backoff);
                        self.backoff = (self.backoff * 2).min(LAST_RETRY);
                        update(&status, |s| {
                            s.reachable = false;
                            s.retries += 1;
                            s.last_error = Some(e.to_string());
                        });
                        break;
                    }
                }
            },
        }
        self.publish_queue();
    }

    fn refresh_silences(&mut self) {
        let read = match (&mut self.store, &mut self.silence_db) {
            (Store::Redis(redis), _) => redis.silences().map_err(|e| e.to_string()),
            (Store::Local(_), Some(db)) => db.active(self.timeout),
            (Store::Local(_), None) => Ok(Vec::new()),
        };
        match read {
            Ok(list) => {
                let count = list.len();
                if let Ok(mut slot) = self.silences.write() {
                    *slot = Arc::new(SilenceSet::new(list));
                }
                self.update(|s| s.silences = count);
            }
            Err(e) => {
                let redis = matches!(self.store, Store::Redis(_));
                self.update(|s| {
                    s.last_error = Some(format!("reading the silences: {e}"));
                    if redis {
                        s.reachable = false;
                    }
                });
            }
        }
    }
}
