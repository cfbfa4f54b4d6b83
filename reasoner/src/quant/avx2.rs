//! AVX2 + FMA + F16C kernels. Each one has a scalar twin in `scalar.rs` that defines its
//! meaning; the property tests in `packed.rs` compare the two.
//!
//! Every function here is a safe `#[target_feature]` function: calling one is `unsafe` only from
//! code not compiled for AVX2, FMA and F16C, and callers check those once through
//! `kernel_isa()`. Memory safety does not depend on the caller: block counts are taken from
//! the slice lengths, never from an argument.

#![allow(unsafe_code)]

use std::arch::x86_64::*;

use super::formats::GgmlType;
use super::scalar::Q8Row;

/// Horizontal sum of eight f32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps(v, 1);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

/// Reads a little-endian f16 at `p` and widens it.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn f16_at(blk: &[u8], at: usize) -> f32 {
    let bits = u16::from_le_bytes([blk[at], blk[at + 1]]);
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// Unpacks 16 bytes of nibbles into 32 bytes in ggml order: low nibbles are weights 0..16,
/// high nibbles weights 16..32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn unpack_nibbles(qs: &[u8]) -> __m256i {
    debug_assert!(qs.len() >= 16);
    // SAFETY: `qs` has at least 16 bytes (callers slice whole blocks); loadu allows any alignment.
    let tmp = unsafe { _mm_loadu_si128(qs.as_ptr() as *const __m128i) };
    let hi = _mm_srli_epi16(tmp, 4);
    _mm256_and_si256(_mm256_set_m128i(hi, tmp), _mm256_set1_epi8(0x0f))
}

/// Loads the 32 quantized activations of block `b`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn load_x(x: &Q8Row, b: usize) -> __m256i {
    let s = &x.qs[32 * b..32 * b + 32];
    // SAFETY: `s` is exactly 32 bytes; loadu allows any alignment.
    unsafe { _mm256_loadu_si256(s.as_ptr() as *const __m256i) }
}

/// Sum of unsigned-byte × signed-byte products of 32 lanes, as eight i32 lanes converted to f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn mul_sum_us8(u: __m256i, s: __m256i) -> __m256 {
    let p16 = _mm256_maddubs_epi16(u, s);
    let p32 = _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
    _mm256_cvtepi32_ps(p32)
}

/// Reads the little-endian u32 at `at` (two f16s side by side).
#[inline]
fn u32_at(blk: &[u8], at: usize) -> i32 {
    i32::from_le_bytes([blk[at], blk[at + 1], blk[at + 2], blk[at + 3]])
}

/// Reads the little-endian u16 at `at` twice: `[h, h]` as one i32.
#[inline]
fn f16_twice(blk: &[u8], at: usize) -> i32 {
    let h = u16::from_le_bytes([blk[at], blk[at + 1]]) as u32;
    (h | (h << 16)) as i32
}

/// Eight f16 → f32: four (a, b) pairs packed as u32s, in lane order a0 b0 a1 b1 a2 b2 a3 b3.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn halves_to_f32(p: [i32; 4]) -> __m256 {
    _mm256_cvtph_ps(_mm_set_epi32(p[3], p[2], p[1], p[0]))
}

/// Loads `[d, s]` of blocks `b..b + 4` of the activations.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn load_ds4(x: &Q8Row, b: usize) -> __m256 {
    let s = &x.ds[2 * b..2 * b + 8];
    // SAFETY: `s` is exactly 8 floats; loadu allows any alignment.
    unsafe { _mm256_loadu_ps(s.as_ptr()) }
}

/// Broadcasts lane `k` of `v` to all eight lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn lane(v: __m256, k: i32) -> __m256 {
    _mm256_permutevar8x32_ps(v, _mm256_set1_epi32(k))
}

/// Sum of the odd lanes of `v`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_odd(v: __m256) -> f32 {
    let odd = _mm256_permutevar8x32_ps(v, _mm256_setr_epi32(1, 3, 5, 7, 1, 3, 5, 7));
    hsum(odd) * 0.5
}

/// Σ over blocks of (4-bit unsigned weights) · (8-bit activations), four blocks per step.
///
/// `BB` is the block size in bytes, `QS` where the nibbles start; `scales(blk)` gives the
/// block's `(d, m)` f16 pair as a u32. Returns (Σ d_w·d_x·Σq·y, Σ m_w·s_x).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_nibbles_q8<const BB: usize, const QS: usize>(
    w: &[u8],
    x: &Q8Row,
    scales: impl Fn(&[u8]) -> i32,
) -> (f32, f32) {
    let nb = (w.len() / BB).min(x.blocks());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut offs = _mm256_setzero_ps();
    let mut b = 0;
    while b + 4 <= nb {
        let blks = &w[BB * b..BB * (b + 4)];
        // Lanes: d0 m0 d1 m1 d2 m2 d3 m3 (weights) times d0 s0 d1 s1 ... (activations).
        let wdm = halves_to_f32([
            scales(&blks[0..]),
            scales(&blks[BB..]),
            scales(&blks[2 * BB..]),
            scales(&blks[3 * BB..]),
        ]);
        let prod = _mm256_mul_ps(wdm, load_ds4(x, b));
        offs = _mm256_add_ps(offs, prod);
        for (k, a) in acc.iter_mut().enumerate() {
            let q = unpack_nibbles(&blks[BB * k + QS..BB * k + QS + 16]);
            let p = mul_sum_us8(q, load_x(x, b + k));
            *a = _mm256_fmadd_ps(lane(prod, 2 * k as i32), p, *a);
        }
        b += 4;
    }
    let mut tail = 0f32;
    let mut tail_off = 0f32;
    while b < nb {
        let blk = &w[BB * b..BB * (b + 1)];
        let wdm = _mm_cvtph_ps(_mm_cvtsi32_si128(scales(blk)));
        let (dw, mw) = (_mm_cvtss_f32(wdm), _mm_cvtss_f32(_mm_movehdup_ps(wdm)));
        let p = mul_sum_us8(unpack_nibbles(&blk[QS..QS + 16]), load_x(x, b));
        tail += dw * x.d(b) * hsum(p);
        tail_off += mw * x.sum(b);
        b += 1;
    }
    let acc = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    (hsum(acc) + tail, hsum_odd(offs) + tail_off)
}

/// AVX2 twin of `scalar::dot_q4_0_q8`.
///
/// Callers outside AVX2 code must check the CPU supports AVX2, FMA and F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q4_0_q8(w: &[u8], x: &Q8Row) -> f32 {
    // (q − 8)·y = q·y − 8·Σy: the "minimum" lane carries d_w, times −8 at the end.
    let (dot, off) = dot_nibbles_q8::<18, 2>(w, x, |blk| f16_twice(blk, 0));
    dot - 8.0 * off
}

/// AVX2 twin of `scalar::dot_q4_1_q8`.
///
/// Callers outside AVX2 code must check the CPU supports AVX2, FMA and F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q4_1_q8(w: &[u8], x: &Q8Row) -> f32 {
    let (dot, off) = dot_nibbles_q8::<20, 4>(w, x, |blk| u32_at(blk, 0));
    dot + off
}

/// AVX2 twin of `scalar::dot_q8_0_q8`.
///
/// Callers outside AVX2 code must check the CPU supports AVX2, FMA and F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q8_0_q8(w: &[u8], x: &Q8Row) -> f32 {
    let nb = (w.len() / 34).min(x.blocks());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut b = 0;
    let signed_dot = |blk: &[u8], b: usize| {
        // SAFETY: blk[2..34] is 32 bytes; loadu allows any alignment.
        let wq = unsafe { _mm256_loadu_si256(blk[2..34].as_ptr() as *const __m256i) };
        let y = load_x(x, b);
        // maddubs wants an unsigned first operand: |w| · (y with w's sign).
        mul_sum_us8(_mm256_sign_epi8(wq, wq), _mm256_sign_epi8(y, wq))
    };
    while b + 4 <= nb {
        let blks = &w[34 * b..34 * (b + 4)];
        let wd = halves_to_f32([
            f16_twice(blks, 0),
            f16_twice(blks, 34),
            f16_twice(blks, 68),
            f16_twice(blks, 102),
        ]);
        let prod = _mm256_mul_ps(wd, load_ds4(x, b));
        for (k, a) in acc.iter_mut().enumerate() {
            let p = signed_dot(&blks[34 * k..34 * (k + 1)], b + k);
            *a = _mm256_fmadd_ps(lane(prod, 2 * k as i32), p, *a);
        }
        b += 4;
    }
    let mut tail = 0f32;
    while b < nb {
        let blk = &w[34 * b..34 * (b + 1)];
        tail += f16_at(blk, 0) * x.d(b) * hsum(signed_dot(blk, b));
        b += 1;
    }
    let acc = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    hsum(acc) + tail
}

/// `out[r · stride] = W[r] · x` for every row `r` of `w` (rows of `row_bytes`, type `ty`,
/// one of Q4_0, Q4_1, Q8_0): one call per chunk instead of one per row.
///
/// Callers outside AVX2 code must check the CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn rows_q8(
    ty: GgmlType,
    w: &[u8],
    row_bytes: usize,
    x: &Q8Row,
    out: &mut [f32],
    stride: usize,
) {
    if row_bytes == 0 {
        return;
    }
    let rows = w.chunks_exact(row_bytes);
    match ty {
        GgmlType::Q4_0 => {
            for (r, row) in rows.enumerate() {
                out[r * stride] = dot_q4_0_q8(row, x);
            }
        }
        GgmlType::Q4_1 => {
            for (r, row) in rows.enumerate() {
                out[r * stride] = dot_q4_1_q8(row, x);
            }
        }
        _ => {
            for (r, row) in rows.enumerate() {
                out[r * stride] = dot_q8_0_q8(row, x);
            }
        }
    }
}

/// AVX2 twin of `scalar::quantize_row_q8`: same rounding (half away from zero), same clamp.
///
/// Callers outside AVX2 code must check the CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn quantize_row_q8(x: &[f32], out: &mut Q8Row) {
    let nb = x.len() / 32;
    out.ds.clear();
    out.qs.clear();
    out.qs.resize(nb * 32, 0);
    let sign_mask = _mm256_set1_ps(-0.0);
    let half = _mm256_set1_ps(0.5);
    for b in 0..nb {
        let blk = &x[32 * b..32 * b + 32];
        // SAFETY: `blk` has 32 floats; four 8-lane loads at 0, 8, 16, 24.
        let v: [__m256; 4] = unsafe {
            [
                _mm256_loadu_ps(blk.as_ptr()),
                _mm256_loadu_ps(blk.as_ptr().add(8)),
                _mm256_loadu_ps(blk.as_ptr().add(16)),
                _mm256_loadu_ps(blk.as_ptr().add(24)),
            ]
        };
        let mut amax = _mm256_setzero_ps();
        for vv in v {
            amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign_mask, vv));
        }
        let m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
        let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        let m1 = _mm_max_ss(m2, _mm_shuffle_ps(m2, m2, 1));
        let d = _mm_cvtss_f32(m1) / 127.0;
        let inv = _mm256_set1_ps(if d > 0.0 { 1.0 / d } else { 0.0 });
        let mut ints = [_mm256_setzero_si256(); 4];
        for (k, vv) in v.into_iter().enumerate() {
            let y = _mm256_mul_ps(vv, inv);
            // round half away from zero: trunc(|y| + 0.5) with y's sign
            let sign = _mm256_and_ps(y, sign_mask);
            let r = _mm256_round_ps(
                _mm256_add_ps(_mm256_andnot_ps(sign_mask, y), half),
                _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC,
            );
            let r = _mm256_min_ps(r, _mm256_set1_ps(127.0));
            ints[k] = _mm256_cvttps_epi32(_mm256_or_ps(r, sign));
        }
        // Sum of the integers.
        let s = _mm256_add_epi32(
            _mm256_add_epi32(ints[0], ints[1]),
            _mm256_add_epi32(ints[2], ints[3]),
        );
        let s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        let s2 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
        let s1 = _mm_add_epi32(s2, _mm_shuffle_epi32(s2, 1));
        let isum = _mm_cvtsi128_si32(s1);
        // Pack 32 i32 → 32 i8 (values are within ±127, so saturation never triggers).
        let p01 = _mm256_packs_epi32(ints[0], ints[1]);
        let p23 = _mm256_packs_epi32(ints[2], ints[3]);
        let p = _mm256_packs_epi16(p01, p23);
        // packs interleaves 128-bit lanes; restore element order.
        let p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        let dst = &mut out.qs[32 * b..32 * b + 32];
        // SAFETY: `dst` is exactly 32 bytes.
        unsafe { _mm256_storeu_si256(dst.as_mut_ptr() as *mut __m256i, p) };
        out.ds.push(d);
        out.ds.push(d * isum as f32);
    }
}

/// AVX2 twin of `scalar::dot_f32`.
///
/// Callers outside AVX2 code must check the CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let mut acc0 = _mm256_setzero_ps();
    let mut acc1 = _mm256_setzero_ps();
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n, so both 8-lane loads at i and i + 8 are inside both slices.
        unsafe {
            let a0 = _mm256_loadu_ps(a.as_ptr().add(i));
            let b0 = _mm256_loadu_ps(b.as_ptr().add(i));
            let a1 = _mm256_loadu_ps(a.as_ptr().add(i + 8));
            let b1 = _mm256_loadu_ps(b.as_ptr().add(i + 8));
            acc0 = _mm256_fmadd_ps(a0, b0, acc0);
            acc1 = _mm256_fmadd_ps(a1, b1, acc1);
        }
        i += 16;
    }
    let mut tail = 0f32;
    while i < n {
        tail += a[i] * b[i];
        i += 1;
    }
    hsum(_mm256_add_ps(acc0, acc1)) + tail
}

/// `scores[t] = q · k[t]` for `scores.len()` rows of `k` (row-major, `q.len()` wide), eight
/// rows at a time with one transposing reduction (AVX2 twin of `scalar::row_dots`).
///
/// Callers outside AVX2 code must check the CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn row_dots(q: &[f32], k: &[f32], scores: &mut [f32]) {
    let hd = q.len();
    let n = scores.len().min(k.len().checked_div(hd).unwrap_or(0));
    if !hd.is_multiple_of(8) {
        for (t, sc) in scores.iter_mut().enumerate().take(n) {
            *sc = dot_f32(q, &k[t * hd..(t + 1) * hd]);
        }
        return;
    }
    let mut t = 0;
    while t + 8 <= n {
        let mut acc = [_mm256_setzero_ps(); 8];
        let mut j = 0;
        while j < hd {
            // SAFETY: j + 8 <= hd (hd is a multiple of 8) and row t + r < n <= k.len() / hd.
            unsafe {
                let qv = _mm256_loadu_ps(q.as_ptr().add(j));
                for (r, a) in acc.iter_mut().enumerate() {
                    let kv = _mm256_loadu_ps(k.as_ptr().add((t + r) * hd + j));
                    *a = _mm256_fmadd_ps(qv, kv, *a);
                }
            }
            j += 8;
        }
        let s01 = _mm256_hadd_ps(acc[0], acc[1]);
        let s23 = _mm256_hadd_ps(acc[2], acc[3]);
        let s45 = _mm256_hadd_ps(acc[4], acc[5]);
        let s67 = _mm256_hadd_ps(acc[6], acc[7]);
        let s0123 = _mm256_hadd_ps(s01, s23);
        let s4567 = _mm256_hadd_ps(s45, s67);
        // Lanes of s0123: r0 r1 r2 r3 (low half) | r0 r1 r2 r3 (high half); add the halves.
        let lo = _mm256_permute2f128_ps(s0123, s4567, 0x20);
        let hi = _mm256_permute2f128_ps(s0123, s4567, 0x31);
        let out = &mut scores[t..t + 8];
        // SAFETY: `out` is exactly 8 floats.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), _mm256_add_ps(lo, hi)) };
        t += 8;
    }
    while t < n {
        scores[t] = dot_f32(q, &k[t * hd..(t + 1) * hd]);
        t += 1;
    }
}

/// `out = Σ_t p[t] · v[t]` over `p.len()` rows of `v` (row-major, `out.len()` wide), with the
/// output held in registers (AVX2 twin of `scalar::weighted_rows`).
///
/// Callers outside AVX2 code must check the CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn weighted_rows(p: &[f32], v: &[f32], out: &mut [f32]) {
    let hd = out.len();
    let n = p.len().min(v.len().checked_div(hd).unwrap_or(0));
    if hd != 64 {
        out.fill(0.0);
        for (t, &w) in p.iter().enumerate().take(n) {
            axpy(w, &v[t * hd..(t + 1) * hd], out);
        }
        return;
    }
    let mut acc = [_mm256_setzero_ps(); 8];
    for (t, &w) in p.iter().enumerate().take(n) {
        let wv = _mm256_set1_ps(w);
        for (j, a) in acc.iter_mut().enumerate() {
            // SAFETY: t < n <= v.len() / 64 and j < 8, so the 8 floats are inside `v`.
            let vv = unsafe { _mm256_loadu_ps(v.as_ptr().add(t * 64 + 8 * j)) };
            *a = _mm256_fmadd_ps(wv, vv, *a);
        }
    }
    for (j, a) in acc.iter().enumerate() {
        // SAFETY: out has 64 floats; 8j + 8 <= 64.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(8 * j), *a) };
    }
}

/// `y += alpha · x` (AVX2 twin of `scalar::axpy`).
///
/// Callers outside AVX2 code must check the CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let a = _mm256_set1_ps(alpha);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, inside both slices.
        unsafe {
            let xv = _mm256_loadu_ps(x.as_ptr().add(i));
            let yv = _mm256_loadu_ps(y.as_ptr().add(i));
            _mm256_storeu_ps(y.as_mut_ptr().add(i), _mm256_fmadd_ps(a, xv, yv));
        }
        i += 8;
    }
    while i < n {
        y[i] += alpha * x[i];
        i += 1;
    }
}

/// Dequantizes a Q4_1 row and dots it with f32 activations, without a scratch row.
///
/// Callers outside AVX2 code must check the CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q4_1_f32(w: &[u8], x: &[f32]) -> f32 {
    let nb = (w.len() / 20).min(x.len() / 32);
    let mut acc = _mm256_setzero_ps();
    for b in 0..nb {
        let blk = &w[20 * b..20 * b + 20];
        let d = _mm256_set1_ps(f16_at(blk, 0));
        let m = _mm256_set1_ps(f16_at(blk, 2));
        let q = unpack_nibbles(&blk[4..20]);
        let xs = &x[32 * b..32 * b + 32];
        acc = fma_block_u8(q, d, m, xs, acc);
    }
    hsum(acc)
}

/// Dequantizes a Q4_0 row and dots it with f32 activations.
///
/// Callers outside AVX2 code must check the CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q4_0_f32(w: &[u8], x: &[f32]) -> f32 {
    let nb = (w.len() / 18).min(x.len() / 32);
    let mut acc = _mm256_setzero_ps();
    for b in 0..nb {
        let blk = &w[18 * b..18 * b + 18];
        let dv = f16_at(blk, 0);
        let q = unpack_nibbles(&blk[2..18]);
        let xs = &x[32 * b..32 * b + 32];
        // (q - 8)·d = q·d + (-8d)
        acc = fma_block_u8(q, _mm256_set1_ps(dv), _mm256_set1_ps(-8.0 * dv), xs, acc);
    }
    hsum(acc)
}

/// acc += Σ (q·d + m) · x over one block of 32 unsigned bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn fma_block_u8(q: __m256i, d: __m256, m: __m256, xs: &[f32], mut acc: __m256) -> __m256 {
    debug_assert!(xs.len() >= 32);
    let lo = _mm256_castsi256_si128(q);
    let hi = _mm256_extracti128_si256(q, 1);
    let parts = [
        _mm256_cvtepu8_epi32(lo),
        _mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)),
        _mm256_cvtepu8_epi32(hi),
        _mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)),
    ];
    for (k, p) in parts.into_iter().enumerate() {
        let wv = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), d, m);
        // SAFETY: xs has 32 floats; 8 * k + 8 <= 32.
        let xv = unsafe { _mm256_loadu_ps(xs.as_ptr().add(8 * k)) };
        acc = _mm256_fmadd_ps(wv, xv, acc);
    }
    acc
}

/// Dequantizes a Q8_0 row and dots it with f32 activations.
///
/// Callers outside AVX2 code must check the CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q8_0_f32(w: &[u8], x: &[f32]) -> f32 {
    let nb = (w.len() / 34).min(x.len() / 32);
    let mut acc = _mm256_setzero_ps();
    for b in 0..nb {
        let blk = &w[34 * b..34 * b + 34];
        let d = _mm256_set1_ps(f16_at(blk, 0));
        let xs = &x[32 * b..32 * b + 32];
        let mut part = _mm256_setzero_ps();
        for k in 0..4 {
            // SAFETY: blk[2 + 8k .. 2 + 8k + 8] is inside the 34-byte block.
            let q8 = unsafe { _mm_loadl_epi64(blk[2 + 8 * k..].as_ptr() as *const __m128i) };
            let wv = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8));
            // SAFETY: xs has 32 floats; 8k + 8 <= 32.
            let xv = unsafe { _mm256_loadu_ps(xs.as_ptr().add(8 * k)) };
            part = _mm256_fmadd_ps(wv, xv, part);
        }
        acc = _mm256_fmadd_ps(part, d, acc);
    }
    hsum(acc)
}
