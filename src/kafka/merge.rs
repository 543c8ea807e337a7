//! The event-time merge of a task's input partitions (see [`Merge`]). It reads no clock: the
//! caller passes the time, so tests advance it instead of waiting.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::kafka::source::Record;

/// One input partition of a task.
#[derive(Default)]
pub(super) struct InputPartition {
    /// Decoded, waiting for the merge.
    pub(super) buffered: VecDeque<Record>,
    /// Offset after the last record processed, to commit.
    pub(super) processed_to: Option<i64>,
    /// Offset after the last record received.
    pub(super) received_to: Option<i64>,
}

/// A task's event-time merge of its input partitions: which one's head record goes next, and
/// when to wait for a partition with nothing buffered that may still deliver an earlier one.
///
/// As in Kafka Streams since KIP-695: a partition whose records up to its end (its high
/// watermark, or last stable offset) have not all arrived, or whose end librdkafka does not
/// know yet, holds the task back until they have, however long a slow or stalled broker takes,
/// so that input already written is merged in event time whatever the timing of its fetches
/// (bounding that wait made a broker outage turn events late). A partition read to its end
/// holds the task back for at most `max-task-idle`, for records its producers may still be
/// sending (0 by default: live traffic goes on at once).
pub(super) struct Merge {
    /// The input partitions' high watermarks, asked by the loop before each pass.
    highs: Vec<Option<i64>>,
    /// The consumer's positions in them, asked with the watermarks.
    positions: Vec<Option<i64>>,
    /// Since when a partition with nothing buffered has held the task back.
    waiting_since: Option<Instant>,
    /// The current wait has been reported as long.
    reported: bool,
}

/// A wait for a partition's records that has lasted [`LONG_WAIT`].
#[derive(Debug, PartialEq)]
pub(super) struct LongWait {
    pub(super) input: usize,
    pub(super) waited: Duration,
    pub(super) read_to: Option<i64>,
    pub(super) high: Option<i64>,
}

/// A task's wait for a partition behind its end is reported (once) when it lasts this long.
const LONG_WAIT: Duration = Duration::from_secs(30);

impl Merge {
    pub(super) fn new(inputs: usize) -> Self {
        Merge {
            highs: vec![None; inputs],
            positions: vec![None; inputs],
            waiting_since: None,
            reported: false,
        }
    }

    pub(super) fn set_reach(&mut self, input: usize, high: Option<i64>, position: Option<i64>) {
        if let (Some(h), Some(p)) = (self.highs.get_mut(input), self.positions.get_mut(input)) {
            *h = high;
            *p = position;
        }
    }

    /// Where `input` is read to: past its last record received, or past what the consumer
    /// skipped after it (transaction markers, aborted records).
    pub(super) fn read_to(&self, input: usize, partition: &InputPartition) -> Option<i64> {
        partition
            .received_to
            .max(self.positions.get(input).copied().flatten())
    }

    /// Whether `input` is read to its end; `None` while its end is unknown.
    pub(super) fn at_end(&self, input: usize, partition: &InputPartition) -> Option<bool> {
        at_end(
            self.read_to(input, partition),
            self.highs.get(input).copied().flatten(),
        )
    }

    /// The input whose head record goes next, by (event time, input order); `None` while the
    /// task waits for a partition that may still deliver an earlier record.
    /// `now` is asked only when the task waits: the clock is not read for every record.
    pub(super) fn next(
        &mut self,
        inputs: &[InputPartition],
        max_idle: Duration,
        now: impl Fn() -> Instant,
    ) -> Option<usize> {
        let mut best: Option<(i64, usize)> = None;
        let mut behind = false;
        let mut read_to_end = false;
        for (i, input) in inputs.iter().enumerate() {
            match input.buffered.front() {
                Some(head) => {
                    if best.is_none_or(|(t, _)| head.merge_time < t) {
                        best = Some((head.merge_time, i));
                    }
                }
                None => match self.at_end(i, input) {
                    Some(true) => read_to_end = true,
                    Some(false) | None => behind = true,
                },
            }
        }
        let (_, input) = best?;
        if behind {
            self.waiting_since.get_or_insert_with(&now);
            return None;
        }
        if read_to_end && !max_idle.is_zero() {
            let now = now();
            let since = *self.waiting_since.get_or_insert(now);
            return (now.saturating_duration_since(since) >= max_idle).then_some(input);
        }
        self.waiting_since = None;
        self.reported = false;
        Some(input)
    }

    /// The partition the task has waited for since [`LONG_WAIT`] or longer, once per wait.
    pub(super) fn long_wait(
        &mut self,
        inputs: &[InputPartition],
        now: Instant,
    ) -> Option<LongWait> {
        let waited = now.saturating_duration_since(self.waiting_since?);
        if self.reported || waited < LONG_WAIT {
            return None;
        }
        let (input, partition) = inputs
            .iter()
            .enumerate()
            .find(|(i, p)| p.buffered.is_empty() && self.at_end(*i, p) != Some(true))?;
        self.reported = true;
        Some(LongWait {
            input,
            waited,
            read_to: self.read_to(input, partition),
            high: self.highs.get(input).copied().flatten(),
        })
    }
}

/// Where a record with event time `event_ms`, sent at `sent_ms` (its Kafka timestamp), sorts
/// in the merge: its event time, unless that is after it was sent. No event is sent before it
/// happens, so such a time is a device's wrong clock; ordered by it, the record would hold its
/// partition (and every other user's records behind it in the partition) until the task's
/// other input reached that time — during a backlog, long enough to make their events late. It
/// sorts by when it was sent instead, as Kafka Streams sorts every record. The engine still
/// sees its event time: only the order of processing changes, and only for that record. A
/// timestamp before 2000 (a producer's unset or broken clock) is not believed.
pub(super) fn merge_time(event_ms: i64, sent_ms: i64) -> i64 {
    if sent_ms >= EARLIEST_MS {
        event_ms.min(sent_ms)
    } else {
        event_ms
    }
}

/// No timestamp before this is believed (as no event time before it is accepted).
const EARLIEST_MS: i64 = crate::event::plausible::EARLIEST_SECONDS * 1000;

/// Whether an input partition has nothing more to deliver: everything up to its high
/// watermark received (`received_to`: offset after the last record received, or the committed
/// offset), or an empty partition. `None` while librdkafka does not know its watermark yet.
pub(super) fn at_end(received_to: Option<i64>, high: Option<i64>) -> Option<bool> {
    match (received_to, high?) {
        (Some(at), high) => Some(at >= high),
        (None, high) => Some(high == 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    // The merge reads no clock: each test passes the time, advancing it as a wait goes on.

    /// An input partition with records at these event times buffered, received up to
    /// `received_to`.
    fn partition_with(times: &[i64], received_to: Option<i64>) -> InputPartition {
        let mut arena = BytesMut::new();
        let mut partition = InputPartition {
            received_to,
            ..InputPartition::default()
        };
        for (offset, &time) in times.iter().enumerate() {
            let mut record = Record::new(offset as i64, None, Some(b"{}"), &mut arena);
            record.merge_time = time;
            partition.buffered.push_back(record);
        }
        partition
    }

    #[test]
    fn the_merge_takes_the_earliest_head_when_both_partitions_have_records() {
        let now = Instant::now();
        let inputs = [
            partition_with(&[30, 40], Some(2)),
            partition_with(&[20], Some(1)),
        ];
        let mut merge = Merge::new(2);
        assert_eq!(merge.next(&inputs, Duration::ZERO, || now), Some(1));
        let inputs = [
            partition_with(&[10], Some(1)),
            partition_with(&[10], Some(1)),
        ];
        assert_eq!(
            merge.next(&inputs, Duration::ZERO, || now),
            Some(0),
            "ties go to input order"
        );
        assert_eq!(
            merge.next(
                &[partition_with(&[], None), partition_with(&[], None)],
                Duration::ZERO,
                || now
            ),
            None
        );
    }

    /// Records already on the broker are waited for however long their fetch takes: a bounded
    /// wait let a broker outage make the other input's events late.
    #[test]
    fn a_partition_behind_its_end_holds_the_task_until_its_records_arrive() {
        let mut now = Instant::now();
        let mut merge = Merge::new(2);
        merge.set_reach(1, Some(50), Some(10));
        let mut inputs = [
            partition_with(&[100], Some(1)),
            partition_with(&[], Some(10)),
        ];
        assert_eq!(
            merge.next(&inputs, Duration::from_millis(100), || now),
            None
        );
        assert_eq!(merge.long_wait(&inputs, now), None, "not long yet");
        now += LONG_WAIT;
        assert_eq!(
            merge.next(&inputs, Duration::from_millis(100), || now),
            None
        );
        let wait = merge
            .long_wait(&inputs, now)
            .expect("a long wait is reported");
        assert_eq!(
            (wait.input, wait.read_to, wait.high),
            (1, Some(10), Some(50))
        );
        assert!(wait.waited >= LONG_WAIT);
        assert_eq!(
            merge.long_wait(&inputs, now),
            None,
            "reported once per wait"
        );
        // An earlier record arrives: it goes first, then the wait is over.
        inputs[1] = partition_with(&[90], Some(50));
        assert_eq!(
            merge.next(&inputs, Duration::from_millis(100), || now),
            Some(1)
        );
        inputs[1].buffered.clear();
        assert_eq!(merge.next(&inputs, Duration::ZERO, || now), Some(0));
        assert_eq!(merge.waiting_since, None);
        assert!(!merge.reported);
    }

    #[test]
    fn a_partition_whose_end_is_unknown_holds_the_task() {
        let mut now = Instant::now();
        let mut merge = Merge::new(2);
        let inputs = [partition_with(&[100], Some(1)), partition_with(&[], None)];
        assert_eq!(merge.next(&inputs, Duration::ZERO, || now), None);
        now += LONG_WAIT;
        assert_eq!(merge.next(&inputs, Duration::ZERO, || now), None);
        merge.set_reach(1, Some(0), None);
        assert_eq!(
            merge.next(&inputs, Duration::ZERO, || now),
            Some(0),
            "an empty partition"
        );
    }

    /// A log that ends with a transaction marker (or aborted records) is read to its end
    /// when the consumer's position has passed them, though no record reached that far.
    #[test]
    fn the_consumers_position_past_a_marker_reads_a_partition_to_its_end() {
        let now = Instant::now();
        let mut merge = Merge::new(2);
        let inputs = [
            partition_with(&[100], Some(1)),
            partition_with(&[], Some(7)),
        ];
        merge.set_reach(1, Some(8), None);
        assert_eq!(merge.next(&inputs, Duration::ZERO, || now), None);
        merge.set_reach(1, Some(8), Some(8));
        assert_eq!(merge.next(&inputs, Duration::ZERO, || now), Some(0));
    }

    /// `max-task-idle`: how long a partition read to its end holds the task for records its
    /// producers may still send; 0 (the default) goes on at once.
    #[test]
    fn a_partition_read_to_its_end_holds_the_task_for_max_task_idle() {
        let mut now = Instant::now();
        let mut merge = Merge::new(2);
        merge.set_reach(1, Some(5), None);
        let inputs = [
            partition_with(&[100], Some(1)),
            partition_with(&[], Some(5)),
        ];
        assert_eq!(merge.next(&inputs, Duration::ZERO, || now), Some(0));
        let idle = Duration::from_secs(60);
        assert_eq!(merge.next(&inputs, idle, || now), None);
        assert_eq!(
            merge.long_wait(&inputs, now),
            None,
            "waiting for producers is not reported"
        );
        now += idle;
        assert_eq!(merge.next(&inputs, idle, || now), Some(0));
        now += LONG_WAIT;
        assert_eq!(merge.long_wait(&inputs, now), None);
    }

    /// A device dated 12 h ahead of the moment its event was sent: sorted by when it was sent,
    /// so it neither waits for the other input to reach its date nor holds the records behind
    /// it in its partition. Honest times (an event sent after it happened, however long after:
    /// a phone that syncs a day late) keep their event time.
    #[test]
    fn a_record_dated_after_it_was_sent_sorts_by_when_it_was_sent() {
        let sent = 1_733_500_000_000;
        let hour = 3_600_000;
        assert_eq!(merge_time(sent + 12 * hour, sent), sent);
        assert_eq!(merge_time(sent - 24 * hour, sent), sent - 24 * hour);
        assert_eq!(merge_time(sent, sent), sent);
        assert_eq!(merge_time(sent, i64::MAX), sent, "no timestamp");
        assert_eq!(merge_time(sent, 0), sent, "a producer's clock at the epoch");
        assert_eq!(merge_time(sent, -1), sent);

        // Input 0: the wrong clock first, then another user's record; input 1: a backlog of
        // records 10 minutes apart. Ordered by event time, input 0 would wait behind its head
        // for the whole backlog.
        let now = Instant::now();
        let mut merge = Merge::new(2);
        merge.set_reach(0, Some(2), None);
        let mut inputs = [
            partition_with(&[merge_time(sent + 12 * hour, sent), sent + 1], Some(2)),
            partition_with(&[sent - 30 * 60_000, sent - 20 * 60_000, sent + 2], Some(3)),
        ];
        let mut order = Vec::new();
        while let Some(input) = merge.next(&inputs, Duration::ZERO, || now) {
            let record = inputs[input].buffered.pop_front().expect("a head");
            order.push((input, record.offset));
            if inputs.iter().all(|p| p.buffered.is_empty()) {
                break;
            }
        }
        assert_eq!(order, [(1, 0), (1, 1), (0, 0), (0, 1), (1, 2)]);
    }
}
