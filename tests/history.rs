//! The history against real databases: PostgreSQL (`VIGIL_DATABASE_URL`, a fresh schema per
//! test) and SQLite (a temporary file). Idempotency under replay and overlapping batches,
//! migrations on an empty and on an up-to-date database, list filters, show, and the writer
//! riding out a PostgreSQL outage with every row stored exactly once.
//!
//! The outputs are real: the rule pack run over the simulated users' fixture.

#[path = "common/database.rs"]
mod database;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use vigil::engine::{AlertState, Engine, EngineConfig, OutputEvent};
use vigil::event::Decoder;
use vigil::history::{
    HistoryRow, HistoryStore, HistoryWriter, ListFilter, RowState, WriterOptions, WriterState,
};
use vigil::io::pipeline::{run, Sinks};
use vigil::rules::load_rules;

const TIMEOUT: Duration = Duration::from_secs(10);

/// The outage test stops the PostgreSQL every other test here uses: it takes this for writing,
/// the others for reading.
static POSTGRES: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every output of the rule pack over the simulated users, in emission order.
fn outputs() -> Vec<OutputEvent> {
    let rules = Arc::new(load_rules(&[root().join("rules")]).expect("the rule pack is valid"));
    let mut engine = Engine::new(rules, EngineConfig::default());
    let input =
        std::fs::read(root().join("tests/fixtures/simulated-7-users.jsonl")).expect("the fixture");
    let (mut out, mut dead, mut late) = (Vec::new(), Vec::new(), Vec::new());
    let mut sinks = Sinks {
        outputs: &mut out,
        dead_letters: &mut dead,
        late: &mut late,
    };
    let decoder = Decoder::new();
    run(&mut engine, &decoder, &input[..], "test", &mut sinks).expect("runs");
    let outputs: Vec<OutputEvent> = String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("an output"))
        .collect();
    let kinds: BTreeSet<_> = outputs.iter().map(|o| o.event_type.as_str()).collect();
    assert_eq!(kinds.len(), 3, "firing, resolved and milestones: {kinds:?}");
    outputs
}

fn rows(outputs: &[OutputEvent]) -> Vec<HistoryRow> {
    outputs
        .iter()
        .map(|o| HistoryRow::from_output(o).expect("maps"))
        .collect()
}

/// One test's database: a SQLite file, or a PostgreSQL schema of its own.
struct TestDb {
    name: &'static str,
    url: String,
    _dir: Option<tempfile::TempDir>,
    schema: Option<(String, String)>,
}

impl TestDb {
    fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite:{}", dir.path().join("history.db").display());
        TestDb {
            name: "SQLite",
            url,
            _dir: Some(dir),
            schema: None,
        }
    }

    /// A fresh schema in `VIGIL_DATABASE_URL`'s database, made the connection's search path,
    /// so the tests (and their migrations tables) never meet.
    async fn postgres(base: &str) -> TestDb {
        static N: AtomicU32 = AtomicU32::new(0);
        let schema = format!(
            "history_test_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            Utc::now().timestamp_micros()
        );
        TestDb {
            name: "PostgreSQL",
            url: database::create_schema(base, &schema).await,
            _dir: None,
            schema: Some((base.to_string(), schema)),
        }
    }

    async fn store(&self) -> HistoryStore {
        HistoryStore::connect(&self.url, TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    async fn drop_schema(self) {
        if let Some((base, schema)) = &self.schema {
            let admin = sqlx::PgPool::connect(base)
                .await
                .expect("PostgreSQL answers");
            sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&admin)
                .await
                .expect("drop schema");
            admin.close().await;
        }
    }
}

/// SQLite, and PostgreSQL when there is one.
async fn databases() -> Vec<TestDb> {
    let mut dbs = vec![TestDb::sqlite()];
    if let Some(url) = database::database_url() {
        dbs.push(TestDb::postgres(&url).await);
    }
    dbs
}

#[tokio::test]
async fn replays_and_overlapping_batches_store_each_output_once() {
    let _pg = POSTGRES.read().await;
    let all = rows(&outputs());
    let n = all.len() as u64;
    for db in databases().await {
        let store = db.store().await;
        store.migrate().await.expect("migrate");
        let name = db.name;

        // A first batch that repeats ten of its rows: the second copies are skipped.
        let first: Vec<HistoryRow> = all[..60].iter().chain(&all[50..60]).cloned().collect();
        assert_eq!(store.insert(&first).await.expect("insert"), 60, "{name}");
        // Overlaps the first batch by 20 rows: only the rest are new.
        assert_eq!(
            store.insert(&all[40..]).await.expect("insert"),
            n - 60,
            "{name}"
        );
        assert_eq!(store.count().await.expect("count"), n, "{name}");

        // A whole replay, and a batch of rows stored already, twice over.
        assert_eq!(store.insert(&all).await.expect("replay"), 0, "{name}");
        let doubled: Vec<HistoryRow> = all[..10].iter().chain(&all[..10]).cloned().collect();
        assert_eq!(store.insert(&doubled).await.expect("doubled"), 0, "{name}");
        assert_eq!(store.count().await.expect("count"), n, "{name}");

        store.close().await;
        db.drop_schema().await;
    }
}

#[tokio::test]
async fn migrations_apply_to_an_empty_database_and_leave_a_current_one_alone() {
    let _pg = POSTGRES.read().await;
    let all = rows(&outputs());
    for db in databases().await {
        let name = db.name;
        let store = db.store().await;
        let before = store.migrations_current().await.expect("status");
        assert!(!before.is_current(), "{name}: empty database");
        assert_eq!(before.pending, [1, 2], "{name}");

        store.migrate().await.expect("migrate an empty database");
        let after = store.migrations_current().await.expect("status");
        assert!(after.is_current(), "{name}: {after:?}");
        store.insert(&all).await.expect("insert");
        store.close().await;

        // Up to date: a second start (a new pool, as a restarted `vigil run`) changes nothing.
        let again = db.store().await;
        again
            .migrate()
            .await
            .expect("migrate an up-to-date database");
        assert!(again
            .migrations_current()
            .await
            .expect("status")
            .is_current());
        assert_eq!(
            again.count().await.expect("count"),
            all.len() as u64,
            "{name}"
        );
        again.close().await;
        db.drop_schema().await;
    }
}

/// What `filter` should return, computed here the plain way.
fn expected(all: &[HistoryRow], filter: &ListFilter) -> Vec<String> {
    let mut rows: Vec<&HistoryRow> = all
        .iter()
        .filter(|r| filter.user.as_ref().is_none_or(|u| &r.user_id == u))
        .filter(|r| filter.rule.as_ref().is_none_or(|x| &r.rule_id == x))
        .filter(|r| filter.since.is_none_or(|s| r.time >= s))
        // The state as the list shows it: a milestone's kind stands in for the state it lacks.
        .filter(|r| {
            filter
                .state
                .is_none_or(|s| r.state.as_deref().unwrap_or(&r.kind) == s.name())
        })
        .collect();
    rows.sort_by(|a, b| b.time.cmp(&a.time).then(a.id.cmp(&b.id)));
    let limit = filter.limit.map_or(usize::MAX, |l| l as usize);
    rows.into_iter().take(limit).map(|r| r.id.clone()).collect()
}

#[tokio::test]
async fn list_filters_and_show_return_what_was_stored() {
    let _pg = POSTGRES.read().await;
    let outputs = outputs();
    let all = rows(&outputs);
    let busiest_user = {
        let mut users: Vec<&str> = all.iter().map(|r| r.user_id.as_str()).collect();
        users.sort_unstable();
        let mut best = ("", 0);
        for u in users.chunk_by(|a, b| a == b) {
            if u.len() > best.1 {
                best = (u[0], u.len());
            }
        }
        best.0.to_string()
    };
    let mut times: Vec<DateTime<Utc>> = all.iter().map(|r| r.time).collect();
    times.sort_unstable();
    let median_time = times[times.len() / 2];
    let filters = [
        ListFilter::default(),
        ListFilter {
            user: Some(busiest_user.clone()),
            ..Default::default()
        },
        ListFilter {
            rule: Some("sleep_poor_streak".into()),
            ..Default::default()
        },
        ListFilter {
            state: Some(AlertState::Firing.into()),
            ..Default::default()
        },
        ListFilter {
            state: Some(AlertState::Resolved.into()),
            ..Default::default()
        },
        ListFilter {
            state: Some(RowState::Milestone),
            ..Default::default()
        },
        ListFilter {
            since: Some(median_time),
            ..Default::default()
        },
        ListFilter {
            user: Some(busiest_user.clone()),
            state: Some(AlertState::Firing.into()),
            since: Some(times[0]),
            ..Default::default()
        },
        ListFilter {
            limit: Some(7),
            ..Default::default()
        },
        ListFilter {
            user: Some("nobody".into()),
            ..Default::default()
        },
    ];
    for db in databases().await {
        let name = db.name;
        let store = db.store().await;
        store.migrate().await.expect("migrate");
        store.insert(&all).await.expect("insert");
        for filter in &filters {
            let got: Vec<String> = store
                .list(filter)
                .await
                .expect("list")
                .into_iter()
                .map(|r| r.id)
                .collect();
            let want = expected(&all, filter);
            assert_eq!(got, want, "{name}: {filter:?}");
            assert!(
                !got.is_empty() || filter.user.as_deref() == Some("nobody"),
                "{name}: {filter:?} selects something"
            );
        }
        // Every row comes back as it went in, the CloudEvent byte for byte.
        for (row, output) in all.iter().zip(&outputs) {
            let shown = store.show(&row.id).await.expect("show");
            assert_eq!(shown.as_ref(), Some(row), "{name}");
            let shown = shown.expect("found");
            assert_eq!(
                shown.event,
                serde_json::to_string(output).expect("json"),
                "{name}"
            );
            assert_eq!(&shown.output().expect("parses"), output, "{name}");
        }
        assert_eq!(
            store.show("no-such-id").await.expect("show"),
            None,
            "{name}"
        );
        store.close().await;
        db.drop_schema().await;
    }
}

// ---------------------------------------------------------------- the outage

/// Polls `done` until it holds; a generous limit only stops a broken run from hanging.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(300);
    while !done() {
        assert!(Instant::now() < give_up, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_writer_keeps_everything_through_a_postgres_outage() {
    let Some(base) = database::database_url() else {
        return;
    };
    let Some(port) = database::outage_port(&base) else {
        return;
    };
    let _exclusive = POSTGRES.blocking_write();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let db = runtime.block_on(TestDb::postgres(&base));
    let outputs = outputs();
    let third = outputs.len() / 3;
    let (before, rest) = outputs.split_at(third);
    let (during, after) = rest.split_at(third);

    let options = WriterOptions {
        batch_size: 8,
        backoff_start: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        op_timeout: Duration::from_secs(5),
        max_queued: None,
    };
    let writer = HistoryWriter::start(&db.url, options).expect("starts");
    for o in before {
        writer.send(o).expect("queued");
    }
    wait_for("the first third is stored", || {
        writer.status().written == before.len() as u64
    });
    assert_eq!(writer.status().state, WriterState::Connected);

    let restart = database::Restart(port);
    database::services(&["down", "postgres"]);
    for o in during {
        writer.send(o).expect("queued while the database is down");
    }
    wait_for("the writer notices the outage", || {
        let s = writer.status();
        s.state == WriterState::Degraded && s.retries >= 2
    });
    let degraded = writer.status();
    assert_eq!(
        degraded.written,
        before.len() as u64,
        "nothing written while down"
    );
    assert_eq!(degraded.queued, during.len() as u64, "everything kept");
    assert!(degraded.last_error.is_some());

    restart.now();
    // After the restart: new outputs, and a replay of the first third (as after a rebalance).
    for o in after.iter().chain(before) {
        writer.send(o).expect("queued");
    }
    let report = writer.close(Duration::from_secs(120));
    assert_eq!(report.unwritten, 0, "{report:?}");
    assert_eq!(report.written, outputs.len() as u64, "{report:?}");

    runtime.block_on(async {
        let store = db.store().await;
        let stored = store
            .list(&ListFilter::default())
            .await
            .expect("list everything");
        assert_eq!(stored.len(), outputs.len(), "each output exactly once");
        let ids: BTreeSet<&str> = stored.iter().map(|r| r.id.as_str()).collect();
        let want: BTreeSet<&str> = outputs.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, want);
        store.close().await;
        db.drop_schema().await;
    });
}

// ---------------------------------------------------------------- the commands

fn vigil(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .current_dir(dir)
        .env_remove("VIGIL_DATABASE_URL")
        .args(args)
        .output()
        .expect("vigil runs")
}

#[test]
fn vigil_run_stores_its_outputs_once_and_alerts_reads_them_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = root().join("rules");
    let input = root().join("tests/fixtures/simulated-7-users.jsonl");
    let run_args = [
        "run",
        "--rules",
        rules.to_str().expect("utf-8 path"),
        "--input",
        input.to_str().expect("utf-8 path"),
    ];
    // Twice: the second run replays the same outputs and stores nothing new.
    let first = vigil(dir.path(), &run_args);
    assert!(first.status.success(), "{first:?}");
    let emitted: Vec<OutputEvent> = String::from_utf8_lossy(&first.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("an output"))
        .collect();
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(
        stderr.contains(&format!(
            "history: {} new in sqlite:vigil-history.db",
            emitted.len()
        )),
        "{stderr}"
    );
    let second = vigil(dir.path(), &run_args);
    assert!(second.status.success(), "{second:?}");
    assert!(String::from_utf8_lossy(&second.stderr).contains("history: 0 new"));

    let list = vigil(dir.path(), &["alerts", "list", "--json", "--limit", "0"]);
    assert!(list.status.success(), "{list:?}");
    let listed: Vec<serde_json::Value> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(listed.len(), emitted.len());
    let firing = vigil(
        dir.path(),
        &["alerts", "list", "--state", "firing", "--json"],
    );
    let firing_lines = String::from_utf8_lossy(&firing.stdout).lines().count();
    let want = emitted
        .iter()
        .filter(|o| o.data.state == Some(AlertState::Firing))
        .count();
    assert_eq!(firing_lines, want.min(100));

    let one = &emitted[0];
    let show = vigil(dir.path(), &["alerts", "show", &one.id, "--json"]);
    assert!(show.status.success(), "{show:?}");
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).expect("one object");
    assert_eq!(
        serde_json::from_value::<OutputEvent>(shown["event"].clone()).expect("the CloudEvent"),
        *one
    );
    let missing = vigil(dir.path(), &["alerts", "show", "no-such-id"]);
    assert_eq!(missing.status.code(), Some(6), "{missing:?}");

    // --no-history leaves the database alone.
    let other = tempfile::tempdir().expect("tempdir");
    let mut no_history = run_args.to_vec();
    no_history.push("--no-history");
    assert!(vigil(other.path(), &no_history).status.success());
    assert!(!other.path().join("vigil-history.db").exists());
}
