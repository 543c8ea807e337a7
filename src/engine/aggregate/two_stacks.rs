//! Two-Stacks sliding-window aggregation (Tangwongsan, Hirzel, Schneider, DEBS 2017) over any
//! [`Monoid`]: amortised O(1) push, pop and query, with no inverse operation required.
//!
//! Nothing is ever subtracted out: the query is always a fresh fold of exactly the samples in the
//! window, so there is no drift over long runs, and a bad value stops mattering once it leaves.
//! DABA would make the worst case O(1) too; the occasional O(n) flip is cheap at the window
//! sizes of health rules, and Two-Stacks is far simpler to trust.

use super::Sample;

/// An associative combine with an identity, over aggregates of time-ordered samples.
pub trait Monoid {
    /// Aggregate of a contiguous run of samples.
    type Agg: Copy;
    fn identity(&self) -> Self::Agg;
    fn lift(&self, s: Sample) -> Self::Agg;
    /// `older` covers samples strictly before `newer`'s: first, last, ewma and slope are not
    /// commutative, so the argument order carries meaning.
    fn combine(&self, older: Self::Agg, newer: Self::Agg) -> Self::Agg;
}

/// FIFO window aggregate: push at the back, pop at the front.
#[derive(Clone, Debug)]
pub struct TwoStacks<M: Monoid> {
    monoid: M,
    /// Oldest sample on top; each entry folds itself with every newer entry below it, so the
    /// top entry alone is the aggregate of the whole front stack.
    front: Vec<M::Agg>,
    /// Newest sample on top, lifted but not folded: they are folded only when flipped to the front.
    back: Vec<M::Agg>,
    /// Fold of `back`, kept so a query never walks the back stack.
    back_agg: M::Agg,
}

impl<M: Monoid> TwoStacks<M> {
    pub fn new(monoid: M) -> Self {
        let back_agg = monoid.identity();
        Self {
            monoid,
            front: Vec::new(),
            back: Vec::new(),
            back_agg,
        }
    }

    pub fn push(&mut self, s: Sample) {
        let lifted = self.monoid.lift(s);
        self.back_agg = self.monoid.combine(self.back_agg, lifted);
        self.back.push(lifted);
    }

    /// Removes the oldest sample; a no-op when empty.
    pub fn pop_front(&mut self) {
        if self.front.is_empty() {
            self.flip();
        }
        self.front.pop();
    }

    /// Aggregate of the whole window (the identity when empty).
    pub fn query(&self) -> M::Agg {
        match self.front.last() {
            Some(&front_agg) => self.monoid.combine(front_agg, self.back_agg),
            None => self.back_agg,
        }
    }

    pub fn len(&self) -> usize {
        self.front.len() + self.back.len()
    }

    pub fn is_empty(&self) -> bool {
        self.front.is_empty() && self.back.is_empty()
    }

    /// Empties the window but keeps the allocations for reuse.
    pub fn clear(&mut self) {
        self.front.clear();
        self.back.clear();
        self.back_agg = self.monoid.identity();
    }

    pub fn heap_bytes(&self) -> usize {
        (self.front.capacity() + self.back.capacity()) * std::mem::size_of::<M::Agg>()
    }

    /// Moves the back stack onto the front, newest first, so the oldest ends on top; each pushed
    /// entry is folded from scratch, which is what keeps the aggregates drift-free.
    fn flip(&mut self) {
        let mut acc = self.monoid.identity();
        while let Some(lifted) = self.back.pop() {
            acc = self.monoid.combine(lifted, acc);
            self.front.push(acc);
        }
        self.back_agg = self.monoid.identity();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Order-sensitive monoid: (count, first t, last t, polynomial hash of the t sequence).
    struct Seq;
    impl Monoid for Seq {
        type Agg = (u32, i64, i64, u64);
        fn identity(&self) -> Self::Agg {
            (0, 0, 0, 0)
        }
        fn lift(&self, s: Sample) -> Self::Agg {
            (1, s.t, s.t, s.t as u64)
        }
        fn combine(&self, a: Self::Agg, b: Self::Agg) -> Self::Agg {
            match (a.0, b.0) {
                (0, _) => b,
                (_, 0) => a,
                _ => {
                    let shifted = a.3.wrapping_mul(1_000_003u64.wrapping_pow(b.0));
                    (a.0 + b.0, a.1, b.2, shifted.wrapping_add(b.3))
                }
            }
        }
    }

    fn expected(window: &VecDeque<i64>) -> (u32, i64, i64, u64) {
        window.iter().fold(Seq.identity(), |acc, &t| {
            Seq.combine(acc, Seq.lift(Sample { t, v: 0.0 }))
        })
    }

    #[test]
    fn keeps_fifo_order_across_flips() {
        let mut ts = TwoStacks::new(Seq);
        let mut window = VecDeque::new();
        // A fixed interleaving that flips with a non-empty back stack and empties completely.
        let script = "ppp-pp--p---pppppp-p-p--------pp-pppp-----";
        for (t, op) in script.chars().enumerate() {
            if op == 'p' {
                ts.push(Sample {
                    t: t as i64,
                    v: 0.0,
                });
                window.push_back(t as i64);
            } else {
                ts.pop_front();
                window.pop_front();
            }
            assert_eq!(ts.len(), window.len());
            assert_eq!(ts.query(), expected(&window), "after op {t}");
        }
        assert!(ts.is_empty());
    }
}
