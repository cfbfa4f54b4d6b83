//! The capture side of the pipeline, on its own thread: frames from the source's drop-oldest
//! queue → time-based sampling (the paper's ~1 fps) → key-frame selection → JPEG → buffer.
//! It never waits for reasoning: questions read the buffer under a short lock.

use crate::stats::{Latencies, RateMeter};
use embodied_r_perception::buffer::{KeyFrame, KeyFrameBuffer};
use embodied_r_perception::keyframe::{KeyFrameSelector, SelectorConfig};
use embodied_r_perception::source::RunningSource;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Counters of the capture thread.
#[derive(Debug)]
pub struct CaptureStats {
    /// Frames taken from the source queue.
    pub frames_in: u64,
    /// Frames the sampler passed to the selector.
    pub sampled: u64,
    /// Frames kept as key frames.
    pub kept: u64,
    /// Key frames that could not be encoded.
    pub encode_errors: u64,
    /// Frames the source skipped as undecodable or malformed (corrupt images, bad sizes).
    pub source_bad: u64,
    /// Capture time of the newest frame seen (source clock).
    pub newest_stamp: Option<f64>,
    /// When the newest key frame was kept.
    pub newest_keyframe_at: Option<Instant>,
    /// When the newest frame arrived (a stalled camera: long ago, and not ended).
    pub last_frame_at: Option<Instant>,
    /// Whether the source has ended.
    pub source_ended: bool,
    /// The source's final error, if it failed.
    pub source_error: Option<String>,
    /// Per-frame processing time (all frames), ms.
    pub per_frame_ms: Latencies,
    /// Processing time of sampled frames (selection, plus JPEG for kept ones), ms.
    pub sampled_ms: Latencies,
    /// Frames in per second.
    pub rate_in: RateMeter,
    /// Key frames per second.
    pub rate_kept: RateMeter,
}

impl Default for CaptureStats {
    fn default() -> Self {
        CaptureStats {
            frames_in: 0,
            sampled: 0,
            kept: 0,
            encode_errors: 0,
            source_bad: 0,
            newest_stamp: None,
            newest_keyframe_at: None,
            last_frame_at: None,
            source_ended: false,
            source_error: None,
            per_frame_ms: Latencies::new(4096),
            sampled_ms: Latencies::new(1024),
            rate_in: RateMeter::new(5.0),
            rate_kept: RateMeter::new(30.0),
        }
    }
}

/// A plain snapshot of [`CaptureStats`] for the status message.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureSnapshot {
    /// Frames taken from the source queue.
    pub frames_in: u64,
    /// Frames sampled for selection.
    pub sampled: u64,
    /// Key frames kept.
    pub kept: u64,
    /// Frames per second arriving.
    pub fps_in: f64,
    /// Key frames per second (30 s average).
    pub keyframes_per_s: f64,
    /// Frames the source skipped as corrupt or malformed.
    pub source_bad: u64,
    /// Key frames that could not be encoded.
    pub encode_errors: u64,
    /// Seconds since the newest frame arrived (`None` before the first): it grows while a
    /// camera stalls without ending.
    pub idle_s: Option<f64>,
    /// Whether the source has ended.
    pub source_ended: bool,
    /// The source's error, if it failed.
    pub source_error: Option<String>,
    /// Per-frame processing latency.
    pub per_frame_ms: Option<crate::stats::Percentiles>,
    /// Latency of sampled frames.
    pub sampled_ms: Option<crate::stats::Percentiles>,
}

impl CaptureStats {
    /// A snapshot for status.
    pub fn snapshot(&mut self) -> CaptureSnapshot {
        CaptureSnapshot {
            frames_in: self.frames_in,
            sampled: self.sampled,
            kept: self.kept,
            fps_in: self.rate_in.rate(),
            keyframes_per_s: self.rate_kept.rate(),
            source_bad: self.source_bad,
            encode_errors: self.encode_errors,
            idle_s: self.last_frame_at.map(|t| t.elapsed().as_secs_f64()),
            source_ended: self.source_ended,
            source_error: self.source_error.clone(),
            per_frame_ms: self.per_frame_ms.percentiles(),
            sampled_ms: self.sampled_ms.percentiles(),
        }
    }
}

/// Settings of the capture loop.
#[derive(Debug, Clone)]
pub struct CaptureConfig {
    /// Frames per second considered (0 = all).
    pub sample_fps: f64,
    /// Keep a sampled frame anyway when the last key frame is this many seconds older (0 = off).
    pub max_gap_s: f64,
    /// Selector settings.
    pub selector: SelectorConfig,
    /// JPEG quality of key frames.
    pub jpeg_quality: u8,
}

/// Runs until the source ends or `stop` is set; `on_keyframe` sees every new key frame (it
/// must not block: the runtime forwards to a bounded channel).
pub fn run_capture(
    source: RunningSource,
    cfg: CaptureConfig,
    buffer: Arc<Mutex<KeyFrameBuffer>>,
    stats: Arc<Mutex<CaptureStats>>,
    stop: Arc<AtomicBool>,
    mut on_keyframe: impl FnMut(&KeyFrame),
) {
    let mut selector = KeyFrameSelector::new(cfg.selector.clone());
    let period = (cfg.sample_fps > 0.0).then(|| 1.0 / cfg.sample_fps);
    let mut last_sampled: Option<f64> = None;
    let mut last_kept: Option<f64> = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let Some(frame) = source.queue.pop_timeout(Duration::from_millis(100)) else {
            stats
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .source_bad = source.stats().bad;
            if source.queue.is_closed() && source.queue.is_empty() {
                break;
            }
            continue;
        };
        let t = Instant::now();
        // A source that restarts its clock (a looped file) restarts sampling too.
        if last_sampled.is_some_and(|l| frame.stamp < l) {
            last_sampled = None;
            last_kept = None;
        }
        let due = match (period, last_sampled) {
            (Some(p), Some(l)) => frame.stamp - l >= p - 1e-6,
            _ => true,
        };
        let mut kept = None;
        if due {
            last_sampled = Some(frame.stamp);
            let mut keep = selector.push_frame(&frame).keep;
            if !keep
                && cfg.max_gap_s > 0.0
                && last_kept.is_some_and(|k| frame.stamp - k >= cfg.max_gap_s)
            {
                // Too long without a key frame: make this one the new reference.
                selector.reset();
                keep = selector.push_frame(&frame).keep;
            }
            if keep {
                last_kept = Some(frame.stamp);
                match KeyFrame::from_frame(&frame, cfg.jpeg_quality) {
                    Ok(kf) => {
                        buffer
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(kf.clone());
                        kept = Some(kf);
                    }
                    Err(e) => {
                        tracing::warn!(seq = frame.seq, "cannot encode a key frame: {e}");
                        stats
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .encode_errors += 1;
                    }
                }
            }
        }
        let elapsed = t.elapsed().as_secs_f64() * 1e3;
        {
            let bad = source.stats().bad;
            let mut s = stats.lock().unwrap_or_else(PoisonError::into_inner);
            s.source_bad = bad;
            s.frames_in += 1;
            s.last_frame_at = Some(Instant::now());
            s.rate_in.tick();
            s.newest_stamp = Some(frame.stamp);
            s.per_frame_ms.record(elapsed);
            if due {
                s.sampled += 1;
                s.sampled_ms.record(elapsed);
            }
            if kept.is_some() {
                s.kept += 1;
                s.rate_kept.tick();
                s.newest_keyframe_at = Some(Instant::now());
            }
        }
        if let Some(kf) = kept {
            on_keyframe(&kf);
        }
    }
    let bad = source.stats().bad;
    let result = source.stop();
    let mut s = stats.lock().unwrap_or_else(PoisonError::into_inner);
    s.source_bad = s.source_bad.max(bad);
    s.source_ended = true;
    if let Err(e) = result {
        s.source_error = Some(e.to_string());
    }
    tracing::info!(frames = s.frames_in, kept = s.kept, "capture ended");
}

#[cfg(test)]
mod tests {
    use super::*;
    use embodied_r_perception::Frame;
    use embodied_r_perception::buffer::BufferLimits;
    use embodied_r_perception::source::{CameraSource, Pacing, SourceError, SourceStats, spawn};

    /// Frames of a moving gradient-and-blocks pattern, 10 per second of stamp.
    struct Moving {
        i: u64,
        n: u64,
        step: u64,
    }

    impl CameraSource for Moving {
        fn name(&self) -> &str {
            "moving"
        }
        fn fps(&self) -> Option<f64> {
            Some(10.0)
        }
        fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
            if self.i == self.n {
                return Ok(None);
            }
            let (w, h) = (160u32, 120u32);
            let shift = (self.i * self.step) as u32;
            let mut rgb = Vec::with_capacity((w * h * 3) as usize);
            for y in 0..h {
                for x in 0..w {
                    let u = x + shift;
                    let v = ((u / 8 + y / 8) % 2) as u8 * 200 + ((u * 7 + y * 13) % 50) as u8;
                    rgb.extend_from_slice(&[v, v, v]);
                }
            }
            let f = Frame::new(self.i, self.i as f64 / 10.0, w, h, rgb, None).unwrap();
            self.i += 1;
            Ok(Some(f))
        }
        fn stats(&self) -> SourceStats {
            SourceStats::default()
        }
    }

    /// Runs the capture loop over `n` frames moving `step` pixels per frame; returns the key
    /// frames seen, the stats and the buffer.
    fn capture(
        n: u64,
        step: u64,
        sample_fps: f64,
        max_gap_s: f64,
    ) -> (
        Vec<u64>,
        Arc<Mutex<CaptureStats>>,
        Arc<Mutex<KeyFrameBuffer>>,
    ) {
        let src = spawn(
            Box::new(Moving { i: 0, n, step }),
            8,
            Pacing::AsFastAsPossible,
        )
        .unwrap();
        let buffer = Arc::new(Mutex::new(KeyFrameBuffer::new(BufferLimits::default())));
        let stats = Arc::new(Mutex::new(CaptureStats::default()));
        let mut seen = Vec::new();
        run_capture(
            src,
            CaptureConfig {
                sample_fps,
                max_gap_s,
                selector: SelectorConfig::default(),
                jpeg_quality: 80,
            },
            buffer.clone(),
            stats.clone(),
            Arc::new(AtomicBool::new(false)),
            |kf| seen.push(kf.seq),
        );
        (seen, stats, buffer)
    }

    #[test]
    fn samples_selects_and_buffers() {
        let (seen, stats, buffer) = capture(40, 12, 2.0, 0.0);
        let mut s = stats.lock().unwrap();
        assert_eq!(s.frames_in, 40);
        // 4 s of stamps at 2 fps sampling: frames 0, 5, 10, ... 35
        assert_eq!(s.sampled, 8);
        assert!(s.source_ended && s.source_error.is_none());
        assert_eq!(seen.first(), Some(&0));
        assert!(seen.iter().all(|q| q % 5 == 0), "{seen:?}");
        assert_eq!(s.kept as usize, seen.len());
        assert_eq!(buffer.lock().unwrap().len(), seen.len());
        assert!(s.snapshot().per_frame_ms.is_some());
    }

    #[test]
    fn a_still_view_still_leaves_a_key_frame_every_max_gap() {
        let (seen, _, _) = capture(35, 0, 0.0, 1.0);
        // 10 frames per second of stamps, nothing moves: frames 0, 10, 20, 30.
        assert_eq!(seen, [0, 10, 20, 30]);
        let (seen, _, _) = capture(35, 0, 0.0, 0.0);
        assert_eq!(
            seen,
            [0],
            "without max_gap_s a still view keeps only its first frame"
        );
    }
}
