//! `[redis]`: the state several instances share and downstream services read (see
//! [`crate::status`] and docs/redis.md).

use schemars::JsonSchema;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

/// The state that several instances share and downstream services read: per-user status
/// (alerts firing, latest baselines, last event time), silences, cooldown and dedup keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RedisConfig {
    /// `"redis://[user:password@]host:port[/db]"`, `"rediss://…"` for TLS (also
    /// `redis+unix://` and `unix://`). `VIGIL_REDIS_URL` overrides it. Default: none, the
    /// embedded mode, where this state lives in the process and silences in the history
    /// database.
    #[serde(deserialize_with = "url", skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(redis|rediss|redis\+unix|unix)://"))]
    pub url: Option<String>,
    /// Put before every key Vigil writes, so several deployments can share one Redis.
    /// Default: `"vigil:"`.
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: None,
            key_prefix: "vigil:".to_string(),
        }
    }
}

fn url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let url = String::deserialize(deserializer)?;
    match check_url(&url) {
        Ok(()) => Ok(Some(url)),
        Err(why) => Err(D::Error::custom(format!(
            "{why}; write \"redis://host:6379\" or \"rediss://host:6380/0\""
        ))),
    }
}

/// A Redis URL the `redis` crate will accept: scheme and host, checked without connecting.
pub(super) fn check_url(url: &str) -> Result<(), &'static str> {
    if !(url.starts_with("redis://")
        || url.starts_with("rediss://")
        || url.starts_with("redis+unix://")
        || url.starts_with("unix://"))
    {
        return Err("has an unknown scheme (redis://, rediss://, redis+unix:// or unix://)");
    }
    ::redis::parse_redis_url(url)
        .map(|_| ())
        .ok_or("is not a valid URL")
}
