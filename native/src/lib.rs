//! kperf's native transport (issue 11 §5): the I/O of plain request/response exchanges — HTTP/1.1
//! or HTTP/2 (ALPN) over rustls — run by a tokio current_thread runtime that Python drives from
//! its engine loop, with the contract of kperf_core/engine/transport.py's CurlTransport:
//! `start` a request, `poll` for the finished ones (one crossing per poll, not per request),
//! `abort`, `close`. Bodies are counted, and handed to Python only when asked for.
//!
//! Failures carry the libcurl error number and message shape libcurl would report for the same
//! event, so kperf classifies them with its one table (kperf_core.metrics.transport_error_key).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use tokio::runtime::Runtime;
use tokio::task::AbortHandle;

mod closed_loop;
mod exchange;
mod pool;

use closed_loop::{ClosedLoop, Kind, Plan};
use exchange::{Completion, Template};
use pool::{Pool, Settings};

/// CLOCK_MONOTONIC in seconds: the clock of Python's `time.perf_counter()` on Linux, so that
/// the completion times stamped here compare with the start times Python stamped.
pub fn clock() -> f64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the struct it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as f64 + now.tv_nsec as f64 * 1e-9
}

#[pyfunction]
#[pyo3(name = "clock")]
fn py_clock() -> f64 {
    clock()
}

/// The histogram bucket the fast lane counts a latency of `seconds` in (tests compare it with
/// kperf_core.metrics.LatencyHistogram.record's).
#[pyfunction]
fn bucket_index(seconds: f64) -> i64 {
    closed_loop::bucket_index(seconds, closed_loop::ln_gamma())
}

/// What `Transport.run_loop` returns: (sent, in flight, drained, busy seconds, the limiter's
/// longest lag, successes per kind as (kind, {bucket: count}, count, sum, min, max, bytes),
/// failures as (kind, started, status, errno, message, bytes, finished_at, headers_at)).
type LoopBatch<'py> = (
    u64,
    usize,
    bool,
    f64,
    f64,
    Bound<'py, PyList>,
    Bound<'py, PyList>,
);

/// One request, prepared once and sent any number of times (gets and lists send the same one).
#[pyclass(frozen, module = "kperf_native")]
struct Prepared {
    template: Arc<Template>,
}

/// An exchange to begin at the next poll.
struct Start {
    id: u64,
    template: Arc<Template>,
    timeout: Duration,
    keep_body: bool,
}

/// A connection pool and its runtime; one per spec, like CurlTransport.
#[pyclass(unsendable, module = "kperf_native")]
struct Transport {
    runtime: Option<Runtime>,
    pool: Arc<Pool>,
    /// Started since the last poll. Spawned by the poll, inside the runtime: a task spawned from
    /// outside it costs a wake-up of the runtime's driver (a syscall) per request.
    pending: Vec<Start>,
    /// In flight: the task (None while pending), to abort it.
    tasks: HashMap<u64, Option<AbortHandle>>,
    next_id: u64,
    /// The fast lane's loop, when the spec runs on it (then `start` is not used).
    closed_loop: Option<ClosedLoop>,
}

#[pymethods]
impl Transport {
    /// `streams`: HTTP/2 streams per connection; `h1_connections`: connections when the server
    /// speaks HTTP/1.1 (one request in flight each).
    #[new]
    #[pyo3(signature = (host, port, ca_pem, *, cert_pem=None, key_pem=None, http2=true,
                        conns=1, streams=1, h1_connections=1))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        host: String,
        port: u16,
        ca_pem: Vec<u8>,
        cert_pem: Option<Vec<u8>>,
        key_pem: Option<Vec<u8>>,
        http2: bool,
        conns: usize,
        streams: usize,
        h1_connections: usize,
    ) -> PyResult<Self> {
        let settings = Settings::new(
            host,
            port,
            &ca_pem,
            cert_pem.as_deref().zip(key_pem.as_deref()),
            http2,
            conns.max(1),
            streams.max(1),
            h1_connections.max(1),
        )
        .map_err(PyValueError::new_err)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("tokio runtime: {e}")))?;
        Ok(Self {
            runtime: Some(runtime),
            pool: Arc::new(Pool::new(settings)),
            pending: Vec::new(),
            tasks: HashMap::new(),
            next_id: 0,
            closed_loop: None,
        })
    }

    /// `headers`: "Name: value" lines, as libcurl's HTTPHEADER takes them.
    #[pyo3(signature = (method, target, headers, body=None))]
    fn prepare(
        &self,
        method: &str,
        target: &str,
        headers: Vec<String>,
        body: Option<Vec<u8>>,
    ) -> PyResult<Prepared> {
        let template = Template::new(&self.pool.settings, method, target, &headers, body)
            .map_err(PyValueError::new_err)?;
        Ok(Prepared {
            template: Arc::new(template),
        })
    }

    /// Begin sending; returns the id its completion will carry. `timeout` in seconds covers the
    /// whole exchange (connecting included), as libcurl's TIMEOUT_MS does.
    fn start(&mut self, prepared: &Prepared, timeout: f64, keep_body: bool) -> PyResult<u64> {
        if self.runtime.is_none() {
            return Err(closed());
        }
        if self.closed_loop.is_some() {
            return Err(PyRuntimeError::new_err("the transport runs a closed loop"));
        }
        let id = self.next_id;
        self.next_id += 1;
        self.pending.push(Start {
            id,
            template: prepared.template.clone(),
            timeout: Duration::from_secs_f64(timeout.max(0.001)),
            keep_body,
        });
        self.tasks.insert(id, None);
        Ok(id)
    }

    /// Run the I/O for up to `max_wait` seconds or until something finished; returns the
    /// finished exchanges as (id, status, curl errno, message, bytes, body or None, finished_at,
    /// headers_at or None, retry_after or None).
    fn poll<'py>(&mut self, py: Python<'py>, max_wait: f64) -> PyResult<Bound<'py, PyList>> {
        let runtime = self.runtime.as_ref().ok_or_else(closed)?;
        let pool = self.pool.clone();
        let starts = std::mem::take(&mut self.pending);
        let (done, spawned): (Vec<Completion>, Vec<(u64, AbortHandle)>) = py.allow_threads(|| {
            runtime.block_on(async {
                let spawned: Vec<(u64, AbortHandle)> = starts
                    .into_iter()
                    .map(|s| {
                        let task =
                            exchange::run(pool.clone(), s.template, s.id, s.timeout, s.keep_body);
                        (s.id, tokio::spawn(task).abort_handle())
                    })
                    .collect();
                // one turn of the scheduler and the I/O driver: tasks just started begin, and
                // what arrived meanwhile is read, even when there is something to return already
                tokio::task::yield_now().await;
                if !pool.has_completions() && max_wait > 0.0 {
                    let _ = tokio::time::timeout(
                        Duration::from_secs_f64(max_wait),
                        pool.completed.notified(),
                    )
                    .await;
                }
                (pool.take_completions(), spawned)
            })
        });
        for (id, task) in spawned {
            if let Some(slot) = self.tasks.get_mut(&id) {
                *slot = Some(task);
            }
        }
        let list = PyList::empty(py);
        for c in done {
            if self.tasks.remove(&c.id).is_none() {
                continue; // aborted meanwhile
            }
            let body = c.body.map(|b| PyBytes::new(py, &b));
            let item = (
                c.id,
                c.status,
                c.errno,
                c.message,
                c.bytes,
                body,
                c.finished_at,
                c.headers_at,
                c.retry_after,
            )
                .into_pyobject(py)?;
            list.append(item)?;
        }
        Ok(list)
    }

    /// Begin the fast lane (closed_loop.rs): `client` slots send the `prepared` requests
    /// (`timeouts` in seconds, one each) chosen by `cumulative` shares, at most `total`, none at
    /// or after `deadline`, at most `rate` a second (0: as fast as slots free) from `start`.
    #[pyo3(signature = (prepared, timeouts, cumulative, *, seed, client, total, rate, start,
                        deadline))]
    #[allow(clippy::too_many_arguments)]
    fn start_loop(
        &mut self,
        prepared: Vec<Bound<'_, Prepared>>,
        timeouts: Vec<f64>,
        cumulative: Vec<f64>,
        seed: u64,
        client: usize,
        total: u64,
        rate: f64,
        start: f64,
        deadline: f64,
    ) -> PyResult<()> {
        if prepared.is_empty()
            || prepared.len() != timeouts.len()
            || prepared.len() != cumulative.len()
        {
            return Err(PyValueError::new_err(
                "one timeout and one share per prepared request",
            ));
        }
        if self.closed_loop.is_some() || !self.tasks.is_empty() {
            return Err(PyRuntimeError::new_err("the transport is already sending"));
        }
        let kinds = prepared
            .iter()
            .zip(&timeouts)
            .map(|(p, timeout)| Kind {
                template: p.get().template.clone(),
                timeout: Duration::from_secs_f64(timeout.max(0.001)),
            })
            .collect();
        self.closed_loop = Some(ClosedLoop::new(Plan {
            kinds,
            cumulative,
            seed,
            client,
            total,
            rate,
            start,
            deadline,
        }));
        Ok(())
    }

    /// Run the loop until `until` (clock seconds) or until it drained; returns what it did
    /// meanwhile (see LoopBatch).
    fn run_loop<'py>(&mut self, py: Python<'py>, until: f64) -> PyResult<LoopBatch<'py>> {
        let runtime = self.runtime.as_ref().ok_or_else(closed)?;
        let closed_loop = self
            .closed_loop
            .as_mut()
            .ok_or_else(|| PyRuntimeError::new_err("no closed loop was started"))?;
        let pool = self.pool.clone();
        py.allow_threads(|| runtime.block_on(closed_loop.run_until(&pool, until)));
        let now = clock();
        let (aggregates, failures) = closed_loop.take_batch();
        let successes = PyList::empty(py);
        for (kind, a) in aggregates {
            let buckets = PyDict::new(py);
            for (index, n) in a.buckets {
                buckets.set_item(index, n)?;
            }
            successes.append((kind, buckets, a.count, a.sum, a.min, a.max, a.bytes))?;
        }
        let failed = PyList::empty(py);
        for f in failures {
            let c = f.completion;
            failed.append((
                f.kind,
                f.started,
                c.status,
                c.errno,
                c.message,
                c.bytes,
                c.finished_at,
                c.headers_at,
            ))?;
        }
        Ok((
            closed_loop.sent,
            closed_loop.in_flight(),
            closed_loop.drained(now),
            closed_loop.busy_total(now),
            closed_loop.max_lag(),
            successes,
            failed,
        ))
    }

    /// The loop's requests in flight, per prepared request (what closing abandons).
    fn loop_in_flight(&self) -> Vec<u64> {
        self.closed_loop
            .as_ref()
            .map_or_else(Vec::new, ClosedLoop::in_flight_by_kind)
    }

    /// Stop an exchange now; it is not returned by poll.
    fn abort(&mut self, id: u64) {
        match self.tasks.remove(&id) {
            Some(Some(task)) => task.abort(),
            Some(None) => self.pending.retain(|s| s.id != id),
            None => {}
        }
    }

    /// Connections opened so far (HTTP/1.1 opens again after a server's close).
    #[getter]
    fn connections_opened(&self) -> u64 {
        self.pool.opened()
    }

    /// The protocol the server chose ("h2", "http/1.1"; "" before the first connection).
    #[getter]
    fn protocol(&self) -> &'static str {
        self.pool.protocol()
    }

    /// Abandon every exchange and close every connection.
    fn close(&mut self, py: Python<'_>) {
        self.pending.clear();
        for task in self.tasks.drain().filter_map(|(_, task)| task) {
            task.abort();
        }
        if let Some(runtime) = self.runtime.take() {
            py.allow_threads(|| drop(runtime));
        }
    }
}

fn closed() -> PyErr {
    PyRuntimeError::new_err("transport is closed")
}

#[pymodule]
fn kperf_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Transport>()?;
    m.add_class::<Prepared>()?;
    m.add_function(wrap_pyfunction!(py_clock, m)?)?;
    m.add_function(wrap_pyfunction!(bucket_index, m)?)?;
    Ok(())
}
