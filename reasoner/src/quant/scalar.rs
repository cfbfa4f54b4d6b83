//! Scalar kernels: the definition of every dot product the packed path computes.
//!
//! The AVX2 kernels in `avx2.rs` must agree with these (exactly for the integer parts, to float
//! rounding for the sums); property tests in `packed.rs` hold them to it.

use super::formats::{GgmlType, dequantize_into, f16_to_f32};

/// One activation row quantized to 8 bits in blocks of 32 (like ggml's Q8_1): per block a
/// scale, the scaled sum of its values, and the values.
#[derive(Debug, Clone, Default)]
pub struct Q8Row {
    /// Interleaved per block: `[d, d·Σq]` (value = q·d). Interleaving lets the SIMD kernels
    /// load the scales of four blocks with one instruction.
    pub ds: Vec<f32>,
    /// Quantized values, 32 per block.
    pub qs: Vec<i8>,
}

impl Q8Row {
    /// Number of blocks.
    pub fn blocks(&self) -> usize {
        self.ds.len() / 2
    }
    /// Scale of block `b`.
    #[inline]
    pub fn d(&self, b: usize) -> f32 {
        self.ds[2 * b]
    }
    /// `d·Σq` of block `b`.
    #[inline]
    pub fn sum(&self, b: usize) -> f32 {
        self.ds[2 * b + 1]
    }
}

/// Quantizes `x` (a multiple of 32 long) into `out`, reusing its allocations.
pub fn quantize_row_q8(x: &[f32], out: &mut Q8Row) {
    let nb = x.len() / 32;
    out.ds.clear();
    out.qs.clear();
    out.qs.reserve(nb * 32);
    for blk in x.chunks_exact(32) {
        let amax = blk.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
        let mut isum = 0i32;
        for &v in blk {
            // Half away from zero, computed as trunc(|y| + 0.5) so the SIMD twin can match it
            // bit for bit.
            let y = v * inv;
            let q = ((y.abs() + 0.5).trunc().min(127.0) as i32) * if y < 0.0 { -1 } else { 1 };
            isum += q;
            out.qs.push(q as i8);
        }
        out.ds.push(d);
        out.ds.push(d * isum as f32);
    }
}

#[inline]
fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// Σ over blocks of (Q4_0 weight row) · (Q8 activations).
pub fn dot_q4_0_q8(w: &[u8], x: &Q8Row) -> f32 {
    let mut acc = 0f32;
    for (b, blk) in w.chunks_exact(18).enumerate() {
        let d = f16_to_f32(le_u16(blk, 0));
        let qs = &blk[2..18];
        let xq = &x.qs[32 * b..32 * b + 32];
        let mut isum = 0i32;
        for j in 0..16 {
            isum += ((qs[j] & 0x0f) as i32 - 8) * xq[j] as i32;
            isum += ((qs[j] >> 4) as i32 - 8) * xq[j + 16] as i32;
        }
        acc += d * x.d(b) * isum as f32;
    }
    acc
}

/// Σ over blocks of (Q4_1 weight row) · (Q8 activations).
pub fn dot_q4_1_q8(w: &[u8], x: &Q8Row) -> f32 {
    let mut acc = 0f32;
    for (b, blk) in w.chunks_exact(20).enumerate() {
        let d = f16_to_f32(le_u16(blk, 0));
        let m = f16_to_f32(le_u16(blk, 2));
        let qs = &blk[4..20];
        let xq = &x.qs[32 * b..32 * b + 32];
        let mut isum = 0i32;
        for j in 0..16 {
            isum += (qs[j] & 0x0f) as i32 * xq[j] as i32;
            isum += (qs[j] >> 4) as i32 * xq[j + 16] as i32;
        }
        acc += d * x.d(b) * isum as f32 + m * x.sum(b);
    }
    acc
}

/// Σ over blocks of (Q8_0 weight row) · (Q8 activations).
pub fn dot_q8_0_q8(w: &[u8], x: &Q8Row) -> f32 {
    let mut acc = 0f32;
    for (b, blk) in w.chunks_exact(34).enumerate() {
        let d = f16_to_f32(le_u16(blk, 0));
        let xq = &x.qs[32 * b..32 * b + 32];
        let mut isum = 0i32;
        for j in 0..32 {
            isum += (blk[2 + j] as i8) as i32 * xq[j] as i32;
        }
        acc += d * x.d(b) * isum as f32;
    }
    acc
}

/// Dot product of two f32 slices of equal length, with eight independent partial sums so the
/// compiler can vectorise it.
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut tail = 0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    acc.iter().sum::<f32>() + tail
}

/// `scores[t] = q · k[t]` for `scores.len()` rows of `k` (row-major, `q.len()` wide).
pub fn row_dots(q: &[f32], k: &[f32], scores: &mut [f32]) {
    let hd = q.len();
    for (t, sc) in scores.iter_mut().enumerate() {
        *sc = dot_f32(q, &k[t * hd..(t + 1) * hd]);
    }
}

/// `out = Σ_t p[t] · v[t]` over `p.len()` rows of `v` (row-major, `out.len()` wide).
pub fn weighted_rows(p: &[f32], v: &[f32], out: &mut [f32]) {
    let hd = out.len();
    out.fill(0.0);
    for (t, &w) in p.iter().enumerate() {
        axpy(w, &v[t * hd..(t + 1) * hd], out);
    }
}

/// `y += alpha · x`.
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// Dequantizes one weight row of any readable type into `scratch` and dots it with `x`.
///
/// The row length was validated when the matrix was built, so this cannot fail.
pub fn dot_dequant_f32(ty: GgmlType, w: &[u8], x: &[f32], scratch: &mut [f32]) -> f32 {
    let n = x.len();
    if dequantize_into(ty, w, &mut scratch[..n]).is_err() {
        // Unreachable for matrices built through `PackedMatrix::new`, which checks row sizes.
        return f32::NAN;
    }
    dot_f32(&scratch[..n], x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_roundtrip_is_close() {
        let x: Vec<f32> = (0..64)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 3.0)
            .collect();
        let mut q = Q8Row::default();
        quantize_row_q8(&x, &mut q);
        assert_eq!(q.blocks(), 2);
        for (b, blk) in x.chunks(32).enumerate() {
            for (j, v) in blk.iter().enumerate() {
                let back = q.qs[32 * b + j] as f32 * q.d(b);
                assert!((back - v).abs() <= q.d(b) * 0.5 + 1e-6);
            }
        }
    }

    #[test]
    fn zero_block_quantizes_to_zero() {
        let mut q = Q8Row::default();
        quantize_row_q8(&[0.0; 32], &mut q);
        assert_eq!(q.d(0), 0.0);
        assert!(q.qs.iter().all(|&v| v == 0));
    }
}
