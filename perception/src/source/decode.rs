//! Pixel decoding shared by every source: raw ROS-style encodings (rgb8, bgr8, mono8, rgba8,
//! bgra8, yuv422 as UYVY and yuv422_yuy2 as YUYV) with a row stride, and compressed JPEG/PNG.
//! Everything comes out as packed rgb8.

use std::fmt;

/// A raw pixel layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// R, G, B bytes.
    Rgb8,
    /// B, G, R bytes.
    Bgr8,
    /// R, G, B, A bytes.
    Rgba8,
    /// B, G, R, A bytes.
    Bgra8,
    /// One luminance byte.
    Mono8,
    /// 4:2:2 as U Y0 V Y1 (ROS `yuv422`, `uyvy`).
    Uyvy,
    /// 4:2:2 as Y0 U Y1 V (ROS `yuv422_yuy2`, `yuyv`, V4L2 YUYV).
    Yuyv,
}

/// Encodings this module reads, as written in `sensor_msgs/Image.encoding`.
pub const SUPPORTED: &str = "rgb8, bgr8, rgba8, bgra8, mono8, yuv422 (uyvy), yuv422_yuy2 (yuyv)";

impl Encoding {
    /// Parses a ROS image encoding name (case-insensitive).
    pub fn from_ros(name: &str) -> Option<Encoding> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "rgb8" => Encoding::Rgb8,
            "bgr8" => Encoding::Bgr8,
            "rgba8" => Encoding::Rgba8,
            "bgra8" => Encoding::Bgra8,
            "mono8" | "8uc1" => Encoding::Mono8,
            "yuv422" | "uyvy" => Encoding::Uyvy,
            "yuv422_yuy2" | "yuyv" | "yuy2" => Encoding::Yuyv,
            _ => return None,
        })
    }

    /// Bytes per pixel (2 for the 4:2:2 layouts, which pack two pixels in four bytes).
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            Encoding::Rgb8 | Encoding::Bgr8 => 3,
            Encoding::Rgba8 | Encoding::Bgra8 => 4,
            Encoding::Mono8 => 1,
            Encoding::Uyvy | Encoding::Yuyv => 2,
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encoding::Rgb8 => "rgb8",
            Encoding::Bgr8 => "bgr8",
            Encoding::Rgba8 => "rgba8",
            Encoding::Bgra8 => "bgra8",
            Encoding::Mono8 => "mono8",
            Encoding::Uyvy => "yuv422",
            Encoding::Yuyv => "yuv422_yuy2",
        })
    }
}

/// Why an image could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Width or height is zero.
    #[error("zero-size image {width}x{height}")]
    ZeroSize {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// The encoding is not one we read.
    #[error("unsupported encoding {0:?} (supported: {SUPPORTED}, or compressed jpeg/png)")]
    Unsupported(String),
    /// The row stride is shorter than a row.
    #[error("{encoding} {width}x{height}: row step {step} is shorter than a row ({row} bytes)")]
    Step {
        /// Encoding.
        encoding: Encoding,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Declared stride.
        step: usize,
        /// Bytes a row needs.
        row: usize,
    },
    /// The buffer is shorter than the image needs.
    #[error("{encoding} {width}x{height} with step {step} needs {expected} bytes, got {actual}")]
    Size {
        /// Encoding.
        encoding: Encoding,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Row stride.
        step: usize,
        /// Bytes needed.
        expected: usize,
        /// Bytes supplied.
        actual: usize,
    },
    /// 4:2:2 images need an even width.
    #[error("{encoding} needs an even width, got {width}")]
    OddWidth {
        /// Encoding.
        encoding: Encoding,
        /// Width.
        width: u32,
    },
    /// The compressed data is not a readable JPEG or PNG.
    #[error("compressed image ({format}) is not decodable: {reason}")]
    Compressed {
        /// Declared or sniffed format.
        format: String,
        /// The decoder's message.
        reason: String,
    },
}

/// BT.601 limited-range YUV → RGB in 20-bit fixed point (the constants OpenCV uses for its
/// 4:2:2 conversions).
#[inline]
fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    const CY: i32 = 1_220_542;
    const CUB: i32 = 2_116_026;
    const CUG: i32 = -409_993;
    const CVG: i32 = -852_492;
    const CVR: i32 = 1_673_527;
    const HALF: i32 = 1 << 19;
    let y = (i32::from(y) - 16).max(0) * CY;
    let (u, v) = (i32::from(u) - 128, i32::from(v) - 128);
    let clamp = |x: i32| ((x + HALF) >> 20).clamp(0, 255) as u8;
    [
        clamp(y + CVR * v),
        clamp(y + CVG * v + CUG * u),
        clamp(y + CUB * u),
    ]
}

/// Converts a raw image with a row stride to packed rgb8.
pub fn raw_to_rgb(
    encoding: Encoding,
    width: u32,
    height: u32,
    step: usize,
    data: &[u8],
) -> Result<Vec<u8>, DecodeError> {
    if width == 0 || height == 0 {
        return Err(DecodeError::ZeroSize { width, height });
    }
    let (w, h) = (width as usize, height as usize);
    if matches!(encoding, Encoding::Uyvy | Encoding::Yuyv) && w % 2 != 0 {
        return Err(DecodeError::OddWidth { encoding, width });
    }
    let row = w * encoding.bytes_per_pixel();
    if step < row {
        return Err(DecodeError::Step {
            encoding,
            width,
            height,
            step,
            row,
        });
    }
    let expected = step * (h - 1) + row;
    if data.len() < expected {
        return Err(DecodeError::Size {
            encoding,
            width,
            height,
            step,
            expected: step * h,
            actual: data.len(),
        });
    }
    let mut out = vec![0u8; w * h * 3];
    for (y, dst) in out.chunks_exact_mut(w * 3).enumerate() {
        let src = &data[y * step..y * step + row];
        match encoding {
            Encoding::Rgb8 => dst.copy_from_slice(src),
            Encoding::Bgr8 => {
                for (d, s) in dst.chunks_exact_mut(3).zip(src.chunks_exact(3)) {
                    d.copy_from_slice(&[s[2], s[1], s[0]]);
                }
            }
            Encoding::Rgba8 => {
                for (d, s) in dst.chunks_exact_mut(3).zip(src.chunks_exact(4)) {
                    d.copy_from_slice(&s[..3]);
                }
            }
            Encoding::Bgra8 => {
                for (d, s) in dst.chunks_exact_mut(3).zip(src.chunks_exact(4)) {
                    d.copy_from_slice(&[s[2], s[1], s[0]]);
                }
            }
            Encoding::Mono8 => {
                for (d, &s) in dst.chunks_exact_mut(3).zip(src) {
                    d.copy_from_slice(&[s, s, s]);
                }
            }
            Encoding::Uyvy | Encoding::Yuyv => {
                for (d, s) in dst.chunks_exact_mut(6).zip(src.chunks_exact(4)) {
                    let (u, y0, v, y1) = if encoding == Encoding::Uyvy {
                        (s[0], s[1], s[2], s[3])
                    } else {
                        (s[1], s[0], s[3], s[2])
                    };
                    d[..3].copy_from_slice(&yuv_to_rgb(y0, u, v));
                    d[3..].copy_from_slice(&yuv_to_rgb(y1, u, v));
                }
            }
        }
    }
    Ok(out)
}

/// A decoded image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Packed rgb8 pixels.
    pub data: Vec<u8>,
}

/// Decodes a JPEG or PNG (sniffed from the bytes; `format` only labels errors) to rgb8.
pub fn decode_compressed(format: &str, data: &[u8]) -> Result<Rgb, DecodeError> {
    let fail = |reason: String| DecodeError::Compressed {
        format: format.to_string(),
        reason,
    };
    if data.is_empty() {
        return Err(fail("no data".into()));
    }
    let kind = image::guess_format(data).map_err(|e| fail(e.to_string()))?;
    if !matches!(kind, image::ImageFormat::Jpeg | image::ImageFormat::Png) {
        return Err(fail(format!("{kind:?} is neither JPEG nor PNG")));
    }
    let img = image::load_from_memory_with_format(data, kind).map_err(|e| fail(e.to_string()))?;
    let rgb = img.into_rgb8();
    let (width, height) = rgb.dimensions();
    if width == 0 || height == 0 {
        return Err(DecodeError::ZeroSize { width, height });
    }
    Ok(Rgb {
        width,
        height,
        data: rgb.into_raw(),
    })
}

/// Encodes rgb8 pixels as JPEG at `quality` (1..=100).
pub fn encode_jpeg(
    width: u32,
    height: u32,
    rgb: &[u8],
    quality: u8,
) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let mut enc =
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100));
    enc.encode(rgb, width, height, image::ExtendedColorType::Rgb8)
        .map_err(|e| DecodeError::Compressed {
            format: "jpeg".into(),
            reason: e.to_string(),
        })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_orders_and_strides() {
        // 2x1 with a 2-byte row pad.
        let bgr = [1, 2, 3, 4, 5, 6, 0, 0];
        assert_eq!(
            raw_to_rgb(Encoding::Bgr8, 2, 1, 8, &bgr),
            Ok(vec![3, 2, 1, 6, 5, 4])
        );
        assert_eq!(
            raw_to_rgb(Encoding::Mono8, 2, 1, 2, &[7, 9]),
            Ok(vec![7, 7, 7, 9, 9, 9])
        );
        assert_eq!(
            raw_to_rgb(Encoding::Bgra8, 1, 1, 4, &[1, 2, 3, 255]),
            Ok(vec![3, 2, 1])
        );
    }

    #[test]
    fn yuv_grey_and_primaries() {
        // Y=126, U=V=128 is mid grey in limited range: 1.164 * 110 = 128.
        let uyvy = [128, 126, 128, 126];
        assert_eq!(raw_to_rgb(Encoding::Uyvy, 2, 1, 4, &uyvy), Ok(vec![128; 6]));
        let yuyv = [126, 128, 235, 128];
        assert_eq!(
            raw_to_rgb(Encoding::Yuyv, 2, 1, 4, &yuyv),
            Ok(vec![128, 128, 128, 255, 255, 255])
        );
        // Red in BT.601 limited range: Y=81, U=90, V=240.
        let red = raw_to_rgb(Encoding::Uyvy, 2, 1, 4, &[90, 81, 240, 81]).expect("decodes");
        assert!(red[0] >= 250 && red[1] <= 3 && red[2] <= 3, "{red:?}");
    }

    #[test]
    fn bad_sizes_name_what_was_expected() {
        let e = raw_to_rgb(Encoding::Rgb8, 4, 2, 12, &[0; 20]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rgb8 4x2 with step 12 needs 24 bytes, got 20"
        );
        assert!(matches!(
            raw_to_rgb(Encoding::Rgb8, 4, 2, 6, &[0; 24]),
            Err(DecodeError::Step { .. })
        ));
        assert!(matches!(
            raw_to_rgb(Encoding::Rgb8, 0, 2, 0, &[]),
            Err(DecodeError::ZeroSize { .. })
        ));
        assert!(matches!(
            raw_to_rgb(Encoding::Uyvy, 3, 1, 6, &[0; 6]),
            Err(DecodeError::OddWidth { .. })
        ));
        assert_eq!(Encoding::from_ros("YUV422"), Some(Encoding::Uyvy));
        assert_eq!(Encoding::from_ros("16UC1"), None);
    }

    #[test]
    fn jpeg_round_trip_and_corrupt_data() {
        let rgb: Vec<u8> = (0..16 * 8 * 3).map(|i| (i % 251) as u8).collect();
        let jpg = encode_jpeg(16, 8, &rgb, 95).expect("encodes");
        let back = decode_compressed("jpeg", &jpg).expect("decodes");
        assert_eq!(
            (back.width, back.height, back.data.len()),
            (16, 8, 16 * 8 * 3)
        );
        let mut broken = jpg.clone();
        broken.truncate(40);
        assert!(matches!(
            decode_compressed("jpeg", &broken),
            Err(DecodeError::Compressed { .. })
        ));
        let e = decode_compressed("jpeg", b"not an image at all").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("compressed image (jpeg) is not decodable"),
            "{e}"
        );
        assert!(decode_compressed("png", &[]).is_err());
    }
}
