//! What a live camera needs beneath the driver: choosing a capture mode from what the device
//! offers, and turning a captured buffer (MJPEG, YUYV, grey, raw RGB/BGR) into rgb8. Plain Rust,
//! tested without a camera; the driver layer (`camera`, feature `camera`) only moves bytes.

use super::decode::{DecodeError, Encoding, decode_compressed, raw_to_rgb};

/// Pixel formats cameras deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Motion JPEG: one JPEG per frame.
    Mjpeg,
    /// YUV 4:2:2, Y0 U Y1 V.
    Yuyv,
    /// 8-bit grey.
    Gray,
    /// Packed RGB.
    Rgb,
    /// Packed BGR.
    Bgr,
    /// YUV 4:2:0 with interleaved chroma (not decoded here).
    Nv12,
}

/// One capture mode a device offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Pixel format.
    pub format: PixelFormat,
    /// Frames per second.
    pub fps: u32,
}

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeRequest {
    /// Wanted width.
    pub width: u32,
    /// Wanted height.
    pub height: u32,
    /// Wanted frames per second.
    pub fps: u32,
}

impl Default for ModeRequest {
    fn default() -> Self {
        ModeRequest {
            width: 640,
            height: 480,
            fps: 30,
        }
    }
}

/// Picks the offered mode closest to the request: first the size (area ratio on a log scale,
/// so 2× too large and 2× too small are equally far; larger wins a tie), then the frame rate, then the cheaper
/// format to move over USB at that size (MJPEG, then YUYV, then the rest). NV12 is never chosen.
pub fn choose_mode(offered: &[Mode], want: ModeRequest) -> Option<Mode> {
    let area = |w: u32, h: u32| f64::from(w) * f64::from(h);
    let target = area(want.width, want.height).max(1.0);
    let format_rank = |f: PixelFormat| match f {
        PixelFormat::Mjpeg => 0,
        PixelFormat::Yuyv => 1,
        PixelFormat::Rgb | PixelFormat::Bgr => 2,
        PixelFormat::Gray => 3,
        PixelFormat::Nv12 => 4,
    };
    offered
        .iter()
        .filter(|m| m.format != PixelFormat::Nv12 && m.width > 0 && m.height > 0)
        .min_by(|a, b| {
            let key = |m: &Mode| {
                let size = (area(m.width, m.height) / target).ln().abs();
                let smaller = u8::from(area(m.width, m.height) < target);
                let fps = (i64::from(m.fps) - i64::from(want.fps)).abs();
                (size, smaller, fps, format_rank(m.format))
            };
            let (ka, kb) = (key(a), key(b));
            ka.0.total_cmp(&kb.0)
                .then(ka.1.cmp(&kb.1))
                .then(ka.2.cmp(&kb.2))
                .then(ka.3.cmp(&kb.3))
        })
        .copied()
}

/// Decodes one captured buffer to rgb8.
pub fn decode_capture(
    format: PixelFormat,
    width: u32,
    height: u32,
    data: &[u8],
) -> Result<Vec<u8>, DecodeError> {
    let raw = |enc: Encoding| {
        raw_to_rgb(
            enc,
            width,
            height,
            width as usize * enc.bytes_per_pixel(),
            data,
        )
    };
    match format {
        PixelFormat::Mjpeg => {
            let img = decode_compressed("mjpeg", data)?;
            if (img.width, img.height) != (width, height) {
                return Err(DecodeError::Compressed {
                    format: "mjpeg".into(),
                    reason: format!(
                        "frame is {}x{}, the negotiated mode is {width}x{height}",
                        img.width, img.height
                    ),
                });
            }
            Ok(img.data)
        }
        PixelFormat::Yuyv => raw(Encoding::Yuyv),
        PixelFormat::Gray => raw(Encoding::Mono8),
        PixelFormat::Rgb => raw(Encoding::Rgb8),
        PixelFormat::Bgr => raw(Encoding::Bgr8),
        PixelFormat::Nv12 => Err(DecodeError::Unsupported("nv12".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(width: u32, height: u32, format: PixelFormat, fps: u32) -> Mode {
        Mode {
            width,
            height,
            format,
            fps,
        }
    }

    #[test]
    fn picks_size_then_rate_then_format() {
        let offered = [
            m(1920, 1080, PixelFormat::Mjpeg, 30),
            m(640, 480, PixelFormat::Yuyv, 30),
            m(640, 480, PixelFormat::Mjpeg, 30),
            m(640, 480, PixelFormat::Mjpeg, 15),
            m(320, 240, PixelFormat::Yuyv, 60),
            m(640, 480, PixelFormat::Nv12, 30),
        ];
        let want = ModeRequest::default();
        assert_eq!(
            choose_mode(&offered, want),
            Some(m(640, 480, PixelFormat::Mjpeg, 30))
        );
        let want = ModeRequest { fps: 15, ..want };
        assert_eq!(
            choose_mode(&offered, want),
            Some(m(640, 480, PixelFormat::Mjpeg, 15))
        );
        // No exact size: the nearest area wins.
        let want = ModeRequest {
            width: 1280,
            height: 720,
            fps: 30,
        };
        assert_eq!(
            choose_mode(&offered, want),
            Some(m(1920, 1080, PixelFormat::Mjpeg, 30))
        );
        assert_eq!(
            choose_mode(&[m(640, 480, PixelFormat::Nv12, 30)], want),
            None
        );
        assert_eq!(choose_mode(&[], want), None);
    }

    #[test]
    fn decodes_yuyv_and_mjpeg_and_rejects_short_or_mismatched_buffers() {
        let yuyv = [126u8, 128, 126, 128];
        assert_eq!(
            decode_capture(PixelFormat::Yuyv, 2, 1, &yuyv),
            Ok(vec![128; 6])
        );
        assert!(matches!(
            decode_capture(PixelFormat::Yuyv, 4, 2, &yuyv),
            Err(DecodeError::Size { .. })
        ));
        let rgb: Vec<u8> = (0..8 * 8 * 3).map(|i| (i * 7 % 256) as u8).collect();
        let jpg = super::super::decode::encode_jpeg(8, 8, &rgb, 90).expect("encodes");
        assert_eq!(
            decode_capture(PixelFormat::Mjpeg, 8, 8, &jpg).map(|v| v.len()),
            Ok(192)
        );
        assert!(decode_capture(PixelFormat::Mjpeg, 16, 8, &jpg).is_err());
        assert!(decode_capture(PixelFormat::Mjpeg, 8, 8, &jpg[..10]).is_err());
        assert!(decode_capture(PixelFormat::Nv12, 8, 8, &[0; 96]).is_err());
    }
}
