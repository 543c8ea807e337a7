//! `vigil alerts list` and `vigil alerts show ID`: the stored history, a table for people and
//! JSON for scripts.

use std::io::{self, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::engine::AlertState;
use crate::history::{parse_since, HistoryRow, ListFilter, RowState};

#[derive(Args, Debug)]
pub struct AlertsArgs {
    #[command(subcommand)]
    command: AlertsCommand,
    /// The history database (default: VIGIL_DATABASE_URL, else history.url of vigil.toml,
    /// else sqlite:vigil-history.db).
    #[arg(long, global = true, value_name = "URL")]
    history: Option<String>,
    /// The configuration file (default: ./vigil.toml when it exists).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum AlertsCommand {
    /// Alerts (firing and resolved) and milestones, newest first.
    List(ListArgs),
    /// One alert or milestone, with its CloudEvent.
    Show(ShowArgs),
}

#[derive(Args, Debug)]
struct ListArgs {
    /// Only this user's.
    #[arg(long)]
    user: Option<String>,
    /// Only this rule's (its id, e.g. hrv_drop).
    #[arg(long)]
    rule: Option<String>,
    /// Only those at or after: a duration back from now ("7d", "36h"), an RFC 3339 time, or a
    /// date (midnight UTC).
    #[arg(long)]
    since: Option<String>,
    /// Only rows in this state, as the list shows it: alerts firing or resolved, or
    /// milestones.
    #[arg(long, value_enum)]
    state: Option<StateArg>,
    /// At most this many, newest first; 0 for all.
    #[arg(long, default_value_t = 100)]
    limit: u64,
    /// JSON lines on stdout, one object per row: id, type, kind, rule_id, rule_version,
    /// user_id, time (UTC), night, state, severity, silenced, and event (the CloudEvent).
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct ShowArgs {
    /// The CloudEvent id.
    id: String,
    /// One JSON object (the fields of `list --json`).
    #[arg(long)]
    json: bool,
}

/// Every value the list's STATE column shows (besides the "(silenced)" mark).
#[derive(Clone, Copy, Debug, ValueEnum)]
enum StateArg {
    Firing,
    Resolved,
    Milestone,
}

pub fn run(args: AlertsArgs) -> anyhow::Result<u8> {
    let url = match super::history_url(args.history, args.config.as_deref()) {
        Ok(url) => url,
        Err(code) => return Ok(code),
    };
    let filter = match &args.command {
        AlertsCommand::List(list) => Some(list_filter(list)?),
        AlertsCommand::Show(_) => None,
    };
    let runtime = super::runtime()?;
    let store = super::connect_history(&runtime, &url, super::DB_TIMEOUT, super::Open::Existing)?;
    let found = runtime.block_on(async {
        // A database from an older build (or a PostgreSQL one nothing has written to yet) is
        // brought up to date rather than failing with "no such table".
        store.migrate().await?;
        let found = match (&args.command, &filter) {
            (AlertsCommand::List(_), Some(filter)) => store.list(filter).await.map(Found::List),
            (AlertsCommand::Show(show), _) => store.show(&show.id).await.map(Found::One),
            (AlertsCommand::List(_), None) => Ok(Found::List(Vec::new())),
        };
        store.close().await;
        found
    })?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    match (args.command, found) {
        (AlertsCommand::List(list), Found::List(rows)) => {
            if list.json {
                for row in &rows {
                    serde_json::to_writer(&mut out, row)?;
                    out.write_all(b"\n")?;
                }
            } else if rows.is_empty() {
                eprintln!("no alerts or milestones match");
            } else {
                out.write_all(render_table(&rows).as_bytes())?;
            }
            out.flush()?;
            if list.limit > 0 && rows.len() as u64 == list.limit && !list.json {
                eprintln!("(the newest {}; --limit 0 lists all)", list.limit);
            }
            Ok(0)
        }
        (AlertsCommand::Show(show), Found::One(Some(row))) => {
            if show.json {
                serde_json::to_writer(&mut out, &row)?;
                out.write_all(b"\n")?;
            } else {
                out.write_all(render_one(&row).as_bytes())?;
            }
            out.flush()?;
            Ok(0)
        }
        (AlertsCommand::Show(show), Found::One(None)) => {
            eprintln!("no alert or milestone with id {}", show.id);
            Ok(super::EXIT_NOT_FOUND)
        }
        _ => Ok(0),
    }
}

enum Found {
    List(Vec<HistoryRow>),
    One(Option<HistoryRow>),
}

fn list_filter(args: &ListArgs) -> anyhow::Result<ListFilter> {
    let since = args
        .since
        .as_deref()
        .map(|s| parse_since(s, chrono::Utc::now()))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--since: {e}"))?;
    Ok(ListFilter {
        user: args.user.clone(),
        rule: args.rule.clone(),
        since,
        state: args.state.map(|s| match s {
            StateArg::Firing => RowState::Alert(AlertState::Firing),
            StateArg::Resolved => RowState::Alert(AlertState::Resolved),
            StateArg::Milestone => RowState::Milestone,
        }),
        limit: Some(args.limit).filter(|&n| n > 0),
    })
}

/// The time as the user lived it: the CloudEvent's own time with its offset, or UTC when the
/// stored event does not parse.
fn local_time(row: &HistoryRow) -> String {
    row.output()
        .map(|o| o.time.to_rfc3339())
        .unwrap_or_else(|_| {
            row.time
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        })
}

fn state_text(row: &HistoryRow) -> String {
    let state = row.state.as_deref().unwrap_or(&row.kind);
    if row.silenced {
        format!("{state} (silenced)")
    } else {
        state.to_string()
    }
}

fn render_table(rows: &[HistoryRow]) -> String {
    const HEADER: [&str; 7] = ["TIME", "USER", "RULE", "STATE", "SEVERITY", "NIGHT", "ID"];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|row| {
            [
                local_time(row),
                row.user_id.clone(),
                format!("{} v{}", row.rule_id, row.rule_version),
                state_text(row),
                row.severity.clone(),
                row.night.map(|n| n.to_string()).unwrap_or_default(),
                row.id.clone(),
            ]
        })
        .collect();
    let mut widths = HEADER.map(|h| h.chars().count());
    for line in &cells {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let header = HEADER.map(String::from);
    for line in std::iter::once(&header).chain(&cells) {
        let padded: Vec<String> = line
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        text.push_str(padded.join("  ").trim_end());
        text.push('\n');
    }
    text
}

fn render_one(row: &HistoryRow) -> String {
    let output = row.output().ok();
    let mut text = String::new();
    let mut field = |name: &str, value: &str| {
        text.push_str(&format!("{:<10}{value}\n", format!("{name}:")));
    };
    field("id", &row.id);
    field("type", &row.event_type);
    field(
        "rule",
        &format!("{} (version {})", row.rule_id, row.rule_version),
    );
    field("user", &row.user_id);
    field("time", &local_time(row));
    if let Some(night) = row.night {
        field("night", &night.to_string());
    }
    field("state", &state_text(row));
    field("severity", &row.severity);
    if let Some(message) = output.as_ref().and_then(|o| o.data.message.as_deref()) {
        field("message", message);
    }
    // Through the typed output, not a `Value`: that keeps the keys in the order they were
    // emitted.
    let event = output
        .as_ref()
        .and_then(|o| serde_json::to_string_pretty(o).ok())
        .unwrap_or_else(|| row.event.clone());
    text.push_str("event:\n");
    text.push_str(&event);
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, user: &str, state: Option<&str>) -> HistoryRow {
        let event = format!(
            r#"{{"specversion":"1.0","id":"{id}","source":"vigil/rules/hrv_drop","type":"io.vigil.alert.firing","subject":"{user}","time":"2024-05-01T07:12:00+02:00","datacontenttype":"application/json","data":{{"rule_id":"hrv_drop","rule_version":2,"kind":"alert","state":"firing","severity":"warning","night":"2024-05-01","message":"HRV low","stats":{{}},"samples":{{}},"input_event_ids":[]}}}}"#
        );
        let output: crate::engine::OutputEvent = serde_json::from_str(&event).expect("valid");
        let mut row = HistoryRow::from_output(&output).expect("maps");
        row.state = state.map(String::from);
        row
    }

    #[test]
    fn the_table_aligns_columns_and_shows_local_time() {
        let mut silenced = row("b2", "a-much-longer-user", Some("firing"));
        silenced.silenced = true;
        let text = render_table(&[row("a1", "u1", Some("firing")), silenced]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].starts_with("TIME                       USER  "),
            "{text}"
        );
        assert!(
            lines[1].starts_with("2024-05-01T07:12:00+02:00  u1    "),
            "{text}"
        );
        assert!(lines[1].contains("hrv_drop v2  firing "), "{text}");
        assert!(lines[2].contains("firing (silenced)"), "{text}");
        let id_column = lines[0].find("ID").expect("ID header");
        assert_eq!(lines[1].find("a1"), Some(id_column), "{text}");
        assert_eq!(lines[2].find("b2"), Some(id_column), "{text}");
    }

    #[test]
    fn a_milestone_shows_its_kind_as_state() {
        let mut milestone = row("m1", "u1", None);
        milestone.kind = "milestone".into();
        let text = render_table(&[milestone]);
        assert!(text.contains("  milestone  "), "{text}");
    }

    #[test]
    fn show_has_the_message_and_the_pretty_event() {
        let text = render_one(&row("a1", "u1", Some("firing")));
        assert!(text.contains("rule:     hrv_drop (version 2)\n"), "{text}");
        assert!(text.contains("message:  HRV low\n"), "{text}");
        assert!(
            text.contains("event:\n{\n  \"specversion\": \"1.0\""),
            "{text}"
        );
    }

    #[test]
    fn list_arguments_become_the_filter() {
        let args = ListArgs {
            user: Some("u1".into()),
            rule: None,
            since: Some("2024-05-01".into()),
            state: Some(StateArg::Resolved),
            limit: 0,
            json: false,
        };
        let f = list_filter(&args).expect("valid");
        assert_eq!(f.user.as_deref(), Some("u1"));
        assert_eq!(f.state, Some(RowState::Alert(AlertState::Resolved)));
        assert_eq!(f.limit, None, "0 lists all");
        assert_eq!(
            f.since.map(|t| t.to_rfc3339()).as_deref(),
            Some("2024-05-01T00:00:00+00:00")
        );
        let bad = ListArgs {
            since: Some("soon".into()),
            ..args
        };
        let e = list_filter(&bad).expect_err("bad since");
        assert!(e.to_string().starts_with("--since: "), "{e}");
    }

    #[test]
    fn every_state_the_list_shows_is_accepted() {
        let shown = [
            row("a1", "u1", Some("firing")),
            row("a2", "u1", Some("resolved")),
            {
                let mut milestone = row("m1", "u1", None);
                milestone.kind = "milestone".into();
                milestone
            },
        ];
        for row in &shown {
            let state = state_text(row);
            let arg = StateArg::from_str(&state, false)
                .unwrap_or_else(|e| panic!("--state {state} is refused: {e}"));
            let args = ListArgs {
                user: None,
                rule: None,
                since: None,
                state: Some(arg),
                limit: 0,
                json: false,
            };
            let filter = list_filter(&args).expect("valid");
            assert_eq!(filter.state.map(RowState::name), Some(state.as_str()));
        }
    }
}
