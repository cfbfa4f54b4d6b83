//! The CPU backend's host kernels: block-quantized weights (the ggml block formats, their
//! dequantization, the packed matrix-times-activations products), the dense products and the
//! attention block that the decode path runs on.
//!
//! Layout of this module (the "one small room" for the crate's SIMD and the unsafe code that
//! goes with it; the rest of the crate denies `unsafe_code`, except `mmap.rs`):
//! - `formats`: the ggml types, block sizes and the scalar dequantizers that define their meaning;
//! - `encode`: the quantizers (ggml's reference rounding) for writing GGUF files;
//! - `scalar`: plain dot-product kernels, the twins every SIMD kernel is tested against;
//! - `avx2`: AVX2 kernels chosen at run time by feature detection;
//! - `pool`: a tiny persistent pool of spinning worker threads (a rayon region costs ~50x more
//!   than a decode-sized matvec can afford), and `SharedSlice`, the disjoint output ranges its
//!   workers write;
//! - `packed`: `PackedMatrix`, a weight kept in its file's block format, and its matmul;
//! - `dense`: f32 activations times a dense f32 weight (either layout), spread over the pool;
//! - `attention`: RoPE in place and causal grouped-query attention over the KV-cache buffers.

pub(crate) mod attention;
pub(crate) mod dense;
mod encode;
mod formats;
mod packed;
mod pool;
mod scalar;

#[cfg(target_arch = "x86_64")]
mod avx2;

pub use encode::quantize;
pub use formats::{GgmlType, SUPPORTED_TYPES, dequantize_into, f16_to_f32};
pub use packed::{ActivationMode, PackedMatrix};
pub(crate) use pool::{SharedSlice, init_pool};
pub use pool::{WorkerPool, worker_pool};
pub use scalar::{Q8Row, quantize_row_q8};

/// Which kernel family the running CPU gets; chosen once at first use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelIsa {
    /// Portable Rust; the reference meaning of every kernel.
    Scalar,
    /// x86-64 with AVX2 + FMA + F16C.
    Avx2,
}

/// The kernel family this CPU runs (AVX2 when available, else scalar).
///
/// `EMBODIED_R_KERNELS=scalar` forces the scalar kernels (for debugging and A/B timing).
pub fn kernel_isa() -> KernelIsa {
    static ISA: std::sync::OnceLock<KernelIsa> = std::sync::OnceLock::new();
    *ISA.get_or_init(|| {
        if std::env::var("EMBODIED_R_KERNELS").is_ok_and(|v| v == "scalar") {
            return KernelIsa::Scalar;
        }
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
            {
                return KernelIsa::Avx2;
            }
        }
        KernelIsa::Scalar
    })
}

/// Dot product of two f32 slices (SIMD where available).
#[inline]
#[allow(unsafe_code)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    match kernel_isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Avx2` is only chosen when AVX2, FMA and F16C were detected.
        KernelIsa::Avx2 => unsafe { avx2::dot_f32(a, b) },
        _ => scalar::dot_f32(a, b),
    }
}

/// `y += alpha · x` (SIMD where available).
#[inline]
#[allow(unsafe_code)]
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    match kernel_isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Avx2` is only chosen when AVX2, FMA and F16C were detected.
        KernelIsa::Avx2 => unsafe { avx2::axpy(alpha, x, y) },
        _ => scalar::axpy(alpha, x, y),
    }
}

/// `scores[t] = q · k[t]` for `scores.len()` rows of `k` (row-major, `q.len()` wide).
#[inline]
#[allow(unsafe_code)]
pub fn row_dots(q: &[f32], k: &[f32], scores: &mut [f32]) {
    match kernel_isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Avx2` is only chosen when AVX2, FMA and F16C were detected.
        KernelIsa::Avx2 => unsafe { avx2::row_dots(q, k, scores) },
        _ => scalar::row_dots(q, k, scores),
    }
}

/// `out = Σ_t p[t] · v[t]` over `p.len()` rows of `v` (row-major, `out.len()` wide).
#[inline]
#[allow(unsafe_code)]
pub fn weighted_rows(p: &[f32], v: &[f32], out: &mut [f32]) {
    match kernel_isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Avx2` is only chosen when AVX2, FMA and F16C were detected.
        KernelIsa::Avx2 => unsafe { avx2::weighted_rows(p, v, out) },
        _ => scalar::weighted_rows(p, v, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The SIMD attention helpers agree with their scalar twins on odd lengths and widths.
        #[test]
        fn attention_helpers_match_scalar(hd_i in 0usize..4, n in 0usize..40, seed in any::<u32>()) {
            let hd = [8usize, 16, 64, 12][hd_i];
            let f = |i: usize| (((i as u32).wrapping_mul(2654435761) ^ seed) % 2001) as f32 / 1000.0 - 1.0;
            let q: Vec<f32> = (0..hd).map(f).collect();
            let k: Vec<f32> = (0..n * hd).map(|i| f(i + 7)).collect();
            let mut a = vec![0f32; n];
            let mut b = vec![0f32; n];
            row_dots(&q, &k, &mut a);
            scalar::row_dots(&q, &k, &mut b);
            for (x, y) in a.iter().zip(&b) {
                prop_assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()));
            }
            let mut o1 = vec![1f32; hd];
            let mut o2 = vec![2f32; hd];
            weighted_rows(&b, &k, &mut o1);
            scalar::weighted_rows(&b, &k, &mut o2);
            for (x, y) in o1.iter().zip(&o2) {
                prop_assert!((x - y).abs() <= 1e-3 * (1.0 + y.abs()));
            }
        }
    }
}
