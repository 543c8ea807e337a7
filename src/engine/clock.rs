//! The stream clock: the time that drives absence timers and the state TTL.
//!
//! Each user has their own event time; timers need one clock for everyone, so that a user
//! who stops sending still sees their 48 h pass. Taking the latest event time of anyone (as
//! Kafka Streams' stream time does) lets one phone with a wrong date move that clock for every
//! user: one event dated 9999 fires every other user's absence alert. So the clock is the time
//! that **two users** have reached (the second-latest user clock), and a user more than
//! `max_lead_ms` ahead of every other user is not counted at all. One user alone can then
//! never move it, however wrong their clock; a user far ahead of everyone is ignored exactly,
//! as if absent.
//!
//! With one or two users there is no majority to out-vote a wrong clock, and a user who stops
//! must still see time pass, so the clock is then the latest user's. It is not held there:
//! once a third user arrives, a wrong clock among the first two stops counting and the clock
//! goes back to the time the others agree on (timers it fired stay fired).
//!
//! Only the four latest user clocks matter, and user clocks only grow, so four entries are
//! kept: a user outside them can only re-enter with a newer event, which passes through here.

use serde::{Deserialize, Serialize};

/// How many of the latest user clocks are kept.
const KEPT: usize = 4;

/// The stream clock and the latest user clocks it is derived from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamClock {
    time: i64,
    /// The latest clocks of distinct users, newest first (at most [`KEPT`]).
    leaders: Vec<(Box<str>, i64)>,
    max_lead_ms: i64,
}

impl StreamClock {
    pub fn new(max_lead_ms: i64) -> Self {
        StreamClock {
            time: i64::MIN,
            leaders: Vec::with_capacity(KEPT),
            max_lead_ms,
        }
    }

    /// A clock restored from the leaders it had (as [`StreamClock::leaders`] gave them);
    /// `time` stands until the next observation when there are none (a snapshot written
    /// before the leaders were kept).
    pub fn restored(time: i64, leaders: Vec<(Box<str>, i64)>, max_lead_ms: i64) -> Self {
        let mut clock = StreamClock::new(max_lead_ms);
        for (user, t) in leaders {
            clock.observe(&user, t);
        }
        if clock.leaders.is_empty() {
            clock.time = time;
        }
        clock
    }

    /// The clock's time (ms); `i64::MIN` before any event.
    pub fn time(&self) -> i64 {
        self.time
    }

    /// The latest user clocks it keeps, newest first.
    pub fn leaders(&self) -> &[(Box<str>, i64)] {
        &self.leaders
    }

    /// `user`'s clock is now `user_clock`; true when the stream clock moved forward.
    pub fn observe(&mut self, user: &str, user_clock: i64) -> bool {
        match self.leaders.iter().position(|(u, _)| &**u == user) {
            Some(i) if self.leaders[i].1 >= user_clock => return false,
            Some(i) => self.leaders[i].1 = user_clock,
            None if self.leaders.len() < KEPT => self.leaders.push((user.into(), user_clock)),
            None => {
                let last = &mut self.leaders[KEPT - 1];
                if last.1 >= user_clock {
                    return false;
                }
                *last = (user.into(), user_clock);
            }
        }
        // Newest first; ties by user id so that the order (and a snapshot) is deterministic.
        self.leaders
            .sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let before = self.time;
        self.time = self.candidate();
        self.time > before
    }

    fn candidate(&self) -> i64 {
        let mut counted = &self.leaders[..];
        if counted.len() >= 3 && counted[0].1 > counted[1].1.saturating_add(self.max_lead_ms) {
            counted = &counted[1..];
        }
        match counted {
            [] => i64::MIN,
            [only] | [only, _] => only.1,
            [_, second, ..] => second.1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    fn clock_after(events: &[(&str, i64)]) -> i64 {
        let mut clock = StreamClock::new(DAY);
        for (user, t) in events {
            clock.observe(user, *t);
        }
        clock.time()
    }

    #[test]
    fn one_or_two_users_drive_it_alone() {
        assert_eq!(clock_after(&[("a", 10)]), 10);
        assert_eq!(clock_after(&[("a", 10), ("b", 50 * HOUR)]), 50 * HOUR);
    }

    #[test]
    fn from_three_users_on_it_is_the_time_two_have_reached() {
        let events = [("a", HOUR), ("b", 2 * HOUR), ("c", 3 * HOUR)];
        // With two users it was b's 2 h; c alone does not move it further.
        assert_eq!(clock_after(&events), 2 * HOUR);
        let mut more = events.to_vec();
        more.push(("a", 4 * HOUR));
        assert_eq!(clock_after(&more), 3 * HOUR);
    }

    #[test]
    fn a_wrong_clock_among_the_first_two_users_stops_counting_when_a_third_arrives() {
        let year = 365 * DAY;
        let mut clock = StreamClock::new(DAY);
        clock.observe("a", HOUR);
        clock.observe("x", 300 * year);
        assert_eq!(clock.time(), 300 * year, "two users: no majority");
        assert!(!clock.observe("b", 2 * HOUR));
        assert_eq!(clock.time(), 2 * HOUR);
    }

    #[test]
    fn a_user_far_ahead_of_everyone_is_ignored_as_if_absent() {
        let population = [
            ("a", 10 * HOUR),
            ("b", 11 * HOUR),
            ("c", 12 * HOUR),
            ("d", 13 * HOUR),
        ];
        let mut poisoned = vec![("x", 9_999 * 365 * DAY)];
        poisoned.extend(population);
        poisoned.push(("x", 10_000 * 365 * DAY));
        assert_eq!(clock_after(&poisoned), clock_after(&population));
        // Also when the population is just two users besides it.
        assert_eq!(
            clock_after(&[("a", HOUR), ("x", 400 * DAY), ("b", 2 * HOUR)]),
            clock_after(&[("a", HOUR), ("b", 2 * HOUR)])
        );
    }

    #[test]
    fn a_user_slightly_ahead_moves_it_no_further_than_the_latest_other_user() {
        let population = [("a", 10 * HOUR), ("b", 11 * HOUR), ("c", 12 * HOUR)];
        let mut skewed = population.to_vec();
        skewed.push(("x", 12 * HOUR + 20 * HOUR));
        assert_eq!(clock_after(&skewed), 12 * HOUR);
    }

    #[test]
    fn restoring_gives_the_same_clock() {
        let mut clock = StreamClock::new(DAY);
        for (i, user) in ["a", "b", "c", "d", "e", "f"].iter().enumerate() {
            clock.observe(user, i as i64 * HOUR);
        }
        let restored = StreamClock::restored(clock.time(), clock.leaders().to_vec(), DAY);
        assert_eq!(restored, clock);
    }
}
