//! The checks together: the overall status, the exit code, and the two ways of showing them.

use serde::Serialize;

use super::{Check, Status};

/// Every check `vigil health` ran (or skipped), and what they add up to.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// `ok`, `degraded` or `failing`: the worst check (skipped ones do not count).
    pub status: Status,
    /// What the command exits with: 0 healthy, 1 degraded, 2 failing.
    pub exit_code: u8,
    pub counts: Counts,
    pub checks: Vec<Check>,
}

/// How many checks ended each way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub ok: usize,
    pub degraded: usize,
    pub failing: usize,
    pub skipped: usize,
}

impl Report {
    pub fn new(checks: Vec<Check>) -> Report {
        let mut counts = Counts::default();
        for c in &checks {
            match c.status {
                Status::Ok => counts.ok += 1,
                Status::Degraded => counts.degraded += 1,
                Status::Failing => counts.failing += 1,
                Status::Skipped => counts.skipped += 1,
            }
        }
        // Skipped is the lowest status, so a report of nothing but skips is still healthy.
        let status = checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Ok)
            .max(Status::Ok);
        Report {
            status,
            exit_code: exit_code(status),
            counts,
            checks,
        }
    }

    /// One line per check (its notes indented below it), then the summary.
    pub fn render(&self, color: bool) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let mark = paint(c.status, color);
            out.push_str(&format!("{mark} {} {}\n", c.name(), c.detail));
            for note in &c.notes {
                out.push_str(&format!("    {note}\n"));
            }
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    /// `healthy: 14 ok, 2 skipped` / `degraded: 1 degraded, 13 ok (exit 1)` / …
    pub fn summary(&self) -> String {
        let word = match self.status {
            Status::Failing => "failing",
            Status::Degraded => "degraded",
            Status::Ok | Status::Skipped => "healthy",
        };
        let n = self.counts;
        let parts: Vec<String> = [
            (n.failing, "failing"),
            (n.degraded, "degraded"),
            (n.ok, "ok"),
            (n.skipped, "skipped"),
        ]
        .iter()
        .filter(|(count, _)| *count > 0)
        .map(|(count, what)| format!("{count} {what}"))
        .collect();
        format!("{word}: {} (exit {})", parts.join(", "), self.exit_code)
    }
}

/// 0 healthy, 1 degraded, 2 failing.
pub fn exit_code(status: Status) -> u8 {
    match status {
        Status::Ok | Status::Skipped => 0,
        Status::Degraded => 1,
        Status::Failing => 2,
    }
}

fn paint(status: Status, color: bool) -> String {
    let symbol = status.symbol();
    if !color {
        return symbol.to_string();
    }
    let code = match status {
        Status::Ok => "32",
        Status::Degraded => "33",
        Status::Failing => "31",
        Status::Skipped => "2",
    };
    format!("\x1b[{code}m{symbol}\x1b[0m")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Figure;

    fn check(kind: &'static str, target: &str, status: Status, detail: &str) -> Check {
        Check::start(kind, target).finish(status, detail)
    }

    #[test]
    fn the_worst_check_decides_and_skips_do_not_count() {
        let ok = check("config", "vigil.toml", Status::Ok, "valid");
        let skipped = check(
            "kafka.topic",
            "alerts",
            Status::Skipped,
            "skipped: no broker",
        );
        let degraded = check("redis", "redis://h:1", Status::Degraded, "unreachable");
        let failing = check("kafka.broker", "h:9092", Status::Failing, "unreachable");

        let r = Report::new(vec![ok.clone(), skipped.clone()]);
        assert_eq!((r.status, r.exit_code), (Status::Ok, 0));
        let r = Report::new(vec![skipped.clone()]);
        assert_eq!((r.status, r.exit_code), (Status::Ok, 0));
        let r = Report::new(vec![ok.clone(), degraded.clone(), skipped.clone()]);
        assert_eq!((r.status, r.exit_code), (Status::Degraded, 1));
        let r = Report::new(vec![degraded, failing, ok, skipped]);
        assert_eq!((r.status, r.exit_code), (Status::Failing, 2));
        assert_eq!(
            r.counts,
            Counts {
                ok: 1,
                degraded: 1,
                failing: 1,
                skipped: 1
            }
        );
    }

    #[test]
    fn one_line_per_check_then_the_summary() {
        let broker = check(
            "kafka.broker",
            "127.0.0.1:19092",
            Status::Ok,
            "reachable (3.0 ms)",
        )
        .with_figure(Figure::latency(std::time::Duration::from_millis(3)));
        let rules = check("rules", "rules", Status::Failing, "1 problem")
            .with_notes(vec!["bad.toml:3:5: unknown field `x`".to_string()]);
        let topic = check(
            "kafka.topic",
            "alerts",
            Status::Skipped,
            "skipped: no broker answered",
        );
        let text = Report::new(vec![broker, rules, topic]).render(false);
        assert_eq!(
            text,
            "✓ kafka broker 127.0.0.1:19092 reachable (3.0 ms)\n\
             ✗ rules rules 1 problem\n    bad.toml:3:5: unknown field `x`\n\
             - kafka topic alerts skipped: no broker answered\n\
             failing: 1 failing, 1 ok, 1 skipped (exit 2)\n"
        );
    }

    #[test]
    fn colour_marks_only_the_symbol() {
        let r = Report::new(vec![check("redis", "r", Status::Degraded, "slow")]);
        assert!(r
            .render(true)
            .starts_with("\x1b[33m!\x1b[0m redis r slow\n"));
    }

    #[test]
    fn json_has_the_checks_and_the_verdict() {
        let redis = check("redis", "redis://h:1", Status::Degraded, "unreachable")
            .with_figure(Figure::latency(std::time::Duration::from_micros(1500)));
        let value = serde_json::to_value(Report::new(vec![redis])).expect("serializes");
        assert_eq!(value["status"], "degraded");
        assert_eq!(value["exit_code"], 1);
        assert_eq!(value["counts"]["degraded"], 1);
        let c = &value["checks"][0];
        assert_eq!(c["kind"], "redis");
        assert_eq!(c["target"], "redis://h:1");
        assert_eq!(c["status"], "degraded");
        assert_eq!(c["figure"]["name"], "latency");
        assert_eq!(c["figure"]["value"], 1.5);
        assert_eq!(c["figure"]["unit"], "ms");
        assert!(c.get("notes").is_none(), "empty notes are left out: {c}");
    }
}
