//! Planar geometry for key-frame selection: a RANSAC homography between matched points, and the
//! fraction of an image that a second image's projected footprint covers.

use nalgebra::{Matrix3, SMatrix, SVector, SymmetricEigen, Vector3};

/// RANSAC settings (OpenCV `findHomography` defaults besides the threshold).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RansacConfig {
    /// Reprojection error under which a correspondence is an inlier, in pixels.
    pub threshold: f64,
    /// Iteration cap.
    pub max_iters: usize,
    /// Probability that at least one all-inlier sample was drawn when the loop stops early.
    pub confidence: f64,
    /// Seed of the sampler (fixed so selection is reproducible).
    pub seed: u64,
}

impl Default for RansacConfig {
    fn default() -> Self {
        RansacConfig {
            threshold: 5.0,
            max_iters: 2000,
            confidence: 0.995,
            seed: 0x5EED,
        }
    }
}

/// A fitted homography with its inlier count.
#[derive(Debug, Clone, PartialEq)]
pub struct Homography {
    /// Maps source pixel coordinates to destination pixel coordinates (normalised so h33 = 1).
    pub h: Matrix3<f64>,
    /// Correspondences within the threshold.
    pub inliers: usize,
}

fn cross(o: [f64; 2], a: [f64; 2], b: [f64; 2]) -> f64 {
    (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
}

/// Rejects samples with (near-)collinear triples or whose orientation flips between the two
/// sides: no homography of a plane seen from the front maps them.
fn sample_ok(src: &[[f64; 2]; 4], dst: &[[f64; 2]; 4]) -> bool {
    let mut negative = 0;
    for i in 0..4 {
        let (a, b, c) = (i, (i + 1) % 4, (i + 2) % 4);
        let s = cross(src[a], src[b], src[c]);
        let d = cross(dst[a], dst[b], dst[c]);
        if s.abs() < 1e-3 || d.abs() < 1e-3 {
            return false;
        }
        if s * d < 0.0 {
            negative += 1;
        }
    }
    negative == 0 || negative == 4
}

/// The exact homography through four correspondences (h33 = 1), by an 8×8 linear solve.
fn fit_four(src: &[[f64; 2]; 4], dst: &[[f64; 2]; 4]) -> Option<Matrix3<f64>> {
    let mut a = SMatrix::<f64, 8, 8>::zeros();
    let mut b = SVector::<f64, 8>::zeros();
    for i in 0..4 {
        let ([x, y], [u, v]) = (src[i], dst[i]);
        let r = 2 * i;
        a.set_row(
            r,
            &SMatrix::<f64, 1, 8>::from_row_slice(&[x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y]),
        );
        a.set_row(
            r + 1,
            &SMatrix::<f64, 1, 8>::from_row_slice(&[0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y]),
        );
        b[r] = u;
        b[r + 1] = v;
    }
    let h = a.lu().solve(&b)?;
    let m = Matrix3::new(h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], 1.0);
    m.iter().all(|v| v.is_finite()).then_some(m)
}

/// Least-squares homography through many correspondences: normalised direct linear transform
/// (Hartley), the eigenvector of the smallest eigenvalue of AᵀA.
fn fit_many(src: &[[f64; 2]], dst: &[[f64; 2]]) -> Option<Matrix3<f64>> {
    if src.len() < 4 {
        return None;
    }
    let norm = |pts: &[[f64; 2]]| -> Matrix3<f64> {
        let n = pts.len() as f64;
        let (cx, cy) = pts
            .iter()
            .fold((0.0, 0.0), |(a, b), p| (a + p[0], b + p[1]));
        let (cx, cy) = (cx / n, cy / n);
        let d = pts
            .iter()
            .map(|p| ((p[0] - cx).powi(2) + (p[1] - cy).powi(2)).sqrt())
            .sum::<f64>()
            / n;
        let s = if d > 1e-12 {
            std::f64::consts::SQRT_2 / d
        } else {
            1.0
        };
        Matrix3::new(s, 0.0, -s * cx, 0.0, s, -s * cy, 0.0, 0.0, 1.0)
    };
    let (ts, td) = (norm(src), norm(dst));
    let mut ata = SMatrix::<f64, 9, 9>::zeros();
    for (p, q) in src.iter().zip(dst) {
        let s = ts * Vector3::new(p[0], p[1], 1.0);
        let d = td * Vector3::new(q[0], q[1], 1.0);
        let (x, y, u, v) = (s[0], s[1], d[0], d[1]);
        let r1 =
            SVector::<f64, 9>::from_column_slice(&[x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, -u]);
        let r2 =
            SVector::<f64, 9>::from_column_slice(&[0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, -v]);
        ata += r1 * r1.transpose() + r2 * r2.transpose();
    }
    let eig = SymmetricEigen::new(ata);
    let (k, _) = eig
        .eigenvalues
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))?;
    let e = eig.eigenvectors.column(k);
    let hn = Matrix3::new(e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7], e[8]);
    let h = td.try_inverse()? * hn * ts;
    let h33 = h[(2, 2)];
    if h33.abs() < 1e-12 {
        return None;
    }
    let h = h / h33;
    h.iter().all(|v| v.is_finite()).then_some(h)
}

/// Squared reprojection error of `p` mapped by `h` against `q`.
#[inline]
fn error2(h: &Matrix3<f64>, p: [f64; 2], q: [f64; 2]) -> f64 {
    let w = h[(2, 0)] * p[0] + h[(2, 1)] * p[1] + h[(2, 2)];
    if w.abs() < 1e-12 {
        return f64::INFINITY;
    }
    let u = (h[(0, 0)] * p[0] + h[(0, 1)] * p[1] + h[(0, 2)]) / w;
    let v = (h[(1, 0)] * p[0] + h[(1, 1)] * p[1] + h[(1, 2)]) / w;
    (u - q[0]).powi(2) + (v - q[1]).powi(2)
}

/// Fits a homography mapping `src[i]` to `dst[i]` with RANSAC, then refits it by least squares
/// on the inliers. `None` with fewer than four pairs or when no sample gives a model.
pub fn find_homography(
    src: &[[f64; 2]],
    dst: &[[f64; 2]],
    config: &RansacConfig,
) -> Option<Homography> {
    let n = src.len().min(dst.len());
    if n < 4 {
        return None;
    }
    let thr2 = config.threshold * config.threshold;
    // xorshift never leaves 0: keep the low bit set.
    let mut state = (config.seed ^ (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1;
    let mut next = move |bound: usize| -> usize {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % bound as u64) as usize
    };
    let count = |h: &Matrix3<f64>| {
        (0..n)
            .filter(|&i| error2(h, src[i], dst[i]) <= thr2)
            .count()
    };
    let mut best: Option<(Matrix3<f64>, usize)> = None;
    let mut iters = config.max_iters;
    let mut it = 0;
    while it < iters {
        it += 1;
        // Draw four distinct indices whose configuration can carry a homography.
        let mut sample = None;
        for _ in 0..100 {
            let mut idx = [0usize; 4];
            let mut k = 0;
            while k < 4 {
                let c = next(n);
                if !idx[..k].contains(&c) {
                    idx[k] = c;
                    k += 1;
                }
            }
            let s = idx.map(|i| src[i]);
            let d = idx.map(|i| dst[i]);
            if sample_ok(&s, &d) {
                sample = Some((s, d));
                break;
            }
        }
        let Some((s, d)) = sample else { break };
        let Some(h) = fit_four(&s, &d) else { continue };
        let good = count(&h);
        if best.as_ref().is_none_or(|(_, b)| good > *b) {
            best = Some((h, good));
            // Adaptive stop: iterations needed to draw one all-inlier sample with `confidence`.
            let inlier_ratio = good as f64 / n as f64;
            let p_good = inlier_ratio.powi(4);
            let needed = if p_good >= 1.0 - 1e-12 {
                0.0
            } else {
                (1.0 - config.confidence).ln() / (1.0 - p_good).ln()
            };
            if needed.is_finite() && needed >= 0.0 {
                iters = iters.min(needed.ceil() as usize);
            }
        }
    }
    let (h, _) = best?;
    let inl: Vec<usize> = (0..n)
        .filter(|&i| error2(&h, src[i], dst[i]) <= thr2)
        .collect();
    let refined = if inl.len() > 4 {
        let s: Vec<[f64; 2]> = inl.iter().map(|&i| src[i]).collect();
        let d: Vec<[f64; 2]> = inl.iter().map(|&i| dst[i]).collect();
        fit_many(&s, &d)
            .filter(|r| count(r) >= inl.len())
            .unwrap_or(h)
    } else {
        h
    };
    Some(Homography {
        inliers: count(&refined),
        h: refined,
    })
}

/// Fraction of the `width × height` image covered by the other image's footprint mapped by `h`
/// (the other image has the same size): the four corners are projected, truncated to integers
/// as the reference does, and the quadrilateral is scan-converted clipped to the image: a convex
/// one with its outline included (as OpenCV's polygon fill paints it), a self-intersecting one by
/// the even-odd rule. Non-finite projections give 0.
pub fn footprint_overlap(h: &Matrix3<f64>, width: usize, height: usize) -> f64 {
    if width == 0 || height == 0 {
        return 0.0;
    }
    let (w, hh) = (width as f64, height as f64);
    let corners = [[0.0, 0.0], [w, 0.0], [w, hh], [0.0, hh]];
    let mut poly = [[0.0f64; 2]; 4];
    for (p, c) in poly.iter_mut().zip(corners) {
        let v = h * Vector3::new(c[0], c[1], 1.0);
        let (x, y) = (v[0] / v[2], v[1] / v[2]);
        if !x.is_finite() || !y.is_finite() {
            return 0.0;
        }
        // Truncation toward zero into i32 range, like a cast to int32.
        let t = |a: f64| a.clamp(i32::MIN as f64, i32::MAX as f64).trunc();
        *p = [t(x), t(y)];
    }
    let mut covered = 0u64;
    let convex = {
        let mut signs = (0, 0);
        for i in 0..4 {
            let c = cross(poly[i], poly[(i + 1) % 4], poly[(i + 2) % 4]);
            if c > 0.0 {
                signs.0 += 1;
            } else if c < 0.0 {
                signs.1 += 1;
            }
        }
        signs.0 == 0 || signs.1 == 0
    };
    let mut xs: Vec<f64> = Vec::with_capacity(8);
    if convex {
        // Like a polygon fill that also paints its outline: every row the quadrilateral touches,
        // from its leftmost to its rightmost crossing, both ends included.
        let ymin = poly
            .iter()
            .map(|p| p[1])
            .fold(f64::INFINITY, f64::min)
            .max(0.0);
        let ymax = poly
            .iter()
            .map(|p| p[1])
            .fold(f64::NEG_INFINITY, f64::max)
            .min(hh - 1.0);
        let mut row = ymin.ceil();
        while row <= ymax {
            xs.clear();
            for i in 0..4 {
                let (a, b) = (poly[i], poly[(i + 1) % 4]);
                let (lo, hi) = if a[1] <= b[1] { (a, b) } else { (b, a) };
                if row < lo[1] || row > hi[1] {
                    continue;
                }
                if hi[1] == lo[1] {
                    xs.extend([lo[0], hi[0]]);
                } else {
                    let t = (row - lo[1]) / (hi[1] - lo[1]);
                    xs.push(lo[0] + t * (hi[0] - lo[0]));
                }
            }
            let x0 = xs.iter().copied().fold(f64::INFINITY, f64::min);
            let x1 = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let x0 = (x0 + 0.5).floor().max(0.0);
            let x1 = (x1 + 0.5).floor().min(w - 1.0);
            if x1 >= x0 {
                covered += (x1 - x0) as u64 + 1;
            }
            row += 1.0;
        }
        return covered as f64 / (w * hh);
    }
    // Self-intersecting or degenerate outlines: even-odd interior, pixel centres on integers.
    for row in 0..height {
        let yc = row as f64;
        xs.clear();
        for i in 0..4 {
            let (a, b) = (poly[i], poly[(i + 1) % 4]);
            let (lo, hi) = if a[1] <= b[1] { (a, b) } else { (b, a) };
            // Half-open in y so shared vertices count once.
            if yc >= lo[1] && yc < hi[1] {
                let t = (yc - lo[1]) / (hi[1] - lo[1]);
                xs.push(lo[0] + t * (hi[0] - lo[0]));
            }
        }
        xs.sort_by(f64::total_cmp);
        for pair in xs.chunks_exact(2) {
            let x0 = pair[0].ceil().max(0.0);
            let x1 = pair[1].floor().min(w - 1.0);
            if x1 >= x0 {
                covered += (x1 - x0) as u64 + 1;
            }
        }
    }
    covered as f64 / (w * hh)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(h: &Matrix3<f64>, p: [f64; 2]) -> [f64; 2] {
        let v = h * Vector3::new(p[0], p[1], 1.0);
        [v[0] / v[2], v[1] / v[2]]
    }

    #[test]
    fn recovers_a_homography_despite_outliers() {
        let truth = Matrix3::new(0.9, 0.1, 12.0, -0.05, 1.05, -7.0, 1e-4, -2e-4, 1.0);
        let mut src = Vec::new();
        let mut dst = Vec::new();
        let mut s = 12345u64;
        let mut rnd = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
            (s >> 33) as f64 / (1u64 << 31) as f64
        };
        for i in 0..200 {
            let p = [rnd() * 640.0, rnd() * 480.0];
            src.push(p);
            if i % 3 == 0 {
                dst.push([rnd() * 640.0, rnd() * 480.0]);
            } else {
                dst.push(apply(&truth, p));
            }
        }
        let fit = find_homography(&src, &dst, &RansacConfig::default()).expect("a model");
        assert!(fit.inliers >= 133, "{}", fit.inliers);
        for p in [[0.0, 0.0], [640.0, 480.0], [320.0, 100.0]] {
            let (a, b) = (apply(&fit.h, p), apply(&truth, p));
            assert!(
                (a[0] - b[0]).abs() < 0.05 && (a[1] - b[1]).abs() < 0.05,
                "{a:?} {b:?}"
            );
        }
    }

    #[test]
    fn too_few_or_degenerate_points_give_no_model() {
        let p = [[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]];
        assert!(find_homography(&p, &p, &RansacConfig::default()).is_none());
        let line: Vec<[f64; 2]> = (0..20).map(|i| [i as f64, 2.0 * i as f64]).collect();
        assert!(find_homography(&line, &line, &RansacConfig::default()).is_none());
    }

    #[test]
    fn overlap_of_identity_shift_scale_and_garbage() {
        let id = Matrix3::identity();
        assert!((footprint_overlap(&id, 640, 480) - 1.0).abs() < 1e-9);
        // Shifted right by half the width: half the image is covered.
        let shift = Matrix3::new(1.0, 0.0, 320.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0);
        assert!((footprint_overlap(&shift, 640, 480) - 0.5).abs() < 0.01);
        // Shrunk to a quarter of the area.
        let half = Matrix3::new(0.5, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 1.0);
        assert!((footprint_overlap(&half, 640, 480) - 0.25).abs() < 0.01);
        // Entirely outside.
        // A bow-tie (corners 1 and 2 swapped by a reflection) still gives a bounded answer.
        let flip = Matrix3::new(-1.0, 0.0, 640.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0);
        assert!((footprint_overlap(&flip, 640, 480) - 1.0).abs() < 1e-9);
        let away = Matrix3::new(1.0, 0.0, 5000.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0);
        assert_eq!(footprint_overlap(&away, 640, 480), 0.0);
        let nan = Matrix3::new(f64::NAN, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0);
        assert_eq!(footprint_overlap(&nan, 640, 480), 0.0);
        assert_eq!(footprint_overlap(&id, 0, 480), 0.0);
    }
}
