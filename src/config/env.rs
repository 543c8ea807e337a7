//! The last layer: `VIGIL_…` environment variables, read over the file.
//!
//! Each names one key of the file; a variable that is set but unusable is an error naming it,
//! rather than a silent fallback to the file's value.

use super::{redis, Config, ConfigError};

/// Environment variables read over the file, with what they set.
pub const ENV_VARS: &[(&str, &str)] = &[
    (
        "VIGIL_KAFKA_BROKERS",
        "kafka.brokers, comma-separated host:port list",
    ),
    ("VIGIL_KAFKA_CLIENT_ID", "kafka.client-id"),
    ("VIGIL_KAFKA_GROUP", "kafka.group"),
    ("VIGIL_KAFKA_TOPIC_PREFIX", "kafka.topic-prefix"),
    ("VIGIL_INSTANCE_ID", "kafka.streaming.instance-id"),
    ("VIGIL_DATABASE_URL", "history.url"),
    ("VIGIL_REDIS_URL", "redis.url"),
    ("VIGIL_HTTP_LISTEN", "http.listen"),
];

impl Config {
    /// Applies the `VIGIL_…` variables that `get` returns (the process environment in
    /// [`Config::load`]; a map in tests).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(value) = get("VIGIL_KAFKA_BROKERS") {
            let brokers: Vec<String> = value
                .split(',')
                .map(str::trim)
                .filter(|b| !b.is_empty())
                .map(String::from)
                .collect();
            if brokers.is_empty() {
                return Err(ConfigError::Env {
                    var: "VIGIL_KAFKA_BROKERS",
                    message: "no broker in it; write host:port[,host:port…]".to_string(),
                });
            }
            self.kafka.brokers = brokers;
        }
        for (var, target) in [
            ("VIGIL_KAFKA_CLIENT_ID", &mut self.kafka.client_id),
            ("VIGIL_KAFKA_GROUP", &mut self.kafka.group),
        ] {
            if let Some(value) = get(var) {
                *target = non_blank(var, &value)?;
            }
        }
        if let Some(value) = get("VIGIL_KAFKA_TOPIC_PREFIX") {
            self.kafka.topic_prefix = value;
        }
        if let Some(value) = get("VIGIL_INSTANCE_ID") {
            self.kafka.streaming.instance_id = Some(non_blank("VIGIL_INSTANCE_ID", &value)?);
        }
        if let Some(value) = get("VIGIL_DATABASE_URL") {
            let value = value.trim();
            if let Err(e) = crate::history::Backend::from_url(value) {
                return Err(ConfigError::Env {
                    var: "VIGIL_DATABASE_URL",
                    message: e.to_string(),
                });
            }
            self.history.url = value.to_string();
        }
        if let Some(value) = get("VIGIL_REDIS_URL") {
            let value = value.trim();
            if let Err(why) = redis::check_url(value) {
                return Err(ConfigError::Env {
                    var: "VIGIL_REDIS_URL",
                    message: why.to_string(),
                });
            }
            self.redis.url = Some(value.to_string());
        }
        if let Some(value) = get("VIGIL_HTTP_LISTEN") {
            match value.trim().parse() {
                Ok(address) => self.http.listen = Some(address),
                Err(_) => {
                    return Err(ConfigError::Env {
                        var: "VIGIL_HTTP_LISTEN",
                        message: "not host:port; write e.g. 127.0.0.1:9464".to_string(),
                    })
                }
            }
        }
        Ok(())
    }
}

/// The value trimmed; an empty one is refused, since unsetting is how to keep the file's.
fn non_blank(var: &'static str, value: &str) -> Result<String, ConfigError> {
    if value.trim().is_empty() {
        return Err(ConfigError::Env {
            var,
            message: "empty; unset it to keep the file's value".to_string(),
        });
    }
    Ok(value.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn from_file(text: &str) -> Config {
        let mut c = Config::default();
        c.apply_file(std::path::Path::new("vigil.toml"), text)
            .unwrap_or_else(|e| panic!("{e}"));
        c
    }

    #[test]
    fn every_variable_sets_its_key() {
        let mut c = Config::default();
        c.apply_env(env(&[
            ("VIGIL_KAFKA_BROKERS", "127.0.0.1:19092, 127.0.0.1:19093"),
            ("VIGIL_KAFKA_CLIENT_ID", " vigil-test "),
            ("VIGIL_KAFKA_GROUP", "from-env"),
            ("VIGIL_KAFKA_TOPIC_PREFIX", "t1-"),
            ("VIGIL_INSTANCE_ID", "vigil-7"),
            ("VIGIL_DATABASE_URL", "postgres://v:v@db:5432/vigil"),
            ("VIGIL_REDIS_URL", "redis://cache:6379"),
            ("VIGIL_HTTP_LISTEN", "0.0.0.0:9000"),
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.kafka.brokers, ["127.0.0.1:19092", "127.0.0.1:19093"]);
        assert_eq!(c.kafka.client_id, "vigil-test");
        assert_eq!(c.kafka.group, "from-env");
        assert_eq!(c.kafka.topic_prefix, "t1-");
        assert_eq!(c.kafka.streaming.instance_id.as_deref(), Some("vigil-7"));
        assert_eq!(c.history.url, "postgres://v:v@db:5432/vigil");
        assert_eq!(c.redis.url.as_deref(), Some("redis://cache:6379"));
        assert_eq!(c.http.listen, Some("0.0.0.0:9000".parse().unwrap()));
        let documented: Vec<&str> = ENV_VARS.iter().map(|(var, _)| *var).collect();
        assert_eq!(documented.len(), 8, "every variable above is in ENV_VARS");
    }

    #[test]
    fn environment_wins_over_the_file() {
        let mut c = from_file("[kafka]\nbrokers = [\"file:9092\"]\ngroup = \"from-file\"\n");
        c.apply_env(env(&[
            ("VIGIL_KAFKA_BROKERS", "127.0.0.1:19092, 127.0.0.1:19093"),
            ("VIGIL_KAFKA_TOPIC_PREFIX", "t1-"),
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.kafka.brokers, ["127.0.0.1:19092", "127.0.0.1:19093"]);
        assert_eq!(c.kafka.group, "from-file");
        assert_eq!(c.kafka.topic_prefix, "t1-");
        c.apply_env(env(&[("VIGIL_KAFKA_GROUP", "from-env")]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.kafka.group, "from-env");
        assert_eq!(c.kafka.brokers, ["127.0.0.1:19092", "127.0.0.1:19093"]);

        let mut c = from_file("[history]\nurl = \"sqlite:/var/lib/vigil/h.db\"\n");
        assert_eq!(c.history.url, "sqlite:/var/lib/vigil/h.db");
        c.apply_env(env(&[(
            "VIGIL_DATABASE_URL",
            "postgres://v:v@db:5432/vigil",
        )]))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.history.url, "postgres://v:v@db:5432/vigil");
    }

    #[test]
    fn unusable_values_are_errors_naming_the_variable() {
        for (var, value) in [
            ("VIGIL_KAFKA_BROKERS", " , "),
            ("VIGIL_KAFKA_CLIENT_ID", " "),
            ("VIGIL_KAFKA_GROUP", ""),
            ("VIGIL_INSTANCE_ID", ""),
            ("VIGIL_DATABASE_URL", ""),
            ("VIGIL_DATABASE_URL", "mysql://db/x"),
            ("VIGIL_REDIS_URL", "http://cache"),
            ("VIGIL_HTTP_LISTEN", "localhost"),
        ] {
            let e = Config::default()
                .apply_env(env(&[(var, value)]))
                .expect_err(var);
            assert!(e.to_string().contains(var), "{var}={value:?}: {e}");
        }
    }
}
