//! Redis, when `redis.url` is configured: connect, PING, and the PING's round trip.
//!
//! Degraded, never failing, when unreachable or slow: Vigil runs without Redis (silences and
//! cooldowns fall back to what the process knows) and catches up when it returns.

use std::time::{Duration, Instant};

use redis::AsyncConnectionConfig;

use super::{sentence, show_duration, Check, Figure, Options};
use crate::config::RedisConfig;
use crate::history::redact_url;

/// One check: reachable within the timeout, and the PING round trip within its threshold.
pub fn checks(config: &RedisConfig, options: &Options) -> Vec<Check> {
    let Some(url) = &config.url else {
        return vec![Check::start("redis", "").skipped(
            "not configured (redis.url or VIGIL_REDIS_URL): shared state stays in the process",
        )];
    };
    vec![ping(url, options.timeout, options.max_redis_latency)]
}

fn ping(url: &str, timeout: Duration, max_latency: Duration) -> Check {
    let check = Check::start("redis", redact_url(url));
    let runtime = match super::runtime() {
        Ok(rt) => rt,
        Err(e) => return check.degraded(format!("cannot start the async runtime: {e}")),
    };
    let outcome = runtime.block_on(async {
        let client = redis::Client::open(url).map_err(|e| sentence(&e))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let attempt = async {
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            // The round trip of one command on an open connection: what every later call pays.
            let sent = Instant::now();
            let answer: String = redis::cmd("PING").query_async(&mut conn).await?;
            Ok::<_, redis::RedisError>((answer, sent.elapsed()))
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(e)) => Err(sentence(&e)),
            Err(_) => Err(format!("no answer within {}", show_duration(timeout))),
        }
    });
    match outcome {
        Ok((answer, latency)) if answer == "PONG" => {
            let shown = show_duration(latency);
            let figure = Figure::latency(latency);
            if latency > max_latency {
                check
                    .degraded(format!(
                        "slow: PING round trip {shown}, above {}",
                        show_duration(max_latency)
                    ))
                    .with_figure(figure)
            } else {
                check
                    .ok(format!("reachable, PING round trip {shown}"))
                    .with_figure(figure)
            }
        }
        Ok((answer, _)) => check.degraded(format!("answered PING with `{answer}`, not PONG")),
        Err(why) => {
            let after = show_duration(check.elapsed());
            check.degraded(format!("unreachable: {why} (after {after})"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Status;

    #[test]
    fn a_closed_port_is_degraded_and_quick() {
        // Bind then drop a listener: the port is very likely closed right after.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let started = Instant::now();
        let c = ping(
            &format!("redis://127.0.0.1:{port}"),
            Duration::from_secs(5),
            Duration::from_millis(100),
        );
        assert_eq!(c.status, Status::Degraded, "{c:?}");
        assert!(c.detail.starts_with("unreachable: "), "{c:?}");
        assert!(started.elapsed() < Duration::from_secs(30), "{c:?}");
    }

    #[test]
    fn no_url_is_skipped_not_degraded() {
        let options = Options {
            mode: crate::health::Mode::Embedded,
            config: None,
            rules: Vec::new(),
            history: None,
            timeout: Duration::from_secs(1),
            max_lag: 1,
            max_probe_latency: Duration::from_secs(1),
            max_redis_latency: Duration::from_secs(1),
            instance: None,
        };
        let c = checks(&RedisConfig::default(), &options);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].status, Status::Skipped);
    }
}
