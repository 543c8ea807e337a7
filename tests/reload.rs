//! Rules edited while `vigil run` runs, with the real binary fed on stdin one event at a
//! time: outputs before the switch carry the old version and after it the new one; a broken
//! edit is refused, the running rules go on, and `/readyz` and `vigil health` say why.
//!
//! No timing assertions: each step waits for what the process says (an output line, a log
//! line), with a generous bound only so that a broken build fails instead of hanging.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

/// The bound on any one wait: far beyond what any step takes, even on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(120);

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/rules/diff")
        .join(name)
}

fn command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vigil"));
    command.current_dir(dir).args(args).env("NO_COLOR", "1");
    for (var, _) in std::env::vars() {
        if var.starts_with("VIGIL_") || var == "RUST_LOG" {
            command.env_remove(var);
        }
    }
    command
}

fn lines_of(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

struct Run {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    /// Every stderr line read so far, for failure messages.
    log: Vec<String>,
}

impl Run {
    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("vigil reads stdin");
        stdin.flush().expect("flushed");
    }

    /// The next output line, as JSON.
    fn output(&mut self) -> serde_json::Value {
        let line = self
            .stdout
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|e| panic!("no output ({e}); stderr:\n{}", self.drain_log()));
        serde_json::from_str(&line).expect("outputs are JSON")
    }

    /// Reads stderr up to a line containing `text`.
    fn wait_log(&mut self, text: &str) -> String {
        loop {
            match self.stderr.recv_timeout(PATIENCE) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(e) => panic!("no {text:?} on stderr ({e}):\n{}", self.log.join("\n")),
            }
        }
    }

    fn drain_log(&mut self) -> String {
        while let Ok(line) = self.stderr.try_recv() {
            self.log.push(line);
        }
        self.log.join("\n")
    }
}

fn heart_rate(n: u32, bpm: u32) -> String {
    format!(
        r#"{{"id":"hr-{n}","type":"heart_rate","time":"2024-03-01T08:{n:02}:00Z","user_id":"u1","source":"test","data":{{"heart_rate":{bpm}}}}}"#
    )
}

fn free_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("an address")
}

/// `GET /readyz` of the running instance: its `rules` condition.
fn readyz_rules(address: SocketAddr) -> serde_json::Value {
    let mut stream = TcpStream::connect(address).expect("the listener answers");
    write!(
        stream,
        "GET /readyz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("request sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let body = &response
        [response.find('{').expect("a JSON body")..=response.rfind('}').expect("a JSON body")];
    let report: serde_json::Value = serde_json::from_str(body).expect("JSON");
    report["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "rules").cloned())
        .unwrap_or_else(|| panic!("no rules condition in {report}"))
}

/// Replaces `path` the way editors save: a new file renamed over the old one.
fn save(path: &Path, text: &str) {
    let temporary = path.with_extension("toml.swp");
    std::fs::write(&temporary, text).expect("written");
    std::fs::rename(&temporary, path).expect("renamed");
}

#[test]
fn an_edited_threshold_applies_between_events_and_a_broken_edit_keeps_the_running_rules() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).expect("rules folder");
    let rule = rules.join("hr_high.toml");
    std::fs::copy(fixture("v1/hr_high.toml"), &rule).expect("v1 copied");
    let address = free_address();
    let mut child = command(
        dir.path(),
        &[
            "run",
            "--rules",
            "rules",
            "--input",
            "-",
            "--no-history",
            "--http",
            &address.to_string(),
        ],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("vigil starts");
    let stdout = lines_of(child.stdout.take().expect("stdout"));
    let stderr = lines_of(child.stderr.take().expect("stderr"));
    let mut run = Run {
        stdin: child.stdin.take(),
        child,
        stdout,
        stderr,
        log: Vec::new(),
    };

    // v1: 160 bpm is high.
    run.send(&heart_rate(1, 160));
    let first = run.output();
    assert_eq!(first["data"]["rule_version"], 1);
    assert_eq!(readyz_rules(address)["state"], "ready");

    // A broken edit: refused, the process goes on with v1.
    std::fs::write(&rule, "id = \"hr_high\"\nversion = 2\nkind = \"alert\"\non = \"heart_rate\"\n[fire]\nwhen = \"heart_rate >= \"\n").expect("broken");
    let refused = run.wait_log("Rule reload refused");
    assert!(refused.contains("hr_high.toml"), "{refused}");
    let condition = readyz_rules(address);
    assert_eq!(condition["state"], "degraded", "{condition}");
    let detail = condition["detail"].as_str().unwrap_or_default().to_string();
    assert!(
        detail.contains("refused") && detail.contains("hr_high.toml"),
        "{detail}"
    );
    let health = command(
        dir.path(),
        &[
            "health",
            "--rules",
            "rules",
            "--instance",
            &address.to_string(),
        ],
    )
    .output()
    .expect("vigil health runs");
    let report = String::from_utf8_lossy(&health.stdout);
    let line = report
        .lines()
        .find(|l| l.contains("instance rules"))
        .unwrap_or_else(|| panic!("no instance line in\n{report}"));
    assert!(line.starts_with('!') && line.contains("refused"), "{line}");
    run.send(&heart_rate(2, 160));
    assert_eq!(run.output()["data"]["rule_version"], 1, "v1 still runs");

    // A valid edit with a new version: the next event is decided by v2.
    save(
        &rule,
        &std::fs::read_to_string(fixture("v2/hr_high.toml")).expect("v2"),
    );
    run.wait_log("Rule set checked");
    run.send(&heart_rate(3, 160)); // below v2's 170: no output
    run.send(&heart_rate(4, 180));
    let after = run.output();
    assert_eq!(after["data"]["rule_version"], 2);
    assert_eq!(
        after["data"]["input_event_ids"][0], "hr-4",
        "hr-3 decided nothing under v2"
    );
    let condition = readyz_rules(address);
    assert_eq!(condition["state"], "ready", "{condition}");
    assert!(
        condition["detail"]
            .as_str()
            .is_some_and(|d| d.contains("1 reload(s) applied")),
        "{condition}"
    );

    drop(run.stdin.take());
    let status = run.child.wait().expect("vigil ends");
    let log = run.drain_log();
    assert!(status.success(), "{status}\n{log}");
    assert!(log.contains("Rules reloaded."), "{log}");
    let rule_line = log
        .lines()
        .find(|l| l.contains("Rule reloaded.") && l.contains("hr_high"))
        .unwrap_or_else(|| panic!("no per-rule line:\n{log}"));
    assert!(rule_line.contains("kept"), "{rule_line}");
    assert!(run.stdout.try_recv().is_err(), "no other output");
}

#[test]
fn sighup_reloads_and_comment_only_edits_are_no_reload() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let rule = dir.path().join("hr_high.toml");
    std::fs::copy(fixture("v1/hr_high.toml"), &rule).expect("v1 copied");
    let mut child = command(
        dir.path(),
        &[
            "run",
            "--rules",
            "hr_high.toml",
            "--input",
            "-",
            "--no-history",
        ],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("vigil starts");
    let stdout = lines_of(child.stdout.take().expect("stdout"));
    let stderr = lines_of(child.stderr.take().expect("stderr"));
    let mut run = Run {
        stdin: child.stdin.take(),
        child,
        stdout,
        stderr,
        log: Vec::new(),
    };
    run.send(&heart_rate(1, 160));
    assert_eq!(run.output()["data"]["rule_version"], 1);

    let text = std::fs::read_to_string(&rule).expect("readable");
    save(&rule, &format!("# only a comment more\n{text}"));
    // SIGHUP after the edit: the loader reads the files and finds nothing new.
    let pid = run.child.id().to_string();
    let killed = Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    run.wait_log("the rules are unchanged");
    run.send(&heart_rate(2, 160));
    assert_eq!(run.output()["data"]["rule_version"], 1);

    drop(run.stdin.take());
    let status = run.child.wait().expect("vigil ends");
    let log = run.drain_log();
    assert!(status.success(), "{status}\n{log}");
    assert!(!log.contains("Rules reloaded."), "{log}");
}
