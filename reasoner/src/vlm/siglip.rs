//! The SigLIP vision transformer of the Idefics3 family and its pixel-shuffle connector, in
//! burn, following transformers' `modeling_idefics3.py` / `modeling_smolvlm.py`:
//!
//! - patch embedding: a stride-`p` convolution, computed as a matrix product over
//!   `3·p·p`-long patch vectors (same weights, same sums);
//! - learned position embeddings (tiles are always full, so position `i` is patch `i`);
//! - pre-norm encoder layers: LayerNorm → bidirectional multi-head attention (q/k/v/out with
//!   bias) → residual; LayerNorm → `fc1` → GELU (tanh approximation) → `fc2` → residual;
//! - a final LayerNorm;
//! - the connector: pixel shuffle by `scale_factor` (each `s×s` block of patch vectors becomes
//!   one vector `s²` times wider) and a bias-free projection to the language model's width.

use burn::module::{Module, Param};
use burn::tensor::activation::gelu;
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Tensor, TensorData};

use rayon::prelude::*;

use super::config::VisionConfig;
use crate::error::{Error, Result};
use crate::host::{is_flex, with_flex_mut, with_host};
use crate::layers::Linear;
use crate::layers::host_f32;
use crate::weights::SafetensorsSet;

/// LayerNorm with weight and bias over the last dimension (biased variance, as PyTorch).
#[derive(Module, Debug)]
pub struct LayerNorm<B: Backend> {
    /// Gain.
    pub weight: Param<Tensor<B, 1>>,
    /// Bias.
    pub bias: Param<Tensor<B, 1>>,
    /// Added to the variance.
    pub eps: f64,
}

impl<B: Backend> LayerNorm<B> {
    /// Normalises the last dimension: on the CPU backend one parallel pass per row (mean and
    /// variance in f32 as PyTorch computes them), elsewhere burn ops.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        if is_flex::<B>() {
            let dims = x.dims();
            let d = dims[D - 1];
            let w = host_f32(self.weight.val());
            let b = host_f32(self.bias.val());
            let eps = self.eps as f32;
            let device = x.device();
            let out = with_host(x, |xs| {
                let mut out = vec![0f32; xs.len()];
                out.par_chunks_mut(d)
                    .zip(xs.par_chunks(d))
                    .for_each(|(o, r)| {
                        let mean = r.iter().sum::<f32>() / d as f32;
                        let var = r.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
                        let inv = 1.0 / (var + eps).sqrt();
                        for (((o, x), w), b) in o.iter_mut().zip(r).zip(&w).zip(&b) {
                            *o = (x - mean) * inv * w + b;
                        }
                    });
                out
            });
            return Tensor::from_data(TensorData::new(out, dims), &device);
        }
        let mean = x.clone().mean_dim(D - 1);
        let xc = x - mean;
        let var = xc.clone().square().mean_dim(D - 1);
        let inv = var.add_scalar(self.eps).sqrt().recip();
        xc * inv * self.weight.val().unsqueeze() + self.bias.val().unsqueeze()
    }
}

/// One encoder layer.
#[derive(Module, Debug)]
pub struct EncoderLayer<B: Backend> {
    /// Norm before attention.
    pub layer_norm1: LayerNorm<B>,
    /// Query projection.
    pub q_proj: Linear<B>,
    /// Key projection.
    pub k_proj: Linear<B>,
    /// Value projection.
    pub v_proj: Linear<B>,
    /// Output projection.
    pub out_proj: Linear<B>,
    /// Norm before the MLP.
    pub layer_norm2: LayerNorm<B>,
    /// MLP up.
    pub fc1: Linear<B>,
    /// MLP down.
    pub fc2: Linear<B>,
    heads: usize,
    tanh_gelu: bool,
}

/// √(2/π).
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// PyTorch's `gelu(approximate="tanh")` on one value, in f32 as PyTorch computes it.
fn gelu_tanh_scalar(x: f32) -> f32 {
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
}

/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`, PyTorch's `gelu(approximate="tanh")`. On the
/// CPU backend one parallel pass over the buffer, in place; elsewhere burn ops.
fn gelu_tanh<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let x = if is_flex::<B>() {
        match with_flex_mut(x, |buf| {
            buf.par_chunks_mut(1 << 14)
                .for_each(|c| c.iter_mut().for_each(|v| *v = gelu_tanh_scalar(*v)))
        }) {
            Ok((t, ())) => return t,
            Err(t) => t,
        }
    } else {
        x
    };
    let cube = x.clone() * x.clone() * x.clone();
    let inner = (x.clone() + cube.mul_scalar(0.044_715)).mul_scalar(f64::from(SQRT_2_OVER_PI));
    x.mul_scalar(0.5) * (inner.tanh().add_scalar(1.0))
}

impl<B: Backend> EncoderLayer<B> {
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [n, s, d] = x.dims();
        let (h, hd) = (self.heads, d / self.heads);
        let y = self.layer_norm1.forward(x.clone());
        let split = |t: Tensor<B, 3>| t.reshape([n, s, h, hd]).swap_dims(1, 2);
        let q = split(self.q_proj.forward(y.clone()));
        let k = split(self.k_proj.forward(y.clone()));
        let v = split(self.v_proj.forward(y));
        let a = attention(
            q,
            k,
            v,
            None,
            None,
            AttentionModuleOptions {
                scale: None,
                softcap: None,
                is_causal: false,
            },
        );
        let a = a.swap_dims(1, 2).reshape([n, s, d]);
        let x = x + self.out_proj.forward(a);
        let y = self.fc1.forward(self.layer_norm2.forward(x.clone()));
        let y = if self.tanh_gelu {
            gelu_tanh(y)
        } else {
            gelu(y)
        };
        x + self.fc2.forward(y)
    }
}

/// The vision tower and the connector.
#[derive(Module, Debug)]
pub struct SiglipTower<B: Backend> {
    /// Patch embedding as a `[hidden, 3·p·p]` projection with bias.
    pub patch: Linear<B>,
    /// Position embeddings `[patches, hidden]`.
    pub positions: Param<Tensor<B, 2>>,
    /// Encoder layers.
    pub layers: Vec<EncoderLayer<B>>,
    /// Final norm.
    pub post_layernorm: LayerNorm<B>,
    /// Connector projection `[text_hidden, hidden·s²]`, no bias.
    pub projection: Linear<B>,
    patch_size: usize,
    tile: usize,
    scale: usize,
}

/// Reads named tensors with shape checks, remembering which were used.
pub(crate) struct Reader<'a, B: Backend> {
    pub set: &'a SafetensorsSet,
    pub device: &'a B::Device,
    pub used: Vec<String>,
}

impl<B: Backend> Reader<'_, B> {
    pub fn values(&mut self, name: &str, shape: &[usize], needed_for: &str) -> Result<Vec<f32>> {
        let (found, v) = self
            .set
            .read_f32(name)?
            .ok_or_else(|| Error::MissingTensor {
                name: name.to_string(),
                needed_for: needed_for.to_string(),
            })?;
        if found != shape {
            return Err(Error::ShapeMismatch {
                name: name.to_string(),
                expected: shape.to_vec(),
                found,
            });
        }
        self.used.push(name.to_string());
        Ok(v)
    }

    pub fn tensor<const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
        needed_for: &str,
    ) -> Result<Tensor<B, D>> {
        let v = self.values(name, &shape, needed_for)?;
        Ok(Tensor::from_data(TensorData::new(v, shape), self.device))
    }

    pub fn linear(
        &mut self,
        prefix: &str,
        out: usize,
        inp: usize,
        bias: bool,
        needed_for: &str,
    ) -> Result<Linear<B>> {
        let w = self.tensor(&format!("{prefix}.weight"), [out, inp], needed_for)?;
        let b = if bias {
            Some(self.tensor(&format!("{prefix}.bias"), [out], needed_for)?)
        } else {
            None
        };
        Ok(Linear::dense_batched(w, b))
    }

    pub fn layer_norm(&mut self, prefix: &str, dim: usize, eps: f64) -> Result<LayerNorm<B>> {
        Ok(LayerNorm {
            weight: Param::from_tensor(self.tensor(
                &format!("{prefix}.weight"),
                [dim],
                "a layer norm",
            )?),
            bias: Param::from_tensor(self.tensor(
                &format!("{prefix}.bias"),
                [dim],
                "a layer norm",
            )?),
            eps,
        })
    }
}

impl<B: Backend> SiglipTower<B> {
    /// Loads `model.vision_model.*` and `model.connector.*` for a language model of width
    /// `text_hidden`.
    pub(crate) fn load(
        r: &mut Reader<'_, B>,
        cfg: &VisionConfig,
        scale: usize,
        text_hidden: usize,
    ) -> Result<Self> {
        let (d, p) = (cfg.hidden_size, cfg.patch_size);
        let pre = "model.vision_model";
        let conv = r.values(
            &format!("{pre}.embeddings.patch_embedding.weight"),
            &[d, 3, p, p],
            "the patch embedding",
        )?;
        let conv = Tensor::from_data(TensorData::new(conv, [d, 3 * p * p]), r.device);
        let conv_b = r.tensor(
            &format!("{pre}.embeddings.patch_embedding.bias"),
            [d],
            "the patch embedding",
        )?;
        let n = cfg.patches_per_side() * cfg.patches_per_side();
        let positions = r.tensor(
            &format!("{pre}.embeddings.position_embedding.weight"),
            [n, d],
            "the position embedding",
        )?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = format!("{pre}.encoder.layers.{i}");
            let why = "a vision encoder layer";
            layers.push(EncoderLayer {
                layer_norm1: r.layer_norm(&format!("{l}.layer_norm1"), d, cfg.layer_norm_eps)?,
                q_proj: r.linear(&format!("{l}.self_attn.q_proj"), d, d, true, why)?,
                k_proj: r.linear(&format!("{l}.self_attn.k_proj"), d, d, true, why)?,
                v_proj: r.linear(&format!("{l}.self_attn.v_proj"), d, d, true, why)?,
                out_proj: r.linear(&format!("{l}.self_attn.out_proj"), d, d, true, why)?,
                layer_norm2: r.layer_norm(&format!("{l}.layer_norm2"), d, cfg.layer_norm_eps)?,
                fc1: r.linear(&format!("{l}.mlp.fc1"), cfg.intermediate_size, d, true, why)?,
                fc2: r.linear(&format!("{l}.mlp.fc2"), d, cfg.intermediate_size, true, why)?,
                heads: cfg.num_attention_heads,
                tanh_gelu: cfg.hidden_act != "gelu",
            });
        }
        let post_layernorm =
            r.layer_norm(&format!("{pre}.post_layernorm"), d, cfg.layer_norm_eps)?;
        let projection = r.linear(
            "model.connector.modality_projection.proj",
            text_hidden,
            d * scale * scale,
            false,
            "the connector",
        )?;
        Ok(SiglipTower {
            patch: Linear::dense_batched(conv, Some(conv_b)),
            positions: Param::from_tensor(positions),
            layers,
            post_layernorm,
            projection,
            patch_size: p,
            tile: cfg.image_size,
            scale,
        })
    }

    /// The tile edge the tower expects.
    pub fn tile(&self) -> usize {
        self.tile
    }

    /// Encodes `count` tiles (`count × 3 × tile × tile`, channel-first) to the tower's output
    /// `[count, patches, hidden]` (after the final norm).
    pub fn encode(&self, pixels: &[f32], count: usize) -> Result<Tensor<B, 3>> {
        let (t, p) = (self.tile, self.patch_size);
        if pixels.len() != count * 3 * t * t || count == 0 {
            return Err(Error::Generation(format!(
                "{} pixel values for {count} tiles; expected {count} × 3 × {t} × {t}",
                pixels.len()
            )));
        }
        let side = t / p;
        let k = 3 * p * p;
        // Patch vectors in the convolution weight's order: channel, row, column.
        let mut patches = vec![0f32; count * side * side * k];
        for n in 0..count {
            let img = &pixels[n * 3 * t * t..(n + 1) * 3 * t * t];
            for py in 0..side {
                for px in 0..side {
                    let o = ((n * side + py) * side + px) * k;
                    let dst = &mut patches[o..o + k];
                    for c in 0..3 {
                        for y in 0..p {
                            let src = c * t * t + (py * p + y) * t + px * p;
                            dst[(c * p + y) * p..(c * p + y + 1) * p]
                                .copy_from_slice(&img[src..src + p]);
                        }
                    }
                }
            }
        }
        let device = self.positions.val().device();
        let x =
            Tensor::<B, 3>::from_data(TensorData::new(patches, [count, side * side, k]), &device);
        let mut h = self.patch.forward(x) + self.positions.val().unsqueeze_dim(0);
        for l in &self.layers {
            h = l.forward(h);
        }
        Ok(self.post_layernorm.forward(h))
    }

    /// The connector: pixel shuffle and projection, `[count, patches, hidden]` →
    /// `[count, patches / s², text_hidden]`.
    pub fn connect(&self, h: Tensor<B, 3>) -> Tensor<B, 3> {
        let [n, seq, d] = h.dims();
        let s = self.scale;
        let side = (seq as f64).sqrt().round() as usize;
        let x = h
            .reshape([n, side, side / s, d * s])
            .swap_dims(1, 2)
            .reshape([n, side / s, side / s, d * s * s])
            .swap_dims(1, 2)
            .reshape([n, seq / (s * s), d * s * s]);
        self.projection.forward(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Cpu;

    #[test]
    fn gelu_tanh_matches_the_formula() {
        let dev = Default::default();
        let xs = [-3.0f32, -0.5, 0.0, 0.7, 2.5];
        let t = Tensor::<Cpu, 1>::from_data(TensorData::new(xs.to_vec(), [5]), &dev);
        let got = gelu_tanh(t)
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .unwrap();
        for (x, g) in xs.iter().zip(got) {
            let x = *x as f64;
            let want = 0.5
                * x
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh());
            assert!((g as f64 - want).abs() < 1e-6, "{x}: {g} vs {want}");
        }
    }

    #[test]
    fn gelu_host_and_tensor_paths_agree() {
        let dev = Default::default();
        let xs: Vec<f32> = (0..64).map(|i| (i as f32 - 32.0) / 7.0).collect();
        let t = Tensor::<Cpu, 1>::from_data(TensorData::new(xs.clone(), [64]), &dev);
        let host = gelu_tanh(t)
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .unwrap();
        let a =
            Tensor::<burn::backend::Autodiff<Cpu>, 1>::from_data(TensorData::new(xs, [64]), &dev);
        let ops = gelu_tanh(a)
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .unwrap();
        for (h, o) in host.iter().zip(&ops) {
            assert!((h - o).abs() < 1e-6, "{h} vs {o}");
        }
    }

    #[test]
    fn layer_norm_normalises() {
        let dev = Default::default();
        let ln = LayerNorm::<Cpu> {
            weight: Param::from_tensor(Tensor::from_data(
                TensorData::new(vec![1.0f32; 4], [4]),
                &dev,
            )),
            bias: Param::from_tensor(Tensor::from_data(
                TensorData::new(vec![0.5f32; 4], [4]),
                &dev,
            )),
            eps: 0.0,
        };
        let x =
            Tensor::<Cpu, 2>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 4]), &dev);
        let y = ln
            .forward(x)
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .unwrap();
        let want = [-1.341_640_8f32, -0.447_213_6, 0.447_213_6, 1.341_640_8];
        for (a, b) in y.iter().zip(want) {
            assert!((a - (b + 0.5)).abs() < 1e-5, "{y:?}");
        }
    }
}
