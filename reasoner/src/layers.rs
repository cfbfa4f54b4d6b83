//! Weight-holding layers shared by the model: a linear projection and an embedding table whose
//! weight is either a dense burn tensor (any backend, autodiff, exact parity) or a
//! [`PackedMatrix`] kept in its file's block format (CPU decode path), and RMSNorm.

use std::sync::Arc;

use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::host::{from_host, is_flex, transposed_storage, with_host, with_transposed_host};
use crate::quant::{ActivationMode, PackedMatrix, dense, dot};

/// How a loaded model keeps its matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightMode {
    /// Dequantize everything to f32 burn tensors: works on every backend and under autodiff,
    /// and is what the parity tests against transformers use.
    #[default]
    Dense,
    /// Keep quantized matrices in their block format and multiply them with the CPU kernels;
    /// `ActivationMode` says whether activations stay f32 (exact) or go to 8 bits (fastest).
    Packed(ActivationMode),
}

/// A packed weight and the activation mode it is multiplied with. Not a burn parameter: it is
/// frozen, shared, and invisible to optimisers and records.
#[derive(Debug, Clone)]
pub struct PackedWeight {
    /// The matrix, `out × in`.
    pub matrix: Arc<PackedMatrix>,
    /// f32 or 8-bit activations.
    pub mode: ActivationMode,
}

/// Row count above which a packed matmul dequantizes the weight and uses the backend's GEMM
/// (prefill); at or below it, the packed matrix-vector kernels run (decode, G samples).
pub const PACKED_GEMV_MAX_ROWS: usize = 16;

/// `y = x Wᵀ + b` with `W` stored `out × in` as in Hugging Face checkpoints.
#[derive(Module, Debug)]
pub struct Linear<B: Backend> {
    /// Dense weight `[out, in]`, when not packed.
    pub weight: Option<Param<Tensor<B, 2>>>,
    /// Optional bias `[out]`.
    pub bias: Option<Param<Tensor<B, 1>>>,
    /// Packed weight, when packed.
    pub packed: Option<PackedWeight>,
    /// A low-rank adapter added to the output, when attached (training, or an unmerged LoRA).
    pub lora: Option<Lora<B>>,
}

/// A LoRA adapter: `Δy = scale · (x Aᵀ) Bᵀ` with `A: [rank, in]`, `B: [out, rank]`,
/// `scale = alpha / rank`.
#[derive(Module, Debug)]
pub struct Lora<B: Backend> {
    /// Down projection `[rank, in]`.
    pub a: Param<Tensor<B, 2>>,
    /// Up projection `[out, rank]` (zero at initialisation, so the adapter starts as a no-op).
    pub b: Param<Tensor<B, 2>>,
    /// `alpha / rank`.
    pub scale: f64,
}

impl<B: Backend> Lora<B> {
    /// The adapter's contribution for `x: [batch, seq, in]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, s, _] = x.dims();
        // Decode on the CPU backend: two thin matrix-vector products on the host, as the dense
        // weights take (burn's matmul packs the right-hand side on every call).
        if b * s <= PACKED_GEMV_MAX_ROWS && is_flex::<B>() {
            let down = dense_gemv_host(x, self.a.val());
            return dense_gemv_host(down, self.b.val()).mul_scalar(self.scale);
        }
        let down = x.matmul(self.a.val().transpose().unsqueeze_dim(0));
        down.matmul(self.b.val().transpose().unsqueeze_dim(0))
            .mul_scalar(self.scale)
    }

    /// Adds the adapter's contribution for the `m` rows `xs: [m, in]` to `out: [m, out]` on the
    /// host, in one pass beside a packed product (no tensors made per call: decode runs this
    /// 210 times per token).
    fn add_host(&self, xs: &[f32], m: usize, out: &mut [f32]) {
        let [rank, inp] = self.a.val().dims();
        let n = out.len() / m.max(1);
        with_host(self.a.val(), |a| {
            with_host(self.b.val(), |b| {
                let mut down = vec![0f32; rank];
                for (x, o) in xs.chunks_exact(inp).zip(out.chunks_exact_mut(n)) {
                    for (d, ar) in down.iter_mut().zip(a.chunks_exact(inp)) {
                        *d = self.scale as f32 * dot(x, ar);
                    }
                    for (y, br) in o.iter_mut().zip(b.chunks_exact(rank)) {
                        *y += dot(br, &down);
                    }
                }
            })
        });
    }

    /// The adapter as a dense `[out, in]` update, `scale · B A`.
    pub fn delta(&self) -> Tensor<B, 2> {
        self.b.val().matmul(self.a.val()).mul_scalar(self.scale)
    }
}

impl<B: Backend> Linear<B> {
    /// A dense linear layer from an `[out, in]` weight.
    pub fn dense(weight: Tensor<B, 2>, bias: Option<Tensor<B, 1>>) -> Self {
        Linear {
            weight: Some(Param::from_tensor(weight)),
            bias: bias.map(Param::from_tensor),
            packed: None,
            lora: None,
        }
    }

    /// A dense layer that mostly sees many rows at once (a vision tower): on the CPU backend
    /// the weight is held transposed in memory, so the GEMM reads a contiguous right-hand side
    /// (1.2–2× faster for large products, measured); a few rows still take a host kernel.
    /// The logical weight is the same `[out, in]` tensor.
    pub fn dense_batched(weight: Tensor<B, 2>, bias: Option<Tensor<B, 1>>) -> Self {
        Self::dense(transposed_storage(weight), bias)
    }

    /// A layer with no weight (a placeholder while a layer is moved out and back).
    pub(crate) fn empty() -> Self {
        Linear {
            weight: None,
            bias: None,
            packed: None,
            lora: None,
        }
    }

    /// A packed linear layer.
    pub fn packed(
        matrix: Arc<PackedMatrix>,
        mode: ActivationMode,
        bias: Option<Tensor<B, 1>>,
    ) -> Self {
        Linear {
            weight: None,
            bias: bias.map(Param::from_tensor),
            packed: Some(PackedWeight { matrix, mode }),
            lora: None,
        }
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        match (&self.weight, &self.packed) {
            (Some(w), _) => w.val().dims()[0],
            (None, Some(p)) => p.matrix.rows(),
            (None, None) => 0,
        }
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        match (&self.weight, &self.packed) {
            (Some(w), _) => w.val().dims()[1],
            (None, Some(p)) => p.matrix.cols(),
            (None, None) => 0,
        }
    }

    /// Folds an attached adapter into the dense weight (`W + scale·BA`) and drops it; a no-op
    /// without one. Errors on packed weights, which cannot absorb an update.
    pub fn merge_lora(mut self) -> crate::Result<Self> {
        let Some(lora) = self.lora.take() else {
            return Ok(self);
        };
        match self.weight.take() {
            Some(w) => {
                let merged = w.val() + lora.delta();
                self.weight = Some(Param::from_tensor(merged));
                Ok(self)
            }
            None => Err(crate::Error::Config(
                "cannot merge a LoRA adapter into a packed (quantized) weight; load the model \
                 with dense weights"
                    .into(),
            )),
        }
    }

    /// Applies the layer to `x: [batch, seq, in]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, s, _] = x.dims();
        // Decode on the CPU backend with packed weights: the adapter is added inside the packed
        // product's host pass. Elsewhere (GEMM sizes, dense weights, autodiff) as tensors.
        let fused = self.packed.is_some()
            && self.weight.is_none()
            && b * s <= PACKED_GEMV_MAX_ROWS
            && is_flex::<B>();
        let delta = match &self.lora {
            Some(l) if !fused => Some(l.forward(x.clone())),
            _ => None,
        };
        let y = match (&self.weight, &self.packed) {
            // Decode-sized inputs on the CPU backend: a matrix-vector product straight from the
            // weight buffer (the GEMM path packs the whole transposed weight on every call).
            (Some(w), _) if b * s <= PACKED_GEMV_MAX_ROWS && is_flex::<B>() => {
                dense_gemv_host(x, w.val())
            }
            (Some(w), _) => x.matmul(w.val().transpose().unsqueeze_dim(0)),
            (None, Some(p)) => packed_forward(x, p, self.lora.as_ref().filter(|_| fused)),
            (None, None) => x, // unreachable: constructors always set one of the two
        };
        let y = match &self.bias {
            Some(b) => y + b.val().unsqueeze::<3>(),
            None => y,
        };
        match delta {
            Some(d) => y + d,
            None => y,
        }
    }
}

/// Runs a packed matmul: small row counts through the host kernels, large ones by dequantizing
/// into a temporary dense weight for the backend's GEMM.
/// With `lora`, only on the host path: its update is added in the same pass.
fn packed_forward<B: Backend>(
    x: Tensor<B, 3>,
    p: &PackedWeight,
    lora: Option<&Lora<B>>,
) -> Tensor<B, 3> {
    let [b, s, k] = x.dims();
    let m = b * s;
    let w = &p.matrix;
    let device = x.device();
    if m > PACKED_GEMV_MAX_ROWS {
        let dense = Tensor::<B, 2>::from_data(
            TensorData::new(w.dequantize(), [w.rows(), w.cols()]),
            &device,
        );
        return x.matmul(dense.transpose().unsqueeze_dim(0));
    }
    let mut out = vec![0f32; m * w.rows()];
    with_host(x, |host| {
        debug_assert_eq!(host.len(), m * k);
        w.matmul(host, m, p.mode, &mut out);
        if let Some(l) = lora {
            l.add_host(host, m, &mut out);
        }
    });
    from_host(out, [b, s, w.rows()], &device)
}

/// `x: [b, s, in]` times `w: [out, in]`ᵀ on the host, rows spread over the kernel pool.
fn dense_gemv_host<B: Backend>(x: Tensor<B, 3>, w: Tensor<B, 2>) -> Tensor<B, 3> {
    let [b, s, k] = x.dims();
    let [rows, cols] = w.dims();
    let m = b * s;
    let device = x.device();
    let mut out = vec![0f32; m * rows];
    let done = with_transposed_host(&w, |wt| {
        with_host(x.clone(), |xs| {
            debug_assert_eq!(k, cols);
            dense::matmul_transposed(xs, wt, [m, rows, cols], &mut out);
        })
    });
    if done.is_none() {
        with_host(x, |xs| {
            with_host(w, |ws| {
                dense::matmul_rows(xs, ws, [m, rows, cols], &mut out)
            })
        });
    }
    from_host(out, [b, s, rows], &device)
}

/// The tensor's values on the host as f32.
pub(crate) fn host_f32<B: Backend, const D: usize>(x: Tensor<B, D>) -> Vec<f32> {
    with_host(x, |s| s.to_vec())
}

/// Token embedding table `[vocab, hidden]`.
#[derive(Module, Debug)]
pub struct Embedding<B: Backend> {
    /// Dense table.
    pub weight: Option<Param<Tensor<B, 2>>>,
    /// Packed table (rows dequantized on lookup).
    pub packed: Option<PackedWeight>,
}

impl<B: Backend> Embedding<B> {
    /// Looks up `ids: [batch, seq]` → `[batch, seq, hidden]`.
    pub fn forward(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        match (&self.weight, &self.packed) {
            (Some(w), _) => burn::tensor::module::embedding(w.val(), ids),
            (None, Some(p)) => {
                let [b, s] = ids.dims();
                let device = ids.device();
                let ids: Vec<i64> = ids
                    .into_data()
                    .convert::<i64>()
                    .into_vec::<i64>()
                    .unwrap_or_default();
                let h = p.matrix.cols();
                let mut out = vec![0f32; b * s * h];
                for (id, row) in ids.iter().zip(out.chunks_exact_mut(h)) {
                    // Ids were range-checked by the caller (`Llama::forward`).
                    let _ = p.matrix.dequantize_row(*id as usize, row);
                }
                Tensor::from_data(TensorData::new(out, [b, s, h]), &device)
            }
            (None, None) => Tensor::zeros([0, 0, 0], &ids.device()),
        }
    }

    /// The table as the output projection of a tied model.
    pub fn as_linear(&self) -> Linear<B> {
        Linear {
            weight: self.weight.clone(),
            bias: None,
            packed: self.packed.clone(),
            lora: None,
        }
    }
}

/// Root-mean-square layer norm, computed in f32 as Hugging Face's `LlamaRMSNorm` does.
#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    /// Per-channel gain.
    pub weight: Param<Tensor<B, 1>>,
    /// Added to the mean square before the square root.
    pub eps: f64,
}

impl<B: Backend> RmsNorm<B> {
    /// Normalises the last dimension of `x`.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let ms = x.clone().square().mean_dim(D - 1);
        let inv = ms.add_scalar(self.eps).sqrt().recip();
        x * inv * self.weight.val().unsqueeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Cpu;
    use burn::tensor::TensorData;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0
                    - 1.0
            })
            .collect()
    }

    /// A rank-`rank` adapter for an `out × inp` layer with deterministic factors.
    fn test_lora(out: usize, inp: usize, rank: usize, seed: u32, scale: f64) -> Lora<Cpu> {
        let dev = Default::default();
        let matrix = |rows: usize, cols: usize, seed: u32| {
            Param::from_tensor(Tensor::from_data(
                TensorData::new(values(rows * cols, seed), [rows, cols]),
                &dev,
            ))
        };
        Lora {
            a: matrix(rank, inp, seed),
            b: matrix(out, rank, seed + 1),
            scale,
        }
    }

    /// `forward(x)` against `x · Wᵀ` for `x` of 1…many rows: the largest relative error.
    fn worst_rel_err(
        inp: usize,
        rows: &[usize],
        w: &Tensor<Cpu, 2>,
        forward: impl Fn(Tensor<Cpu, 3>) -> Tensor<Cpu, 3>,
    ) -> Vec<(usize, f32)> {
        let dev = Default::default();
        rows.iter()
            .map(|&n| {
                let x = Tensor::<Cpu, 3>::from_data(
                    TensorData::new(values(n * inp, 5), [1, n, inp]),
                    &dev,
                );
                let got = host_f32(forward(x.clone()));
                let want = host_f32(x.matmul(w.clone().transpose().unsqueeze_dim(0)));
                let worst = got
                    .iter()
                    .zip(&want)
                    .map(|(g, w)| (g - w).abs() / (1.0 + w.abs()))
                    .fold(0f32, f32::max);
                (n, worst)
            })
            .collect()
    }

    #[test]
    fn lora_host_decode_equals_the_dense_update() {
        let lora = test_lora(48, 40, 8, 3, 2.5);
        // One to many rows: the host kernel below PACKED_GEMV_MAX_ROWS, burn's GEMM above.
        let rows = [1, 5, PACKED_GEMV_MAX_ROWS + 3];
        for (n, worst) in worst_rel_err(40, &rows, &lora.delta(), |x| lora.forward(x)) {
            assert!(worst < 1e-5, "rows {n}: {worst}");
        }
    }

    #[test]
    fn a_packed_layer_adds_its_adapter_in_the_host_pass() {
        let dev = Default::default();
        let (out, inp, rank) = (48, 64, 4);
        // Q8_0 rows: per 32 values an f16 scale (2^-7) and 32 signed bytes.
        let mut data = Vec::new();
        for (i, v) in values(out * inp, 6).iter().enumerate() {
            if i % 32 == 0 {
                data.extend_from_slice(&[0x00, 0x20]);
            }
            data.push(((v * 120.0) as i8) as u8);
        }
        let matrix = Arc::new(
            PackedMatrix::new(crate::quant::GgmlType::Q8_0, out, inp, data).expect("valid rows"),
        );
        let dense =
            Tensor::<Cpu, 2>::from_data(TensorData::new(matrix.dequantize(), [out, inp]), &dev);
        let mut layer = Linear::<Cpu>::packed(matrix, ActivationMode::F32, None);
        let lora = test_lora(out, inp, rank, 7, 0.5);
        let w = dense + lora.delta();
        layer.lora = Some(lora);
        let rows = [1, 3, PACKED_GEMV_MAX_ROWS + 1];
        for (n, worst) in worst_rel_err(inp, &rows, &w, |x| layer.forward(x)) {
            assert!(worst < 1e-5, "rows {n}: {worst}");
        }
    }

    #[test]
    fn transposed_storage_gives_the_same_layer() {
        let dev = Default::default();
        let (out, inp) = (72, 40);
        let w =
            || Tensor::<Cpu, 2>::from_data(TensorData::new(values(out * inp, 1), [out, inp]), &dev);
        let b = || Tensor::<Cpu, 1>::from_data(TensorData::new(values(out, 2), [out]), &dev);
        let plain = Linear::dense(w(), Some(b()));
        let batched = Linear::dense_batched(w(), Some(b()));
        // The logical weight is unchanged.
        assert_eq!(
            host_f32(plain.weight.as_ref().unwrap().val()),
            host_f32(batched.weight.as_ref().unwrap().val())
        );
        // A few rows (host kernel) and many rows (GEMM).
        for rows in [1, 3, 40] {
            let x = Tensor::<Cpu, 3>::from_data(
                TensorData::new(values(rows * inp, 3), [1, rows, inp]),
                &dev,
            );
            let a = host_f32(plain.forward(x.clone()));
            let c = host_f32(batched.forward(x));
            let e = a
                .iter()
                .zip(&c)
                .map(|(p, q)| (p - q).abs())
                .fold(0f32, f32::max);
            assert!(e < 1e-5, "{rows} rows: off by {e}");
        }
    }
}
