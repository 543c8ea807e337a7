//! Edges of the embedded mode: JSON-lines input, output, dead-letter and late-event files.
//!
//! The engine never sees bytes: [`pipeline::run`] reads lines, decodes and validates them,
//! feeds the engine, and routes every line to exactly one place — the engine (and from there
//! outputs), the dead-letter file with its reason, or the late-events file.

pub mod admit;
pub mod lazy_file;
pub mod lines;
pub mod pipeline;
pub mod records;
