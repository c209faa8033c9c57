//! The fast lane (issue 11 §5): a spec's closed loop run wholly here — choose a request type by
//! the spec's shares, send its one fixed request, and bucket each success's latency exactly as
//! kperf_core/metrics.py's LatencyHistogram.record does — while Python only steers (about every
//! 50 ms: time-series ticks, progress, Ctrl-C) and merges the aggregates. Failures go back one by
//! one, so that Python classifies them with the one table it has.
//!
//! Exchanges are exchange.rs's tasks on the transport's pool, as `Transport.start` runs them: the
//! latency runs from the moment the task is handed to the pool until the body was read whole.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::clock;
use crate::exchange::{self, Completion, Template};
use crate::pool::Pool;

/// kperf_core/metrics.py's RELATIVE_ACCURACY and _MIN_VALUE.
const RELATIVE_ACCURACY: f64 = 0.005;
const MIN_VALUE: f64 = 1e-9;
/// kperf_core/engine/pacing.py's CATCH_UP_WINDOW.
const CATCH_UP_WINDOW: f64 = 0.05;

/// ln(gamma) as metrics.py computes it: `math.log((1 + a) / (1 - a))` in f64 at run time (both
/// call the C library's log).
pub fn ln_gamma() -> f64 {
    (std::hint::black_box(1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)).ln()
}

/// LatencyHistogram.record's bucket: `ceil(log(max(v, 1e-9)) / log(gamma))`.
pub fn bucket_index(seconds: f64, ln_gamma: f64) -> i64 {
    (seconds.max(MIN_VALUE).ln() / ln_gamma).ceil() as i64
}

/// One request type of the spec: the request it always sends.
pub struct Kind {
    pub template: Arc<Template>,
    pub timeout: Duration,
}

/// A key's successes since the last batch.
pub struct Aggregate {
    pub buckets: HashMap<i64, u64>,
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub bytes: u64,
}

impl Default for Aggregate {
    fn default() -> Self {
        Self {
            buckets: HashMap::new(),
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            bytes: 0,
        }
    }
}

/// A completion Python classifies (not a 2xx answer read whole), with its kind and start.
pub struct Failed {
    pub kind: usize,
    pub started: f64,
    pub completion: Completion,
}

/// pacing.py's ClosedLoop: evenly spaced sends at `rate` (0: none), a send missed while every
/// slot was busy made up for within CATCH_UP_WINDOW. The same rule, ported: keep them together.
struct Limiter {
    interval: f64,
    catch_up: f64,
    next_allowed: f64,
    max_lag: f64,
}

impl Limiter {
    fn new(rate: f64, start: f64) -> Self {
        let interval = if rate > 0.0 { 1.0 / rate } else { 0.0 };
        Self {
            interval,
            catch_up: interval.max(CATCH_UP_WINDOW),
            next_allowed: start,
            max_lag: 0.0,
        }
    }

    fn take(&mut self, now: f64) -> bool {
        if self.interval > 0.0 {
            if now < self.next_allowed {
                return false;
            }
            self.max_lag = self.max_lag.max(now - self.next_allowed);
            self.next_allowed = self.next_allowed.max(now - self.catch_up) + self.interval;
        }
        true
    }
}

/// SplitMix64: a small seeded generator (Python seeds it from the plan's seeded rng).
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// What the loop was told when it began.
pub struct Plan {
    pub kinds: Vec<Kind>,
    /// cumulative shares, as SpecPlan.chooser's (one kind: no draw)
    pub cumulative: Vec<f64>,
    pub seed: u64,
    pub client: usize,
    pub total: u64,
    pub rate: f64,
    pub start: f64,
    pub deadline: f64,
}

pub struct ClosedLoop {
    kinds: Vec<Kind>,
    cumulative: Vec<f64>,
    rng: Rng,
    client: usize,
    total: u64,
    deadline: f64,
    limiter: Limiter,
    ln_gamma: f64,
    pub sent: u64,
    /// in flight: id → (kind, started)
    flights: HashMap<u64, (usize, f64)>,
    next_id: u64,
    busy_since: Option<f64>,
    pub busy_time: f64,
    /// per kind, since the last batch
    pub aggregates: Vec<Aggregate>,
    pub failures: Vec<Failed>,
}

impl ClosedLoop {
    pub fn new(plan: Plan) -> Self {
        let kinds = plan.kinds.len();
        Self {
            kinds: plan.kinds,
            cumulative: plan.cumulative,
            rng: Rng(plan.seed),
            client: plan.client.max(1),
            total: plan.total,
            deadline: plan.deadline,
            limiter: Limiter::new(plan.rate, plan.start),
            ln_gamma: ln_gamma(),
            sent: 0,
            flights: HashMap::new(),
            next_id: 0,
            busy_since: None,
            busy_time: 0.0,
            aggregates: (0..kinds).map(|_| Aggregate::default()).collect(),
            failures: Vec::new(),
        }
    }

    pub fn in_flight(&self) -> usize {
        self.flights.len()
    }

    pub fn max_lag(&self) -> f64 {
        self.limiter.max_lag
    }

    /// In flight per kind (what Ctrl-C abandons).
    pub fn in_flight_by_kind(&self) -> Vec<u64> {
        let mut counts = vec![0; self.kinds.len()];
        for (kind, _) in self.flights.values() {
            counts[*kind] += 1;
        }
        counts
    }

    /// No more sends (total reached or deadline passed) and nothing in flight.
    pub fn drained(&self, now: f64) -> bool {
        self.stopping(now) && self.flights.is_empty()
    }

    fn stopping(&self, now: f64) -> bool {
        self.sent >= self.total || now >= self.deadline
    }

    /// Send, wait and record until `until` (clock seconds) or until the loop drained; runs inside
    /// the transport's runtime.
    pub async fn run_until(&mut self, pool: &Arc<Pool>, until: f64) {
        loop {
            let now = clock();
            let mut wake = until;
            if !self.stopping(now) {
                while self.flights.len() < self.client && self.sent < self.total {
                    let started = clock();
                    if started >= self.deadline {
                        break;
                    }
                    if !self.limiter.take(started) {
                        wake = wake.min(self.limiter.next_allowed);
                        break;
                    }
                    self.send(pool, started);
                }
            } else if self.flights.is_empty() {
                break;
            }
            self.account_busy(clock());
            if now >= until {
                break;
            }
            if !pool.has_completions() {
                let wait = (wake - clock()).max(0.0);
                let _ =
                    tokio::time::timeout(Duration::from_secs_f64(wait), pool.completed.notified())
                        .await;
            }
            for completion in pool.take_completions() {
                self.record(completion);
            }
        }
        self.account_busy(clock());
    }

    fn send(&mut self, pool: &Arc<Pool>, started: f64) {
        let kind = self.choose();
        let id = self.next_id;
        self.next_id += 1;
        let Kind { template, timeout } = &self.kinds[kind];
        tokio::spawn(exchange::run(
            pool.clone(),
            template.clone(),
            id,
            *timeout,
            false,
        ));
        self.flights.insert(id, (kind, started));
        self.sent += 1;
    }

    fn choose(&mut self) -> usize {
        let cumulative = &self.cumulative;
        if cumulative.len() == 1 {
            return 0;
        }
        // bisect_right(cumulative, random() * total), as SpecPlan.chooser
        let x = self.rng.next_f64() * cumulative[cumulative.len() - 1];
        cumulative
            .partition_point(|&c| c <= x)
            .min(cumulative.len() - 1)
    }

    fn record(&mut self, completion: Completion) {
        let Some((kind, started)) = self.flights.remove(&completion.id) else {
            return;
        };
        if completion.errno != 0 || !(200..300).contains(&completion.status) {
            self.failures.push(Failed {
                kind,
                started,
                completion,
            });
            return;
        }
        let latency = completion.finished_at - started;
        let aggregate = &mut self.aggregates[kind];
        *aggregate
            .buckets
            .entry(bucket_index(latency, self.ln_gamma))
            .or_insert(0) += 1;
        aggregate.count += 1;
        aggregate.sum += latency;
        aggregate.min = aggregate.min.min(latency);
        aggregate.max = aggregate.max.max(latency);
        aggregate.bytes += completion.bytes;
    }

    /// The busy time of spec_runner's loop: every `client` slot taken, sampled after each send.
    fn account_busy(&mut self, now: f64) {
        let busy = self.flights.len() >= self.client;
        match (busy, self.busy_since) {
            (true, None) => self.busy_since = Some(now),
            (false, Some(since)) => {
                self.busy_time += now - since;
                self.busy_since = None;
            }
            _ => {}
        }
    }

    /// The busy time so far, an open busy stretch included.
    pub fn busy_total(&self, now: f64) -> f64 {
        self.busy_time + self.busy_since.map_or(0.0, |since| now - since)
    }

    /// The aggregates and failures since the last batch, leaving empty ones behind.
    pub fn take_batch(&mut self) -> (Vec<(usize, Aggregate)>, Vec<Failed>) {
        let aggregates = self
            .aggregates
            .iter_mut()
            .enumerate()
            .filter(|(_, a)| a.count > 0)
            .map(|(kind, a)| (kind, std::mem::take(a)))
            .collect();
        (aggregates, std::mem::take(&mut self.failures))
    }
}
