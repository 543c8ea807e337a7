//! Where a task's records come from: polling the consumer, copying each record out of
//! librdkafka's buffer into blocks shared by records (staging them by partition), the
//! partitions' watermarks and positions, and the check that the topics exist and are
//! co-partitioned.

use std::ffi::CStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use bytes::{Bytes, BytesMut};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};

use rdkafka::ClientContext;

use crate::event::Event;
use crate::io::route::Rejection;

use crate::kafka::error::SessionError;
use crate::kafka::transaction::OutTopics;

/// Counts rebalances for the run loop, which reacts after `poll` returns.
#[derive(Default)]
pub(super) struct RebalanceFlag {
    count: AtomicU64,
}

impl RebalanceFlag {
    pub(super) fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }
}

impl ClientContext for RebalanceFlag {}

impl ConsumerContext for RebalanceFlag {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.count.fetch_add(1, Ordering::SeqCst);
        if let Rebalance::Error(e) = rebalance {
            tracing::warn!(error = %e, "rebalance error");
        }
    }
}

/// One buffered input record: what processing needs of a Kafka message, copied out of
/// librdkafka's buffer on arrival. The bytes stay for the dead-letter and late-events topics;
/// the task's thread decodes them.
pub(super) struct Record {
    pub(super) offset: i64,
    /// The key's bytes, then the payload's, in a shared block of [`Staging::arena`].
    bytes: Bytes,
    /// Where the key ends in `bytes`; `None` for a record without a key.
    key_len: Option<usize>,
    has_payload: bool,
    /// `None` until the task's thread has decoded (and admitted or rejected) the record.
    pub(super) admitted: Option<Result<Event, Rejection>>,
    /// When the producer sent it (CreateTime) or the broker appended it (LogAppendTime), ms;
    /// `i64::MAX` when the record carries no timestamp.
    pub(super) sent_ms: i64,
    /// Where the record sorts in its task's merge ([`merge_time`]), or the earliest possible
    /// time for a record that only goes to the dead-letter topic. Set when decoded.
    pub(super) merge_time: i64,
}

impl Record {
    /// The message's key and payload are copied into `arena`, whose blocks records share.
    pub(super) fn copied(message: &BorrowedMessage<'_>, arena: &mut BytesMut) -> Record {
        let mut record = Record::new(message.offset(), message.key(), message.payload(), arena);
        record.sent_ms = message.timestamp().to_millis().unwrap_or(i64::MAX);
        record
    }

    pub(super) fn new(
        offset: i64,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        arena: &mut BytesMut,
    ) -> Self {
        let key_len = key.map(<[u8]>::len);
        let len = key_len.unwrap_or(0) + payload.map_or(0, <[u8]>::len);
        if arena.capacity() < len {
            arena.reserve(len.max(ARENA_BLOCK));
        }
        arena.extend_from_slice(key.unwrap_or_default());
        arena.extend_from_slice(payload.unwrap_or_default());
        Record {
            offset,
            bytes: arena.split().freeze(),
            key_len,
            has_payload: payload.is_some(),
            admitted: None,
            sent_ms: i64::MAX,
            merge_time: i64::MIN,
        }
    }

    pub(super) fn payload(&self) -> Option<&[u8]> {
        self.has_payload
            .then(|| &self.bytes[self.key_len.unwrap_or(0)..])
    }

    /// The key and the payload, copied out of the arena.
    pub(super) fn into_parts(self) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let key_len = self.key_len.unwrap_or(0);
        let payload = self.has_payload.then(|| self.bytes[key_len..].to_vec());
        (
            self.key_len.map(|_| self.bytes[..key_len].to_vec()),
            payload,
        )
    }
}

/// Records polled and not yet handed to their tasks, by partition: the loop hands each task
/// its records in one piece ([`Session::hand_to_tasks`]), a step per task rather than per
/// record on the loop's thread, and the tasks' threads file them.
#[derive(Default)]
pub(super) struct Staging {
    /// By partition number: (input, record), in the order polled.
    pub(super) by_partition: Vec<Vec<(usize, Record)>>,
    pub(super) records: usize,
    /// Where records' bytes are copied: one allocation per block of records instead of one
    /// per record. Allocated on the loop's thread and freed on a task's, a buffer per record
    /// cost the allocator a cross-thread free each, and the loop fresh pages.
    arena: BytesMut,
}

impl Staging {
    pub(super) fn push(
        &mut self,
        input: usize,
        message: &BorrowedMessage<'_>,
    ) -> Result<(), SessionError> {
        let index = Staging::index_of(message.partition())?;
        let record = Record::copied(message, &mut self.arena);
        self.add(input, index, record);
        Ok(())
    }

    pub(super) fn add(&mut self, input: usize, index: usize, record: Record) {
        if self.by_partition.len() <= index {
            self.by_partition.resize_with(index + 1, Vec::new);
        }
        self.by_partition[index].push((input, record));
        self.records += 1;
    }

    fn index_of(partition: i32) -> Result<usize, SessionError> {
        usize::try_from(partition).map_err(|_| {
            SessionError::Fatal(anyhow!(
                "librdkafka delivered a record of partition {partition}"
            ))
        })
    }

    pub(super) fn partition_of(index: usize) -> Result<i32, SessionError> {
        i32::try_from(index)
            .map_err(|_| SessionError::Fatal(anyhow!("partition {index} is out of range")))
    }

    pub(super) fn clear(&mut self) {
        self.by_partition.iter_mut().for_each(Vec::clear);
        self.records = 0;
    }
}

/// Bytes of a block of [`Staging::arena`] (larger records get a block of their own size).
const ARENA_BLOCK: usize = 256 * 1024;

/// Most records one pass of the loop takes before processing them (see the loop). A pass
/// ends at a barrier (the threads wait for the slowest task, the loop gathers and sends), so
/// a backlog goes faster in larger passes: paired runs measured 40 000 ~6 % faster than
/// 20 000, and 80 000 ~6 % faster than 40 000 (BENCHMARKS.md). Live traffic's passes are far
/// smaller either way.
const PASS_RECORDS: usize = 80_000;

/// Polls up to [`PASS_RECORDS`] records into `staging`, waiting up to `wait` for the first:
/// what processing needs is copied out of each message, which borrows the consumer. Records
/// polled before a rebalance are dropped (their tasks are dropped too, and the partitions
/// resume from the committed offsets). Returns how many records it polled.
pub(super) fn poll_into(
    consumer: &BaseConsumer<RebalanceFlag>,
    inputs: &[String],
    staging: &mut Staging,
    mut wait: Duration,
) -> Result<usize, SessionError> {
    let mut polled = 0;
    let mut rebalances = consumer.context().count();
    // librdkafka hands fetched data over a partition at a time (up to a fetch's worth, ~5 000
    // records): a pass much smaller than PASS_RECORDS would hold one task and leave the
    // other threads idle.
    while polled < PASS_RECORDS {
        let Some(result) = consumer.poll(wait) else {
            break;
        };
        wait = Duration::ZERO;
        let now = consumer.context().count();
        if now != rebalances {
            rebalances = now;
            staging.clear();
        }
        match result {
            Ok(m) => {
                if let Some(input) = inputs.iter().position(|t| t == m.topic()) {
                    staging.push(input, &m)?;
                    polled += 1;
                }
            }
            Err(KafkaError::PartitionEOF(_)) => {}
            Err(e @ KafkaError::MessageConsumptionFatal(_)) => {
                return Err(SessionError::Retry(e.into()))
            }
            Err(e) => tracing::warn!(error = %e, "consumer error"),
        }
    }
    Ok(polled)
}

/// The consumer's position in `topic`'s `partition`: the offset after the last record (or
/// transaction marker) it has read; 0 before any.
pub(super) fn position(
    reader: &BaseConsumer,
    topic: &str,
    partition: i32,
) -> Result<i64, KafkaError> {
    Ok(super::offset_in(&reader.position()?, topic, partition).unwrap_or(0))
}

/// The high watermark librdkafka last saw for a partition (the last stable offset, for a
/// `read_committed` consumer), from its local cache: no request to the broker. rdkafka does
/// not wrap `rd_kafka_get_watermark_offsets`, hence the direct call.
pub(super) fn high_watermark<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &CStr,
    partition: i32,
) -> Option<i64> {
    watermarks(consumer, topic, partition).map(|(_, high)| high)
}

/// The low and high watermarks librdkafka last saw for a partition (see [`high_watermark`]).
pub(super) fn watermarks<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &CStr,
    partition: i32,
) -> Option<(i64, i64)> {
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer is valid while `consumer` lives; the topic is a valid C
    // string; librdkafka writes only the two offsets.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some((low, high))
}

/// Checks that the topics exist and that the inputs and the changelog are co-partitioned.
pub(super) fn check_topics<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topics: &OutTopics,
    timeout: Duration,
) -> Result<(), SessionError> {
    let metadata = consumer
        .fetch_metadata(None, timeout)
        .context("cannot read the cluster's metadata (is the broker up?)")?;
    let partitions = |name: &str| {
        metadata
            .topics()
            .iter()
            .find(|t| t.name() == name && t.error().is_none())
            .map(|t| t.partitions().len())
    };
    let mut counts = Vec::new();
    for name in topics.inputs.iter().chain([
        &topics.alerts,
        &topics.silenced,
        &topics.milestones,
        &topics.dead_letter,
        &topics.late,
        &topics.state,
    ]) {
        match partitions(name) {
            Some(n) => counts.push((name.as_str(), n)),
            None => {
                return Err(SessionError::Fatal(anyhow!(
                    "topic {name} does not exist; create the topics with `vigil topics apply`"
                )))
            }
        }
    }
    let inputs = counts[0].1;
    if counts[1].1 != inputs {
        return Err(SessionError::Fatal(anyhow!(
            "{} has {} partitions and {} has {}: the input topics must be co-partitioned (same \
             partition count, keyed by user id) so that a user's events meet in one task",
            counts[0].0,
            counts[0].1,
            counts[1].0,
            counts[1].1
        )));
    }
    let state = counts[counts.len() - 1];
    if state.1 < inputs {
        return Err(SessionError::Fatal(anyhow!(
            "{} has {} partitions but the inputs have {inputs}: the changelog needs one per task",
            state.0,
            state.1
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Key and payload of record `i`: sizes from none to several arena blocks, so records
    /// share blocks, straddle their ends and get blocks of their own.
    fn parts(i: usize) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let key = (!i.is_multiple_of(5)).then(|| format!("user-{i}").into_bytes());
        let len = match i % 7 {
            0 => 0,
            1 => ARENA_BLOCK + 17,
            2 => ARENA_BLOCK / 3,
            _ => 100 + i,
        };
        let payload =
            (!i.is_multiple_of(11)).then(|| (0..len).map(|b| (b * 31 + i) as u8).collect());
        (key, payload)
    }

    #[test]
    fn records_in_the_arena_keep_their_own_bytes() {
        let mut arena = BytesMut::new();
        let records: Vec<Record> = (0..200)
            .map(|i| {
                let (key, payload) = parts(i);
                Record::new(i as i64, key.as_deref(), payload.as_deref(), &mut arena)
            })
            .collect();
        // Dropping some records frees nothing the others use.
        let kept: Vec<Record> = records.into_iter().filter(|r| r.offset % 3 != 1).collect();
        for record in kept {
            let i = usize::try_from(record.offset).expect("offset");
            let (key, payload) = parts(i);
            assert_eq!(record.payload(), payload.as_deref(), "record {i}");
            assert_eq!(record.into_parts(), (key, payload), "record {i}");
        }
    }

    #[test]
    fn staging_files_records_by_partition_in_order() {
        let mut staging = Staging::default();
        for (offset, partition) in [(0, 3), (1, 0), (2, 3), (3, 3)] {
            let record = Record::new(offset, None, Some(b"{}"), &mut staging.arena);
            let index = Staging::index_of(partition).expect("a partition");
            staging.add(offset as usize % 2, index, record);
        }
        assert_eq!(staging.records, 4);
        assert!(Staging::index_of(-1).is_err());
        let offsets =
            |v: &Vec<(usize, Record)>| v.iter().map(|(_, r)| r.offset).collect::<Vec<_>>();
        assert_eq!(offsets(&staging.by_partition[3]), [0, 2, 3]);
        assert_eq!(offsets(&staging.by_partition[0]), [1]);
        assert_eq!(Staging::partition_of(3).expect("fits"), 3);
        assert!(Staging::partition_of(usize::MAX).is_err());
        staging.clear();
        assert_eq!(staging.records, 0);
        assert!(staging.by_partition.iter().all(Vec::is_empty));
    }
}
