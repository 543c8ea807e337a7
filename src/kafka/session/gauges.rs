//! What the loop tells operators: readiness (partitions assigned, state restored) and the
//! gauges (assigned partitions, consumer lag, users and bytes in state).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;

use crate::telemetry::{self, Check, Readiness};

use super::Session;
use crate::kafka::source::high_watermark;

/// The run loop's state as readiness sees it: written by the loop, read by the HTTP thread.
#[derive(Debug, Default)]
pub struct StreamStatus {
    /// True while a session is in the consumer group (from its start to its end).
    pub(super) session: AtomicBool,
    /// Input partitions assigned, as of the loop's last look (about once a second).
    pub(super) assigned: AtomicUsize,
    /// Tasks whose engine is in memory.
    pub(super) tasks: AtomicUsize,
    /// 1 + the task being restored from the changelog; 0 when none is.
    pub(super) restoring: AtomicI64,
}

impl StreamStatus {
    /// Registers the conditions "partitions assigned" and "state restored" with `readiness`.
    pub fn register(self: &Arc<Self>, readiness: &Readiness) {
        let status = Arc::clone(self);
        readiness.register("partitions assigned", move || status.partitions());
        let status = Arc::clone(self);
        readiness.register("state restored", move || status.restored());
    }

    fn partitions(&self) -> Check {
        if !self.session.load(Ordering::Relaxed) {
            return Check::not_ready("not in the consumer group (starting, or starting again)");
        }
        match self.assigned.load(Ordering::Relaxed) {
            0 => Check::not_ready(
                "no input partitions assigned (joining the group, or more instances than \
                 partitions)",
            ),
            n => Check::ready(format!("{n} input partitions")),
        }
    }

    fn restored(&self) -> Check {
        if !self.session.load(Ordering::Relaxed) {
            return Check::not_ready("not in the consumer group (starting, or starting again)");
        }
        match self.restoring.load(Ordering::Relaxed) {
            0 => Check::ready(format!(
                "{} tasks in memory (a task is restored when its first record arrives)",
                self.tasks.load(Ordering::Relaxed)
            )),
            p => Check::not_ready(format!("restoring task {} from the changelog", p - 1)),
        }
    }
}

/// How often the loop sets the gauges (lag, state, assigned partitions) and readiness.
pub(super) const GAUGES_EVERY: Duration = Duration::from_secs(1);

impl Session<'_> {
    /// Sets the gauges (assigned partitions, consumer lag, users, bytes in state) and the
    /// readiness status, about once a second. Measuring a task's bytes walks every key's
    /// state (milliseconds for 20 000 users, a stall live traffic would feel), so each update
    /// measures one task, in turn, and the gauge sums the latest figures.
    pub(super) fn update_gauges(&mut self) {
        let mut lag = vec![0i64; self.topics.inputs.len()];
        let mut assigned = 0usize;
        if let Ok(assignment) = self.consumer.assignment() {
            let positions = self.consumer.position().ok();
            for e in assignment.elements() {
                let Some(input) = self.topics.inputs.iter().position(|n| n == e.topic()) else {
                    continue;
                };
                assigned += 1;
                let Some(high) =
                    high_watermark(&self.consumer, &self.inputs_c[input], e.partition())
                else {
                    continue;
                };
                // The next record to process: the first one buffered, else where the consumer
                // stands (past transaction markers), else where the task resumed. A partition
                // this session has received nothing from yet counts as caught up.
                let slot = self.tasks.get(&e.partition()).map(|t| &t.inputs[input]);
                let next = match slot.and_then(|s| s.buffered.front()) {
                    Some(head) => Some(head.offset),
                    None => positions
                        .as_ref()
                        .and_then(|p| crate::kafka::offset_in(p, e.topic(), e.partition()))
                        .or_else(|| slot.and_then(|s| s.received_to)),
                };
                if let Some(next) = next {
                    lag[input] += (high - next).max(0);
                }
            }
        }
        for (input, records) in lag.into_iter().enumerate() {
            self.counters.set_lag(input, records);
        }
        let users = self.tasks.values().map(|t| t.engine.keys_in_state()).sum();
        let next = (self.tasks.range(self.measure_next..).next())
            .or_else(|| self.tasks.iter().next())
            .map(|(p, _)| *p);
        if let Some(task) = next.and_then(|p| self.tasks.get_mut(&p)) {
            task.bytes = task.engine.state_bytes();
            self.measure_next = task.partition + 1;
        }
        let bytes = self.tasks.values().map(|t| t.bytes).sum();
        let metrics = telemetry::metrics();
        metrics.set_assigned_partitions(assigned);
        metrics.set_state(users, Some(bytes));
        let status = &self.options.status;
        status.assigned.store(assigned, Ordering::Relaxed);
        status.tasks.store(self.tasks.len(), Ordering::Relaxed);
    }
}
