//! Converters from vendor exports into Vigil events.

pub mod whoop;
