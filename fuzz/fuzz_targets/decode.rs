//! Any bytes as one input line: the fast path and the full validator must decide alike (see
//! `Decoder::compare_paths`), and an accepted event's own JSON form must decode to itself.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use vigil::event::Decoder;

static DECODER: LazyLock<Decoder> = LazyLock::new(Decoder::new);

fuzz_target!(|line: &[u8]| {
    let event = match DECODER.compare_paths(line) {
        Ok(Some(event)) => event,
        Ok(None) => return,
        Err(difference) => panic!("{difference}"),
    };
    // What Vigil writes for an event (late events, rule tests) must read back as that event.
    let again = DECODER.decode(event.to_json().to_string().as_bytes());
    assert_eq!(
        format!("{again:?}"),
        format!("{:?}", Ok::<_, ()>(&event)),
        "{}",
        String::from_utf8_lossy(line)
    );
});
