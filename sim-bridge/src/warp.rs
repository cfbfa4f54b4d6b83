//! A synthetic camera move over a flat textured picture: the camera pans, then zooms, then
//! rotates (and finally does all three at once) over a procedurally drawn poster. Every frame is
//! an exact homography of the poster, which makes it the cleanest test of key-frame selection
//! (ORB + RANSAC + footprint overlap): the overlap with any earlier frame is known in closed form.
//!
//! Deterministic from its seed on every machine (integer hashing, `libm` trigonometry).

use crate::math::{cos, fbm, hash32, sin};
use rayon::prelude::*;

/// Settings of a warp video.
#[derive(Debug, Clone, PartialEq)]
pub struct WarpConfig {
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Frames per phase (pan, zoom, rotate, combined): the video has 4× this many frames.
    pub frames_per_phase: u32,
    /// Seed of the poster.
    pub seed: u32,
}

impl Default for WarpConfig {
    fn default() -> Self {
        WarpConfig {
            width: 640,
            height: 480,
            frames_per_phase: 30,
            seed: 1,
        }
    }
}

/// The camera over the poster: centre in poster pixels, zoom (poster pixels per frame pixel is
/// 1/zoom) and roll in radians.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarpView {
    /// Centre x in poster pixels.
    pub cx: f32,
    /// Centre y in poster pixels.
    pub cy: f32,
    /// Magnification.
    pub zoom: f32,
    /// Roll.
    pub angle: f32,
}

/// The poster is this many times the frame size in each direction.
const POSTER_SCALE: u32 = 3;

/// A warp video, with its poster drawn once.
pub struct WarpVideo {
    config: WarpConfig,
    poster: Vec<u8>,
    pw: usize,
    ph: usize,
}

impl WarpVideo {
    /// Draws the poster.
    pub fn new(config: WarpConfig) -> WarpVideo {
        let pw = (config.width * POSTER_SCALE) as usize;
        let ph = (config.height * POSTER_SCALE) as usize;
        let poster = poster(pw, ph, config.seed);
        WarpVideo {
            config,
            poster,
            pw,
            ph,
        }
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        4 * self.config.frames_per_phase as usize
    }

    /// True when the video has no frames.
    pub fn is_empty(&self) -> bool {
        self.config.frames_per_phase == 0
    }

    /// The camera of frame `i`.
    pub fn view(&self, i: usize) -> WarpView {
        let n = self.config.frames_per_phase.max(1) as f32;
        let w = self.config.width as f32;
        let (x0, y0) = (self.pw as f32 * 0.3, self.ph as f32 * 0.5);
        let phase = i / self.config.frames_per_phase.max(1) as usize;
        let t = (i % self.config.frames_per_phase.max(1) as usize) as f32 / n;
        // Phase ends: pan by 1.2 frame widths, zoom to 2.5×, roll by 120°, then a combined move.
        let pan = 1.2 * w;
        let (zoom_end, roll_end) = (2.5f32, 120f32.to_radians());
        let mut v = WarpView {
            cx: x0,
            cy: y0,
            zoom: 1.0,
            angle: 0.0,
        };
        match phase {
            0 => v.cx = x0 + pan * t,
            1 => {
                v.cx = x0 + pan;
                v.zoom = zoom_end.powf(t);
            }
            2 => {
                v.cx = x0 + pan;
                v.zoom = zoom_end;
                v.angle = roll_end * t;
            }
            _ => {
                v.cx = x0 + pan - 0.8 * w * t;
                v.cy = y0 - 0.25 * self.config.height as f32 * t;
                v.zoom = zoom_end.powf(1.0 - t);
                v.angle = roll_end * (1.0 - 0.5 * t);
            }
        }
        v
    }

    /// Renders frame `i` as packed rgb8 (bilinear sampling of the poster).
    pub fn frame(&self, i: usize) -> Vec<u8> {
        let (w, h) = (self.config.width as usize, self.config.height as usize);
        let v = self.view(i);
        let (s, c) = (sin(v.angle), cos(v.angle));
        let inv = 1.0 / v.zoom;
        let mut out = vec![0u8; w * h * 3];
        out.par_chunks_mut(w * 3).enumerate().for_each(|(y, row)| {
            let dy = y as f32 + 0.5 - h as f32 / 2.0;
            for x in 0..w {
                let dx = x as f32 + 0.5 - w as f32 / 2.0;
                let px = v.cx + inv * (c * dx - s * dy) - 0.5;
                let py = v.cy + inv * (s * dx + c * dy) - 0.5;
                row[x * 3..x * 3 + 3].copy_from_slice(&self.sample(px, py));
            }
        });
        out
    }

    fn sample(&self, x: f32, y: f32) -> [u8; 3] {
        let xf = x.floor();
        let yf = y.floor();
        let (fx, fy) = (x - xf, y - yf);
        let clampi = |v: f32, n: usize| (v.max(0.0) as usize).min(n - 1);
        let (x0, y0) = (clampi(xf, self.pw), clampi(yf, self.ph));
        let (x1, y1) = (clampi(xf + 1.0, self.pw), clampi(yf + 1.0, self.ph));
        let at =
            |xx: usize, yy: usize, k: usize| f32::from(self.poster[(yy * self.pw + xx) * 3 + k]);
        let mut out = [0u8; 3];
        for (k, o) in out.iter_mut().enumerate() {
            let top = at(x0, y0, k) * (1.0 - fx) + at(x1, y0, k) * fx;
            let bot = at(x0, y1, k) * (1.0 - fx) + at(x1, y1, k) * fx;
            *o = (top * (1.0 - fy) + bot * fy + 0.5).clamp(0.0, 255.0) as u8;
        }
        out
    }
}

/// Draws the poster: a soft fractal background with many filled rectangles, discs and
/// triangles in random colours (plenty of corners at every scale).
fn poster(w: usize, h: usize, seed: u32) -> Vec<u8> {
    let mut img = vec![0u8; w * h * 3];
    img.par_chunks_mut(w * 3).enumerate().for_each(|(y, row)| {
        for x in 0..w {
            let n = fbm(x as f32 / 90.0, y as f32 / 90.0, seed);
            let base = (60.0 + 120.0 * n) as u8;
            row[x * 3..x * 3 + 3].copy_from_slice(&[
                base,
                base.saturating_add(10),
                base.saturating_sub(10),
            ]);
        }
    });
    let mut state = seed.wrapping_mul(0x9E37_79B9) ^ 0x5bd1_e995;
    let mut next = move || {
        state = hash32(state.wrapping_add(0x6D2B_79F5));
        state
    };
    let shapes = w * h / 2500;
    for _ in 0..shapes {
        let cx = (next() as usize) % w;
        let cy = (next() as usize) % h;
        let size = 4 + (next() as usize) % 40;
        let colour = [next() as u8, next() as u8, next() as u8];
        let kind = next() % 3;
        let (x0, x1) = (cx.saturating_sub(size), (cx + size).min(w));
        let (y0, y1) = (cy.saturating_sub(size), (cy + size).min(h));
        for y in y0..y1 {
            for x in x0..x1 {
                let (dx, dy) = (x as i64 - cx as i64, y as i64 - cy as i64);
                let inside = match kind {
                    0 => true,
                    1 => dx * dx + dy * dy <= (size * size) as i64,
                    _ => dy >= 0 && dx.abs() <= dy,
                };
                if inside {
                    img[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&colour);
                }
            }
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_pan_zoom_rotate_and_frames_are_deterministic() {
        let v = WarpVideo::new(WarpConfig {
            width: 64,
            height: 48,
            frames_per_phase: 10,
            seed: 3,
        });
        assert_eq!(v.len(), 40);
        let (a, b) = (v.view(0), v.view(9));
        assert!(b.cx > a.cx && b.zoom == 1.0 && b.angle == 0.0);
        let z = v.view(15);
        assert!(z.zoom > 1.0 && z.angle == 0.0);
        let r = v.view(25);
        assert!(r.angle > 0.0);
        assert_eq!(v.frame(7), v.frame(7));
        assert_ne!(v.frame(7), v.frame(8));
        assert_eq!(v.frame(0).len(), 64 * 48 * 3);
    }
}
