//! Min and Max monoids. A monotonic deque would do too, but Two-Stacks gives the same O(1)
//! amortised cost with one shared, tested structure.
//!
//! The identities are the infinities, so an empty window must be recognised by its length, not
//! by the aggregate (see `Incremental::value`).

use super::two_stacks::Monoid;
use super::Sample;

#[derive(Clone, Copy, Debug)]
pub struct MinM;

impl Monoid for MinM {
    type Agg = f64;
    fn identity(&self) -> f64 {
        f64::INFINITY
    }
    fn lift(&self, s: Sample) -> f64 {
        s.v
    }
    fn combine(&self, older: f64, newer: f64) -> f64 {
        older.min(newer)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct MaxM;

impl Monoid for MaxM {
    type Agg = f64;
    fn identity(&self) -> f64 {
        f64::NEG_INFINITY
    }
    fn lift(&self, s: Sample) -> f64 {
        s.v
    }
    fn combine(&self, older: f64, newer: f64) -> f64 {
        older.max(newer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_neutral() {
        assert_eq!(MinM.combine(MinM.identity(), -3.0), -3.0);
        assert_eq!(MaxM.combine(7.0, MaxM.identity()), 7.0);
        assert_eq!(MinM.combine(2.0, 1.0), 1.0);
        assert_eq!(MaxM.combine(2.0, 1.0), 2.0);
    }
}
