//! Block-quantized weights: the ggml block formats, their dequantization, and the packed
//! matrix-times-activations kernels the CPU decode path runs on.
//!
//! Layout of this module (the "one small room" for unsafe and SIMD):
//! - `formats`: the ggml types, block sizes and the scalar dequantizers that define their meaning;
//! - `scalar`: plain dot-product kernels, the twins every SIMD kernel is tested against;
//! - `avx2`: AVX2 kernels chosen at run time by feature detection;
//! - `pool`: a tiny persistent pool of spinning worker threads (a rayon region costs ~50x more
//!   than a decode-sized matvec can afford);
//! - `packed`: `PackedMatrix`, a weight kept in its file's block format, and its matmul.

mod formats;
mod packed;
mod pool;
mod scalar;

#[cfg(target_arch = "x86_64")]
mod avx2;

pub use formats::{GgmlType, SUPPORTED_TYPES, dequantize_into, f16_to_f32};
pub use packed::{ActivationMode, PackedMatrix};
pub(crate) use pool::init_pool;
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
