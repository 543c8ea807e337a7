//! The streaming path's history writer: the engine hands it rows and goes on; a thread of its
//! own writes them in batches.
//!
//! The engine never waits for the database. While the database is away the writer keeps every
//! row queued (in memory: nothing is dropped) and retries with exponential backoff; when the
//! database returns it reconnects, re-applies the migrations (a no-op when current) and
//! catches up. Inserts are idempotent on the id, so a batch that was written but whose answer
//! was lost is simply written again.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify};

use super::{redact_url, Backend, HistoryError, HistoryRow, HistoryStore};
use crate::engine::OutputEvent;
use crate::telemetry::{self, Check, Dependency};

/// How the writer batches and retries.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// Most rows in one INSERT.
    pub batch_size: usize,
    /// The first wait after a failure; doubled after each further failure.
    pub backoff_start: Duration,
    /// The longest wait between two attempts.
    pub backoff_max: Duration,
    /// The longest a connection or one statement may take before it counts as a failure, so a
    /// database that stops answering (rather than refusing) is retried too.
    pub op_timeout: Duration,
    /// Back-pressure: with `Some(n)`, queuing a row waits while `n` rows are queued and the
    /// database answers. A file run sets it, so that a history slower than the engine costs
    /// time instead of a queue of every output in memory (and rows left unwritten at the end);
    /// the streaming path leaves it `None`, never waiting. A database that is away never
    /// holds a row back.
    pub max_queued: Option<u64>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            batch_size: 500,
            backoff_start: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            op_timeout: Duration::from_secs(10),
            max_queued: None,
        }
    }
}

/// Whether the writer can reach its database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriterState {
    /// Not connected yet, and no attempt has failed.
    Starting,
    /// The last attempt succeeded.
    Connected,
    /// The last attempt failed; rows wait and the writer retries.
    Degraded,
    /// Closed; the thread has ended.
    Closed,
}

impl WriterState {
    pub fn name(self) -> &'static str {
        match self {
            WriterState::Starting => "starting",
            WriterState::Connected => "connected",
            WriterState::Degraded => "degraded",
            WriterState::Closed => "closed",
        }
    }

    fn from_u8(v: u8) -> WriterState {
        match v {
            0 => WriterState::Starting,
            1 => WriterState::Connected,
            2 => WriterState::Degraded,
            _ => WriterState::Closed,
        }
    }
}

/// A snapshot of the writer, cheap to take (for `health`, `/readyz`, metrics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriterStatus {
    pub state: WriterState,
    /// Rows handed over and not yet stored.
    pub queued: u64,
    /// Rows stored that were new.
    pub written: u64,
    /// Rows stored that were there already (a replay, or a retried batch).
    pub duplicates: u64,
    /// Failed attempts (connect, migrate or insert) so far.
    pub retries: u64,
    /// The latest failure, kept after recovery for diagnosis.
    pub last_error: Option<String>,
}

impl WriterStatus {
    /// How the history database stands for readiness: a database that is away degrades the
    /// service (rows wait, nothing is lost) but does not stop the engine, so it is not
    /// "not ready".
    pub fn readiness(&self) -> Check {
        match self.state {
            WriterState::Starting => {
                Check::ready("not connected yet (the writer connects with the first row)")
            }
            WriterState::Connected => {
                Check::ready(format!("connected; {} rows queued", self.queued))
            }
            WriterState::Degraded => Check::degraded(format!(
                "unreachable, retrying ({}); {} rows wait",
                self.last_error.as_deref().unwrap_or("no answer"),
                self.queued
            )),
            WriterState::Closed => Check::not_ready("the writer is closed"),
        }
    }
}

/// What [`HistoryWriter::close`] managed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseReport {
    /// Rows stored over the writer's life (new ones).
    pub written: u64,
    /// Rows still queued at the deadline: not stored.
    pub unwritten: u64,
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Shared {
    /// Which dependency a failed attempt is a retry toward, for the metrics.
    dependency: Option<Dependency>,
    state: AtomicU8,
    queued: AtomicU64,
    written: AtomicU64,
    duplicates: AtomicU64,
    retries: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Set by `close`: drain until then, then stop.
    deadline: Mutex<Option<Instant>>,
    /// Wakes a backoff sleep when `close` is called.
    wake: Notify,
}

impl Shared {
    fn set_state(&self, state: WriterState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }

    fn fail(&self, error: &HistoryError) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        if let Some(dependency) = self.dependency {
            telemetry::metrics().dependency_retry(dependency);
        }
        self.set_state(WriterState::Degraded);
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error.to_string());
        }
    }

    fn deadline(&self) -> Option<Instant> {
        self.deadline.lock().ok().and_then(|d| *d)
    }

    fn past_deadline(&self) -> bool {
        self.deadline().is_some_and(|d| Instant::now() >= d)
    }
}

/// Writes history rows in the background. See the module documentation.
pub struct HistoryWriter {
    tx: Option<mpsc::UnboundedSender<HistoryRow>>,
    max_queued: Option<u64>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl HistoryWriter {
    /// Starts the writer's thread. It connects (and migrates) in the background: an
    /// unreachable database is not an error here, it is the degraded state.
    pub fn start(url: &str, options: WriterOptions) -> Result<HistoryWriter, HistoryError> {
        // A URL with an unknown scheme will never work: say so now, not in a retry loop.
        let dependency = match Backend::from_url(url)? {
            Backend::Postgres => Dependency::Postgres,
            Backend::Sqlite => Dependency::Sqlite,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let max_queued = options.max_queued;
        let shared = Arc::new(Shared {
            dependency: Some(dependency),
            ..Shared::default()
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(HistoryError::Start)?;
        let url = url.to_string();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("vigil-history".to_string())
            .spawn(move || {
                runtime.block_on(write_loop(url, options, rx, Arc::clone(&thread_shared)));
                thread_shared.set_state(WriterState::Closed);
                // Rows never stored leave the gauge with the writer.
                let left = thread_shared.queued.load(Ordering::Relaxed);
                telemetry::metrics().history_queued_add(-i64::try_from(left).unwrap_or(i64::MAX));
            })
            .map_err(HistoryError::Start)?;
        Ok(HistoryWriter {
            tx: Some(tx),
            max_queued,
            shared,
            thread: Some(thread),
        })
    }

    /// Queues an output; waits only with `max_queued`.
    pub fn send(&self, output: &OutputEvent) -> Result<(), HistoryError> {
        self.send_row(HistoryRow::from_output(output)?)
    }

    /// Queues a row (e.g. one marked silenced); waits only with `max_queued` (see
    /// [`WriterOptions::max_queued`]).
    pub fn send_row(&self, row: HistoryRow) -> Result<(), HistoryError> {
        let tx = self.tx.as_ref().ok_or(HistoryError::Closed)?;
        if let Some(max) = self.max_queued {
            while self.shared.queued.load(Ordering::Relaxed) >= max
                && WriterState::from_u8(self.shared.state.load(Ordering::Relaxed))
                    == WriterState::Connected
            {
                std::thread::sleep(Duration::from_micros(500));
            }
        }
        // Counted before sending so that the writer never sees `queued` go below zero.
        self.shared.queued.fetch_add(1, Ordering::Relaxed);
        telemetry::metrics().history_queued_add(1);
        tx.send(row).map_err(|_| {
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
            telemetry::metrics().history_queued_add(-1);
            HistoryError::Closed
        })
    }

    pub fn status(&self) -> WriterStatus {
        status_of(&self.shared)
    }

    /// A readiness probe for the history database (see [`WriterStatus::readiness`]).
    pub fn readiness_probe(&self) -> impl Fn() -> Check + Send + Sync + 'static {
        let shared = Arc::clone(&self.shared);
        move || status_of(&shared).readiness()
    }

    /// Stops taking rows, writes what is queued for at most `timeout`, and ends the thread.
    /// Rows still queued at the deadline are reported, not stored.
    pub fn close(mut self, timeout: Duration) -> CloseReport {
        self.shutdown(timeout);
        let status = self.status();
        CloseReport {
            written: status.written,
            unwritten: status.queued,
            last_error: status.last_error,
        }
    }

    fn shutdown(&mut self, timeout: Duration) {
        if let Ok(mut deadline) = self.shared.deadline.lock() {
            *deadline = Some(Instant::now() + timeout);
        }
        // Dropping the sender ends the queue once it is drained.
        self.tx = None;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            // The loop checks the deadline between attempts and bounds each attempt by it.
            let _ = thread.join();
        }
    }
}

impl Drop for HistoryWriter {
    /// A writer dropped without `close` still gets a short drain, so an early return in the
    /// caller does not silently lose what was queued.
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shutdown(Duration::from_secs(5));
        }
    }
}

fn status_of(s: &Shared) -> WriterStatus {
    WriterStatus {
        state: WriterState::from_u8(s.state.load(Ordering::Relaxed)),
        queued: s.queued.load(Ordering::Relaxed),
        written: s.written.load(Ordering::Relaxed),
        duplicates: s.duplicates.load(Ordering::Relaxed),
        retries: s.retries.load(Ordering::Relaxed),
        last_error: s.last_error.lock().ok().and_then(|e| e.clone()),
    }
}

async fn write_loop(
    url: String,
    options: WriterOptions,
    mut rx: mpsc::UnboundedReceiver<HistoryRow>,
    shared: Arc<Shared>,
) {
    let batch_size = options.batch_size.max(1);
    let mut pending: VecDeque<HistoryRow> = VecDeque::new();
    let mut store: Option<HistoryStore> = None;
    let mut backoff = options.backoff_start;
    let mut open = true;
    loop {
        if pending.is_empty() {
            if !open || shared.past_deadline() {
                break;
            }
            match rx.recv().await {
                Some(row) => pending.push_back(row),
                None => {
                    open = false;
                    continue;
                }
            }
        }
        while pending.len() < batch_size {
            match rx.try_recv() {
                Ok(row) => pending.push_back(row),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if shared.past_deadline() {
            break;
        }
        let attempt = async {
            if store.is_none() {
                store = Some(connect(&url, &options, &shared).await?);
            }
            let Some(db) = store.as_ref() else {
                return Err(HistoryError::Closed);
            };
            let n = pending.len().min(batch_size);
            let batch: Vec<HistoryRow> = pending.iter().take(n).cloned().collect();
            let inserted = bounded(&options, &shared, db.insert(&batch)).await?;
            Ok((n, inserted))
        };
        match attempt.await {
            Ok((n, inserted)) => {
                pending.drain(..n);
                let n = n as u64;
                shared.queued.fetch_sub(n, Ordering::Relaxed);
                telemetry::metrics().history_queued_add(-i64::try_from(n).unwrap_or(i64::MAX));
                shared.written.fetch_add(inserted, Ordering::Relaxed);
                shared
                    .duplicates
                    .fetch_add(n.saturating_sub(inserted), Ordering::Relaxed);
                shared.set_state(WriterState::Connected);
                backoff = options.backoff_start;
            }
            Err(error) => {
                shared.fail(&error);
                // The pool may hold connections to a server that went away: start afresh, so
                // the next attempt also re-checks the migrations.
                if let Some(db) = store.take() {
                    let _ = tokio::time::timeout(options.op_timeout, db.close()).await;
                }
                let wait = match shared.deadline() {
                    Some(d) => backoff.min(d.saturating_duration_since(Instant::now())),
                    None => backoff,
                };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shared.wake.notified() => {}
                }
                backoff = (backoff * 2).min(options.backoff_max);
            }
        }
    }
    if let Some(db) = store {
        let _ = tokio::time::timeout(options.op_timeout, db.close()).await;
    }
}

async fn connect(
    url: &str,
    options: &WriterOptions,
    shared: &Shared,
) -> Result<HistoryStore, HistoryError> {
    let store = bounded(
        options,
        shared,
        HistoryStore::connect(url, options.op_timeout),
    )
    .await
    .map_err(|e| match e {
        // sqlx's messages rarely name the server; operators need to know which one.
        HistoryError::Database(e) => {
            HistoryError::BadUrl(format!("cannot connect to {}: {e}", redact_url(url)))
        }
        other => other,
    })?;
    bounded(options, shared, store.migrate()).await?;
    Ok(store)
}

/// Runs `op` for at most the operation timeout, or until the close deadline if that is sooner.
async fn bounded<T>(
    options: &WriterOptions,
    shared: &Shared,
    op: impl std::future::Future<Output = Result<T, HistoryError>>,
) -> Result<T, HistoryError> {
    let limit = match shared.deadline() {
        Some(d) => options
            .op_timeout
            .min(d.saturating_duration_since(Instant::now())),
        None => options.op_timeout,
    };
    tokio::time::timeout(limit, op)
        .await
        .map_err(|_| HistoryError::Timeout(limit))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str) -> HistoryRow {
        HistoryRow {
            id: id.to_string(),
            event_type: "io.vigil.milestone".into(),
            kind: "milestone".into(),
            rule_id: "r".into(),
            rule_version: 1,
            user_id: "u".into(),
            time: chrono::DateTime::from_timestamp(1_714_540_000, 0).unwrap_or_default(),
            night: None,
            state: None,
            severity: "info".into(),
            silenced: false,
            event: "{}".into(),
        }
    }

    #[test]
    fn an_unknown_scheme_fails_at_start() {
        let e = HistoryWriter::start("mysql://x/y", WriterOptions::default())
            .err()
            .expect("unknown scheme");
        assert!(e.to_string().contains("unknown scheme"), "{e}");
    }

    #[test]
    fn writes_to_sqlite_and_drains_on_close() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite:{}", dir.path().join("h.db").display());
        let writer = HistoryWriter::start(&url, WriterOptions::default()).expect("starts");
        for i in 0..1_200 {
            writer
                .send_row(row(&format!("id{}", i % 1_000)))
                .expect("queued");
        }
        let report = writer.close(Duration::from_secs(60));
        assert_eq!(report.written, 1_000);
        assert_eq!(report.unwritten, 0);
    }

    #[test]
    fn an_unreachable_database_is_degraded_and_reports_what_it_could_not_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A directory where the file should be: SQLite cannot open it, every attempt fails.
        let url = format!("sqlite:{}", dir.path().display());
        let options = WriterOptions {
            backoff_start: Duration::from_millis(10),
            ..Default::default()
        };
        let writer = HistoryWriter::start(&url, options).expect("starts");
        for i in 0..3 {
            writer.send_row(row(&format!("id{i}"))).expect("queued");
        }
        // The limit only keeps a broken writer from hanging the test run.
        let give_up = Instant::now() + Duration::from_secs(120);
        let status = loop {
            let s = writer.status();
            if s.retries >= 2 {
                break s;
            }
            assert!(Instant::now() < give_up, "no retries: {s:?}");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(status.state, WriterState::Degraded);
        assert_eq!(status.queued, 3);
        assert!(status.last_error.is_some());
        let report = writer.close(Duration::from_millis(100));
        assert_eq!(report.written, 0);
        assert_eq!(report.unwritten, 3);
    }
}
