//! Backtests: history replayed through one or two rule sets, to see what they would have
//! decided and where they differ (`vigil backtest`).
//!
//! A backtest is one more edge of the same engine: its events go through the routing step
//! every edge shares ([`crate::io::route`]) into an [`crate::engine::Engine`] per rule set,
//! exactly as `vigil run` sends them, with two differences that come from replaying the past:
//! no event is judged against the machine's clock (history is not "in the future" because the
//! machine's date says so; the decoder's bounds and the engine's stream clock, which ignores a
//! user far ahead of every other one, still apply), and nothing is silenced, stored or
//! published.
//!
//! # Layout
//!
//! - `source`: the inputs, read each in its own order and merged by event time;
//! - `replay`: every event to every set, the outputs kept as decisions;
//! - `table`: the per-rule table (firings, resolutions, milestones, users, rates, agreement)
//!   and its JSON form;
//! - `report`: the HTML report, with a plot per user and rule.

pub mod replay;
pub mod report;
pub mod source;
pub mod table;

pub use replay::{replay, Decision, Names, Replayed, RuleIds, SetRun, Sinks};
pub use source::{Input, Merge};
pub use table::{table, Table};
