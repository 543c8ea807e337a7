//! `[kafka.streaming]`: how `vigil run --kafka` consumes, commits and keeps its state.
//!
//! Each commit is one Kafka transaction holding the outputs, the dead letters and late events,
//! the state changes and the consumed offsets, so a `read_committed` consumer sees every
//! output exactly once.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use super::{duration, value};

/// More processing threads than this is a typo, not a machine.
const MAX_THREADS: i64 = 256;

/// How `vigil run --kafka` consumes, commits and keeps its state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct StreamingConfig {
    /// This instance's stable identity in the group: its transactional id (so a restarted
    /// instance aborts what its previous run left open) and its static group membership (so a
    /// restart does not move partitions). Give each instance its own. `VIGIL_INSTANCE_ID` and
    /// `vigil run --instance-id` override it. Default: the host name.
    #[serde(
        deserialize_with = "value::non_blank_or_none",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(length(min = 1))]
    pub instance_id: Option<String>,
    /// How often a transaction (outputs, state changes, consumed offsets) starts committing.
    /// Outputs become visible to `read_committed` consumers when it commits, so this bounds the
    /// event-to-alert latency from below. Commits run beside processing (one at a time), so a
    /// short interval costs the loop little; its price is transactions on the brokers
    /// (BENCHMARKS.md: 20 ms against 100 ms; Kafka Streams' default under exactly-once is
    /// 100 ms). A duration, more than zero. Default: `"20ms"`.
    #[serde(
        serialize_with = "duration::positive::serialize",
        deserialize_with = "duration::positive::deserialize"
    )]
    #[schemars(schema_with = "duration::positive::schema")]
    pub commit_interval: Duration,
    /// A task merges its two input partitions in event time. A partition with records on the
    /// broker not yet fetched is always waited for; this is how long a task waits for one that
    /// is read to its end, for records its producers may still be sending, before processing
    /// the other anyway (Kafka Streams' `max.task.idle.ms`). More than zero makes late events
    /// rarer when one topic's producers lag the other's, and adds up to that much to the
    /// event-to-alert latency. A duration, zero allowed. Default: `"0ms"`.
    #[serde(
        serialize_with = "duration::or_zero::serialize",
        deserialize_with = "duration::or_zero::deserialize"
    )]
    #[schemars(schema_with = "duration::or_zero::schema")]
    pub max_task_idle: Duration,
    /// How long the broker waits before aborting the transaction of an instance that died and
    /// never came back (`transaction.timeout.ms`; less than a second counts as a second). A
    /// duration. Default: `"30s"`.
    #[serde(
        serialize_with = "duration::positive::serialize",
        deserialize_with = "duration::positive::deserialize"
    )]
    #[schemars(schema_with = "duration::positive::schema")]
    pub transaction_timeout: Duration,
    /// Threads that process the instance's tasks (one per input partition) in parallel:
    /// decoding, rules and state changes, like Kafka Streams' `num.stream.threads` but under
    /// one consumer and one transaction. A task is processed by one thread at a time, so more
    /// threads than assigned partitions are idle. 1 to 256. Default: one per core.
    #[serde(deserialize_with = "threads", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 256))]
    pub threads: Option<usize>,
    /// Two transactional producers, used in turn: while one commits a transaction, the outputs
    /// that arise go into the next one on the other instead of waiting for the commit to end
    /// (BENCHMARKS.md: a lower event-to-alert p99). The second producer's transactional id is
    /// the instance's with `#1` appended (mind it in ACLs). `false`: one producer. Default:
    /// `true`.
    pub pipelined_transactions: bool,
}

fn threads<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<usize>, D::Error> {
    let n = value::whole_number(
        deserializer,
        1..=MAX_THREADS,
        &format!("between 1 and {MAX_THREADS}"),
    )?;
    // In range, so the conversion cannot fail.
    Ok(Some(usize::try_from(n).unwrap_or(1)))
}

impl Default for StreamingConfig {
    fn default() -> Self {
        StreamingConfig {
            instance_id: None,
            commit_interval: Duration::from_millis(20),
            max_task_idle: Duration::ZERO,
            transaction_timeout: Duration::from_secs(30),
            threads: None,
            pipelined_transactions: true,
        }
    }
}

impl StreamingConfig {
    /// The processing threads to run: as configured, else one per core.
    pub fn threads(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_default_to_the_cores() {
        let c = StreamingConfig::default();
        assert_eq!(c.threads, None);
        assert!(c.threads() >= 1);
        let c = StreamingConfig {
            threads: Some(3),
            ..StreamingConfig::default()
        };
        assert_eq!(c.threads(), 3);
    }
}
