//! `[history]`: where alerts and milestones are stored (see [`crate::history`]).

use schemars::JsonSchema;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

/// The history of alerts (firing and resolved) and milestones, each stored with its CloudEvent.
/// `vigil run` writes it, `vigil alerts list` and `vigil alerts show` read it, `vigil migrate`
/// applies its schema.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct HistoryConfig {
    /// `"postgres://user:password@host:5432/db"` in production, or `"sqlite:PATH"`: a SQLite
    /// file, created when missing (relative paths are from the working directory).
    /// `VIGIL_DATABASE_URL` overrides it. Default: `"sqlite:vigil-history.db"`.
    #[serde(deserialize_with = "url")]
    #[schemars(regex(pattern = r"^(postgres|postgresql|sqlite):"))]
    pub url: String,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            url: crate::history::DEFAULT_URL.to_string(),
        }
    }
}

fn url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let url = String::deserialize(deserializer)?;
    match crate::history::Backend::from_url(&url) {
        Ok(_) => Ok(url),
        Err(_) => Err(D::Error::custom(
            "has an unknown scheme; write \"postgres://user:password@host:5432/db\" or \
             \"sqlite:PATH\"",
        )),
    }
}
