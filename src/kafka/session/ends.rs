//! Where the assigned input partitions end: the watermarks and positions the merge needs
//! before each processing, and whether everything assigned has been processed and committed
//! (`exit_when_idle`).

use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;

use rdkafka::{Offset, TopicPartitionList};

use super::Session;
use crate::kafka::source::{high_watermark, watermarks};

impl Session<'_> {
    /// Asks, for each task with records buffered, where its input partitions end (their high
    /// watermarks) and how far the consumer has read them, right before processing (once per
    /// processing: the calls take librdkafka's locks, which its fetcher needs too, and the
    /// answers only change as fetches arrive).
    pub(super) fn set_reach(&mut self) {
        if !self.tasks.values().any(|t| t.buffered() > 0) {
            return;
        }
        // The consumer's position passes transaction markers and aborted records, which are
        // never delivered: without it, a partition whose log ends with a marker would never
        // look read to its end. It counts only while no record is staged: a staged record is
        // read but not yet in its task, whose partition must not look read past it.
        let positions = if self.staging.records == 0 {
            self.consumer.position().ok()
        } else {
            None
        };
        for task in self.tasks.values_mut() {
            if task.buffered() == 0 {
                continue;
            }
            for (input, name) in self.inputs_c.iter().enumerate() {
                let topic = &self.topics.inputs[input];
                let (high, position) = match positions
                    .as_ref()
                    .map(|p| p.find_partition(topic, task.partition))
                {
                    // Not assigned here (the topics' partition counts changed under a
                    // running group): nothing will come to wait for.
                    Some(None) => (Some(0), Some(0)),
                    Some(Some(e)) => (
                        high_watermark(&self.consumer, name, task.partition),
                        crate::kafka::real_offset(e.offset()),
                    ),
                    None => (high_watermark(&self.consumer, name, task.partition), None),
                };
                task.merge.set_reach(input, high, position);
            }
        }
    }

    /// True when nothing is buffered and every assigned partition is at its end: read to its
    /// high watermark, or, for a partition this session has received nothing from, committed
    /// up to it (asked of the brokers at most once a second). Not while the group session is
    /// lost (a broker away revokes the assignment: the input has not ended), and not on a
    /// partition whose end is unknown.
    pub(super) fn all_processed(&mut self) -> bool {
        if self.staging.records > 0 || self.tasks.values().any(|t| t.buffered() > 0) {
            return false;
        }
        if self.consumer.assignment_lost() {
            return false;
        }
        // Positions pass transaction markers, which no record reaches (see `set_reach`).
        let Ok(assignment) = self.consumer.position() else {
            return false;
        };
        // Nothing assigned is not everything processed: between a revocation and the next
        // assignment (after a broker outage the group can take seconds to form again) the
        // input has not ended. An instance of a group that has no partition for it waits too:
        // one may come to it when another member leaves.
        if assignment.count() == 0 {
            return false;
        }
        let mut untouched = TopicPartitionList::new();
        for e in assignment.elements() {
            let Some(input) = self.topics.inputs.iter().position(|n| n == e.topic()) else {
                continue;
            };
            let Some((low, high)) =
                watermarks(&self.consumer, &self.inputs_c[input], e.partition())
            else {
                return false;
            };
            let position = crate::kafka::real_offset(e.offset());
            let received = self
                .tasks
                .get(&e.partition())
                .and_then(|t| t.inputs[input].received_to)
                .max(position);
            match received {
                Some(at) if at >= high => {}
                Some(_) => return false,
                // Nothing in it at all (or nothing left after retention): nothing to wait for.
                None if low >= high => {}
                None => {
                    if untouched
                        .add_partition_offset(e.topic(), e.partition(), Offset::Offset(high))
                        .is_err()
                    {
                        return false;
                    }
                }
            }
        }
        if untouched.count() == 0 {
            return true;
        }
        if self
            .committed_asked
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            return false;
        }
        self.committed_asked = Some(Instant::now());
        let limit = self.timeout.min(Duration::from_secs(2));
        let Ok(committed) = self.consumer.committed_offsets(untouched.clone(), limit) else {
            return false;
        };
        committed.elements().iter().all(|e| {
            let end = crate::kafka::offset_in(&untouched, e.topic(), e.partition());
            matches!((e.offset(), end), (Offset::Offset(at), Some(end)) if at >= end)
        })
    }
}
