//! First and Last monoids: keep the older or the newer side's value.

use super::two_stacks::Monoid;
use super::Sample;

#[derive(Clone, Copy, Debug)]
pub struct FirstM;

impl Monoid for FirstM {
    type Agg = Option<f64>;
    fn identity(&self) -> Option<f64> {
        None
    }
    fn lift(&self, s: Sample) -> Option<f64> {
        Some(s.v)
    }
    fn combine(&self, older: Option<f64>, newer: Option<f64>) -> Option<f64> {
        older.or(newer)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct LastM;

impl Monoid for LastM {
    type Agg = Option<f64>;
    fn identity(&self) -> Option<f64> {
        None
    }
    fn lift(&self, s: Sample) -> Option<f64> {
        Some(s.v)
    }
    fn combine(&self, older: Option<f64>, newer: Option<f64>) -> Option<f64> {
        newer.or(older)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_right_side() {
        assert_eq!(FirstM.combine(Some(1.0), Some(2.0)), Some(1.0));
        assert_eq!(FirstM.combine(None, Some(2.0)), Some(2.0));
        assert_eq!(LastM.combine(Some(1.0), Some(2.0)), Some(2.0));
        assert_eq!(LastM.combine(Some(1.0), None), Some(1.0));
    }
}
