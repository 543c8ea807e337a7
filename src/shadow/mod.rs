//! Shadow runs: a candidate rule set run beside the live one on the same events, its outputs
//! kept apart and compared with the live outputs (`vigil run --shadow`, `vigil shadow
//! report`). Embedded (file) mode only for now.
//!
//! Two outputs are the same when the backtest says so ([`crate::backtest::table`]: subject,
//! rule id, state and occasion; versions may differ), through the backtest's own matcher.
//!
//! # Layout
//!
//! - `online`: the shadow engine inside `vigil run`, fed every event the live engine
//!   accepts, and the per-event matching that feeds `vigil_shadow_outputs_total`;
//! - `report`: `vigil shadow report`, the agreement per rule of a live and a shadow output
//!   file, with examples of each disagreement.

pub mod online;
pub mod report;

pub use online::Shadow;
pub use report::{report, ShadowReport};
