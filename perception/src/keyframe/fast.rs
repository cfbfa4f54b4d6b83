//! FAST-9 corners: a pixel is a corner when 9 contiguous pixels of the 16-pixel circle of
//! radius 3 around it are all brighter than centre + t or all darker than centre − t. The score
//! is the largest margin by which some such arc clears the centre (higher is stronger), and a
//! 3×3 non-maximum suppression keeps only strict local maxima.

use super::gray::Gray;

/// The 16 circle offsets, clockwise from the top.
const CIRCLE: [(isize, isize); 16] = [
    (0, -3),
    (1, -3),
    (2, -2),
    (3, -1),
    (3, 0),
    (3, 1),
    (2, 2),
    (1, 3),
    (0, 3),
    (-1, 3),
    (-2, 2),
    (-3, 1),
    (-3, 0),
    (-3, -1),
    (-2, -2),
    (-1, -3),
];

/// A corner at integer pixel coordinates with its FAST score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corner {
    /// Column.
    pub x: u32,
    /// Row.
    pub y: u32,
    /// Score: the smallest brightness margin along the best arc (> threshold for a corner).
    pub score: u8,
}

/// Reusable buffers for [`detect`].
#[derive(Debug, Default)]
pub struct FastScratch {
    scores: Vec<u8>,
    candidates: Vec<u8>,
    raw: Vec<Corner>,
}

/// The score of the best 9-arc at `(x, y)`, 0 when no arc clears `threshold`.
#[inline]
fn score_at(img: &Gray, offsets: &[isize; 16], x: usize, y: usize, threshold: u8) -> u8 {
    let center = y * img.width + x;
    let c = i16::from(img.data[center]);
    let mut d = [0i16; 25];
    for (k, off) in offsets.iter().enumerate() {
        d[k] = i16::from(img.data[(center as isize + off) as usize]) - c;
    }
    for k in 16..25 {
        d[k] = d[k - 16];
    }
    // Minimum of each run of 3, then of each run of 9 (three runs of 3).
    let mut lo3 = [0i16; 23];
    let mut hi3 = [0i16; 23];
    for k in 0..23 {
        lo3[k] = d[k].min(d[k + 1]).min(d[k + 2]);
        hi3[k] = d[k].max(d[k + 1]).max(d[k + 2]);
    }
    let mut best = 0i16;
    for k in 0..16 {
        let bright = lo3[k].min(lo3[k + 3]).min(lo3[k + 6]);
        let dark = -(hi3[k].max(hi3[k + 3]).max(hi3[k + 6]));
        best = best.max(bright).max(dark);
    }
    if best > i16::from(threshold) {
        best as u8
    } else {
        0
    }
}

/// Finds FAST-9 corners whose centres lie in `[border, width − border) × [border, height −
/// border)`, scoring one extra pixel around that rectangle so that suppression at its edge sees
/// its neighbours. `border` must be at least 4. Corners come out in raster order.
pub fn detect(
    img: &Gray,
    threshold: u8,
    border: usize,
    scratch: &mut FastScratch,
    out: &mut Vec<Corner>,
) {
    out.clear();
    let (w, h) = (img.width, img.height);
    let border = border.max(4);
    if w <= 2 * border || h <= 2 * border {
        return;
    }
    let offsets: [isize; 16] = CIRCLE.map(|(dx, dy)| dy * w as isize + dx);
    let (x0, x1) = (border - 1, w - border + 1);
    let (y0, y1) = (border - 1, h - border + 1);
    let n = x1 - x0;
    scratch.scores.clear();
    scratch.scores.resize(w * h, 0);
    scratch.candidates.resize(n, 0);
    scratch.raw.clear();
    let t = threshold;
    for y in y0..y1 {
        // Pretest on the four compass points: any 9-arc covers at least two of them.
        let row = &img.data[y * w..(y + 1) * w];
        let up = &img.data[(y - 3) * w..(y - 2) * w];
        let dn = &img.data[(y + 3) * w..(y + 4) * w];
        let c = &row[x0..x1];
        let a = &up[x0..x1];
        let b = &row[x0 + 3..x1 + 3];
        let e = &dn[x0..x1];
        let f = &row[x0 - 3..x1 - 3];
        let cand = &mut scratch.candidates[..n];
        for i in 0..n {
            let hi = c[i].saturating_add(t);
            let lo = c[i].saturating_sub(t);
            let nb = u8::from(a[i] > hi)
                + u8::from(b[i] > hi)
                + u8::from(e[i] > hi)
                + u8::from(f[i] > hi);
            let nd = u8::from(a[i] < lo)
                + u8::from(b[i] < lo)
                + u8::from(e[i] < lo)
                + u8::from(f[i] < lo);
            cand[i] = u8::from(nb >= 2) | u8::from(nd >= 2);
        }
        // Full test only where the pretest passed; scan eight candidates at a time.
        let mut i = 0;
        while i < n {
            if i + 8 <= n {
                let mut word = [0u8; 8];
                word.copy_from_slice(&cand[i..i + 8]);
                if u64::from_ne_bytes(word) == 0 {
                    i += 8;
                    continue;
                }
            }
            if cand[i] != 0 {
                let x = x0 + i;
                let s = score_at(img, &offsets, x, y, t);
                if s > 0 {
                    scratch.scores[y * w + x] = s;
                    scratch.raw.push(Corner {
                        x: x as u32,
                        y: y as u32,
                        score: s,
                    });
                }
            }
            i += 1;
        }
    }
    // Non-maximum suppression over 3×3, strict, inside the requested rectangle.
    let s = &scratch.scores;
    for corner in &scratch.raw {
        let (x, y) = (corner.x as usize, corner.y as usize);
        if x < border || x >= w - border || y < border || y >= h - border {
            continue;
        }
        let v = corner.score;
        let p = y * w + x;
        let neighbours = [
            s[p - w - 1],
            s[p - w],
            s[p - w + 1],
            s[p - 1],
            s[p + 1],
            s[p + w - 1],
            s[p + w],
            s[p + w + 1],
        ];
        if neighbours.iter().all(|&q| v > q) {
            out.push(*corner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canvas(w: usize, h: usize, v: u8) -> Gray {
        Gray {
            width: w,
            height: h,
            data: vec![v; w * h],
        }
    }

    #[test]
    fn a_bright_square_has_corners_at_its_four_corners_only() {
        let mut g = canvas(64, 64, 20);
        for y in 20..44 {
            for x in 20..44 {
                g.data[y * 64 + x] = 200;
            }
        }
        // A perfectly flat square gives equal scores along its corner region, which strict
        // suppression removes; brighter tips make each corner pixel the unique maximum.
        for (x, y) in [(20, 20), (43, 20), (20, 43), (43, 43)] {
            g.data[y * 64 + x] = 255;
        }
        let mut out = Vec::new();
        detect(&g, 20, 8, &mut FastScratch::default(), &mut out);
        assert_eq!(out.len(), 4, "{out:?}");
        for c in &out {
            assert!([20, 43].contains(&c.x) && [20, 43].contains(&c.y), "{c:?}");
            assert_eq!(c.score, 235);
        }
    }

    #[test]
    fn flat_images_and_straight_edges_have_no_corners() {
        let mut out = Vec::new();
        let mut scratch = FastScratch::default();
        detect(&canvas(50, 40, 90), 20, 5, &mut scratch, &mut out);
        assert!(out.is_empty());
        let mut g = canvas(50, 40, 10);
        for y in 0..40 {
            for x in 25..50 {
                g.data[y * 50 + x] = 250;
            }
        }
        detect(&g, 20, 5, &mut scratch, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn the_threshold_is_strict_and_images_smaller_than_the_border_are_empty() {
        let mut g = canvas(32, 32, 100);
        // A single dark dot: every circle pixel is brighter than it by exactly 20 or 21.
        g.data[16 * 32 + 16] = 80;
        let mut out = Vec::new();
        detect(&g, 20, 5, &mut FastScratch::default(), &mut out);
        assert!(out.is_empty(), "margin 20 must not clear threshold 20");
        g.data[16 * 32 + 16] = 79;
        detect(&g, 20, 5, &mut FastScratch::default(), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].x, out[0].y, out[0].score), (16, 16, 21));
        detect(
            &canvas(9, 9, 0),
            20,
            5,
            &mut FastScratch::default(),
            &mut out,
        );
        assert!(out.is_empty());
    }
}
