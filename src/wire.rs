//! The HTTP server on a socket of ours, so that every answer has the JSON error body.
//!
//! actix-http answers what it cannot parse itself — 400 (a malformed request line, header or
//! `Content-Length`), 408 (a head that did not arrive in time), 431 (a head over its 128 KiB
//! buffer or with more than 96 headers) — with an empty body, and has no hook to change that.
//! [`JsonErrors`] wraps each connection and gives exactly those answers (a bodiless 400, 408 or
//! 431, which no handler of ours sends) the `{"error","status"}` body; a request line over
//! [`MAX_REQUEST_LINE`] is answered 414, here or by [`uri_limit`] in the app.

use std::io;
use std::net::TcpListener;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use actix_service::{fn_service, map_config, IntoServiceFactory, Service, ServiceFactoryExt};
use actix_web::body::BoxBody;
use actix_web::dev::{AppConfig, Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse};
use futures::future::Either;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The longest request line (method, URI, version) answered; longer ones get 414.
pub const MAX_REQUEST_LINE: usize = 8 * 1024;

/// An HTTP/1.1 server of `workers` threads on `listener` serving `app`, with JSON bodies on the
/// codec's own errors and 414 for an over-long request line. No signal handling: the caller
/// stops it through its handle; a graceful stop lets open connections finish for up to
/// `drain_secs`.
pub fn serve<F, T>(listener: TcpListener, workers: usize, drain_secs: u64, app: F) -> io::Result<Server>
where
    F: Fn() -> App<T> + Send + Clone + 'static,
    T: ServiceFactory<ServiceRequest, Config = (), Response = ServiceResponse<BoxBody>, Error = actix_web::Error, InitError = ()> + 'static,
{
    Ok(Server::build()
        .listen("tributary-http", listener, move || {
            let app = app().wrap_fn(|req, srv| match uri_limit(&req) {
                Some(answer) => Either::Left(std::future::ready(Ok(req.into_response(answer)))),
                None => Either::Right(srv.call(req)),
            });
            let app = map_config(app.into_factory().map_err(|e: actix_web::Error| e.error_response()), |_| AppConfig::default());
            // As actix-web's HttpServer has it: an answer that leaves a body unread lingers 1 s
            // for it before closing, so the client reads the answer instead of a reset.
            let h1 = actix_http::HttpService::build().client_disconnect_timeout(std::time::Duration::from_secs(1)).h1(app);
            fn_service(|io: actix_rt::net::TcpStream| async move {
                let peer = io.peer_addr().ok();
                Ok::<_, actix_http::error::DispatchError>((JsonErrors::new(io), peer))
            })
            .and_then(h1)
        })?
        .workers(workers)
        .disable_signals()
        .shutdown_timeout(drain_secs)
        .run())
}

/// A request whose URI makes the request line too long is answered 414 before any route sees it.
fn uri_limit(req: &ServiceRequest) -> Option<HttpResponse> {
    let line = req.method().as_str().len() + req.uri().to_string().len() + " HTTP/1.1".len() + 1;
    (line > MAX_REQUEST_LINE).then(|| actix_web::ResponseError::error_response(&crate::answer::ApiError::UriTooLong(too_long())))
}

fn too_long() -> String {
    format!("the request line is longer than {MAX_REQUEST_LINE} bytes")
}

/// What has been read of the request being answered: its first bytes and its first line's
/// length. Reset with each answer written (a pipelined request read before that is attributed
/// to the one before; that can only change 414 into 400 or 431).
#[derive(Default)]
struct Request {
    start: Vec<u8>,
    line: usize,
    line_ended: bool,
}

impl Request {
    fn saw(&mut self, bytes: &[u8]) {
        let room = 8usize.saturating_sub(self.start.len());
        self.start.extend_from_slice(&bytes[..room.min(bytes.len())]);
        if !self.line_ended {
            match bytes.iter().position(|&b| b == b'\n') {
                Some(at) => (self.line, self.line_ended) = (self.line + at, true),
                None => self.line += bytes.len(),
            }
        }
    }
}

/// A connection whose codec errors get a JSON body (see the module doc).
pub struct JsonErrors<S> {
    io: S,
    request: Request,
    /// A rewritten answer still to be written, and how much of it has been.
    out: Vec<u8>,
    sent: usize,
}

impl<S> JsonErrors<S> {
    pub fn new(io: S) -> Self {
        JsonErrors { io, request: Request::default(), out: Vec::new(), sent: 0 }
    }
}

impl<S: AsyncWrite + Unpin> JsonErrors<S> {
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.out.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.out[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonErrors<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        this.request.saw(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonErrors<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        if let Some(answer) = with_json_body(buf, &this.request) {
            (this.out, this.sent, this.request) = (answer, 0, Request::default());
            // Taken whole; what the socket does not take now goes out on flush or shutdown.
            let _ = this.drain(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        let written = ready!(Pin::new(&mut this.io).poll_write(cx, buf))?;
        // An answer went out: what is read next belongs to the next request. Not after an
        // interim `100 Continue`, which the request's body follows.
        if !buf.starts_with(b"HTTP/1.1 1") {
            this.request = Request::default();
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// `buf` with a JSON body on its last answer, when that is a bodiless 400, 408 or 431 (the
/// codec's own answers: every answer of ours has a body) and not the answer to a `HEAD`. A
/// pipelined connection may have earlier answers in the same write; they are skipped by their
/// `Content-Length` (and nothing is changed if one has none).
fn with_json_body(buf: &[u8], request: &Request) -> Option<Vec<u8>> {
    let mut at = 0;
    loop {
        let head_len = buf[at..].windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let head = std::str::from_utf8(&buf[at..at + head_len]).ok()?;
        if at + head_len == buf.len() {
            // Alone in the write, it answers the request tracked; after others, an unknown one.
            let unknown = Request::default();
            let answer = rewrite(head, if at == 0 { request } else { &unknown })?;
            return Some([&buf[..at], answer.as_bytes()].concat());
        }
        // An answer to HEAD declares a length it does not send: past the end, nothing is changed.
        at = at.checked_add(head_len + content_length(head)?).filter(|&end| end < buf.len())?;
    }
}

fn content_length(head: &str) -> Option<usize> {
    head.split("\r\n").find_map(|h| h.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))?.1.trim().parse().ok())
}

fn rewrite(head: &str, request: &Request) -> Option<String> {
    let mut lines = head.strip_suffix("\r\n\r\n")?.split("\r\n");
    let code: u16 = lines.next()?.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    if content_length(head) != Some(0) || request.start.starts_with(b"HEAD ") {
        return None;
    }
    let long_line = request.line > MAX_REQUEST_LINE;
    let (status, error) = match code {
        400 | 431 if long_line => (StatusCode::URI_TOO_LONG, too_long()),
        400 => (StatusCode::BAD_REQUEST, "the request is not valid HTTP/1.1 (its request line, a header or Content-Length)".to_string()),
        408 => (StatusCode::REQUEST_TIMEOUT, "the request head did not arrive in time".to_string()),
        431 => (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "the request head is too large (over 128 KiB, or more than 96 headers)".to_string(),
        ),
        _ => return None,
    };
    let body = serde_json::to_string(&crate::answer::ErrorBody { error, status: status.as_u16() }).ok()?;
    let mut out = format!("HTTP/1.1 {} {}\r\n", status.as_u16(), status.canonical_reason().unwrap_or_default());
    for h in lines.filter(|h| !h.split_once(':').is_some_and(|(k, _)| k.eq_ignore_ascii_case("content-length"))) {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str(&format!("content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len()));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(bytes: &[u8]) -> Request {
        let mut r = Request::default();
        for chunk in bytes.chunks(3) {
            r.saw(chunk);
        }
        r
    }

    #[test]
    fn only_the_codecs_bodiless_errors_get_a_body() {
        let get = request(b"GET /x HTTP/1.1\r\nContent-Length: zz\r\n\r\n");
        let codec = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\ndate: Thu, 03 Dec 2026 11:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(with_json_body(codec, &get).unwrap()).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n") && head.contains("connection: close"), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())) && !head.contains("content-length: 0"), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["status"], 400);
        // Answers of ours (with a body), other codes, a HEAD request: untouched.
        assert_eq!(with_json_body(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 40\r\n\r\n", &get), None);
        assert_eq!(with_json_body(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", &get), None);
        assert_eq!(with_json_body(codec, &request(b"HEAD /x HTTP/1.1\r\n")), None);
        assert_eq!(with_json_body(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}", &get), None, "a body follows");
        // Pipelined: an answer of ours, then the codec's, in one write.
        let ours = b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n{\"a\":\"\r\n\r\n\"}";
        let both = [ours.as_slice(), codec].concat();
        let out = with_json_body(&both, &get).unwrap();
        assert!(out.starts_with(ours) && out.len() > both.len() && out.ends_with(b"\"status\":400}"), "{}", String::from_utf8_lossy(&out));
        let chunked = [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n".as_slice(), codec].concat();
        assert_eq!(with_json_body(&chunked, &get), None, "an earlier answer without a length: left alone");
        let head_answer = [b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n".as_slice(), codec].concat();
        assert_eq!(with_json_body(&head_answer, &get), None, "a HEAD's answer (a length, no body) before it: left alone, no panic");
        // A request line over the limit is a 414, whichever the codec said.
        let long = request(format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_REQUEST_LINE)).as_bytes());
        for code in ["400 Bad Request", "431 Request Header Fields Too Large"] {
            let head = format!("HTTP/1.1 {code}\r\ncontent-length: 0\r\n\r\n");
            let out = String::from_utf8(with_json_body(head.as_bytes(), &long).unwrap()).unwrap();
            assert!(out.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{out}");
        }
        let unended = request(&[b'a'; MAX_REQUEST_LINE + 1]);
        assert_eq!((unended.line, unended.line_ended), (MAX_REQUEST_LINE + 1, false));
    }
}
