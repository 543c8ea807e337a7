//! Edges of the embedded mode: JSON-lines input, output, dead-letter and late-event files.
//!
//! The engine never sees bytes: [`pipeline::run`] reads lines and hands each to the routing
//! step every edge shares ([`route`]: decode and admit, process, and send every record to
//! exactly one place — the engine and from there the outputs, the dead-letter output with its
//! reason, or the late-events output), writing what it routes as JSON lines.
//! [`rule_watch`] loads rule files that change while a run goes on, for the loop to apply
//! between two lines; [`reload_status`] is what `/readyz` says of them. [`live`] flushes the
//! outputs whenever stdin may wait, so a live feed sees each output at once.

pub mod admit;
pub mod lazy_file;
pub mod lines;
pub mod live;
pub mod pipeline;
pub mod records;
pub mod reload_status;
pub mod route;
pub mod rule_watch;
