//! The `vigil` command as people and scripts use it, run as a built binary: no panics on
//! out-of-range arguments or a closed stdout, reading commands that create no database, clear
//! refusals of arguments that would only fail later, and files left only when written to.
//! Needs no server: the history is a SQLite file in a temporary folder.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// `vigil ARGS` in `dir`, without the caller's `VIGIL_…` variables (a developer's
/// `VIGIL_DATABASE_URL` or `VIGIL_REDIS_URL` must not redirect the commands).
fn command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vigil"));
    command.current_dir(dir).args(args).env("NO_COLOR", "1");
    for (var, _) in std::env::vars() {
        if var.starts_with("VIGIL_") {
            command.env_remove(var);
        }
    }
    command
}

fn vigil(dir: &Path, args: &[&str]) -> Output {
    let out = command(dir, args).output().expect("vigil runs");
    eprintln!(
        "vigil {args:?}: {}\nstdout:\n{}stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn no_panic(out: &Output) {
    assert!(!stderr(out).contains("panicked"), "{}", stderr(out));
    assert_ne!(out.status.code(), Some(101), "{}", stderr(out));
}

/// A folder with a history database holding the rule pack's outputs over the simulated
/// users (alerts firing and resolved, and milestones), and one silence.
struct Fixture {
    dir: tempfile::TempDir,
    /// `sqlite:…` of that database.
    history: String,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let history = format!("sqlite:{}", path(&dir.path().join("history.db")));
        let input = root().join("tests/fixtures/simulated-7-users.jsonl");
        let outputs = dir.path().join("outputs.jsonl");
        let rules = root().join("rules");
        let run = vigil(
            dir.path(),
            &[
                "run",
                "--rules",
                path(&rules),
                "--input",
                path(&input),
                "--output",
                path(&outputs),
                "--history",
                &history,
            ],
        );
        assert!(run.status.success(), "{}", stderr(&run));
        let silence = vigil(
            dir.path(),
            &[
                "silence",
                "add",
                "--user",
                "u1",
                "--for",
                "1h",
                "--history",
                &history,
            ],
        );
        assert!(silence.status.success(), "{}", stderr(&silence));
        Fixture { dir, history }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The stored rows, as `alerts list --json` gives them.
    fn rows(&self, extra: &[&str]) -> Vec<serde_json::Value> {
        let mut args = vec![
            "alerts",
            "list",
            "--json",
            "--limit",
            "0",
            "--history",
            &self.history,
        ];
        args.extend_from_slice(extra);
        let out = vigil(self.path(), &args);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }
}

// ------------------------------------------------------------ durations and dates in range

#[test]
fn durations_and_dates_out_of_range_are_usage_errors_naming_the_argument() {
    let dir = tempfile::tempdir().expect("tempdir");
    let history = format!("sqlite:{}", path(&dir.path().join("h.db")));
    let rules = root().join("rules");
    let input = root().join("tests/fixtures/simulated-7-users.jsonl");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "silence",
                "add",
                "--user",
                "u",
                "--for",
                "100000000d",
                "--history",
                &history,
            ],
            "--for",
        ),
        (
            vec![
                "run",
                "--rules",
                path(&rules),
                "--input",
                path(&input),
                "--no-history",
                "--allowed-lateness",
                "106751991167d",
            ],
            "--allowed-lateness",
        ),
        (
            vec![
                "run",
                "--rules",
                path(&rules),
                "--input",
                path(&input),
                "--no-history",
                "--allowed-lateness",
                "heartrate=1h",
            ],
            "`heartrate` is not an event type (known: heart_rate,",
        ),
        (
            vec![
                "run",
                "--rules",
                path(&rules),
                "--input",
                path(&input),
                "--no-history",
                "--state-ttl",
                "36501d",
            ],
            "--state-ttl",
        ),
        (
            vec!["run", "--kafka", "--exit-when-idle", "99999999999d"],
            "--exit-when-idle",
        ),
        (
            vec![
                "health",
                "--no-environment",
                "--rules",
                path(&rules),
                "--timeout",
                "36501d",
            ],
            "--timeout",
        ),
        (
            vec!["simulate", "--users", "1", "--days", "4000000000"],
            "--days",
        ),
        (
            vec!["simulate", "--users", "1", "--start", "10000-01-01"],
            "--start",
        ),
        (
            vec![
                "simulate",
                "--users",
                "1",
                "--start",
                "9999-12-01",
                "--days",
                "60",
            ],
            "--days",
        ),
    ];
    for (args, named) in &cases {
        let out = vigil(dir.path(), args);
        no_panic(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(named), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
    }
    // Nothing was stored by the refused silence.
    assert!(!dir.path().join("h.db").exists());

    let out = vigil(
        dir.path(),
        &[
            "alerts",
            "list",
            "--history",
            &history,
            "--since",
            "12345-01-01",
        ],
    );
    no_panic(&out);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("--since"), "{}", stderr(&out));
}

// ------------------------------------------------------------------------- closed stdout

/// Runs `vigil ARGS` with a stdout whose reading end is closed before it starts, as after
/// `| head -1` has read its line: every write fails with a broken pipe.
fn with_closed_stdout(dir: &Path, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let out = command(dir, args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("vigil runs");
    eprintln!(
        "vigil {args:?} | (closed): {}\nstderr:\n{}",
        out.status,
        stderr(&out)
    );
    out
}

#[test]
fn every_command_that_writes_to_stdout_exits_quietly_when_the_reader_is_gone() {
    let fixture = Fixture::new();
    let dir = fixture.path();
    let history = fixture.history.as_str();
    let rules = root().join("rules");
    let input = root().join("tests/fixtures/simulated-7-users.jsonl");
    let whoop = dir.join("cycles.csv");
    std::fs::write(&whoop, WHOOP_EXPORT).expect("write the export");
    let schemas = dir.join("schemas");
    let id = fixture.rows(&[])[0]["id"]
        .as_str()
        .expect("an id")
        .to_string();
    let commands: Vec<Vec<&str>> = vec![
        vec!["schema", "--out", path(&schemas)],
        vec!["check", path(&rules)],
        vec!["test", path(&rules)],
        vec!["health", "--no-environment", "--rules", path(&rules)],
        vec![
            "health",
            "--no-environment",
            "--rules",
            path(&rules),
            "--json",
        ],
        vec!["simulate", "--users", "1", "--days", "3"],
        vec!["import", "whoop", path(&whoop), "--user", "u1"],
        vec![
            "run",
            "--rules",
            path(&rules),
            "--input",
            path(&input),
            "--no-history",
        ],
        vec!["alerts", "list", "--history", history],
        vec!["alerts", "list", "--json", "--history", history],
        vec!["alerts", "show", &id, "--history", history],
        vec!["alerts", "show", &id, "--json", "--history", history],
        vec!["silence", "list", "--history", history],
        vec!["silence", "list", "--json", "--history", history],
        vec![
            "silence",
            "add",
            "--user",
            "u2",
            "--for",
            "1h",
            "--history",
            history,
        ],
        vec!["migrate", "--history", history],
        vec!["migrate", "--check", "--history", history],
        vec!["--help"],
    ];
    for args in &commands {
        let out = with_closed_stdout(dir, args);
        no_panic(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        let spew = stderr(&out);
        assert!(
            !spew.contains("error") && !spew.contains("Broken pipe"),
            "{args:?}: {spew}"
        );
    }
}

// ------------------------------------------------------- reading commands create nothing

#[test]
fn reading_commands_never_create_a_database_and_name_the_missing_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let typo = dir.path().join("typo.db");
    let typo_url = format!("sqlite:{}", path(&typo));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["alerts", "list"], "vigil-history.db"),
        (vec!["alerts", "show", "some-id"], "vigil-history.db"),
        (vec!["silence", "list"], "vigil-history.db"),
        (vec!["silence", "remove", "some-id"], "vigil-history.db"),
        (vec!["migrate", "--check"], "vigil-history.db"),
        (vec!["alerts", "list", "--history", &typo_url], path(&typo)),
        (
            vec!["alerts", "show", "some-id", "--history", &typo_url],
            path(&typo),
        ),
        (vec!["silence", "list", "--history", &typo_url], path(&typo)),
    ];
    for (args, named) in &cases {
        let out = vigil(dir.path(), args);
        no_panic(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let said = stderr(&out);
        assert!(said.contains(named), "{args:?}: {said}");
        assert!(said.contains("does not exist"), "{args:?}: {said}");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read the folder")
            .map(|e| e.expect("an entry").file_name())
            .collect();
        assert!(left.is_empty(), "{args:?} left {left:?}");
    }
}

#[test]
fn migrate_says_connection_refused_for_a_closed_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Port 1 (tcpmux) listens nowhere we run: the connection is refused.
    let out = vigil(
        dir.path(),
        &["migrate", "--history", "postgres://vigil@127.0.0.1:1/vigil"],
    );
    no_panic(&out);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(said.contains("connection refused"), "{said}");
    assert!(said.contains("127.0.0.1:1"), "{said}");
    assert!(!said.contains("pool timed out"), "{said}");
}

#[test]
fn migrate_check_exits_7_until_the_migrations_are_applied() {
    // 7, not the 5 of `topics show`: a deployment script that runs both tells them apart.
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("history.db");
    // An empty file is an empty SQLite database: it exists, and nothing is applied yet.
    std::fs::File::create(&db).expect("create the database file");
    let url = format!("sqlite:{}", path(&db));
    let check = ["migrate", "--check", "--history", &url];

    let out = vigil(dir.path(), &check);
    no_panic(&out);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(said.contains("migrations not current"), "{said}");
    assert!(said.contains("pending: "), "{said}");

    let out = vigil(dir.path(), &["migrate", "--history", &url]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = vigil(dir.path(), &check);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("migrations current"),
        "{}",
        stdout(&out)
    );
}

// -------------------------------------------------------------- arguments checked at once

#[test]
fn silence_add_checks_the_rule_against_the_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let history = format!("sqlite:{}", path(&dir.path().join("h.db")));
    let rules = root().join("rules");
    let add = |rule: &str| {
        vigil(
            dir.path(),
            &[
                "silence",
                "add",
                "--user",
                "u1",
                "--for",
                "1h",
                "--rule",
                rule,
                "--rules",
                path(&rules),
                "--history",
                &history,
            ],
        )
    };
    let out = add("no_such_rule");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(said.contains("--rule no_such_rule"), "{said}");
    assert!(
        said.contains("hrv_drop") && said.contains("no_data_48h"),
        "{said}"
    );
    assert!(!dir.path().join("h.db").exists(), "nothing stored");

    let out = add("hrv_drp");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("did you mean hrv_drop?"),
        "{}",
        stderr(&out)
    );

    let out = add("hrv_drop");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("rule hrv_drop"), "{}", stdout(&out));

    // Without --rule the rules are not needed (nor read).
    let out = vigil(
        dir.path(),
        &[
            "silence",
            "add",
            "--user",
            "u1",
            "--for",
            "1h",
            "--history",
            &history,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A WHOOP physiological_cycles export of two nights.
const WHOOP_EXPORT: &str = "Cycle start time,Cycle end time,Cycle timezone,\
    Resting heart rate (bpm),Heart rate variability (ms),Skin temp (celsius),Blood oxygen %,\
    Sleep onset,Wake onset,Respiratory rate (rpm),Asleep duration (min),\
    In bed duration (min),Awake duration (min),Sleep efficiency %
2024-03-09 23:40:00,,UTC+03:00,55,61.5,33.2,96.5,2024-03-09 23:40:00,2024-03-10 07:10:00,15.2,420,450,30,93
2024-03-08 23:40:00,,UTC+03:00,56,60.5,33.1,96.1,2024-03-08 23:40:00,2024-03-09 07:05:00,15.0,410,440,30,93
";

#[test]
fn import_refuses_user_ids_that_run_would_dead_letter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let whoop = dir.path().join("cycles.csv");
    std::fs::write(&whoop, WHOOP_EXPORT).expect("write the export");
    for user in ["", "   ", "a\tb", "alice\n", " alice"] {
        let out = vigil(
            dir.path(),
            &["import", "whoop", path(&whoop), "--user", user],
        );
        no_panic(&out);
        assert_eq!(out.status.code(), Some(2), "{user:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("--user"),
            "{user:?}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("user id"),
            "{user:?}: {}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty(), "{user:?}: no events written");
    }
    let out = vigil(
        dir.path(),
        &["import", "whoop", path(&whoop), "--user", "alice"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 12, "{}", stdout(&out));
}

#[test]
fn test_says_when_there_are_no_rule_tests() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        root().join("rules/hrv_drop.toml"),
        dir.path().join("hrv_drop.toml"),
    )
    .expect("copy a rule");
    let out = vigil(dir.path(), &["test", path(dir.path())]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains(&format!(
            "no rule tests (*.test.toml) found in {}",
            dir.path().display()
        )),
        "{said}"
    );
}

// ------------------------------------------------------------------------ vigil run files

fn hr(user: &str, time: &str) -> String {
    format!(
        r#"{{"id":"{user}-{time}","user_id":"{user}","type":"heart_rate","source":"t","time":"{time}","data":{{"heart_rate":61}}}}"#
    )
}

#[test]
fn run_creates_dead_letter_and_late_files_only_when_it_writes_to_them() {
    let rules = root().join("rules");
    let run = |dir: &Path, input: &str| {
        let file = dir.join("input.jsonl");
        std::fs::write(&file, input).expect("write the input");
        vigil(
            dir,
            &[
                "run",
                "--rules",
                path(&rules),
                "--input",
                path(&file),
                "--output",
                path(&dir.join("out.jsonl")),
                "--no-history",
            ],
        )
    };

    let clean = tempfile::tempdir().expect("tempdir");
    let input = format!(
        "{}\n{}\n",
        hr("u1", "2024-05-01T10:00:00Z"),
        hr("u1", "2024-05-01T10:00:01Z")
    );
    let out = run(clean.path(), &input);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!clean.path().join("dead-letter.jsonl").exists());
    assert!(!clean.path().join("late-events.jsonl").exists());
    let summary = stderr(&out);
    let line = summary
        .lines()
        .find(|l| l.starts_with("events in: "))
        .unwrap_or_else(|| panic!("a summary line: {summary}"));
    assert!(!line.contains(".jsonl"), "{line}");

    let messy = tempfile::tempdir().expect("tempdir");
    let input = format!(
        "{}\nnot json\n{}\n{{}}\n",
        hr("u1", "2024-05-01T10:00:00Z"),
        // Three hours behind its user: later than the default allowed lateness of 1h.
        hr("u1", "2024-05-01T07:00:00Z"),
    );
    let out = run(messy.path(), &input);
    assert!(out.status.success(), "{}", stderr(&out));
    let dead = std::fs::read_to_string(messy.path().join("dead-letter.jsonl")).expect("dead");
    let late = std::fs::read_to_string(messy.path().join("late-events.jsonl")).expect("late");
    assert_eq!(dead.lines().count(), 2, "{dead}");
    assert_eq!(late.lines().count(), 1, "{late}");
    let summary = stderr(&out);
    let line = summary
        .lines()
        .find(|l| l.starts_with("events in: "))
        .unwrap_or_else(|| panic!("a summary line: {summary}"));
    assert!(
        line.ends_with(
            ", dead-lettered: 2, dead letters in dead-letter.jsonl: 2, \
             late events in late-events.jsonl: 1"
        ),
        "{line}"
    );
}

// ------------------------------------------------------------------------ alerts --state

#[test]
fn alerts_list_accepts_every_state_it_shows() {
    let fixture = Fixture::new();
    let all = fixture.rows(&[]);
    let shown_as = |row: &serde_json::Value| {
        row["state"]
            .as_str()
            .or(row["kind"].as_str())
            .expect("a state or a kind")
            .to_string()
    };
    let mut states: Vec<String> = all.iter().map(shown_as).collect();
    states.sort();
    states.dedup();
    assert_eq!(
        states,
        ["firing", "milestone", "resolved"],
        "the fixture has all"
    );
    for state in &states {
        let rows = fixture.rows(&["--state", state]);
        let want = all.iter().filter(|r| &shown_as(r) == state).count();
        assert_eq!(rows.len(), want, "--state {state}");
        assert!(
            rows.iter().all(|r| &shown_as(r) == state),
            "--state {state}"
        );
    }
    // The table shows the same words.
    let out = vigil(
        fixture.path(),
        &[
            "alerts",
            "list",
            "--state",
            "milestone",
            "--history",
            &fixture.history,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("  milestone  "), "{}", stdout(&out));
}
