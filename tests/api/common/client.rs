//! The tests' HTTP client: awc, a real client, so that an answer is read as any HTTP client reads
//! it (framing, lengths, chunks) and one it cannot read fails the test instead of passing as empty.

use std::time::Duration;

use awc::http::header::HeaderMap;
use awc::http::Method;
use serde_json::Value;

/// The whole exchange may take this long (the raw requests' read timeout before).
const TIMEOUT: Duration = Duration::from_secs(10);
/// Far above any answer of the service (awc's default is 256 KiB).
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// An answer: status, headers and the body as text.
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    /// The header's value as text (`None` if absent or not visible ASCII).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A request to the service on `127.0.0.1:port`; panics if it cannot be sent or the answer cannot
/// be read whole as UTF-8.
pub fn request(method: &str, port: u16, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let method = Method::from_bytes(method.as_bytes()).expect("an HTTP method");
    let url = format!("http://127.0.0.1:{port}{path}");
    // awc is !Send and needs an actix runtime: each request gets a thread and a System of its
    // own, so any test thread can call this (inside a runtime or not) and no connection outlives it.
    let sent = std::thread::scope(|s| {
        s.spawn(|| actix_rt::System::new().block_on(send(method.clone(), &url, headers, body)))
            .join()
            .unwrap_or_else(|_| Err("the client thread panicked".to_string()))
    });
    sent.unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

async fn send(method: Method, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Answer, String> {
    let client = awc::Client::builder().timeout(TIMEOUT).finish();
    let mut req = client.request(method, url);
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let mut res = req.send_body(body.to_vec()).await.map_err(|e| format!("no answer: {e}"))?;
    let status = res.status().as_u16();
    let bytes = res.body().limit(BODY_LIMIT).await.map_err(|e| format!("{status}, body unreadable: {e}"))?;
    let body = String::from_utf8(bytes.to_vec()).map_err(|e| format!("{status}, body not UTF-8: {e}"))?;
    Ok(Answer { status, headers: res.headers().clone(), body })
}

/// A request without headers or body; status and body.
pub fn http(method: &str, port: u16, path: &str) -> (u16, String) {
    http_with(method, port, path, &[], b"")
}

/// A request with headers and a body; status and body.
pub fn http_with(method: &str, port: u16, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let a = request(method, port, path, headers, body);
    (a.status, a.body)
}

/// A GET whose answer must be JSON (every answer of the service's API is, errors included);
/// panics with the status and body otherwise.
pub fn get_json(port: u16, path: &str) -> (u16, Value) {
    let (status, body) = http("GET", port, path);
    match serde_json::from_str(&body) {
        Ok(v) => (status, v),
        Err(e) => panic!("GET {path}: {status} with a body that is not JSON ({e}): {body}"),
    }
}
