//! 8-bit grayscale images and the three image operations ORB needs: colour conversion, bilinear
//! down-scaling for the pyramid and a 7×7 Gaussian blur for the descriptors. All integer
//! arithmetic on rows, written so the compiler vectorises the inner loops.

/// A row-major 8-bit grayscale image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gray {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height` luminance values.
    pub data: Vec<u8>,
}

impl Gray {
    /// Converts packed rgb8 pixels with the ITU-R BT.601 luma weights, rounded the way OpenCV's
    /// `cvtColor(…, COLOR_RGB2GRAY)` rounds (14-bit fixed point).
    ///
    /// `rgb` should hold `width * height * 3` bytes (a validated [`crate::Frame`] does); missing
    /// pixels come out black rather than failing.
    pub fn from_rgb(width: usize, height: usize, rgb: &[u8]) -> Gray {
        let n = width * height;
        let mut data = vec![0u8; n];
        for (dst, px) in data.iter_mut().zip(rgb.chunks_exact(3)) {
            let y = u32::from(px[0]) * 4899 + u32::from(px[1]) * 9617 + u32::from(px[2]) * 1868;
            *dst = ((y + (1 << 13)) >> 14) as u8;
        }
        Gray {
            width,
            height,
            data,
        }
    }

    /// One row.
    #[inline]
    pub fn row(&self, y: usize) -> &[u8] {
        &self.data[y * self.width..(y + 1) * self.width]
    }

    /// Resizes to `width × height` by bilinear interpolation with pixel centres aligned
    /// (OpenCV's `INTER_LINEAR` convention), 7-bit fixed-point weights.
    pub fn resize(&self, width: usize, height: usize) -> Gray {
        let mut out = Gray {
            width,
            height,
            data: vec![0u8; width * height],
        };
        if width == 0 || height == 0 || self.width == 0 || self.height == 0 {
            return out;
        }
        let sx = self.width as f32 / width as f32;
        let sy = self.height as f32 / height as f32;
        let taps = |dst: usize, scale: f32, src_len: usize| -> (usize, u16) {
            let f = ((dst as f32 + 0.5) * scale - 0.5).max(0.0);
            let i = (f as usize).min(src_len - 1);
            let frac = if i + 1 >= src_len { 0.0 } else { f - i as f32 };
            (i, (frac * 128.0 + 0.5) as u16)
        };
        let xs: Vec<(usize, u16)> = (0..width).map(|x| taps(x, sx, self.width)).collect();
        // Vertical blend of the two source rows first (contiguous, vectorised), then one
        // horizontal gather per output pixel.
        let mut blend = vec![0u16; self.width + 1];
        for y in 0..height {
            let (y0, fy) = taps(y, sy, self.height);
            let y1 = (y0 + 1).min(self.height - 1);
            let (a, b) = (self.row(y0), self.row(y1));
            for ((d, &p), &q) in blend.iter_mut().zip(a).zip(b) {
                *d = u16::from(p) * (128 - fy) + u16::from(q) * fy;
            }
            blend[self.width] = blend[self.width - 1];
            let dst = &mut out.data[y * width..(y + 1) * width];
            for (d, &(i, f)) in dst.iter_mut().zip(&xs) {
                let v = u32::from(blend[i]) * u32::from(128 - f)
                    + u32::from(blend[i + 1]) * u32::from(f);
                *d = ((v + (1 << 13)) >> 14) as u8;
            }
        }
        out
    }

    /// Gaussian blur with a 7×7 kernel, σ = 2 (what ORB smooths with before sampling its
    /// descriptor pairs). Separable, 8-bit weights, each pass rounded back to 8 bits. The 3-pixel
    /// frame where the kernel would leave the image keeps its original values: ORB never samples
    /// there (its keypoints stay 31 px from the border and its patches reach 19 px).
    pub fn blur7(&self) -> Gray {
        // exp(-x²/8) for x = -3..=3, scaled to sum to 256.
        const K: [u16; 7] = [18, 33, 49, 56, 49, 33, 18];
        let (w, h) = (self.width, self.height);
        let mut out = self.clone();
        if w < 7 || h < 7 {
            return out;
        }
        // Vertical pass into `tmp` for rows 3..h-3 (all columns).
        let mut tmp = self.data.clone();
        let mut acc = vec![0u16; w];
        for y in 3..h - 3 {
            acc.iter_mut().for_each(|a| *a = 0);
            for (k, &kv) in K.iter().enumerate() {
                let src = &self.data[(y + k - 3) * w..(y + k - 2) * w];
                for (a, &p) in acc.iter_mut().zip(src) {
                    *a += kv * u16::from(p);
                }
            }
            for (d, &a) in tmp[y * w..(y + 1) * w].iter_mut().zip(&acc) {
                *d = ((u32::from(a) + 128) >> 8) as u8;
            }
        }
        // Horizontal pass, columns 3..w-3.
        let n = w - 6;
        let mut acc = vec![0u16; n];
        for y in 3..h - 3 {
            let row = &tmp[y * w..(y + 1) * w];
            acc.iter_mut().for_each(|a| *a = 0);
            for (k, &kv) in K.iter().enumerate() {
                for (a, &p) in acc.iter_mut().zip(&row[k..k + n]) {
                    *a += kv * u16::from(p);
                }
            }
            for (d, &a) in out.data[y * w + 3..y * w + 3 + n].iter_mut().zip(&acc) {
                *d = ((u32::from(a) + 128) >> 8) as u8;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gray_matches_bt601_rounding() {
        let g = Gray::from_rgb(3, 1, &[255, 0, 0, 0, 255, 0, 10, 20, 30]);
        // OpenCV: R→76, G→150, 10/20/30 → 18.
        assert_eq!(g.data, vec![76, 150, 18]);
    }

    #[test]
    fn short_buffers_do_not_panic() {
        let g = Gray::from_rgb(2, 2, &[255, 255, 255]);
        assert_eq!(g.data, vec![255, 0, 0, 0]);
    }

    #[test]
    fn resize_keeps_constant_images_constant_and_halves_sizes() {
        let g = Gray {
            width: 40,
            height: 30,
            data: vec![77; 1200],
        };
        let r = g.resize(33, 25);
        assert_eq!((r.width, r.height), (33, 25));
        assert!(r.data.iter().all(|&v| v == 77));
        let b = g.blur7();
        assert!(b.data.iter().all(|&v| v == 77));
    }

    #[test]
    fn resize_interpolates_a_ramp() {
        let data: Vec<u8> = (0..100)
            .flat_map(|_| (0..100).map(|x| (x * 2) as u8))
            .collect();
        let g = Gray {
            width: 100,
            height: 100,
            data,
        };
        let r = g.resize(50, 50);
        // destination x maps to source 2x + 0.5: value 4x + 1.
        for x in 1..49 {
            let v = i32::from(r.data[10 * 50 + x]);
            assert!((v - (4 * x as i32 + 1)).abs() <= 1, "x {x}: {v}");
        }
    }

    #[test]
    fn blur_spreads_an_impulse_symmetrically() {
        let mut g = Gray {
            width: 15,
            height: 15,
            data: vec![0; 225],
        };
        g.data[7 * 15 + 7] = 255;
        let b = g.blur7();
        let at = |x: usize, y: usize| b.data[y * 15 + x];
        assert!(at(7, 7) > at(8, 7) && at(8, 7) > at(9, 7) && at(9, 7) >= at(10, 7));
        assert_eq!(at(6, 7), at(8, 7));
        assert_eq!(at(7, 6), at(7, 8));
        assert_eq!(at(11, 7), 0);
        // The kernel sums to one: the impulse's mass is kept (up to rounding).
        let mass: u32 = b.data.iter().map(|&v| u32::from(v)).sum();
        assert!((240..=270).contains(&mass), "{mass}");
    }
}
