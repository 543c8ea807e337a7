//! Edges of the embedded mode: JSON-lines input, output, dead-letter and late-event files.
//!
//! The engine never sees bytes: [`pipeline::run`] reads lines and hands each to the routing
//! step every edge shares ([`route`]: decode and admit, process, and send every record to
//! exactly one place — the engine and from there the outputs, the dead-letter output with its
//! reason, or the late-events output), writing what it routes as JSON lines.

pub mod admit;
pub mod lazy_file;
pub mod lines;
pub mod pipeline;
pub mod records;
pub mod route;
