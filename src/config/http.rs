//! `[http]`: the HTTP listener of `vigil run` (see [`crate::telemetry`]).

use std::net::SocketAddr;

use schemars::JsonSchema;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

/// The HTTP listener of `vigil run`: `/metrics` (OpenMetrics text, which Prometheus reads),
/// `/healthz` (200 while the processing loop turns) and `/readyz` (200 when partitions are
/// assigned, state is restored and no dependency is down).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct HttpConfig {
    /// `"host:port"` to listen on, an IP address and a port, e.g. `"127.0.0.1:9464"`
    /// (`"0.0.0.0:9464"` for a Prometheus on another host). `VIGIL_HTTP_LISTEN` and
    /// `vigil run --http` override it. Default: none, no listener.
    #[serde(deserialize_with = "listen", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub listen: Option<SocketAddr>,
}

fn listen<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map(Some).map_err(|_| {
        D::Error::custom(
            "is not host:port; write an IP address and a port, e.g. \"127.0.0.1:9464\"",
        )
    })
}
