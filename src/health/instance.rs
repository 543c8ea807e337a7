//! The running instance, when one listens on the configured HTTP address (`http.listen`, or
//! `--instance`): what its `/readyz` says of its rules — which set runs, and whether the rule
//! files were refused at the last reload (it then runs on with the previous set).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::{sentence, Check};

/// The instance's `rules` condition, or nothing when no address is configured.
pub fn checks(address: Option<SocketAddr>, timeout: Duration) -> Vec<Check> {
    let Some(address) = address else {
        return Vec::new();
    };
    let check = Check::start("instance.rules", address.to_string());
    let body = match readyz(address, timeout) {
        Ok(body) => body,
        Err(why) => {
            return vec![check.skipped(format!("skipped: no running instance answers ({why})"))]
        }
    };
    let condition = body["conditions"].as_array().and_then(|conditions| {
        conditions
            .iter()
            .find(|c| c["name"].as_str() == Some("rules"))
    });
    let Some(condition) = condition else {
        return vec![check.skipped("skipped: the instance does not report its rules")];
    };
    let detail = condition["detail"].as_str().unwrap_or("").to_string();
    match condition["state"].as_str() {
        Some("ready") => vec![check.ok(detail)],
        _ => vec![check.degraded(detail)],
    }
}

/// `GET /readyz`'s JSON body (200 when ready, 503 when not: both carry it).
fn readyz(address: SocketAddr, timeout: Duration) -> Result<serde_json::Value, String> {
    let mut stream = TcpStream::connect_timeout(&address, timeout).map_err(|e| sentence(&e))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| sentence(&e))?;
    write!(
        stream,
        "GET /readyz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| sentence(&e))?;
    let mut response = Vec::new();
    stream
        .take(1 << 20)
        .read_to_end(&mut response)
        .map_err(|e| sentence(&e))?;
    let text = String::from_utf8_lossy(&response);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .unwrap_or("");
    // The body is one small JSON object: from its first brace to its last (a chunked
    // response frames it with lengths outside them).
    let json = match (body.find('{'), body.rfind('}')) {
        (Some(from), Some(to)) if from < to => &body[from..=to],
        _ => return Err("its answer is not Vigil's /readyz".into()),
    };
    serde_json::from_str(json).map_err(|_| "its answer is not Vigil's /readyz".to_string())
}
