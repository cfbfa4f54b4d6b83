//! Latency percentiles over a sliding window of recent samples, and rate meters.

use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

/// The most recent samples of one latency, in milliseconds.
#[derive(Debug, Clone)]
pub struct Latencies {
    samples: VecDeque<f64>,
    cap: usize,
    count: u64,
}

/// Percentiles of a [`Latencies`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// Samples ever recorded.
    pub count: u64,
    /// Median of the recent window.
    pub p50: f64,
    /// 95th percentile of the recent window.
    pub p95: f64,
    /// 99th percentile of the recent window.
    pub p99: f64,
    /// Largest in the recent window.
    pub max: f64,
}

impl Latencies {
    /// Keeps the last `cap` samples.
    pub fn new(cap: usize) -> Self {
        Latencies {
            samples: VecDeque::with_capacity(cap.min(4096)),
            cap: cap.max(1),
            count: 0,
        }
    }

    /// Adds a sample (non-finite values are ignored).
    pub fn record(&mut self, ms: f64) {
        if !ms.is_finite() {
            return;
        }
        if self.samples.len() == self.cap {
            self.samples.pop_front();
        }
        self.samples.push_back(ms);
        self.count += 1;
    }

    /// Percentiles (nearest rank) of the recent window; `None` when empty.
    pub fn percentiles(&self) -> Option<Percentiles> {
        if self.samples.is_empty() {
            return None;
        }
        let mut v: Vec<f64> = self.samples.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Some(Percentiles {
            count: self.count,
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: v[v.len() - 1],
        })
    }
}

/// Named latencies (per pipeline stage).
#[derive(Debug, Clone, Default)]
pub struct StageLatencies {
    stages: BTreeMap<String, Latencies>,
}

impl StageLatencies {
    /// Adds a sample to `stage`.
    pub fn record(&mut self, stage: &str, ms: f64) {
        self.stages
            .entry(stage.to_string())
            .or_insert_with(|| Latencies::new(1024))
            .record(ms);
    }

    /// Percentiles per stage.
    pub fn summary(&self) -> BTreeMap<String, Percentiles> {
        self.stages
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.percentiles()?)))
            .collect()
    }
}

/// Events per second over the last few seconds.
#[derive(Debug, Clone)]
pub struct RateMeter {
    times: VecDeque<Instant>,
    window_s: f64,
}

impl RateMeter {
    /// Averages over `window_s` seconds.
    pub fn new(window_s: f64) -> Self {
        RateMeter {
            times: VecDeque::new(),
            window_s,
        }
    }

    /// Counts an event now.
    pub fn tick(&mut self) {
        let now = Instant::now();
        self.times.push_back(now);
        self.trim(now);
    }

    fn trim(&mut self, now: Instant) {
        while let Some(&t) = self.times.front() {
            if now.duration_since(t).as_secs_f64() > self.window_s || self.times.len() > 100_000 {
                self.times.pop_front();
            } else {
                break;
            }
        }
    }

    /// Events per second.
    pub fn rate(&mut self) -> f64 {
        self.trim(Instant::now());
        self.times.len() as f64 / self.window_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut l = Latencies::new(100);
        assert!(l.percentiles().is_none());
        for i in 1..=100 {
            l.record(f64::from(i));
        }
        l.record(f64::NAN);
        let p = l.percentiles().unwrap();
        assert_eq!(
            (p.p50, p.p95, p.p99, p.max, p.count),
            (50.0, 95.0, 99.0, 100.0, 100)
        );
        // the window slides
        for _ in 0..100 {
            l.record(1.0);
        }
        assert_eq!(l.percentiles().unwrap().max, 1.0);
    }

    #[test]
    fn stages_and_rates() {
        let mut s = StageLatencies::default();
        s.record("describe", 3.0);
        assert_eq!(s.summary()["describe"].p50, 3.0);
        let mut r = RateMeter::new(2.0);
        for _ in 0..10 {
            r.tick();
        }
        assert_eq!(r.rate(), 5.0);
    }
}
