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

/// What the operating system says about this process, for leak checks in the status
/// publication: resident memory, threads and open file descriptors. Linux reads `/proc/self`;
/// elsewhere every field is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProcessStats {
    /// Resident set size, KiB (`VmRSS`).
    pub rss_kib: Option<u64>,
    /// Operating-system threads.
    pub threads: Option<u64>,
    /// Open file descriptors.
    pub fds: Option<u64>,
    /// tokio tasks alive in the runtime that builds the status.
    pub tasks: Option<u64>,
}

impl ProcessStats {
    /// Reads the figures now (a few small `/proc` reads).
    pub fn now() -> ProcessStats {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        ProcessStats {
            rss_kib: status_field(&status, "VmRSS:"),
            threads: status_field(&status, "Threads:"),
            fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|d| d.count() as u64),
            tasks: tokio::runtime::Handle::try_current()
                .ok()
                .map(|h| h.metrics().num_alive_tasks() as u64),
        }
    }
}

/// The first number after `name` on its line of a `/proc/*/status` text.
fn status_field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
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

    #[test]
    fn reads_proc_status_fields() {
        let text = "Name:\tembodied-r\nVmRSS:\t  123456 kB\nThreads:\t7\nVmRSSx: 1\n";
        assert_eq!(status_field(text, "VmRSS:"), Some(123_456));
        assert_eq!(status_field(text, "Threads:"), Some(7));
        assert_eq!(status_field(text, "VmSwap:"), None);
        assert_eq!(status_field("Threads:\tmany\n", "Threads:"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_stats_count_this_process() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<_> = (0..8)
            .map(|i| std::fs::File::create(dir.path().join(i.to_string())).unwrap())
            .collect();
        let st = ProcessStats::now();
        assert!(st.rss_kib.unwrap_or(0) > 1000, "{st:?}");
        assert!(st.threads.unwrap_or(0) >= 1, "{st:?}");
        // stdin, stdout, stderr and our eight files at least.
        assert!(st.fds.unwrap_or(0) >= 11, "{st:?}");
        assert_eq!(st.tasks, None, "no tokio runtime on this thread");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let tasks = rt.block_on(async {
            let h = tokio::spawn(std::future::pending::<()>());
            let n = ProcessStats::now().tasks;
            h.abort();
            n
        });
        assert_eq!(tasks, Some(1), "the one pending task");
        drop(files);
    }
}
