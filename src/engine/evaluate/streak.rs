//! Streaks: runs of consecutive nights or events on which a condition held.

use crate::engine::state::Streak;

/// Records whether the condition held at `pos` and says whether that completes a run of
/// `need` consecutive positions that has not fired yet. Positions arrive in any order within
/// the last 64: a late night or a correction rewrites its bit, and a run that includes a
/// position of an already fired run never fires again.
pub(super) fn advance_streak(streak: &mut Streak, pos: i64, holds: bool, need: u32) -> bool {
    if streak.held == 0 && streak.fired == 0 {
        streak.pos = pos;
    }
    if pos > streak.pos {
        let shift = pos - streak.pos;
        if shift >= 64 {
            streak.held = 0;
            streak.fired = 0;
        } else {
            streak.held <<= shift;
            streak.fired <<= shift;
        }
        streak.pos = pos;
    }
    let Ok(offset) = u32::try_from(streak.pos - pos) else {
        return false;
    };
    if offset >= 64 {
        return false; // older than the bitmap reaches: nothing it could still decide
    }
    let bit = 1u64 << offset;
    if !holds {
        streak.held &= !bit;
        return false;
    }
    streak.held |= bit;
    // The maximal run of set bits through `offset`: towards older positions (higher bits) and
    // newer ones (lower bits).
    let older = (streak.held >> offset).trailing_ones();
    let newer = if offset == 0 {
        0
    } else {
        (!(streak.held << (64 - offset))).leading_zeros()
    };
    let length = older + newer;
    let low = offset - newer;
    let mask = if length >= 64 {
        u64::MAX
    } else {
        ((1u64 << length) - 1) << low
    };
    if streak.fired & mask != 0 {
        streak.fired |= mask; // the run already fired: its new positions belong to it too
        return false;
    }
    if length >= need {
        streak.fired |= mask;
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(streak: &mut Streak, night: i64, holds: bool) -> bool {
        advance_streak(streak, night, holds, 3)
    }

    #[test]
    fn streak_fires_once_per_run_and_a_gap_ends_it() {
        let mut rs = Streak::default();
        assert!(!step(&mut rs, 1, true));
        assert!(!step(&mut rs, 2, true));
        assert!(step(&mut rs, 3, true));
        assert!(!step(&mut rs, 4, true), "once per run");
        // Night 5 has no data: night 6 starts a new run.
        assert!(!step(&mut rs, 6, true));
        assert!(!step(&mut rs, 7, true));
        assert!(step(&mut rs, 8, true));
    }

    #[test]
    fn a_correction_of_the_latest_night_is_reapplied() {
        let mut rs = Streak::default();
        step(&mut rs, 1, true);
        step(&mut rs, 2, true);
        assert!(!step(&mut rs, 3, false));
        // The second value for night 3 holds: the run is 1, 2, 3 after all.
        assert!(step(&mut rs, 3, true));
        // Correcting it again does not fire twice, and a false correction breaks the run.
        assert!(!step(&mut rs, 3, true));
        assert!(!step(&mut rs, 3, false));
        assert!(!step(&mut rs, 4, true));
        // An older night cannot rewrite the run.
        assert!(!step(&mut rs, 2, false));
        assert!(!step(&mut rs, 5, true));
        assert!(step(&mut rs, 6, true));
    }
}
