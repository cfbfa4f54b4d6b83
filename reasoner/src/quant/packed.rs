//! `PackedMatrix`: a weight matrix kept in its file's block format, multiplied without
//! expanding it to f32.

#![allow(unsafe_code)]

use std::cell::RefCell;

use super::formats::{GgmlType, dequantize_into};
use super::pool::{SharedSlice, worker_pool};
use super::scalar::{self, Q8Row, quantize_row_q8};
use super::{KernelIsa, kernel_isa};
use crate::error::{Error, Result};

/// How activations meet packed weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ActivationMode {
    /// f32 activations times weights dequantized on the fly: the same numbers as a dense f32
    /// matmul up to summation order.
    #[default]
    F32,
    /// Activations quantized to 8 bits per block of 32 and integer dot products (what llama.cpp
    /// does): fastest, and moves logits by about 1e-2.
    Q8,
}

/// A `rows × cols` weight matrix (rows = output features) stored row by row in a ggml type.
#[derive(Clone)]
pub struct PackedMatrix {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    data: Vec<u8>,
}

impl std::fmt::Debug for PackedMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PackedMatrix({} {}x{})",
            self.ty.name(),
            self.rows,
            self.cols
        )
    }
}

/// Output rows per dequantization task.
const ROWS_PER_CHUNK: usize = 32;

/// Output rows per matmul task: long contiguous runs of weight memory (the hardware
/// prefetcher needs a few KB to ramp up), with four tasks per thread so a thread that got
/// interrupted does not hold up the others.
fn rows_per_chunk(rows: usize, threads: usize) -> usize {
    rows.div_ceil(threads.max(1) * 4)
        .next_multiple_of(8)
        .max(16)
}

impl PackedMatrix {
    /// Wraps `data`, which must hold exactly `rows` rows of `cols` weights of type `ty`.
    pub fn new(ty: GgmlType, rows: usize, cols: usize, data: Vec<u8>) -> Result<Self> {
        let row_bytes = ty.bytes_for(cols).ok_or_else(|| {
            Error::Config(format!(
                "a row of {cols} weights is not a whole number of {} blocks ({} weights each)",
                ty.name(),
                ty.block_len()
            ))
        })?;
        let need = row_bytes.checked_mul(rows).ok_or_else(|| {
            Error::Config(format!(
                "matrix {rows}x{cols} of {} is too large",
                ty.name()
            ))
        })?;
        if data.len() != need {
            return Err(Error::Config(format!(
                "matrix {rows}x{cols} of {} takes {need} bytes, got {}",
                ty.name(),
                data.len()
            )));
        }
        Ok(PackedMatrix {
            ty,
            rows,
            cols,
            row_bytes,
            data,
        })
    }

    /// The storage type.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }
    /// Output features.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Input features.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Bytes held.
    pub fn size_bytes(&self) -> usize {
        self.data.len()
    }
    /// Raw bytes of row `r` (`r < rows`).
    pub fn row(&self, r: usize) -> &[u8] {
        &self.data[r * self.row_bytes..(r + 1) * self.row_bytes]
    }

    /// Returns a copy with rows reordered: new row `i` is old row `order[i]`.
    pub fn permute_rows(&self, order: &[usize]) -> Result<Self> {
        if order.len() != self.rows || order.iter().any(|&r| r >= self.rows) {
            return Err(Error::Config(format!(
                "row permutation of length {} does not fit a matrix of {} rows",
                order.len(),
                self.rows
            )));
        }
        let mut data = Vec::with_capacity(self.data.len());
        for &r in order {
            data.extend_from_slice(self.row(r));
        }
        PackedMatrix::new(self.ty, self.rows, self.cols, data)
    }

    /// Dequantizes the whole matrix, row-major `rows × cols`.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        self.dequantize_into(&mut out);
        out
    }

    /// Dequantizes the whole matrix into `out` (`rows × cols`), spread over the kernel pool.
    pub fn dequantize_into(&self, out: &mut [f32]) {
        let out = SharedSlice::new(&mut out[..self.rows * self.cols]);
        let chunks = self.rows.div_ceil(ROWS_PER_CHUNK * 4);
        worker_pool().run(chunks, &|c| {
            let r0 = c * ROWS_PER_CHUNK * 4;
            let r1 = (r0 + ROWS_PER_CHUNK * 4).min(self.rows);
            // SAFETY: chunk c owns rows r0..r1, disjoint from every other chunk's.
            let dst = unsafe { out.range(r0 * self.cols, r1 * self.cols) };
            for (r, d) in (r0..r1).zip(dst.chunks_exact_mut(self.cols)) {
                // Row sizes were validated in `new`.
                let _ = dequantize_into(self.ty, self.row(r), d);
            }
        });
    }

    /// Dequantizes row `r` into `out` (`cols` long).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) -> Result<()> {
        if r >= self.rows {
            return Err(Error::Generation(format!(
                "row {r} out of range for a matrix of {} rows",
                self.rows
            )));
        }
        dequantize_into(self.ty, self.row(r), out)
    }

    /// `out[i][r] = Σ_k x[i][k] · W[r][k]` for `m` activation rows: `x` is `m × cols`, `out`
    /// is `m × rows`, both row-major.
    pub fn matmul(&self, x: &[f32], m: usize, mode: ActivationMode, out: &mut [f32]) {
        let (rows, cols) = (self.rows, self.cols);
        assert_eq!(x.len(), m * cols, "activation shape");
        assert_eq!(out.len(), m * rows, "output shape");
        let use_q8 = mode == ActivationMode::Q8
            && matches!(self.ty, GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0);
        let isa = kernel_isa();
        Q8_SCRATCH.with(|cell| {
            let mut q8 = cell.borrow_mut();
            if use_q8 {
                q8.resize_with(m, Q8Row::default);
                for (i, row) in x.chunks_exact(cols).enumerate() {
                    quantize_q8(isa, row, &mut q8[i]);
                }
            }
            let q8: &[Q8Row] = &q8;
            // Results are written transposed (row-major `rows × m`) so each chunk owns one
            // contiguous range; m = 1 needs no transpose.
            let mut tmp = Vec::new();
            let dst: &mut [f32] = if m == 1 {
                &mut *out
            } else {
                tmp = TRANSPOSE_SCRATCH.with(|t| std::mem::take(&mut *t.borrow_mut()));
                tmp.resize(rows * m, 0.0);
                &mut tmp
            };
            let shared = SharedSlice::new(dst);
            let per_chunk = rows_per_chunk(rows, worker_pool().threads());
            let chunks = rows.div_ceil(per_chunk);
            worker_pool().run(chunks, &|c| {
                let r0 = c * per_chunk;
                let r1 = (r0 + per_chunk).min(rows);
                // SAFETY: chunk c owns outputs r0..r1 (times m), disjoint from other chunks.
                let o = unsafe { shared.range(r0 * m, r1 * m) };
                if use_q8 {
                    let w = &self.data[r0 * self.row_bytes..r1 * self.row_bytes];
                    for (i, xi) in q8.iter().enumerate().take(m) {
                        rows_q8(isa, self.ty, w, self.row_bytes, xi, &mut o[i..], m);
                    }
                } else {
                    DEQUANT_SCRATCH.with(|s| {
                        let mut s = s.borrow_mut();
                        s.resize(cols, 0.0);
                        for r in r0..r1 {
                            let w = self.row(r);
                            for i in 0..m {
                                let xi = &x[i * cols..(i + 1) * cols];
                                o[(r - r0) * m + i] = dot_f32_act(isa, self.ty, w, xi, &mut s);
                            }
                        }
                    });
                }
            });
            if m > 1 {
                for r in 0..rows {
                    for i in 0..m {
                        out[i * rows + r] = tmp[r * m + i];
                    }
                }
                TRANSPOSE_SCRATCH.with(|t| *t.borrow_mut() = tmp);
            }
        });
    }
}

thread_local! {
    static Q8_SCRATCH: RefCell<Vec<Q8Row>> = const { RefCell::new(Vec::new()) };
    static TRANSPOSE_SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static DEQUANT_SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Quantizes one activation row to 8 bits.
#[inline]
fn quantize_q8(isa: KernelIsa, x: &[f32], out: &mut Q8Row) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `KernelIsa::Avx2` is only chosen when AVX2, FMA and F16C were detected.
        KernelIsa::Avx2 => unsafe { super::avx2::quantize_row_q8(x, out) },
        _ => quantize_row_q8(x, out),
    }
}

/// `out[r · stride] = W[r] · x` for the rows of `w` (a whole number of rows).
#[inline]
fn rows_q8(
    isa: KernelIsa,
    ty: GgmlType,
    w: &[u8],
    row_bytes: usize,
    x: &Q8Row,
    out: &mut [f32],
    stride: usize,
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `KernelIsa::Avx2` is only chosen when AVX2, FMA and F16C were detected.
        KernelIsa::Avx2 => unsafe { super::avx2::rows_q8(ty, w, row_bytes, x, out, stride) },
        _ => {
            for (r, row) in w.chunks_exact(row_bytes).enumerate() {
                out[r * stride] = dot_q8(isa, ty, row, x);
            }
        }
    }
}

/// One weight row times one quantized activation row.
#[inline]
fn dot_q8(isa: KernelIsa, ty: GgmlType, w: &[u8], x: &Q8Row) -> f32 {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `KernelIsa::Avx2` is only chosen when AVX2, FMA and F16C were detected.
        KernelIsa::Avx2 => unsafe {
            match ty {
                GgmlType::Q4_0 => super::avx2::dot_q4_0_q8(w, x),
                GgmlType::Q4_1 => super::avx2::dot_q4_1_q8(w, x),
                _ => super::avx2::dot_q8_0_q8(w, x),
            }
        },
        _ => match ty {
            GgmlType::Q4_0 => scalar::dot_q4_0_q8(w, x),
            GgmlType::Q4_1 => scalar::dot_q4_1_q8(w, x),
            _ => scalar::dot_q8_0_q8(w, x),
        },
    }
}

/// One weight row times one f32 activation row.
#[inline]
fn dot_f32_act(isa: KernelIsa, ty: GgmlType, w: &[u8], x: &[f32], scratch: &mut [f32]) -> f32 {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `KernelIsa::Avx2` is only chosen when AVX2, FMA and F16C were detected.
        KernelIsa::Avx2 => unsafe {
            match ty {
                GgmlType::Q4_0 => super::avx2::dot_q4_0_f32(w, x),
                GgmlType::Q4_1 => super::avx2::dot_q4_1_f32(w, x),
                GgmlType::Q8_0 => super::avx2::dot_q8_0_f32(w, x),
                _ => {
                    let n = x.len();
                    if dequantize_into(ty, w, &mut scratch[..n]).is_err() {
                        return f32::NAN;
                    }
                    super::avx2::dot_f32(&scratch[..n], x)
                }
            }
        },
        _ => scalar::dot_dequant_f32(ty, w, x, scratch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Random but valid blocks: finite f16 scales in a sane range.
    fn random_matrix(ty: GgmlType, rows: usize, cols: usize, seed: u64) -> PackedMatrix {
        let mut state = seed | 1;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let row_bytes = ty.bytes_for(cols).unwrap();
        let mut data = vec![0u8; row_bytes * rows];
        for b in data.iter_mut() {
            *b = next() as u8;
        }
        let f16 = |v: f32| half::f16::from_f32(v).to_bits().to_le_bytes();
        for blk in data.chunks_exact_mut(ty.block_bytes()) {
            let scale = ((next() % 1000) as f32 + 1.0) / 20000.0;
            match ty {
                GgmlType::Q4_0 | GgmlType::Q8_0 => blk[0..2].copy_from_slice(&f16(scale)),
                GgmlType::Q4_1 => {
                    blk[0..2].copy_from_slice(&f16(scale));
                    blk[2..4].copy_from_slice(&f16(-scale * 8.0));
                }
                GgmlType::Q4_K => {
                    blk[0..2].copy_from_slice(&f16(scale));
                    blk[2..4].copy_from_slice(&f16(scale / 4.0));
                }
                GgmlType::Q6_K => blk[208..210].copy_from_slice(&f16(scale / 16.0)),
                GgmlType::F16 => blk.copy_from_slice(&f16(scale - 0.025)),
                GgmlType::BF16 => blk
                    .copy_from_slice(&half::bf16::from_f32(scale - 0.025).to_bits().to_le_bytes()),
                GgmlType::F32 => blk.copy_from_slice(&(scale - 0.025).to_le_bytes()),
            }
        }
        PackedMatrix::new(ty, rows, cols, data).unwrap()
    }

    fn reference(w: &PackedMatrix, x: &[f32], m: usize) -> Vec<f64> {
        let dense = w.dequantize();
        let mut out = vec![0f64; m * w.rows()];
        for i in 0..m {
            for r in 0..w.rows() {
                out[i * w.rows() + r] = (0..w.cols())
                    .map(|k| dense[r * w.cols() + k] as f64 * x[i * w.cols() + k] as f64)
                    .sum();
            }
        }
        out
    }

    const ALL: [GgmlType; 8] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// The f32-activation path (whatever ISA runs it) equals dequantize-then-dot in f64.
        #[test]
        fn f32_path_matches_dense_reference(
            ty_i in 0usize..8, rows in 1usize..80, blocks in 1usize..5, m in 1usize..4, seed in any::<u64>()
        ) {
            let ty = ALL[ty_i];
            let cols = blocks * 256;
            let w = random_matrix(ty, rows, cols, seed);
            let x: Vec<f32> = (0..m * cols).map(|i| ((i * 7919 + seed as usize) % 2001) as f32 / 1000.0 - 1.0).collect();
            let mut out = vec![0f32; m * rows];
            w.matmul(&x, m, ActivationMode::F32, &mut out);
            let want = reference(&w, &x, m);
            for (o, r) in out.iter().zip(&want) {
                prop_assert!((*o as f64 - r).abs() <= 1e-4 * (1.0 + r.abs()), "{} {} vs {}", ty.name(), o, r);
            }
        }

        /// SIMD and scalar Q8 kernels agree (same integer sums; float rounding only).
        #[test]
        fn q8_simd_matches_scalar(ty_i in 3usize..6, blocks in 1usize..40, seed in any::<u64>()) {
            let ty = ALL[ty_i];
            let cols = blocks * 32;
            let w = random_matrix(ty, 1, cols, seed);
            let x: Vec<f32> = (0..cols).map(|i| ((i * 104729 + seed as usize) % 997) as f32 / 300.0 - 1.6).collect();
            let mut q = Q8Row::default();
            quantize_row_q8(&x, &mut q);
            let s = dot_q8(KernelIsa::Scalar, ty, w.row(0), &q);
            let v = dot_q8(kernel_isa(), ty, w.row(0), &q);
            prop_assert!((s - v).abs() <= 1e-4 * (1.0 + s.abs()), "{} scalar {} simd {}", ty.name(), s, v);
        }

        /// The f32 SIMD kernels agree with the scalar dequantize-and-dot twin.
        #[test]
        fn f32_simd_matches_scalar(ty_i in 0usize..8, blocks in 1usize..6, seed in any::<u64>()) {
            let ty = ALL[ty_i];
            let cols = blocks * 256;
            let w = random_matrix(ty, 1, cols, seed);
            let x: Vec<f32> = (0..cols).map(|i| ((i * 31 + seed as usize) % 513) as f32 / 256.0 - 1.0).collect();
            let mut scratch = vec![0f32; cols];
            let s = dot_f32_act(KernelIsa::Scalar, ty, w.row(0), &x, &mut scratch);
            let v = dot_f32_act(kernel_isa(), ty, w.row(0), &x, &mut scratch);
            prop_assert!((s - v).abs() <= 1e-4 * (1.0 + s.abs()), "{} scalar {} simd {}", ty.name(), s, v);
        }
    }

    proptest! {
        /// SIMD quantization of activations is bit-identical to the scalar definition.
        #[test]
        fn q8_quantization_simd_matches_scalar(blocks in 1usize..8, seed in any::<u64>(), zero_block in any::<bool>()) {
            let mut x: Vec<f32> = (0..blocks * 32)
                .map(|i| (((i as u64).wrapping_mul(6364136223846793005) ^ seed) % 20001) as f32 / 1000.0 - 10.0)
                .collect();
            if zero_block {
                x[..32].fill(0.0);
            }
            x[3] = 0.5 * x[1]; // exercise ties after scaling now and then
            let mut a = Q8Row::default();
            let mut b = Q8Row::default();
            quantize_row_q8(&x, &mut a);
            quantize_q8(kernel_isa(), &x, &mut b);
            prop_assert_eq!(&a.qs, &b.qs);
            for (p, q) in a.ds.iter().zip(&b.ds) {
                prop_assert!((p - q).abs() <= 1e-6 * p.abs().max(1e-6), "{} vs {}", p, q);
            }
        }
    }

    #[test]
    fn q8_path_is_close_to_exact() {
        let w = random_matrix(GgmlType::Q4_1, 64, 576, 7);
        let x: Vec<f32> = (0..2 * 576)
            .map(|i| ((i * 13) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let mut exact = vec![0f32; 2 * 64];
        let mut fast = vec![0f32; 2 * 64];
        w.matmul(&x, 2, ActivationMode::F32, &mut exact);
        w.matmul(&x, 2, ActivationMode::Q8, &mut fast);
        let scale = exact.iter().fold(0f32, |a, v| a.max(v.abs()));
        for (e, f) in exact.iter().zip(&fast) {
            assert!((e - f).abs() <= 0.02 * scale, "{e} vs {f}");
        }
    }

    #[test]
    fn bad_sizes_are_errors() {
        assert!(PackedMatrix::new(GgmlType::Q4_1, 2, 64, vec![0; 79]).is_err());
        assert!(PackedMatrix::new(GgmlType::Q4_1, 2, 63, vec![0; 80]).is_err());
        let w = random_matrix(GgmlType::Q8_0, 3, 32, 1);
        assert!(w.permute_rows(&[0, 1]).is_err());
        assert!(w.permute_rows(&[0, 1, 3]).is_err());
        let p = w.permute_rows(&[2, 0, 1]).unwrap();
        assert_eq!(p.row(0), w.row(2));
    }
}
