//! Any bytes as `vigil.toml`: applied over the defaults and validated as `Config::load` does,
//! every error rendered with its snippet; nothing panics.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vigil::config::Config;

fuzz_target!(|data: &[u8]| {
    // `Config::load` reads the file as UTF-8 text; other bytes never reach the parser.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut config = Config::default();
    let result = config
        .apply_file(Path::new("vigil.toml"), text)
        .and_then(|()| config.validate());
    match result {
        Ok(()) => {
            let _ = config.kafka.streaming.threads();
            for (_, topic) in config.kafka.topics.all() {
                let _ = config.kafka.topic_name(topic);
            }
        }
        Err(e) => {
            let _ = e.to_string();
            let _ = e.render(false);
        }
    }
});
