//! ORB features (Rublee et al. 2011) with OpenCV's default settings: an 8-level image pyramid
//! with scale factor 1.2, FAST-9 corners at threshold 20 kept 31 px away from each level's border,
//! ranked by the Harris measure, oriented by the intensity centroid of a radius-15 disc, and
//! described by 256 intensity comparisons on a Gaussian-smoothed patch rotated to that
//! orientation (steered BRIEF).
//!
//! The comparison pairs are our own: drawn once from an isotropic Gaussian (σ = patch / 5, as in
//! the BRIEF paper) with a fixed seed, not OpenCV's learned table. Descriptors are therefore not
//! bit-compatible with OpenCV's, which no caller needs: they are only ever matched against each
//! other.

use super::fast::{self, Corner, FastScratch};
use super::gray::Gray;
use std::sync::OnceLock;

/// ORB settings; the defaults are OpenCV's `ORB_create()` defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct OrbConfig {
    /// Features kept over all levels.
    pub n_features: usize,
    /// Scale between pyramid levels.
    pub scale_factor: f32,
    /// Pyramid levels.
    pub n_levels: usize,
    /// Distance from each level's border inside which no feature is kept (px).
    pub edge_threshold: usize,
    /// FAST brightness threshold.
    pub fast_threshold: u8,
}

impl Default for OrbConfig {
    fn default() -> Self {
        OrbConfig {
            n_features: 500,
            scale_factor: 1.2,
            n_levels: 8,
            edge_threshold: 31,
            fast_threshold: 20,
        }
    }
}

/// Half the 31-pixel patch: the orientation disc's radius.
const HALF_PATCH: i32 = 15;
/// Harris measure constant.
const HARRIS_K: f64 = 0.04;

/// A 256-bit binary descriptor.
pub type Descriptor = [u64; 4];

/// The features of one image: keypoint positions in full-resolution pixel coordinates and their
/// descriptors, index for index.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Features {
    /// Width of the image the features came from.
    pub width: usize,
    /// Height of the image the features came from.
    pub height: usize,
    /// Keypoint positions (x, y) at full resolution.
    pub points: Vec<[f32; 2]>,
    /// Descriptors, one per point.
    pub descriptors: Vec<Descriptor>,
}

impl Features {
    /// Number of features.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// True when no feature was found.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

/// The 256 comparison pairs `(ax, ay, bx, by)`.
fn pattern() -> &'static [[i8; 4]; 256] {
    static PATTERN: OnceLock<[[i8; 4]; 256]> = OnceLock::new();
    PATTERN.get_or_init(|| {
        // SplitMix64 + Box-Muller: a fixed, platform-independent draw.
        let mut state = 0x000E_4B0D_1ED0_2025_u64;
        let mut next = move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let sigma = 31.0 / 5.0;
        let mut gauss = move || {
            let (u, v) = (next(), next());
            let r = (-2.0 * u.ln()).sqrt() * sigma;
            let g = r * (std::f64::consts::TAU * v).cos();
            g.round().clamp(-13.0, 13.0) as i8
        };
        let mut out = [[0i8; 4]; 256];
        for pair in out.iter_mut() {
            loop {
                let p = [gauss(), gauss(), gauss(), gauss()];
                if (p[0], p[1]) != (p[2], p[3]) {
                    *pair = p;
                    break;
                }
            }
        }
        out
    })
}

/// Row half-widths of the radius-15 disc.
fn disc() -> &'static [i32; 16] {
    static DISC: OnceLock<[i32; 16]> = OnceLock::new();
    DISC.get_or_init(|| {
        let mut u = [0i32; 16];
        for (v, w) in u.iter_mut().enumerate() {
            let r = f64::from(HALF_PATCH) + 0.5;
            *w = ((r * r - (v * v) as f64).max(0.0)).sqrt().floor() as i32;
        }
        u
    })
}

/// An ORB extractor with reusable scratch buffers (one per thread).
#[derive(Debug, Default)]
pub struct Orb {
    config: OrbConfig,
    fast: FastScratch,
    corners: Vec<Corner>,
}

struct Candidate {
    x: u32,
    y: u32,
    rank: f64,
}

impl Orb {
    /// An extractor with these settings. Out-of-range values are brought into range: at least one
    /// level, a scale factor above 1, and a border of at least 20 px (the descriptor patch and
    /// the Harris window must stay inside the image).
    pub fn new(mut config: OrbConfig) -> Orb {
        config.n_levels = config.n_levels.clamp(1, 32);
        if !(config.scale_factor.is_finite() && config.scale_factor > 1.01) {
            config.scale_factor = 1.01;
        }
        config.edge_threshold = config.edge_threshold.max(20);
        Orb {
            config,
            fast: FastScratch::default(),
            corners: Vec::new(),
        }
    }

    /// Features per level: a geometric share of the total, the remainder on the last level.
    fn per_level(&self) -> Vec<usize> {
        let c = &self.config;
        let factor = 1.0 / f64::from(c.scale_factor);
        let mut desired =
            c.n_features as f64 * (1.0 - factor) / (1.0 - factor.powi(c.n_levels as i32));
        let mut out = Vec::with_capacity(c.n_levels);
        let mut sum = 0usize;
        for _ in 0..c.n_levels.saturating_sub(1) {
            let n = desired.round() as usize;
            out.push(n);
            sum += n;
            desired *= factor;
        }
        out.push(c.n_features.saturating_sub(sum));
        out
    }

    /// Detects and describes features on a grayscale image.
    pub fn detect_and_compute(&mut self, image: &Gray) -> Features {
        let mut features = Features {
            width: image.width,
            height: image.height,
            ..Features::default()
        };
        let per_level = self.per_level();
        let border = self.config.edge_threshold;
        let mut level_img: Option<Gray> = None;
        for (level, &wanted) in per_level.iter().enumerate() {
            let scale = f64::from(self.config.scale_factor).powi(level as i32);
            let current = if level == 0 {
                image
            } else {
                let w = (image.width as f64 / scale).round() as usize;
                let h = (image.height as f64 / scale).round() as usize;
                let prev = level_img.as_ref().unwrap_or(image);
                level_img = Some(prev.resize(w, h));
                match level_img.as_ref() {
                    Some(g) => g,
                    None => break,
                }
            };
            if current.width <= 2 * border || current.height <= 2 * border {
                break;
            }
            if wanted == 0 {
                continue;
            }
            fast::detect(
                current,
                self.config.fast_threshold,
                border,
                &mut self.fast,
                &mut self.corners,
            );
            // Keep twice the wanted count by FAST score, then the wanted count by Harris.
            let mut cands: Vec<Candidate> = self
                .corners
                .iter()
                .map(|c| Candidate {
                    x: c.x,
                    y: c.y,
                    rank: f64::from(c.score),
                })
                .collect();
            retain_best(&mut cands, 2 * wanted);
            for c in cands.iter_mut() {
                c.rank = harris(current, c.x as usize, c.y as usize);
            }
            retain_best(&mut cands, wanted);
            if cands.is_empty() {
                continue;
            }
            let blurred = current.blur7();
            for c in &cands {
                let (x, y) = (c.x as usize, c.y as usize);
                let angle = ic_angle(current, x, y);
                features.descriptors.push(describe(&blurred, x, y, angle));
                features
                    .points
                    .push([(c.x as f64 * scale) as f32, (c.y as f64 * scale) as f32]);
            }
        }
        features
    }
}

/// Keeps the `n` highest-ranked candidates; ties broken by raster position so the result does
/// not depend on the input order.
fn retain_best(cands: &mut Vec<Candidate>, n: usize) {
    if cands.len() <= n {
        return;
    }
    if n == 0 {
        cands.clear();
        return;
    }
    cands.select_nth_unstable_by(n - 1, |a, b| {
        b.rank
            .total_cmp(&a.rank)
            .then(a.y.cmp(&b.y))
            .then(a.x.cmp(&b.x))
    });
    cands.truncate(n);
}

/// The Harris corner measure over a 7×7 block of 3×3 Sobel derivatives.
fn harris(img: &Gray, x: usize, y: usize) -> f64 {
    // Copy the 9×9 neighbourhood once; derivatives then read the local patch.
    let mut p = [[0i32; 9]; 9];
    for (dy, row) in p.iter_mut().enumerate() {
        let src = &img.data[(y + dy - 4) * img.width + x - 4..][..9];
        for (v, &s) in row.iter_mut().zip(src) {
            *v = i32::from(s);
        }
    }
    let (mut a, mut b, mut c) = (0i64, 0i64, 0i64);
    for yy in 1..8 {
        for xx in 1..8 {
            let ix = (p[yy - 1][xx + 1] + 2 * p[yy][xx + 1] + p[yy + 1][xx + 1])
                - (p[yy - 1][xx - 1] + 2 * p[yy][xx - 1] + p[yy + 1][xx - 1]);
            let iy = (p[yy + 1][xx - 1] + 2 * p[yy + 1][xx] + p[yy + 1][xx + 1])
                - (p[yy - 1][xx - 1] + 2 * p[yy - 1][xx] + p[yy - 1][xx + 1]);
            a += i64::from(ix * ix);
            b += i64::from(iy * iy);
            c += i64::from(ix * iy);
        }
    }
    let (a, b, c) = (a as f64, b as f64, c as f64);
    a * b - c * c - HARRIS_K * (a + b) * (a + b)
}

/// Orientation by the intensity centroid of the radius-15 disc, in radians.
fn ic_angle(img: &Gray, x: usize, y: usize) -> f32 {
    let w = img.width as isize;
    let center = (y * img.width + x) as isize;
    let d = &img.data;
    let umax = disc();
    let (mut m01, mut m10) = (0i64, 0i64);
    for u in -HALF_PATCH..=HALF_PATCH {
        m10 += i64::from(u) * i64::from(d[(center + u as isize) as usize]);
    }
    for v in 1..=HALF_PATCH {
        let r = umax[v as usize];
        let mut vsum = 0i64;
        for u in -r..=r {
            let below = i64::from(d[(center + v as isize * w + u as isize) as usize]);
            let above = i64::from(d[(center - v as isize * w + u as isize) as usize]);
            vsum += below - above;
            m10 += i64::from(u) * (below + above);
        }
        m01 += i64::from(v) * vsum;
    }
    (m01 as f32).atan2(m10 as f32)
}

/// Orientation bins of the precomputed rotated patterns (2.8° each: a pattern point at most
/// 18.4 px from the centre moves by at most 0.45 px within a bin).
const ANGLE_BINS: usize = 128;

/// The comparison pairs rotated to each orientation bin, rounded to whole pixels.
fn rotated_patterns() -> &'static [[[i8; 4]; 256]] {
    static TABLE: OnceLock<Vec<[[i8; 4]; 256]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let round = |v: f64| v.round() as i8;
        (0..ANGLE_BINS)
            .map(|bin| {
                let a = bin as f64 * std::f64::consts::TAU / ANGLE_BINS as f64;
                let (s, c) = a.sin_cos();
                let mut out = [[0i8; 4]; 256];
                for (o, p) in out.iter_mut().zip(pattern()) {
                    let rot = |x: i8, y: i8| {
                        let (x, y) = (f64::from(x), f64::from(y));
                        (round(x * c - y * s), round(x * s + y * c))
                    };
                    let (ax, ay) = rot(p[0], p[1]);
                    let (bx, by) = rot(p[2], p[3]);
                    *o = [ax, ay, bx, by];
                }
                out
            })
            .collect()
    })
}

/// Steered BRIEF on the smoothed image.
fn describe(img: &Gray, x: usize, y: usize, angle: f32) -> Descriptor {
    let turns = f64::from(angle) / std::f64::consts::TAU;
    let bin = ((turns * ANGLE_BINS as f64).round() as i64).rem_euclid(ANGLE_BINS as i64) as usize;
    let table = &rotated_patterns()[bin];
    let w = img.width as isize;
    // Rows −19..=19 and columns −19..=19 around the keypoint are inside the image (keypoints stay
    // 31 px from the border), so one slice covers every sample.
    let start = (y - 19) * img.width + x - 19;
    let patch = &img.data[start..start + 38 * img.width + 39];
    let center = 19 * w + 19;
    let at = |px: i8, py: i8| patch[(center + isize::from(py) * w + isize::from(px)) as usize];
    let mut out = [0u64; 4];
    for (i, p) in table.iter().enumerate() {
        if at(p[0], p[1]) < at(p[2], p[3]) {
            out[i / 64] |= 1 << (i % 64);
        }
    }
    out
}

/// Synthetic images for tests in this module tree.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::Gray;

    /// A deterministic texture of blobs and edges that FAST finds many corners in.
    pub(crate) fn texture(w: usize, h: usize, seed: u64) -> Gray {
        let mut data = vec![0u8; w * h];
        let mut s = seed;
        let mut rnd = move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) as usize
        };
        for v in data.iter_mut() {
            *v = 60;
        }
        for _ in 0..(w * h / 300) {
            let (cx, cy, r, v) = (rnd() % w, rnd() % h, 2 + rnd() % 9, (rnd() % 256) as u8);
            for y in cy.saturating_sub(r)..(cy + r).min(h) {
                for x in cx.saturating_sub(r)..(cx + r).min(w) {
                    data[y * w + x] = v;
                }
            }
        }
        Gray {
            width: w,
            height: h,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::texture;
    use super::*;

    #[test]
    fn level_shares_sum_to_the_total_like_opencv() {
        let orb = Orb::new(OrbConfig::default());
        let levels = orb.per_level();
        assert_eq!(levels.len(), 8);
        assert_eq!(levels.iter().sum::<usize>(), 500);
        // 500 * (1 - 1/1.2) / (1 - 1.2^-8) = 108.6 → 109 on level 0.
        assert_eq!(levels[0], 109);
        assert!(levels.windows(2).take(6).all(|p| p[0] >= p[1]));
    }

    #[test]
    fn out_of_range_settings_are_clamped_not_fatal() {
        let img = texture(120, 90, 5);
        let cfg = OrbConfig {
            n_features: 50,
            scale_factor: 0.5,
            n_levels: 0,
            edge_threshold: 0,
            fast_threshold: 0,
        };
        let f = Orb::new(cfg).detect_and_compute(&img);
        assert!(f.len() <= 50);
        let tiny = texture(10, 10, 5);
        assert!(
            Orb::new(OrbConfig::default())
                .detect_and_compute(&tiny)
                .is_empty()
        );
    }

    #[test]
    fn finds_at_most_n_features_away_from_the_border() {
        let img = texture(640, 480, 7);
        let f = Orb::new(OrbConfig::default()).detect_and_compute(&img);
        assert!(f.len() > 300 && f.len() <= 500, "{}", f.len());
        assert_eq!(f.points.len(), f.descriptors.len());
        for p in &f.points {
            assert!(
                p[0] >= 31.0 && p[0] < 609.0 && p[1] >= 31.0 && p[1] < 449.0,
                "{p:?}"
            );
        }
    }

    #[test]
    fn orientation_points_towards_the_bright_side() {
        let mut g = Gray {
            width: 64,
            height: 64,
            data: vec![0; 64 * 64],
        };
        for y in 0..64 {
            for x in 33..64 {
                g.data[y * 64 + x] = 200;
            }
        }
        assert!(ic_angle(&g, 32, 32).abs() < 0.05);
        let t = Gray {
            width: 64,
            height: 64,
            data: (0..64 * 64)
                .map(|i| if i / 64 > 32 { 200 } else { 0 })
                .collect(),
        };
        assert!((ic_angle(&t, 32, 32) - std::f32::consts::FRAC_PI_2).abs() < 0.05);
    }

    #[test]
    fn descriptors_survive_rotation_of_the_image() {
        // Rotate a texture by 90° exactly: matching keypoints keep nearly the same bits.
        let img = texture(200, 200, 3);
        let mut rot = img.clone();
        for y in 0..200 {
            for x in 0..200 {
                rot.data[x * 200 + (199 - y)] = img.data[y * 200 + x];
            }
        }
        let a = Orb::new(OrbConfig::default()).detect_and_compute(&img);
        let b = Orb::new(OrbConfig::default()).detect_and_compute(&rot);
        let mut close = 0;
        let mut compared = 0;
        for (p, da) in a.points.iter().zip(&a.descriptors) {
            let q = [199.0 - p[1], p[0]];
            if let Some((_, db)) = b
                .points
                .iter()
                .zip(&b.descriptors)
                .find(|(r, _)| (r[0] - q[0]).abs() < 0.5 && (r[1] - q[1]).abs() < 0.5)
            {
                compared += 1;
                let dist: u32 = da.iter().zip(db).map(|(x, y)| (x ^ y).count_ones()).sum();
                if dist < 64 {
                    close += 1;
                }
            }
        }
        assert!(compared > 20, "{compared}");
        assert!(close * 10 >= compared * 8, "{close}/{compared}");
    }
}
