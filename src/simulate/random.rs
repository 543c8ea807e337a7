//! The distributions the simulation draws from, by hand: rand 0.8 has no normal distribution
//! without rand_distr.

use std::f64::consts::PI;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

pub(super) fn normal(rng: &mut ChaCha8Rng, mean: f64, sd: f64) -> f64 {
    // Box–Muller; one value per call keeps the stream simple and deterministic.
    let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.gen();
    mean + sd * (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
}

pub(super) fn uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    rng.gen_range(lo..hi)
}

pub(super) fn chance(rng: &mut ChaCha8Rng, p: f64) -> bool {
    rng.gen::<f64>() < p
}

pub(super) fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
