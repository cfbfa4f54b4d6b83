//! The key-frame buffer: a bounded, time-ordered window of key frames held as JPEG (what the VLM
//! is sent and what the episode log stores), queryable by "the last N seconds", "since frame S"
//! or "the last N key frames". Caps on count and bytes evict the oldest frames first.

use crate::keyframe::constrained_sampling;
use crate::source::decode::{DecodeError, encode_jpeg};
use crate::{Frame, Pose};
use std::collections::VecDeque;
use std::sync::Arc;

/// One key frame as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyFrame {
    /// The frame's sequence number in its source.
    pub seq: u64,
    /// Capture time in seconds.
    pub stamp: f64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Camera pose when known.
    pub pose: Option<Pose>,
    /// JPEG bytes (shared).
    pub jpeg: Arc<[u8]>,
}

impl KeyFrame {
    /// A key frame from a frame, JPEG-encoded at `quality` (encode outside any lock: it is the
    /// slow part).
    pub fn from_frame(frame: &Frame, quality: u8) -> Result<KeyFrame, DecodeError> {
        let jpeg = encode_jpeg(frame.width, frame.height, &frame.rgb, quality)?;
        Ok(KeyFrame {
            seq: frame.seq,
            stamp: frame.stamp,
            width: frame.width,
            height: frame.height,
            pose: frame.pose,
            jpeg: jpeg.into(),
        })
    }
}

/// Caps of a [`KeyFrameBuffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferLimits {
    /// Most key frames held.
    pub max_frames: usize,
    /// Most JPEG bytes held.
    pub max_bytes: usize,
    /// JPEG quality of stored frames (the reference sends quality 95).
    pub jpeg_quality: u8,
}

impl Default for BufferLimits {
    fn default() -> Self {
        BufferLimits {
            max_frames: 256,
            max_bytes: 64 << 20,
            jpeg_quality: 95,
        }
    }
}

/// Which key frames a query wants.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowQuery {
    /// Everything held.
    All,
    /// Key frames no older than this many seconds before the newest one.
    LastSeconds(f64),
    /// Key frames with a sequence number at or after this one.
    SinceSeq(u64),
    /// The newest N key frames.
    LastN(usize),
}

/// Counters of a buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BufferStats {
    /// Key frames held.
    pub frames: usize,
    /// JPEG bytes held.
    pub bytes: usize,
    /// Key frames evicted by the caps so far.
    pub evicted: u64,
    /// Key frames ever added.
    pub added: u64,
}

/// A bounded, time-ordered window of key frames.
#[derive(Debug, Default)]
pub struct KeyFrameBuffer {
    frames: VecDeque<KeyFrame>,
    bytes: usize,
    limits: BufferLimits,
    evicted: u64,
    added: u64,
}

impl KeyFrameBuffer {
    /// An empty buffer with these caps (at least one frame is always kept).
    pub fn new(limits: BufferLimits) -> KeyFrameBuffer {
        KeyFrameBuffer {
            limits,
            ..KeyFrameBuffer::default()
        }
    }

    /// JPEG-encodes a frame and adds it.
    pub fn push_frame(&mut self, frame: &Frame) -> Result<(), DecodeError> {
        self.push(KeyFrame::from_frame(frame, self.limits.jpeg_quality)?);
        Ok(())
    }

    /// Adds a key frame, keeping the buffer ordered by timestamp, then evicts the oldest frames
    /// while a cap is exceeded (the newest frame always stays).
    pub fn push(&mut self, kf: KeyFrame) {
        self.bytes += kf.jpeg.len();
        self.added += 1;
        let at = self.frames.partition_point(|f| f.stamp <= kf.stamp);
        self.frames.insert(at, kf);
        while self.frames.len() > 1
            && (self.frames.len() > self.limits.max_frames.max(1)
                || self.bytes > self.limits.max_bytes)
        {
            if let Some(old) = self.frames.pop_front() {
                self.bytes -= old.jpeg.len();
                self.evicted += 1;
            }
        }
    }

    /// The newest key frame.
    pub fn newest(&self) -> Option<&KeyFrame> {
        self.frames.back()
    }

    /// Key frames held.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Counters.
    pub fn stats(&self) -> BufferStats {
        BufferStats {
            frames: self.frames.len(),
            bytes: self.bytes,
            evicted: self.evicted,
            added: self.added,
        }
    }

    /// The key frames a query selects, oldest first.
    pub fn select(&self, query: WindowQuery) -> Vec<KeyFrame> {
        match query {
            WindowQuery::All => self.frames.iter().cloned().collect(),
            WindowQuery::LastSeconds(s) => {
                let Some(newest) = self.newest() else {
                    return Vec::new();
                };
                let from = newest.stamp - s.max(0.0);
                self.frames
                    .iter()
                    .filter(|f| f.stamp >= from)
                    .cloned()
                    .collect()
            }
            WindowQuery::SinceSeq(seq) => self
                .frames
                .iter()
                .filter(|f| f.seq >= seq)
                .cloned()
                .collect(),
            WindowQuery::LastN(n) => {
                let skip = self.frames.len().saturating_sub(n);
                self.frames.iter().skip(skip).cloned().collect()
            }
        }
    }

    /// The window a question is answered from: the query's frames, sampled down to `max` with the
    /// reference's sampling (first and newest always included).
    pub fn window(&self, query: WindowQuery, max: usize) -> Vec<KeyFrame> {
        constrained_sampling(&self.select(query), max.max(2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kf(seq: u64, stamp: f64, bytes: usize) -> KeyFrame {
        KeyFrame {
            seq,
            stamp,
            width: 2,
            height: 2,
            pose: None,
            jpeg: vec![0u8; bytes].into(),
        }
    }

    #[test]
    fn queries_by_time_sequence_and_count() {
        let mut b = KeyFrameBuffer::new(BufferLimits::default());
        for i in 0..10 {
            b.push(kf(i * 3, i as f64, 10));
        }
        let seqs = |v: Vec<KeyFrame>| v.iter().map(|f| f.seq).collect::<Vec<_>>();
        assert_eq!(
            seqs(b.select(WindowQuery::LastSeconds(2.0))),
            vec![21, 24, 27]
        );
        assert_eq!(seqs(b.select(WindowQuery::SinceSeq(20))), vec![21, 24, 27]);
        assert_eq!(seqs(b.select(WindowQuery::LastN(2))), vec![24, 27]);
        assert_eq!(b.select(WindowQuery::All).len(), 10);
        assert_eq!(seqs(b.window(WindowQuery::All, 4)), vec![0, 3, 15, 27]);
        assert!(
            KeyFrameBuffer::default()
                .select(WindowQuery::LastSeconds(5.0))
                .is_empty()
        );
    }

    #[test]
    fn caps_evict_the_oldest_and_keep_order() {
        let mut b = KeyFrameBuffer::new(BufferLimits {
            max_frames: 3,
            max_bytes: 1000,
            jpeg_quality: 90,
        });
        for i in 0..5 {
            b.push(kf(i, i as f64, 100));
        }
        assert_eq!(
            b.stats(),
            BufferStats {
                frames: 3,
                bytes: 300,
                evicted: 2,
                added: 5
            }
        );
        // An out-of-order frame is placed by its timestamp.
        b.push(kf(99, 3.5, 100));
        let seqs: Vec<u64> = b.select(WindowQuery::All).iter().map(|f| f.seq).collect();
        assert_eq!(seqs, vec![3, 99, 4]);
        // The byte cap evicts too, but never the last frame.
        b.push(kf(5, 5.0, 5000));
        assert_eq!(b.len(), 1);
        assert_eq!(b.newest().map(|f| f.seq), Some(5));
    }

    #[test]
    fn frames_are_stored_as_jpeg() {
        let mut b = KeyFrameBuffer::new(BufferLimits::default());
        let f = Frame::new(7, 1.5, 16, 8, vec![120u8; 16 * 8 * 3], None).expect("frame");
        b.push_frame(&f).expect("encodes");
        let k = b.newest().expect("one");
        assert_eq!((k.seq, k.width, k.height), (7, 16, 8));
        assert_eq!(&k.jpeg[..2], &[0xFF, 0xD8]);
    }
}
