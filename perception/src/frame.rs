//! Frames and poses.

use nalgebra::Isometry3;
use std::sync::Arc;

/// A camera pose: the transform from the camera's optical frame to the world frame
/// (`world_from_camera`).
///
/// Conventions (those of ROS REP 103/105): the world frame is x east / forward, y north / left,
/// z up, in metres; the camera optical frame is x right, y down, z forward along the optical axis.
pub type Pose = Isometry3<f64>;

/// Why a frame could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// Width or height is zero.
    #[error("frame {seq}: zero-size image {width}x{height}")]
    ZeroSize {
        /// Sequence number of the frame.
        seq: u64,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// The pixel buffer does not hold width × height × 3 bytes.
    #[error("frame {seq}: {width}x{height} rgb8 needs {expected} bytes, got {actual}")]
    BufferSize {
        /// Sequence number of the frame.
        seq: u64,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Bytes an rgb8 image of this size has.
        expected: usize,
        /// Bytes supplied.
        actual: usize,
    },
}

/// One RGB frame of the camera stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Sequence number within its source, starting at 0.
    pub seq: u64,
    /// Capture time in seconds since the start of the stream (or the source's epoch).
    pub stamp: f64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Packed rgb8 pixels, row-major, `width * height * 3` bytes (shared, cheap to clone).
    pub rgb: Arc<[u8]>,
    /// Camera pose when the source knows it (simulator, odometry).
    pub pose: Option<Pose>,
}

impl Frame {
    /// Builds a frame, checking that the buffer matches the size.
    pub fn new(
        seq: u64,
        stamp: f64,
        width: u32,
        height: u32,
        rgb: impl Into<Arc<[u8]>>,
        pose: Option<Pose>,
    ) -> Result<Self, FrameError> {
        let rgb = rgb.into();
        if width == 0 || height == 0 {
            return Err(FrameError::ZeroSize { seq, width, height });
        }
        let expected = width as usize * height as usize * 3;
        if rgb.len() != expected {
            return Err(FrameError::BufferSize {
                seq,
                width,
                height,
                expected,
                actual: rgb.len(),
            });
        }
        Ok(Self {
            seq,
            stamp,
            width,
            height,
            rgb,
            pose,
        })
    }

    /// The rgb8 value at pixel (x, y), or `None` outside the image.
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        Some([self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_buffer_size() {
        let err = Frame::new(3, 0.0, 4, 2, vec![0u8; 23], None).unwrap_err();
        assert_eq!(err.to_string(), "frame 3: 4x2 rgb8 needs 24 bytes, got 23");
        assert!(matches!(
            Frame::new(0, 0.0, 0, 2, Vec::new(), None),
            Err(FrameError::ZeroSize { .. })
        ));
        let f = Frame::new(0, 0.5, 2, 1, vec![1, 2, 3, 4, 5, 6], None).unwrap();
        assert_eq!(f.pixel(1, 0), Some([4, 5, 6]));
        assert_eq!(f.pixel(2, 0), None);
    }
}
