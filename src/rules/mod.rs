//! The TOML rule language: model, expressions, windows, checking and loading.
//!
//! - [`model`]: the file as written (serde, spans, doc comments → `schemas/rule.schema.json`);
//! - [`expr`]: the expression language of conditions;
//! - [`duration`]: durations, windows, streak and cooldown lengths;
//! - [`agg_kind`]: the aggregate functions statistics can use (`mean`, `p95`, `ewma`, …);
//! - [`check`]: checks a set of files and resolves them into a [`RuleSet`], every error at
//!   once;
//! - [`compiled`]: the [`RuleSet`] the engine runs: rules, statistics, shared series;
//! - [`describe`]: a compiled rule as named aspects written back as text, and [`diff`]: what
//!   changed between two rule sets, rule by rule (`vigil rules diff`, reloads);
//! - [`diagnostic`]: errors with file:line:column and a rendered snippet;
//! - [`load`]: finding and reading rule files.

pub mod agg_kind;
pub mod check;
pub mod compiled;
pub mod describe;
pub mod diagnostic;
pub mod diff;
pub mod duration;
pub mod expr;
pub mod load;
pub mod model;

pub use agg_kind::AggKind;
pub use check::{compile_files, SourceFile};
pub use compiled::*;
pub use diagnostic::Diagnostic;
pub use load::{find_rule_files, find_test_files, load_rules, LoadFailure};
