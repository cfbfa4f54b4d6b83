//! Image resampling that reproduces Pillow's `Image.resize` on 8-bit RGB bit for bit.
//!
//! Vision-language processors resize with PIL (LANCZOS for SmolVLM/Idefics3, BICUBIC for
//! Qwen2.5-VL), so the pixels a model was trained on are Pillow's. Pillow resamples in two
//! separable passes (which one first depends on the shape; see [`Rgb8::resize`]; Pillow before
//! 13 always ran the horizontal one first, which moves some pixels by one level), each with
//! filter weights normalised and
//! turned into 22-bit fixed point, accumulated in integers from a rounding half, and clipped back
//! to 8 bits between the passes. Reproducing those integer steps (not a float resize that is
//! "close") is what makes our preprocessed tensors equal transformers' to 1e-5.

use std::f64::consts::PI;

use crate::error::{Error, Result};

/// Fixed-point fraction bits of Pillow's 8-bit resampler (`32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;

/// A resampling filter, numbered as Pillow's `Image.Resampling` (what `resample` in a
/// processor config holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// `Resampling.LANCZOS` (1): windowed sinc, support 3.
    Lanczos,
    /// `Resampling.BILINEAR` (2): triangle, support 1.
    Bilinear,
    /// `Resampling.BICUBIC` (3): Keys cubic with a = -0.5, support 2.
    Bicubic,
    /// `Resampling.BOX` (4): support 0.5.
    Box,
    /// `Resampling.HAMMING` (5): Hamming-windowed sinc, support 1.
    Hamming,
}

impl Filter {
    /// The filter of Pillow's resampling code `code`.
    pub fn from_pil(code: i64) -> Result<Self> {
        Ok(match code {
            1 => Filter::Lanczos,
            2 => Filter::Bilinear,
            3 => Filter::Bicubic,
            4 => Filter::Box,
            5 => Filter::Hamming,
            other => {
                return Err(Error::Config(format!(
                    "`resample` is {other}; supported PIL filters: 1 (LANCZOS), 2 (BILINEAR), \
                     3 (BICUBIC), 4 (BOX), 5 (HAMMING)"
                )));
            }
        })
    }

    fn support(self) -> f64 {
        match self {
            Filter::Box => 0.5,
            Filter::Bilinear | Filter::Hamming => 1.0,
            Filter::Bicubic => 2.0,
            Filter::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        fn sinc(x: f64) -> f64 {
            if x == 0.0 {
                1.0
            } else {
                let x = x * PI;
                x.sin() / x
            }
        }
        match self {
            Filter::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Filter::Bilinear => {
                let x = x.abs();
                if x < 1.0 { 1.0 - x } else { 0.0 }
            }
            Filter::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let x = x * PI;
                    x.sin() / x * (0.54 + 0.46 * x.cos())
                }
            }
            Filter::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Filter::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

/// For each output position: the first input index, the number of inputs, and their
/// fixed-point weights (`ksize` per position, zero-padded).
struct Coeffs {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for resizing `in_size` → `out_size`.
fn coeffs(in_size: usize, out_size: usize, filter: Filter) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C's `(int)` truncates toward zero before the clamp.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin).min(ksize);
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(n) {
            let w = filter.weight((x as f64 + xmin as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        for (x, kx) in k.iter().enumerate().take(n) {
            let w = if ww != 0.0 { kx / ww } else { *kx };
            let f = w * f64::from(1u32 << PRECISION_BITS);
            weights[xx * ksize + x] = if w < 0.0 {
                (-0.5 + f) as i32
            } else {
                (0.5 + f) as i32
            };
        }
        bounds.push((xmin, n));
    }
    Coeffs {
        ksize,
        bounds,
        weights,
    }
}

/// Pillow's `clip8`: the accumulator's integer part, clamped to a byte.
fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// An 8-bit RGB image, row-major, 3 bytes per pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb8 {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height × width × 3` bytes.
    pub data: Vec<u8>,
}

impl Rgb8 {
    /// Wraps `data` (`height × width × 3` bytes), checking its length.
    pub fn new(width: usize, height: usize, data: Vec<u8>) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(Error::Image {
                what: format!("{width}×{height}"),
                message: "an image needs at least one pixel".into(),
            });
        }
        if data.len() != width * height * 3 {
            return Err(Error::Image {
                what: format!("{width}×{height}"),
                message: format!(
                    "{} bytes of RGB data; expected {}",
                    data.len(),
                    width * height * 3
                ),
            });
        }
        Ok(Rgb8 {
            width,
            height,
            data,
        })
    }

    /// The `w × h` region at `(x, y)`, which must lie inside the image.
    pub fn crop(&self, x: usize, y: usize, w: usize, h: usize) -> Rgb8 {
        let mut data = Vec::with_capacity(w * h * 3);
        for row in y..y + h {
            let start = (row * self.width + x) * 3;
            data.extend_from_slice(&self.data[start..start + w * 3]);
        }
        Rgb8 {
            width: w,
            height: h,
            data,
        }
    }

    /// Resizes to `width × height` exactly as Pillow's `Image.resize(…, resample=filter)`
    /// (Pillow 13: the vertical pass runs first when the height shrinks by more than twice
    /// as many pixels as the width; otherwise the horizontal pass does).
    pub fn resize(&self, width: usize, height: usize, filter: Filter) -> Rgb8 {
        if width == self.width && height == self.height {
            return self.clone();
        }
        let dh = self.height as i64 - height as i64;
        let dw = self.width as i64 - width as i64;
        let vertical_first = dh > 0 && dh > dw * 2;
        let rows = |img: Rgb8| {
            if width != img.width {
                img.resample_rows(width, filter)
            } else {
                img
            }
        };
        let columns = |img: Rgb8| {
            if height != img.height {
                img.resample_columns(height, filter)
            } else {
                img
            }
        };
        if vertical_first {
            rows(columns(self.clone()))
        } else {
            columns(rows(self.clone()))
        }
    }

    fn resample_rows(&self, width: usize, filter: Filter) -> Rgb8 {
        let c = coeffs(self.width, width, filter);
        let mut out = vec![0u8; width * self.height * 3];
        let half = 1i64 << (PRECISION_BITS - 1);
        for y in 0..self.height {
            let row = &self.data[y * self.width * 3..(y + 1) * self.width * 3];
            for (xx, &(xmin, n)) in c.bounds.iter().enumerate() {
                let k = &c.weights[xx * c.ksize..xx * c.ksize + n];
                let mut acc = [half; 3];
                for (i, &w) in k.iter().enumerate() {
                    let p = &row[(xmin + i) * 3..(xmin + i) * 3 + 3];
                    for ch in 0..3 {
                        acc[ch] += i64::from(p[ch]) * i64::from(w);
                    }
                }
                let o = (y * width + xx) * 3;
                for ch in 0..3 {
                    out[o + ch] = clip8(acc[ch]);
                }
            }
        }
        Rgb8 {
            width,
            height: self.height,
            data: out,
        }
    }

    fn resample_columns(&self, height: usize, filter: Filter) -> Rgb8 {
        let c = coeffs(self.height, height, filter);
        let w3 = self.width * 3;
        let mut out = vec![0u8; w3 * height];
        let half = 1i64 << (PRECISION_BITS - 1);
        let mut acc = vec![0i64; w3];
        for (yy, &(ymin, n)) in c.bounds.iter().enumerate() {
            let k = &c.weights[yy * c.ksize..yy * c.ksize + n];
            acc.fill(half);
            for (i, &w) in k.iter().enumerate() {
                let row = &self.data[(ymin + i) * w3..(ymin + i + 1) * w3];
                for (a, &p) in acc.iter_mut().zip(row) {
                    *a += i64::from(p) * i64::from(w);
                }
            }
            for (o, &a) in out[yy * w3..(yy + 1) * w3].iter_mut().zip(&acc) {
                *o = clip8(a);
            }
        }
        Rgb8 {
            width: self.width,
            height,
            data: out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: usize, h: usize) -> Rgb8 {
        let data = (0..w * h * 3).map(|i| (i * 37 % 251) as u8).collect();
        Rgb8::new(w, h, data).unwrap()
    }

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for f in [
            Filter::Lanczos,
            Filter::Bicubic,
            Filter::Bilinear,
            Filter::Box,
            Filter::Hamming,
        ] {
            for (a, b) in [(45, 64), (64, 32), (70, 23), (7, 1), (1, 5)] {
                let c = coeffs(a, b, f);
                for (i, &(_, n)) in c.bounds.iter().enumerate() {
                    let s: i64 = c.weights[i * c.ksize..i * c.ksize + n]
                        .iter()
                        .map(|&w| i64::from(w))
                        .sum();
                    // Rounding each weight moves the sum by at most half a unit per tap.
                    assert!(
                        (s - (1 << PRECISION_BITS)).abs() <= n as i64,
                        "{f:?} {a}->{b}"
                    );
                }
            }
        }
    }

    #[test]
    fn flat_images_stay_flat_and_same_size_is_a_copy() {
        let img = Rgb8::new(9, 5, vec![77; 9 * 5 * 3]).unwrap();
        for f in [Filter::Lanczos, Filter::Bicubic] {
            let r = img.resize(20, 3, f);
            assert!(r.data.iter().all(|&v| v == 77), "{f:?}");
        }
        let r = ramp(6, 4);
        assert_eq!(r.resize(6, 4, Filter::Lanczos), r);
        let c = r.crop(1, 2, 3, 2);
        assert_eq!((c.width, c.height), (3, 2));
        assert_eq!(&c.data[..3], &r.data[(2 * 6 + 1) * 3..(2 * 6 + 1) * 3 + 3]);
    }

    #[test]
    fn bad_sizes_are_named_errors() {
        assert!(Rgb8::new(0, 3, vec![]).is_err());
        let e = Rgb8::new(2, 2, vec![0; 11]).unwrap_err().to_string();
        assert!(e.contains("11 bytes") && e.contains("expected 12"), "{e}");
        assert!(
            Filter::from_pil(0)
                .unwrap_err()
                .to_string()
                .contains("LANCZOS")
        );
    }
}
