//! The operator's HTTP listener: `/metrics`, `/healthz`, `/readyz`.
//!
//! It runs on a thread of its own with a single-threaded tokio runtime, so a slow scraper or a
//! burst of probes never takes time from the processing loop, and the loop never waits for
//! it: every answer is built from atomics, a status snapshot or the metrics registry.
//!
//! - `GET /metrics`: the registry in the OpenMetrics text format (Prometheus reads it).
//! - `GET /healthz`: `200 ok` while the process answers and its processing loop has turned
//!   within [`STALLED_AFTER`]; `503` when the loop is stuck (restart me).
//! - `GET /readyz`: `200` when every registered readiness condition is ready or degraded,
//!   `503` otherwise; the body is JSON naming each condition, its state and a detail.

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::metrics::Metrics;
use super::readiness::{Heartbeat, Readiness};

/// How long the processing loop may go without a heartbeat before `/healthz` reports it stuck.
/// Longer than anything the loop legitimately blocks on (a transaction commit or a broker
/// request, bounded by `kafka.request-timeout`; a changelog restore beats as it reads).
pub const STALLED_AFTER: Duration = Duration::from_secs(120);

/// OpenMetrics, as prometheus-client encodes it; Prometheus asks for it and accepts it.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "cannot listen on {addr}: {source} (set another address with http.listen, \
             VIGIL_HTTP_LISTEN or --http)"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the HTTP listener: {0}")]
    Start(std::io::Error),
}

/// What the endpoints read.
#[derive(Clone, Copy)]
pub struct Endpoints {
    pub metrics: &'static Metrics,
    pub readiness: &'static Readiness,
    pub heartbeat: &'static Heartbeat,
}

impl Endpoints {
    /// The process's own metrics, readiness and heartbeat.
    pub fn global() -> Endpoints {
        Endpoints {
            metrics: super::metrics(),
            readiness: super::readiness(),
            heartbeat: super::heartbeat(),
        }
    }
}

/// The running listener. Dropping it stops it.
pub struct HttpServer {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr` now (so a taken port is an error at start, not later) and serves on a
    /// thread of its own.
    pub fn start(addr: SocketAddr, endpoints: Endpoints) -> Result<HttpServer, HttpError> {
        let listener =
            std::net::TcpListener::bind(addr).map_err(|source| HttpError::Bind { addr, source })?;
        listener.set_nonblocking(true).map_err(HttpError::Start)?;
        let bound = listener.local_addr().map_err(HttpError::Start)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(HttpError::Start)?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("vigil-http".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, "the HTTP listener cannot start");
                            return;
                        }
                    };
                    let served = axum::serve(listener, router(endpoints))
                        .with_graceful_shutdown(async {
                            let _ = rx.await;
                        })
                        .await;
                    if let Err(e) = served {
                        tracing::error!(error = %e, "the HTTP listener stopped");
                    }
                })
            })
            .map_err(HttpError::Start)?;
        tracing::info!(address = %bound, "serving /metrics, /healthz and /readyz");
        Ok(HttpServer {
            addr: bound,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The address it listens on (the port chosen, when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for HttpServer {
    /// Asks the server to stop and lets it finish on its own: a scraper holding a connection
    /// open must not delay the process's exit.
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        drop(self.thread.take());
    }
}

/// The routes, over `endpoints`.
pub fn router(endpoints: Endpoints) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(endpoints)
}

async fn metrics(State(e): State<Endpoints>) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, OPENMETRICS)],
        e.metrics.encode(),
    )
}

async fn healthz(State(e): State<Endpoints>) -> impl IntoResponse {
    if e.heartbeat.alive(STALLED_AFTER) {
        (StatusCode::OK, "ok\n".to_string())
    } else {
        let silent = e.heartbeat.silent_for().unwrap_or_default().as_secs();
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("stalled: the processing loop has not turned for {silent} s\n"),
        )
    }
}

async fn readyz(State(e): State<Endpoints>) -> impl IntoResponse {
    let report = e.readiness.report();
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::to_string(&report).unwrap_or_else(|_| "{}".to_string());
    (status, [(header::CONTENT_TYPE, "application/json")], body)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;
    use crate::telemetry::readiness::Check;

    /// One HTTP/1.0 GET: the status code and the body.
    fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        write!(s, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").expect("request");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("response");
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("a status line");
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    fn leak<T>(value: T) -> &'static T {
        Box::leak(Box::new(value))
    }

    #[test]
    fn serves_metrics_health_and_readiness() {
        let endpoints = Endpoints {
            metrics: leak(Metrics::new()),
            readiness: leak(Readiness::new()),
            heartbeat: leak(Heartbeat::default()),
        };
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let server = HttpServer::start(loopback, endpoints).expect("starts");
        let addr = server.local_addr();

        let (status, body) = get(addr, "/metrics");
        assert_eq!(status, 200);
        assert!(body.contains("# TYPE vigil_transactions counter"), "{body}");
        assert!(body.ends_with("# EOF\n"));

        assert_eq!(get(addr, "/healthz"), (200, "ok\n".to_string()));

        let (status, body) = get(addr, "/readyz");
        assert_eq!(status, 503, "nothing registered yet: {body}");
        endpoints
            .readiness
            .register("partitions assigned", || Check::ready("3 partitions"));
        let (status, body) = get(addr, "/readyz");
        assert_eq!(status, 200, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(json["conditions"][0]["name"], "partitions assigned");
        assert_eq!(json["conditions"][0]["state"], "ready");

        assert_eq!(get(addr, "/nothing").0, 404);
    }

    #[test]
    fn a_taken_address_is_an_error_at_start() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr");
        let e = HttpServer::start(addr, Endpoints::global())
            .err()
            .expect("the port is taken");
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
    }
}
