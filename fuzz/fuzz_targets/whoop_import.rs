//! Any bytes as a WHOOP physiological_cycles export: the import never panics, and every event
//! it emits is one the decoder accepts as it is (an import must never feed `vigil run` events it
//! would dead-letter).

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use vigil::event::Decoder;
use vigil::import::whoop::import_whoop;

static DECODER: LazyLock<Decoder> = LazyLock::new(Decoder::new);

fuzz_target!(|data: &[u8]| {
    let Ok(import) = import_whoop(data, "u1") else {
        return;
    };
    assert!(
        import.events.windows(2).all(|w| w[0].time <= w[1].time),
        "events not sorted by time"
    );
    for event in &import.events {
        match DECODER.decode(event.to_json().to_string().as_bytes()) {
            Ok(decoded) => assert_eq!(format!("{decoded:?}"), format!("{event:?}")),
            Err(e) => panic!("imported event {} is refused: {e}", event.to_json()),
        }
    }
});
