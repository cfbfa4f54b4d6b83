//! AVX2 + FMA + F16C kernels. Each one has a scalar twin in `scalar.rs` that defines its
//! meaning; the property tests in `packed.rs` compare the two.
//!
//! Every function here is a safe `#[target_feature]` function: calling one is `unsafe` only from
//! code not compiled for AVX2, FMA and F16C, and callers check those once through
//! `kernel_isa()`. Memory safety does not depend on the caller: block counts are taken from
//! the slice lengths, never from an argument.

#![allow(unsafe_code)]

use std::arch::x86_64::*;

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

/// AVX2 twin of `scalar::dot_q4_0_q8`.
///
/// Callers outside AVX2 code must check the CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q4_0_q8(w: &[u8], x: &Q8Row) -> f32 {
    let nb = (w.len() / 18).min(x.blocks());
    let mut acc = _mm256_setzero_ps();
    let mut offset = 0f32;
    for b in 0..nb {
        let blk = &w[18 * b..18 * b + 18];
        let dw = f16_at(blk, 0);
        let q = unpack_nibbles(&blk[2..18]);
        let p = mul_sum_us8(q, load_x(x, b));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * x.d[b]), p, acc);
        // (q - 8)·y = q·y - 8·Σy
        offset -= 8.0 * dw * x.sum[b];
    }
    hsum(acc) + offset
}

/// AVX2 twin of `scalar::dot_q4_1_q8`.
///
/// Callers outside AVX2 code must check the CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q4_1_q8(w: &[u8], x: &Q8Row) -> f32 {
    let nb = (w.len() / 20).min(x.blocks());
    let mut acc = _mm256_setzero_ps();
    let mut offset = 0f32;
    for b in 0..nb {
        let blk = &w[20 * b..20 * b + 20];
        let dw = f16_at(blk, 0);
        let m = f16_at(blk, 2);
        let q = unpack_nibbles(&blk[4..20]);
        let p = mul_sum_us8(q, load_x(x, b));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * x.d[b]), p, acc);
        offset += m * x.sum[b];
    }
    hsum(acc) + offset
}

/// AVX2 twin of `scalar::dot_q8_0_q8`.
///
/// Callers outside AVX2 code must check the CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q8_0_q8(w: &[u8], x: &Q8Row) -> f32 {
    let nb = (w.len() / 34).min(x.blocks());
    let mut acc = _mm256_setzero_ps();
    for b in 0..nb {
        let blk = &w[34 * b..34 * b + 34];
        let dw = f16_at(blk, 0);
        // SAFETY: blk[2..34] is 32 bytes; loadu allows any alignment.
        let wq = unsafe { _mm256_loadu_si256(blk[2..34].as_ptr() as *const __m256i) };
        let y = load_x(x, b);
        // maddubs wants an unsigned first operand: |w| · (y with w's sign).
        let p = mul_sum_us8(_mm256_sign_epi8(wq, wq), _mm256_sign_epi8(y, wq));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * x.d[b]), p, acc);
    }
    hsum(acc)
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
