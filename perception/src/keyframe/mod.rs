//! Key-frame selection: the Embodied-R rule (spec §1).
//!
//! A frame is kept when its view has moved far enough from the *last kept* key frame: ORB
//! features of both are matched (Hamming, cross-checked), a RANSAC homography maps the new frame
//! into the key frame, and when the projected footprint covers less than half of the key frame
//! (or any step fails: no features, ten or fewer matches, no homography) the frame becomes the new
//! key frame. The first frame is always kept; the batch form also keeps the last one and clamps
//! the count to 4..32 with the reference's sampling.
//!
//! Two forms: [`KeyFrameSelector`] decides frame by frame for live cameras (it holds only the
//! current key frame's features), and [`select`] runs over a whole file or folder, extracting
//! features of upcoming frames on all cores while decisions stay sequential.

mod fast;
mod geometry;
pub mod gray;
mod matching;
mod orb;

pub use geometry::{Homography, RansacConfig, find_homography, footprint_overlap};
pub use gray::Gray;
pub use matching::{Match, cross_check};
pub use orb::{Descriptor, Features, Orb, OrbConfig};

use rayon::prelude::*;
use serde::Serialize;

/// Settings of the selection rule.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectorConfig {
    /// Feature extraction.
    pub orb: OrbConfig,
    /// Homography estimation.
    pub ransac: RansacConfig,
    /// A pair needs more than this many matches to be compared (reference: 10).
    pub min_matches: usize,
    /// Keep a frame when the overlap is strictly below this (reference: 0.5).
    pub keep_below: f64,
}

impl Default for SelectorConfig {
    fn default() -> Self {
        SelectorConfig {
            orb: OrbConfig::default(),
            ransac: RansacConfig::default(),
            min_matches: 10,
            keep_below: 0.5,
        }
    }
}

/// Why a frame was kept or skipped.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Reason {
    /// The first frame of a stream.
    First,
    /// The frame or the key frame has no features.
    NoFeatures,
    /// Too few cross-checked matches.
    FewMatches {
        /// Matches found.
        matches: usize,
    },
    /// RANSAC found no homography.
    NoHomography,
    /// The footprint covers less than the threshold: the view moved on.
    LowOverlap {
        /// Covered fraction of the key frame.
        overlap: f64,
    },
    /// The footprint covers enough: the frame adds little (skipped).
    Covered {
        /// Covered fraction of the key frame.
        overlap: f64,
    },
}

/// The decision for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Decision {
    /// Whether the frame becomes the new key frame.
    pub keep: bool,
    /// Why.
    #[serde(flatten)]
    pub reason: Reason,
}

/// The streaming selector: feed frames in order, get a decision per frame.
#[derive(Debug)]
pub struct KeyFrameSelector {
    config: SelectorConfig,
    orb: Orb,
    reference: Option<Features>,
}

impl KeyFrameSelector {
    /// A selector with these settings and no key frame yet.
    pub fn new(config: SelectorConfig) -> KeyFrameSelector {
        KeyFrameSelector {
            orb: Orb::new(config.orb.clone()),
            config,
            reference: None,
        }
    }

    /// Forgets the current key frame: the next frame is kept as a first frame.
    pub fn reset(&mut self) {
        self.reference = None;
    }

    /// Decides on the next frame.
    pub fn push_frame(&mut self, frame: &crate::Frame) -> Decision {
        self.push(&gray_of(frame))
    }

    /// Decides on the next grayscale frame.
    pub fn push(&mut self, frame: &Gray) -> Decision {
        let features = self.orb.detect_and_compute(frame);
        self.push_features(features)
    }

    /// Decides on the next frame from features extracted elsewhere (the batch form's workers).
    pub fn push_features(&mut self, features: Features) -> Decision {
        let Some(reference) = self.reference.as_ref() else {
            self.reference = Some(features);
            return Decision {
                keep: true,
                reason: Reason::First,
            };
        };
        let reason = compare(&self.config, reference, &features);
        let keep = !matches!(reason, Reason::Covered { .. });
        if keep {
            self.reference = Some(features);
        }
        Decision { keep, reason }
    }
}

/// Compares a frame with the key frame (spec §1.2 steps 1–5).
fn compare(config: &SelectorConfig, reference: &Features, current: &Features) -> Reason {
    if reference.is_empty() || current.is_empty() {
        return Reason::NoFeatures;
    }
    let mut matches = cross_check(&reference.descriptors, &current.descriptors);
    // The reference sorts by distance (stably) before fitting; RANSAC depends on the order.
    matches.sort_by_key(|m| m.distance);
    if matches.len() <= config.min_matches {
        return Reason::FewMatches {
            matches: matches.len(),
        };
    }
    // The current frame's points map into the key frame's pixels.
    let src: Vec<[f64; 2]> = matches
        .iter()
        .map(|m| current.points[m.train as usize].map(f64::from))
        .collect();
    let dst: Vec<[f64; 2]> = matches
        .iter()
        .map(|m| reference.points[m.query as usize].map(f64::from))
        .collect();
    let Some(fit) = find_homography(&src, &dst, &config.ransac) else {
        return Reason::NoHomography;
    };
    let overlap = footprint_overlap(&fit.h, reference.width, reference.height);
    if overlap < config.keep_below {
        Reason::LowOverlap { overlap }
    } else {
        Reason::Covered { overlap }
    }
}

/// The reference's `constrained_sampling`: at most `m` items, always the first and last, the
/// middle ones at `round(i·s) + 1` with `s = (n − 2)/(m − 2)` and Python's round-half-to-even.
pub fn constrained_sampling<T: Clone>(items: &[T], m: usize) -> Vec<T> {
    let n = items.len();
    if n <= m {
        return items.to_vec();
    }
    if m < 2 {
        return items.iter().take(m).cloned().collect();
    }
    let s = (n - 2) as f64 / (m - 2) as f64;
    let mut out = Vec::with_capacity(m);
    out.push(items[0].clone());
    for i in 0..m - 2 {
        let k = ((i as f64 * s).round_ties_even() as usize + 1).min(n - 1);
        out.push(items[k].clone());
    }
    out.push(items[n - 1].clone());
    out
}

/// Frame indices the reference keeps when downsampling to about 1 fps: every `⌊fps⌋`-th frame
/// and the last one. Rates below 1 fps keep every frame (the reference crashes there).
pub fn downsample_indices(frame_count: usize, fps: f64) -> Vec<usize> {
    if frame_count == 0 {
        return Vec::new();
    }
    let interval = if fps.is_finite() && fps >= 1.0 {
        fps.floor() as usize
    } else {
        1
    };
    let mut out: Vec<usize> = (0..frame_count).step_by(interval).collect();
    if out.last() != Some(&(frame_count - 1)) {
        out.push(frame_count - 1);
    }
    out
}

/// Bounds on the number of key frames per video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clamp {
    /// Fewer selections than this are replaced by an even sample of all frames.
    pub min: usize,
    /// More selections than this are sampled down.
    pub max: usize,
}

impl Default for Clamp {
    fn default() -> Self {
        Clamp { min: 4, max: 32 }
    }
}

/// The reference's clamp (spec §1.3) over positions `0..processed`.
pub fn clamp_selection(selected: &[usize], processed: usize, clamp: Clamp) -> Vec<usize> {
    if selected.len() < clamp.min {
        let all: Vec<usize> = (0..processed).collect();
        constrained_sampling(&all, clamp.min)
    } else if selected.len() > clamp.max {
        constrained_sampling(selected, clamp.max)
    } else {
        selected.to_vec()
    }
}

/// The outcome of selecting over a whole video.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Selection {
    /// Kept positions (into the processed frames), after the last frame rule and the clamp.
    pub kept: Vec<usize>,
    /// Kept positions before the clamp.
    pub selected: Vec<usize>,
    /// One decision per processed frame.
    pub decisions: Vec<Decision>,
    /// Seconds spent on selection work (grayscale, features, matching, geometry), not counting
    /// the time the input iterator took to produce frames.
    pub seconds: f64,
}

/// Converts a frame to grayscale for the selector.
pub fn gray_of(frame: &crate::Frame) -> Gray {
    Gray::from_rgb(frame.width as usize, frame.height as usize, &frame.rgb)
}

/// Runs the rule over frames in order (batch form): grayscale conversion and features of up to
/// `chunk` upcoming frames run in parallel, decisions are made in order. Memory stays bounded by
/// the chunk.
pub fn select<I>(frames: I, config: &SelectorConfig, clamp: Clamp, chunk: usize) -> Selection
where
    I: IntoIterator<Item = crate::Frame>,
{
    let chunk = chunk.max(1);
    let mut selector = KeyFrameSelector::new(config.clone());
    let mut decisions = Vec::new();
    let mut selected = Vec::new();
    let mut seconds = 0.0;
    let mut pending: Vec<crate::Frame> = Vec::with_capacity(chunk);
    let mut flush = |pending: &mut Vec<crate::Frame>,
                     decisions: &mut Vec<Decision>,
                     selected: &mut Vec<usize>| {
        let start = std::time::Instant::now();
        let features: Vec<Features> = pending
            .par_iter()
            .map_init(
                || Orb::new(config.orb.clone()),
                |orb, f| orb.detect_and_compute(&gray_of(f)),
            )
            .collect();
        pending.clear();
        for f in features {
            let d = selector.push_features(f);
            if d.keep {
                selected.push(decisions.len());
            }
            decisions.push(d);
        }
        seconds += start.elapsed().as_secs_f64();
    };
    for f in frames {
        pending.push(f);
        if pending.len() == chunk {
            flush(&mut pending, &mut decisions, &mut selected);
        }
    }
    flush(&mut pending, &mut decisions, &mut selected);
    let processed = decisions.len();
    if processed > 0 && selected.last() != Some(&(processed - 1)) {
        selected.push(processed - 1);
    }
    let kept = clamp_selection(&selected, processed, clamp);
    Selection {
        kept,
        selected,
        decisions,
        seconds,
    }
}

/// Downsamples a stream of frames by index, as the reference does for files (every ⌊fps⌋-th
/// frame, and always the last one), without knowing the length in advance.
pub struct Downsample<I: Iterator<Item = crate::Frame>> {
    inner: I,
    interval: u64,
    position: u64,
    held: Option<crate::Frame>,
    done: bool,
}

impl<I: Iterator<Item = crate::Frame>> Downsample<I> {
    /// Keeps every `⌊fps⌋`-th item of `inner` (every item below 1 fps) and the last one.
    pub fn new(inner: I, fps: f64) -> Self {
        let interval = if fps.is_finite() && fps >= 1.0 {
            fps.floor() as u64
        } else {
            1
        };
        Downsample {
            inner,
            interval,
            position: 0,
            held: None,
            done: false,
        }
    }
}

impl<I: Iterator<Item = crate::Frame>> Iterator for Downsample<I> {
    type Item = crate::Frame;

    fn next(&mut self) -> Option<crate::Frame> {
        if self.done {
            return None;
        }
        loop {
            match self.inner.next() {
                Some(f) => {
                    let pos = self.position;
                    self.position += 1;
                    if pos.is_multiple_of(self.interval) {
                        self.held = None;
                        return Some(f);
                    }
                    self.held = Some(f);
                }
                None => {
                    self.done = true;
                    return self.held.take();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constrained_sampling_rounds_half_to_even() {
        let l: Vec<usize> = (0..11).collect();
        assert_eq!(constrained_sampling(&l, 4), vec![0, 1, 5, 10]);
        let l: Vec<usize> = (0..10).collect();
        assert_eq!(constrained_sampling(&l, 4), vec![0, 1, 5, 9]);
        assert_eq!(constrained_sampling(&[3, 4, 5], 4), vec![3, 4, 5]);
        let l: Vec<usize> = (0..100).collect();
        let s = constrained_sampling(&l, 32);
        assert_eq!(s.len(), 32);
        assert_eq!((s[0], s[1], s[31]), (0, 1, 99));
        assert!(s.windows(2).all(|p| p[0] < p[1]));
    }

    #[test]
    fn downsampling_truncates_the_rate_and_keeps_the_last_frame() {
        assert_eq!(downsample_indices(10, 4.0), vec![0, 4, 8, 9]);
        assert_eq!(downsample_indices(9, 4.0), vec![0, 4, 8]);
        assert_eq!(downsample_indices(61, 29.97), vec![0, 29, 58, 60]);
        assert_eq!(downsample_indices(3, 0.5), vec![0, 1, 2]);
        assert!(downsample_indices(0, 30.0).is_empty());
    }

    #[test]
    fn clamp_replaces_short_selections_and_samples_long_ones() {
        let c = Clamp::default();
        assert_eq!(clamp_selection(&[0, 9], 10, c), vec![0, 1, 5, 9]);
        assert_eq!(clamp_selection(&[0, 2], 3, c), vec![0, 1, 2]);
        let many: Vec<usize> = (0..40).collect();
        assert_eq!(clamp_selection(&many, 40, c).len(), 32);
        assert_eq!(
            clamp_selection(&[0, 3, 5, 8, 9], 10, c),
            vec![0, 3, 5, 8, 9]
        );
    }

    fn frame_of(i: usize, g: &Gray) -> crate::Frame {
        let rgb: Vec<u8> = g.data.iter().flat_map(|&v| [v, v, v]).collect();
        crate::Frame::new(
            i as u64,
            i as f64,
            g.width as u32,
            g.height as u32,
            rgb,
            None,
        )
        .expect("frame")
    }

    #[test]
    fn downsampling_a_stream_matches_the_index_rule() {
        let g = Gray {
            width: 2,
            height: 2,
            data: vec![0; 4],
        };
        for (n, fps) in [
            (10usize, 4.0),
            (9, 4.0),
            (61, 29.97),
            (3, 0.5),
            (1, 30.0),
            (0, 30.0),
        ] {
            let frames: Vec<crate::Frame> = (0..n).map(|i| frame_of(i, &g)).collect();
            let got: Vec<usize> = Downsample::new(frames.into_iter(), fps)
                .map(|f| f.seq as usize)
                .collect();
            assert_eq!(got, downsample_indices(n, fps), "n {n} fps {fps}");
        }
    }

    fn shifted(base: &Gray, dx: usize) -> Gray {
        let (w, h) = (base.width - 200, base.height);
        let mut data = Vec::with_capacity(w * h);
        for y in 0..h {
            data.extend_from_slice(&base.data[y * base.width + dx..y * base.width + dx + w]);
        }
        Gray {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn a_pan_keeps_a_frame_once_half_the_view_has_moved() {
        // A 440-px window panning over a 640-px texture, 20 px per frame.
        let base = orb::tests_support::texture(640, 300, 11);
        let frames: Vec<Gray> = (0..11).map(|i| shifted(&base, i * 20)).collect();
        let mut sel = KeyFrameSelector::new(SelectorConfig::default());
        let decisions: Vec<Decision> = frames.iter().map(|f| sel.push(f)).collect();
        assert_eq!(decisions[0].reason, Reason::First);
        let kept: Vec<usize> = (0..11).filter(|&i| decisions[i].keep).collect();
        // Overlap after k frames is (440 − 20k)/440: below 0.5 from k = 12 on, so only the
        // first frame is kept; the overlap falls monotonically.
        assert_eq!(kept, vec![0], "{decisions:?}");
        let overlaps: Vec<f64> = decisions[1..]
            .iter()
            .map(|d| match d.reason {
                Reason::Covered { overlap } => overlap,
                other => panic!("{other:?}"),
            })
            .collect();
        for (k, o) in overlaps.iter().enumerate() {
            let expected = (440.0 - 20.0 * (k + 1) as f64) / 440.0;
            assert!(
                (o - expected).abs() < 0.02,
                "frame {}: {o} vs {expected}",
                k + 1
            );
        }
        // The batch form agrees, adds the last frame, and clamps up to four.
        let rgb: Vec<crate::Frame> = frames
            .iter()
            .enumerate()
            .map(|(i, g)| frame_of(i, g))
            .collect();
        let s = select(rgb, &SelectorConfig::default(), Clamp::default(), 4);
        assert_eq!(s.selected, vec![0, 10]);
        assert_eq!(s.kept, vec![0, 1, 5, 10]);
    }

    #[test]
    fn featureless_frames_are_kept_as_failures() {
        let flat = Gray {
            width: 200,
            height: 150,
            data: vec![128; 200 * 150],
        };
        let mut sel = KeyFrameSelector::new(SelectorConfig::default());
        assert!(sel.push(&flat).keep);
        let d = sel.push(&flat);
        assert_eq!(
            d,
            Decision {
                keep: true,
                reason: Reason::NoFeatures
            }
        );
        let s = select(
            Vec::<crate::Frame>::new(),
            &SelectorConfig::default(),
            Clamp::default(),
            4,
        );
        assert!(s.kept.is_empty());
    }
}
