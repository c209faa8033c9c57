//! Connections: made on demand up to the limits kperf's `conns` and `client` set (see
//! kperf_core/engine/transport.py), HTTP/2 when the server agrees to it in ALPN, else HTTP/1.1.
//!
//! HTTP/2: at most `conns` connections, each carrying up to `streams` requests (hyper's h2 waits
//! on its own when the server allows fewer). HTTP/1.1: up to `h1_connections` connections, one
//! request in flight each. A request holds a [`Lease`] while it runs; dropping the lease gives the
//! capacity back (an HTTP/1.1 connection only when its answer was read whole: otherwise it is
//! closed, as libcurl closes one it could not finish).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::exchange::{Completion, Failure};

pub type Body = Full<Bytes>;

/// What every connection of one transport is made with.
pub struct Settings {
    pub host: String,
    pub port: u16,
    /// "host:port" as libcurl sends it in Host (no port when it is 443)
    pub authority: String,
    server_name: ServerName<'static>,
    tls: TlsConnector,
    conns: usize,
    streams: usize,
    h1_connections: usize,
}

impl Settings {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        host: String,
        port: u16,
        ca_pem: &[u8],
        client_cert: Option<(&[u8], &[u8])>,
        http2: bool,
        conns: usize,
        streams: usize,
        h1_connections: usize,
    ) -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut &ca_pem[..]) {
            roots
                .add(cert.map_err(|e| format!("CA certificate: {e}"))?)
                .map_err(|e| format!("CA certificate: {e}"))?;
        }
        let builder = ClientConfig::builder().with_root_certificates(roots);
        let mut config = match client_cert {
            Some((cert, key)) => {
                let chain = rustls_pemfile::certs(&mut &cert[..])
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("client certificate: {e}"))?;
                let key = rustls_pemfile::private_key(&mut &key[..])
                    .map_err(|e| format!("client key: {e}"))?
                    .ok_or("client key: no key in the PEM data")?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("client certificate: {e}"))?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = if http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let server_name =
            ServerName::try_from(bare).map_err(|e| format!("server name {host}: {e}"))?;
        let authority = if port == 443 {
            host.clone()
        } else {
            format!("{host}:{port}")
        };
        Ok(Self {
            host,
            port,
            authority,
            server_name,
            tls: TlsConnector::from(Arc::new(config)),
            conns,
            streams,
            h1_connections,
        })
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Unknown,
    H1,
    H2,
}

struct H2Conn {
    id: u64,
    sender: http2::SendRequest<Body>,
    in_flight: usize,
}

struct State {
    mode: Mode,
    /// connections open or being opened
    open: usize,
    idle_h1: Vec<http1::SendRequest<Body>>,
    h2: Vec<H2Conn>,
    next_conn_id: u64,
}

pub struct Pool {
    pub settings: Settings,
    state: Mutex<State>,
    /// capacity came back (a lease ended, a connection opened or failed)
    capacity: Notify,
    done: Mutex<Vec<Completion>>,
    /// something is in `done`
    pub completed: Notify,
    opened: AtomicU64,
}

pub enum Lease {
    H1 {
        pool: Arc<Pool>,
        sender: Option<http1::SendRequest<Body>>,
        reusable: bool,
        /// kept alive from an earlier request (the server may have closed it meanwhile)
        reused: bool,
    },
    H2 {
        pool: Arc<Pool>,
        conn: u64,
        sender: http2::SendRequest<Body>,
    },
}

impl Lease {
    pub fn is_h2(&self) -> bool {
        matches!(self, Lease::H2 { .. })
    }

    /// An HTTP/1.1 connection that carried an earlier request.
    pub fn is_reused(&self) -> bool {
        matches!(self, Lease::H1 { reused: true, .. })
    }

    pub async fn send(&mut self, request: Request<Body>) -> hyper::Result<Response<Incoming>> {
        match self {
            Lease::H1 { sender, .. } => {
                let sender = sender
                    .as_mut()
                    .expect("a lease holds its sender until dropped");
                sender.ready().await?;
                sender.send_request(request).await
            }
            Lease::H2 { sender, .. } => {
                sender.ready().await?;
                sender.send_request(request).await
            }
        }
    }

    /// The answer was read whole: an HTTP/1.1 connection can carry the next request.
    pub fn finished(&mut self) {
        if let Lease::H1 { reusable, .. } = self {
            *reusable = true;
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        match self {
            Lease::H1 {
                pool,
                sender,
                reusable,
                ..
            } => {
                let mut state = pool.state.lock().unwrap();
                match sender.take() {
                    Some(sender) if *reusable && !sender.is_closed() => state.idle_h1.push(sender),
                    _ => state.open -= 1, // dropped: hyper closes the connection
                }
                drop(state);
                pool.capacity.notify_waiters();
            }
            Lease::H2 { pool, conn, .. } => {
                let mut state = pool.state.lock().unwrap();
                if let Some(c) = state.h2.iter_mut().find(|c| c.id == *conn) {
                    c.in_flight -= 1;
                }
                drop(state);
                pool.capacity.notify_waiters();
            }
        }
    }
}

/// A connection being opened: counted in `open` until it is made (or given up).
struct Opening<'a> {
    pool: &'a Pool,
    done: bool,
}

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.pool.state.lock().unwrap().open -= 1;
            self.pool.capacity.notify_waiters();
        }
    }
}

enum Next {
    Lease(Lease),
    Open,
    Wait,
}

enum Connection {
    H1(http1::SendRequest<Body>),
    H2(http2::SendRequest<Body>),
}

impl Pool {
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            state: Mutex::new(State {
                mode: Mode::Unknown,
                open: 0,
                idle_h1: Vec::new(),
                h2: Vec::new(),
                next_conn_id: 0,
            }),
            capacity: Notify::new(),
            done: Mutex::new(Vec::new()),
            completed: Notify::new(),
            opened: AtomicU64::new(0),
        }
    }

    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    pub fn protocol(&self) -> &'static str {
        match self.state.lock().unwrap().mode {
            Mode::Unknown => "",
            Mode::H1 => "http/1.1",
            Mode::H2 => "h2",
        }
    }

    pub fn complete(&self, completion: Completion) {
        self.done.lock().unwrap().push(completion);
        self.completed.notify_one();
    }

    pub fn has_completions(&self) -> bool {
        !self.done.lock().unwrap().is_empty()
    }

    pub fn take_completions(&self) -> Vec<Completion> {
        std::mem::take(&mut *self.done.lock().unwrap())
    }

    /// A connection with room for one more request: an open one, or a new one within the limits;
    /// waits while every connection is busy and no more may be opened.
    pub async fn acquire(self: &Arc<Self>) -> Result<Lease, Failure> {
        loop {
            let mut notified = std::pin::pin!(self.capacity.notified());
            // registered before looking, so that capacity given back meanwhile is not missed
            notified.as_mut().enable();
            match self.try_lease() {
                Next::Lease(lease) => return Ok(lease),
                Next::Open => return self.open().await,
                Next::Wait => notified.await,
            }
        }
    }

    fn try_lease(self: &Arc<Self>) -> Next {
        let mut state = self.state.lock().unwrap();
        let settings = &self.settings;
        let before = state.h2.len();
        state.h2.retain(|c| !c.sender.is_closed());
        state.open -= before - state.h2.len();
        let streams = settings.streams;
        if let Some(conn) = state
            .h2
            .iter_mut()
            .filter(|c| c.in_flight < streams)
            .min_by_key(|c| c.in_flight)
        {
            conn.in_flight += 1;
            return Next::Lease(Lease::H2 {
                pool: self.clone(),
                conn: conn.id,
                sender: conn.sender.clone(),
            });
        }
        while let Some(sender) = state.idle_h1.pop() {
            if sender.is_closed() {
                state.open -= 1; // the server closed it while it was idle
                continue;
            }
            return Next::Lease(Lease::H1 {
                pool: self.clone(),
                sender: Some(sender),
                reusable: false,
                reused: true,
            });
        }
        let limit = match state.mode {
            Mode::H1 => settings.h1_connections,
            _ => settings.conns,
        };
        if state.open >= limit {
            return Next::Wait;
        }
        state.open += 1; // counted now: the requests that come meanwhile wait or open others
        Next::Open
    }

    /// Open one connection for the caller (counted in `open` already) and lease it.
    async fn open(self: &Arc<Self>) -> Result<Lease, Failure> {
        // a failed connect, or one the request's timeout cut short, gives its count back
        let mut opening = Opening {
            pool: self,
            done: false,
        };
        let connection = self.connect().await?;
        opening.done = true;
        let mut state = self.state.lock().unwrap();
        match connection {
            Connection::H1(sender) => {
                state.mode = Mode::H1;
                Ok(Lease::H1 {
                    pool: self.clone(),
                    sender: Some(sender),
                    reusable: false,
                    reused: false,
                })
            }
            Connection::H2(sender) => {
                state.mode = Mode::H2;
                let id = state.next_conn_id;
                state.next_conn_id += 1;
                state.h2.push(H2Conn {
                    id,
                    sender: sender.clone(),
                    in_flight: 1,
                });
                drop(state);
                // requests waiting for a connection can share this one
                self.capacity.notify_waiters();
                Ok(Lease::H2 {
                    pool: self.clone(),
                    conn: id,
                    sender,
                })
            }
        }
    }

    async fn connect(&self) -> Result<Connection, Failure> {
        let settings = &self.settings;
        let host = settings.host.trim_start_matches('[').trim_end_matches(']');
        let tcp = TcpStream::connect((host, settings.port))
            .await
            .map_err(|e| Failure::connect(&e, settings))?;
        let _ = tcp.set_nodelay(true);
        let tls = settings
            .tls
            .connect(settings.server_name.clone(), tcp)
            .await
            .map_err(|e| Failure::tls(&e))?;
        self.opened.fetch_add(1, Ordering::Relaxed);
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        if h2 {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| Failure::from_hyper(&e, false))?;
            tokio::spawn(conn);
            Ok(Connection::H2(sender))
        } else {
            let (sender, conn) = http1::handshake(io)
                .await
                .map_err(|e| Failure::from_hyper(&e, false))?;
            tokio::spawn(conn);
            Ok(Connection::H1(sender))
        }
    }
}
