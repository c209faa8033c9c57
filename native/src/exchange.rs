//! One request/response exchange: lease a connection, send, read the answer (counting its bytes
//! after gzip decoding, keeping them only when asked), and report how it ended the way libcurl
//! would have (its error numbers and message shapes).

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flate2::write::GzDecoder;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, CONTENT_ENCODING, HOST, RETRY_AFTER};
use hyper::{HeaderMap, Method, Request, Uri};

use crate::clock;
use crate::pool::{Body, Pool, Settings};

/// What Python hands over once per distinct request.
pub struct Template {
    method: Method,
    /// HTTP/1.1 sends the path and query ("origin form") with a Host header ...
    origin: Uri,
    /// ... HTTP/2 takes :scheme and :authority from the full URI.
    absolute: Uri,
    headers: HeaderMap,
    host: HeaderValue,
    body: Bytes,
}

impl Template {
    pub fn new(
        settings: &Settings,
        method: &str,
        target: &str,
        lines: &[String],
        body: Option<Vec<u8>>,
    ) -> Result<Self, String> {
        let mut headers = HeaderMap::new();
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| format!("header without a colon: {line:?}"))?;
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|e| format!("header name {name:?}: {e}"))?;
            let value =
                HeaderValue::from_str(value.trim()).map_err(|e| format!("header {name}: {e}"))?;
            headers.append(name, value);
        }
        let absolute = format!("https://{}{target}", settings.authority);
        Ok(Self {
            method: Method::from_bytes(method.as_bytes()).map_err(|e| format!("{method}: {e}"))?,
            origin: target.parse().map_err(|e| format!("{target}: {e}"))?,
            absolute: absolute.parse().map_err(|e| format!("{absolute}: {e}"))?,
            headers,
            host: HeaderValue::from_str(&settings.authority).map_err(|e| e.to_string())?,
            body: Bytes::from(body.unwrap_or_default()),
        })
    }

    /// RFC 9110's idempotent methods: safe to send again when a connection lost one unanswered.
    fn idempotent(&self) -> bool {
        matches!(
            self.method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
        )
    }

    fn request(&self, h2: bool) -> Request<Body> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        let mut headers = self.headers.clone();
        if h2 {
            *request.uri_mut() = self.absolute.clone();
        } else {
            *request.uri_mut() = self.origin.clone();
            headers.insert(HOST, self.host.clone());
        }
        *request.headers_mut() = headers;
        request
    }
}

/// How an exchange ended, as Python's Transfer receives it.
pub struct Completion {
    pub id: u64,
    pub status: u16,
    /// libcurl's error number; 0 when the exchange itself succeeded (whatever the status)
    pub errno: u32,
    pub message: String,
    pub bytes: u64,
    pub body: Option<Vec<u8>>,
    pub finished_at: f64,
    pub headers_at: Option<f64>,
    pub retry_after: Option<f64>,
}

/// A failed exchange in libcurl's terms.
#[derive(Debug)]
pub struct Failure {
    errno: u32,
    message: String,
}

// libcurl's error numbers for the events below (curl/curl.h)
const COULDNT_RESOLVE_HOST: u32 = 6;
const COULDNT_CONNECT: u32 = 7;
const HTTP2: u32 = 16;
const PARTIAL_FILE: u32 = 18;
const OPERATION_TIMEDOUT: u32 = 28;
const SSL_CONNECT_ERROR: u32 = 35;
const GOT_NOTHING: u32 = 52;
const SEND_ERROR: u32 = 55;
const RECV_ERROR: u32 = 56;
const PEER_FAILED_VERIFICATION: u32 = 60;
const BAD_CONTENT_ENCODING: u32 = 61;
const HTTP2_STREAM: u32 = 92;

impl Failure {
    fn new(errno: u32, message: String) -> Self {
        Self { errno, message }
    }

    pub fn connect(error: &std::io::Error, settings: &Settings) -> Self {
        let (host, port) = (&settings.host, settings.port);
        if error.kind() == std::io::ErrorKind::ConnectionRefused {
            return Self::new(
                COULDNT_CONNECT,
                format!("Failed to connect to {host} port {port}: Connection refused"),
            );
        }
        let text = error.to_string();
        if text.contains("lookup") || text.contains("resolve") || text.contains("not known") {
            return Self::new(
                COULDNT_RESOLVE_HOST,
                format!("Could not resolve host: {host}"),
            );
        }
        Self::new(
            COULDNT_CONNECT,
            format!("Failed to connect to {host} port {port}: {text}"),
        )
    }

    pub fn tls(error: &std::io::Error) -> Self {
        let rustls_error = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<tokio_rustls::rustls::Error>());
        match rustls_error {
            Some(tokio_rustls::rustls::Error::InvalidCertificate(problem)) => Self::new(
                PEER_FAILED_VERIFICATION,
                format!("SSL certificate problem: {problem:?}"),
            ),
            _ => Self::new(SSL_CONNECT_ERROR, format!("TLS connect error: {error}")),
        }
    }

    /// `answered`: the response's headers had arrived.
    pub fn from_hyper(error: &hyper::Error, answered: bool) -> Self {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(cause) = source {
            if let Some(h2_error) = cause.downcast_ref::<h2::Error>() {
                if let Some(reason) = h2_error.reason() {
                    let code = u32::from(reason);
                    // libcurl: "HTTP/2 stream 5 was not closed cleanly: CANCEL (err 8)"
                    let errno = if h2_error.is_go_away() {
                        HTTP2
                    } else {
                        HTTP2_STREAM
                    };
                    return Self::new(
                        errno,
                        format!("HTTP/2 stream was not closed cleanly: {reason:?} (err {code})"),
                    );
                }
            }
            if let Some(io_error) = cause.downcast_ref::<std::io::Error>() {
                match io_error.kind() {
                    std::io::ErrorKind::ConnectionReset => {
                        return Self::new(
                            RECV_ERROR,
                            "Recv failure: Connection reset by peer".into(),
                        )
                    }
                    std::io::ErrorKind::BrokenPipe => {
                        return Self::new(SEND_ERROR, "Send failure: Broken pipe".into())
                    }
                    _ => {}
                }
            }
            source = cause.source();
        }
        if error.is_incomplete_message() {
            return if answered {
                Self::new(
                    PARTIAL_FILE,
                    "transfer closed with outstanding read data remaining".into(),
                )
            } else {
                Self::new(GOT_NOTHING, "Empty reply from server".into())
            };
        }
        Self::new(RECV_ERROR, format!("Recv failure: {error}"))
    }
}

/// What is known of an exchange so far: kept when the timeout cuts it short.
#[derive(Default)]
struct Progress {
    status: u16,
    bytes: u64,
    headers_at: Option<f64>,
    retry_after: Option<f64>,
    body: Option<Vec<u8>>,
}

/// Where the answer's (decoded) bytes go: counted, and kept when asked.
struct Sink<'a> {
    progress: &'a mut Progress,
}

impl Write for Sink<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.progress.bytes += data.len() as u64;
        if let Some(body) = &mut self.progress.body {
            body.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The task of one exchange: runs it within `timeout` and reports its completion to the pool.
pub async fn run(
    pool: Arc<Pool>,
    template: Arc<Template>,
    id: u64,
    timeout: Duration,
    keep_body: bool,
) {
    let mut progress = Progress {
        body: keep_body.then(Vec::new),
        ..Progress::default()
    };
    let outcome = tokio::time::timeout(timeout, exchange(&pool, &template, &mut progress)).await;
    let finished_at = clock();
    let failure = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(failure)) => Some(failure),
        Err(_) => Some(Failure::new(
            OPERATION_TIMEDOUT,
            format!(
                "Operation timed out after {} milliseconds with {} bytes received",
                timeout.as_millis(),
                progress.bytes
            ),
        )),
    };
    let (errno, message) = failure.map_or((0, String::new()), |f| (f.errno, f.message));
    pool.complete(Completion {
        id,
        status: progress.status,
        errno,
        message,
        bytes: progress.bytes,
        body: progress.body,
        finished_at,
        headers_at: progress.headers_at,
        retry_after: progress.retry_after,
    });
}

async fn exchange(
    pool: &Arc<Pool>,
    template: &Template,
    progress: &mut Progress,
) -> Result<(), Failure> {
    let (mut lease, response) = loop {
        let mut lease = pool.acquire().await?;
        let h2 = lease.is_h2();
        match lease.send(template.request(h2)).await {
            Ok(response) => break (lease, response),
            // A kept-alive connection the server closed while it was idle, found out only by
            // this request: send it again on another connection (the stale one is dropped), as
            // libcurl and Go's transport do for a request that got no answer at all.
            Err(e) if lease.is_reused() && template.idempotent() && closed_unanswered(&e) => {}
            Err(e) => return Err(Failure::from_hyper(&e, false)),
        }
    };
    progress.headers_at = Some(clock());
    progress.status = response.status().as_u16();
    let headers = response.headers();
    progress.retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok());
    let gzip = headers
        .get(CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let mut body = response.into_body();
    if gzip {
        let mut decoder = GzDecoder::new(Sink { progress });
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Failure::from_hyper(&e, true))?;
            if let Ok(data) = frame.into_data() {
                decoder.write_all(&data).map_err(bad_encoding)?;
            }
        }
        decoder.try_finish().map_err(bad_encoding)?;
    } else {
        let mut sink = Sink { progress };
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Failure::from_hyper(&e, true))?;
            if let Ok(data) = frame.into_data() {
                let _ = sink.write(&data);
            }
        }
    }
    lease.finished();
    Ok(())
}

/// The connection ended before any of the answer arrived (the request may not have been read).
fn closed_unanswered(error: &hyper::Error) -> bool {
    if error.is_incomplete_message() || error.is_canceled() {
        return true;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(io_error) = cause.downcast_ref::<std::io::Error>() {
            // UnexpectedEof: TLS closed without close_notify (rustls reports it so)
            use std::io::ErrorKind::{BrokenPipe, ConnectionReset, UnexpectedEof};
            return matches!(
                io_error.kind(),
                ConnectionReset | BrokenPipe | UnexpectedEof
            );
        }
        source = cause.source();
    }
    false
}

fn bad_encoding(error: std::io::Error) -> Failure {
    Failure::new(
        BAD_CONTENT_ENCODING,
        format!("Error while processing content unencoding: {error}"),
    )
}
