//! Synthetic users (to be written).
