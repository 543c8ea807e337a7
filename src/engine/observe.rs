//! An optional look into each evaluation, for tools that explain decisions (the backtest
//! report's plots): the statistics and bindings a rule saw, not only those at its outputs.
//!
//! Only [`Engine::process_observed`](super::Engine::process_observed) calls an observer;
//! [`Engine::process`](super::Engine::process) passes none, so the common path pays one
//! branch per evaluation and the engine's decisions never depend on whether one is set.

use crate::event::Event;
use crate::rules::expr::Env;

/// Told of every evaluation of a `[fire]` rule's statistics.
pub trait Observer {
    /// Rule `rule` (its index in the rule set) evaluated its statistics and bindings for
    /// `key` at `event`. `env` reads them as the rule's expressions do: evaluate any of the
    /// rule's compiled expressions (its `[fire]` condition or a side of it) against it.
    fn evaluated(&mut self, rule: usize, key: &str, event: &Event, env: &dyn Env);
}
