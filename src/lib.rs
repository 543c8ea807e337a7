//! # Vigil
//!
//! A stream-processing complex-event-processing engine for biometric and health events:
//! declarative TOML rules over per-user windows in event time, emitting alerts and milestones
//! as CloudEvents.
//!
//! # Layout
//!
//! - [`event`]: the input event model (typed payloads, RFC 3339 times with their offsets),
//!   decoding and JSON Schema validation of input lines;
//! - [`rules`]: the rule language — file model, expressions, windows, aggregates, the checker
//!   (every problem at once, with file:line:column diagnostics) and the compiled rule set it
//!   produces, loading, and what changed between two sets (`vigil rules diff`);
//! - [`engine`]: the deterministic core — per-user event time, lateness, series and
//!   incremental aggregates, rule evaluation, streaks, sequences, absence timers, outputs,
//!   and replacing the rule set of a running engine (`engine::reload`);
//! - [`io`]: the per-record routing step every edge shares (`io::route`: decode, admit,
//!   process, and where each result goes), and the embedded edge — JSON-lines input, outputs,
//!   dead letters, late events, and the rule files watched while a run goes on;
//! - [`rule_tests`]: the runner of rule tests (`*.test.toml` beside the rules), shared by
//!   `vigil test` and `cargo test`;
//! - [`shadow`]: shadow runs — a candidate rule set beside the live one (`vigil run
//!   --shadow`), its outputs matched with the live ones, and `vigil shadow report`;
//! - [`import`]: converters from vendor exports (WHOOP) into Vigil events;
//! - [`simulate`]: realistic synthetic users for fixtures, demos and benchmarks;
//! - [`schema`]: the JSON Schemas published in `schemas/`;
//! - [`config`]: `vigil.toml`, the production mode's configuration (defaults, file,
//!   `VIGIL_…` environment variables), one struct per table, from which
//!   `schemas/config.schema.json` is generated;
//! - [`kafka`]: the Kafka edge — clients from the configuration, topic provisioning, and the
//!   exactly-once run split by role (session, source, merge, task, workers, transaction);
//! - [`history`]: the stored history of alerts and milestones (PostgreSQL or SQLite, sqlx),
//!   and the background writer that keeps it without ever holding up the engine;
//! - [`health`]: `vigil health`, the staged readiness checks (configuration, rules, Kafka,
//!   the history database, Redis) and their report;
//! - [`status`]: the state instances share and downstream services read — each user's status
//!   (alerts firing, baselines, last event time), silences, cooldown and dedup keys — in Redis
//!   or, embedded, in the process;
//! - [`telemetry`]: what a running Vigil tells operators — the metrics (declared in one
//!   struct), readiness conditions and liveness, the HTTP listener (`/metrics`, `/healthz`,
//!   `/readyz`), structured logs with `tracing`;
//! - [`cli`]: the `vigil` command.

pub mod backtest;
pub mod cli;
pub mod config;
pub mod engine;
pub mod event;
pub mod health;
pub mod history;
pub mod import;
pub mod io;
pub mod kafka;
pub mod rule_tests;
pub mod rules;
pub mod schema;
pub mod shadow;
pub mod simulate;
pub mod status;
pub mod telemetry;
