//! Camera sources: everything that yields [`Frame`]s.
//!
//! One trait, [`CameraSource`], for a live camera (feature `camera`), an image folder, a video
//! file, a rosbag2 MCAP recording and the simulator (in `sim-bridge`). A source skips bad frames
//! itself — counted in [`SourceStats`] and logged with the source and frame named — and returns
//! an error only when it cannot go on at all. [`spawn`] runs a source on its own thread into a
//! drop-oldest queue, so a slow consumer never stalls capture.

pub mod camera_format;
pub mod decode;
mod folder;
pub mod mcap;
pub mod mcap_records;
mod video;

#[cfg(feature = "camera")]
pub mod camera;

pub use folder::FolderSource;
pub use video::{VideoInfo, VideoSource};

use crate::{DropOldest, Frame};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Why a source cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A path does not exist or cannot be read.
    #[error("{source_name}: cannot read {path}: {reason}")]
    Io {
        /// The source.
        source_name: String,
        /// The path.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// The input exists but holds nothing this source can play.
    #[error("{source_name}: {what}")]
    Invalid {
        /// The source.
        source_name: String,
        /// What is wrong and what was expected.
        what: String,
    },
    /// An external program the source needs is missing or failed.
    #[error("{source_name}: {what}")]
    Tool {
        /// The source.
        source_name: String,
        /// What failed and how to fix it.
        what: String,
    },
    /// A device error (live cameras).
    #[error("{source_name}: device error: {what}")]
    Device {
        /// The source.
        source_name: String,
        /// The driver's message.
        what: String,
    },
}

/// Counters every source keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SourceStats {
    /// Frames delivered.
    pub frames: u64,
    /// Frames skipped because they could not be decoded or had the wrong size.
    pub bad: u64,
}

/// A stream of frames.
pub trait CameraSource: Send {
    /// A label for logs and errors, e.g. `folder:/data/run1`.
    fn name(&self) -> &str;
    /// The nominal frame rate, when the source knows it.
    fn fps(&self) -> Option<f64>;
    /// The next good frame, `Ok(None)` at the end of the stream.
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError>;
    /// Counters so far.
    fn stats(&self) -> SourceStats;
}

/// Logs and counts a skipped frame.
pub(crate) fn skip_bad(
    stats: &mut SourceStats,
    source: &str,
    frame: u64,
    why: &dyn std::fmt::Display,
) {
    stats.bad += 1;
    tracing::warn!(source, frame, "skipping bad frame: {why}");
}

/// The receiving end of a source whose reader runs on its own thread (a bag reader, a camera
/// driver): frames and a final error arrive over a bounded channel; the reader updates `stats`.
pub(crate) struct ThreadFeed {
    rx: std::sync::mpsc::Receiver<Result<Frame, SourceError>>,
    stats: Arc<Mutex<SourceStats>>,
    done: bool,
}

impl ThreadFeed {
    /// Wraps the receiver and the counters the reader thread shares.
    pub(crate) fn new(
        rx: std::sync::mpsc::Receiver<Result<Frame, SourceError>>,
        stats: Arc<Mutex<SourceStats>>,
    ) -> Self {
        ThreadFeed {
            rx,
            stats,
            done: false,
        }
    }

    /// The next frame; after an error or the reader's end, `Ok(None)` for good.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        if self.done {
            return Ok(None);
        }
        match self.rx.recv() {
            Ok(Ok(frame)) => Ok(Some(frame)),
            Ok(Err(e)) => {
                self.done = true;
                Err(e)
            }
            Err(_) => {
                self.done = true;
                Ok(None)
            }
        }
    }

    /// The reader's counters.
    pub(crate) fn stats(&self) -> SourceStats {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How a running source is paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// Deliver frames as the source produces them and drop the oldest when the consumer falls
    /// behind (live cameras: their clock is the world's).
    Live,
    /// Deliver as fast as the consumer takes frames (files, benchmarks): the source waits for
    /// room in the queue instead of dropping frames.
    AsFastAsPossible,
    /// Deliver at the frames' own timestamps (replaying a recording as if live).
    RealTime,
}

/// A source running on its own thread.
pub struct RunningSource {
    /// Frames come out here; when it is full, the oldest frame is dropped and counted.
    pub queue: Arc<DropOldest<Frame>>,
    stats: Arc<Mutex<SourceStats>>,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Result<(), SourceError>>>,
    name: String,
}

impl RunningSource {
    /// The source's counters so far (frames dropped by the queue are in `queue.stats()`).
    pub fn stats(&self) -> SourceStats {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The source's label.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Asks the thread to stop and waits for it; returns the source's final error, if any.
    pub fn stop(mut self) -> Result<(), SourceError> {
        self.stop.store(true, Ordering::Relaxed);
        self.join_inner()
    }

    /// Waits for the source to reach its end.
    pub fn join(mut self) -> Result<(), SourceError> {
        self.join_inner()
    }

    fn join_inner(&mut self) -> Result<(), SourceError> {
        match self.handle.take() {
            Some(h) => h.join().unwrap_or_else(|_| {
                Err(SourceError::Device {
                    source_name: self.name.clone(),
                    what: "source thread panicked".into(),
                })
            }),
            None => Ok(()),
        }
    }
}

impl Drop for RunningSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.join_inner();
    }
}

/// Runs `source` on a thread, pushing into a drop-oldest queue of `capacity` frames. The queue
/// is closed when the source ends or fails.
pub fn spawn(
    mut source: Box<dyn CameraSource>,
    capacity: usize,
    pacing: Pacing,
) -> std::io::Result<RunningSource> {
    let queue = Arc::new(DropOldest::new(capacity));
    let stats = Arc::new(Mutex::new(SourceStats::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let name = source.name().to_string();
    let (q, s, st) = (queue.clone(), stats.clone(), stop.clone());
    let handle = std::thread::Builder::new()
        .name(format!("source {name}"))
        .spawn(move || {
            let start = Instant::now();
            let mut first_stamp = None;
            let result = loop {
                if st.load(Ordering::Relaxed) {
                    break Ok(());
                }
                match source.next_frame() {
                    Ok(Some(frame)) => {
                        if pacing == Pacing::RealTime {
                            let t0 = *first_stamp.get_or_insert(frame.stamp);
                            let due = Duration::from_secs_f64((frame.stamp - t0).max(0.0));
                            while start.elapsed() < due && !st.load(Ordering::Relaxed) {
                                std::thread::sleep(
                                    (due - start.elapsed()).min(Duration::from_millis(50)),
                                );
                            }
                        }
                        if pacing == Pacing::AsFastAsPossible {
                            // Back-pressure: a file has no real time to keep up with.
                            while q.is_full() && !st.load(Ordering::Relaxed) {
                                std::thread::sleep(Duration::from_millis(1));
                            }
                        }
                        q.push(frame);
                    }
                    Ok(None) => break Ok(()),
                    Err(e) => {
                        tracing::error!(source = source.name(), "source stopped: {e}");
                        break Err(e);
                    }
                }
                *s.lock().unwrap_or_else(PoisonError::into_inner) = source.stats();
            };
            *s.lock().unwrap_or_else(PoisonError::into_inner) = source.stats();
            q.close();
            result
        })?;
    Ok(RunningSource {
        queue,
        stats,
        stop,
        handle: Some(handle),
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Yields `n` tiny frames, every third one "bad".
    struct Counter {
        next: u64,
        n: u64,
        stats: SourceStats,
    }

    impl CameraSource for Counter {
        fn name(&self) -> &str {
            "counter"
        }
        fn fps(&self) -> Option<f64> {
            Some(100.0)
        }
        fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
            while self.next < self.n {
                let i = self.next;
                self.next += 1;
                if i % 3 == 2 {
                    skip_bad(&mut self.stats, "counter", i, &"corrupt");
                    continue;
                }
                self.stats.frames += 1;
                return Ok(Some(
                    Frame::new(i, i as f64 / 100.0, 1, 1, vec![0u8; 3], None).expect("frame"),
                ));
            }
            Ok(None)
        }
        fn stats(&self) -> SourceStats {
            self.stats
        }
    }

    #[test]
    fn a_slow_consumer_never_stalls_the_source_and_drops_are_counted() {
        let src = Counter {
            next: 0,
            n: 300,
            stats: SourceStats::default(),
        };
        let running = spawn(Box::new(src), 4, Pacing::Live).expect("thread");
        let queue = running.queue.clone();
        // Nobody reads until the source has finished: it must not block on the full queue.
        running.join().expect("ends cleanly");
        let q = queue.stats();
        assert_eq!(q.pushed, 200);
        assert_eq!(q.dropped, 196);
        let mut left = Vec::new();
        while let Some(f) = queue.try_pop() {
            left.push(f.seq);
        }
        // The newest frames survive.
        assert_eq!(left, vec![294, 295, 297, 298]);
    }

    #[test]
    fn as_fast_as_possible_waits_for_the_consumer_and_loses_nothing() {
        let src = Counter {
            next: 0,
            n: 60,
            stats: SourceStats::default(),
        };
        let running = spawn(Box::new(src), 2, Pacing::AsFastAsPossible).expect("thread");
        let queue = running.queue.clone();
        let mut got = Vec::new();
        while let Some(f) = queue.pop_timeout(Duration::from_secs(10)) {
            got.push(f.seq);
            std::thread::sleep(Duration::from_micros(200));
        }
        running.join().expect("ends cleanly");
        assert_eq!(queue.stats().dropped, 0);
        assert_eq!(got.len(), 40, "every good frame arrives: {got:?}");
    }

    #[test]
    fn stopping_a_paced_source_returns_promptly() {
        let src = Counter {
            next: 0,
            n: 1_000_000,
            stats: SourceStats::default(),
        };
        let running = spawn(Box::new(src), 2, Pacing::RealTime).expect("thread");
        // Wait (bounded) for the first frame: a loaded machine may schedule the thread late.
        let until = Instant::now() + Duration::from_secs(10);
        while running.stats().frames == 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(running.stats().frames >= 1);
        running.stop().expect("stops cleanly");
    }
}
