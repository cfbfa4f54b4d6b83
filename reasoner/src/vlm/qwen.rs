//! Qwen2.5-VL's vision transformer and patch merger in burn, following transformers'
//! `modeling_qwen2_5_vl.py`:
//!
//! - patch embedding: a bias-free 3-D convolution over `[channel, frame, row, col]` patch
//!   vectors, computed as one matrix product (same weights, same sums);
//! - 2-D rotary positions: a quarter of each head's frequencies rotate by the patch's row, the
//!   next quarter by its column (`rope_theta`, 10000 by default), rotate-half as in the LM;
//! - blocks: RMSNorm → attention (fused qkv with bias, no mask) → residual; RMSNorm → SwiGLU
//!   MLP with biases → residual. Blocks named in `fullatt_block_indexes` attend over the whole
//!   image; the others attend within windows of `window_size` pixels, for which the patches
//!   are reordered window by window (in merge units) before the first block;
//! - the merger: RMSNorm, every `merge × merge` group of patch vectors concatenated, then
//!   Linear → GELU (erf) → Linear to the language model's width, and the tokens put back in
//!   image order (rows of merged tokens).
//!
//! Images are encoded one at a time: attention never crosses images, so this gives the same
//! numbers as transformers' packed batch.

use burn::module::{Module, Param};
use burn::tensor::activation::{gelu, silu};
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Int, Tensor, TensorData};

use super::config::QwenVisionConfig;
use super::qwen_processor::Patches;
use super::siglip::Reader;
use crate::error::{Error, Result};
use crate::layers::{Linear, RmsNorm};
use crate::model::{apply_rope, full_tables};

/// One vision block.
#[derive(Module, Debug)]
pub struct QwenVisionBlock<B: Backend> {
    /// Norm before attention.
    pub norm1: RmsNorm<B>,
    /// Fused query/key/value projection `[3·hidden, hidden]`.
    pub qkv: Linear<B>,
    /// Output projection.
    pub proj: Linear<B>,
    /// Norm before the MLP.
    pub norm2: RmsNorm<B>,
    /// SwiGLU gate.
    pub gate_proj: Linear<B>,
    /// SwiGLU up.
    pub up_proj: Linear<B>,
    /// SwiGLU down.
    pub down_proj: Linear<B>,
    /// Attends over the whole image instead of windows.
    full: bool,
}

/// The vision tower with its merger.
#[derive(Module, Debug)]
pub struct QwenVisionTower<B: Backend> {
    /// Patch embedding `[hidden, 3·t·p²]`, no bias.
    pub patch: Linear<B>,
    /// Blocks.
    pub blocks: Vec<QwenVisionBlock<B>>,
    /// The merger's norm.
    pub ln_q: RmsNorm<B>,
    /// The merger's first projection (`mlp.0`).
    pub mlp0: Linear<B>,
    /// The merger's second projection (`mlp.2`) to the language model's width.
    pub mlp2: Linear<B>,
    inv_freq: Vec<f32>,
    heads: usize,
    hidden: usize,
    merge: usize,
    window: usize,
    patch_len: usize,
}

/// The window layout of one image, in merge units (`merge²` consecutive patches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Windows {
    /// Merge units in window order: entry `j` is the unit (in image order) placed at `j`.
    pub order: Vec<usize>,
    /// Patches per window, in window order (empty windows left out).
    pub lengths: Vec<usize>,
}

/// transformers' `get_vision_window_index` for one image of `[t, h, w]` patches: windows of
/// `window × window` merge units, row by row, the image's last row and column of windows
/// partial when the grid does not divide.
pub fn window_layout(grid: [usize; 3], merge: usize, window: usize) -> Windows {
    let [t, h, w] = grid;
    let (lh, lw) = (h / merge, w / merge);
    let (nh, nw) = (lh.div_ceil(window), lw.div_ceil(window));
    let unit = merge * merge;
    let mut order = Vec::with_capacity(t * lh * lw);
    let mut lengths = Vec::new();
    for f in 0..t {
        for wy in 0..nh {
            for wx in 0..nw {
                let before = order.len();
                for y in wy * window..((wy + 1) * window).min(lh) {
                    for x in wx * window..((wx + 1) * window).min(lw) {
                        order.push((f * lh + y) * lw + x);
                    }
                }
                let n = order.len() - before;
                if n > 0 {
                    lengths.push(n * unit);
                }
            }
        }
    }
    Windows { order, lengths }
}

impl<B: Backend> QwenVisionTower<B> {
    /// Loads `<prefix>.patch_embed`, `<prefix>.blocks.*` and `<prefix>.merger`.
    pub(crate) fn load(
        r: &mut Reader<'_, B>,
        cfg: &QwenVisionConfig,
        prefix: &str,
    ) -> Result<Self> {
        let (d, p, t) = (cfg.hidden_size, cfg.patch_size, cfg.temporal_patch_size);
        let k = 3 * t * p * p;
        let conv = r.values(
            &format!("{prefix}.patch_embed.proj.weight"),
            &[d, 3, t, p, p],
            "the patch embedding",
        )?;
        let patch = Linear::dense_batched(
            Tensor::from_data(TensorData::new(conv, [d, k]), r.device),
            None,
        );
        let norm = |r: &mut Reader<'_, B>, name: String, dim: usize| -> Result<RmsNorm<B>> {
            Ok(RmsNorm {
                weight: Param::from_tensor(r.tensor(&name, [dim], "an RMS norm")?),
                eps: 1e-6,
            })
        };
        let inter = cfg.intermediate_size;
        let mut blocks = Vec::with_capacity(cfg.depth);
        for i in 0..cfg.depth {
            let b = format!("{prefix}.blocks.{i}");
            let why = "a vision block";
            blocks.push(QwenVisionBlock {
                norm1: norm(r, format!("{b}.norm1.weight"), d)?,
                qkv: r.linear(&format!("{b}.attn.qkv"), 3 * d, d, true, why)?,
                proj: r.linear(&format!("{b}.attn.proj"), d, d, true, why)?,
                norm2: norm(r, format!("{b}.norm2.weight"), d)?,
                gate_proj: r.linear(&format!("{b}.mlp.gate_proj"), inter, d, true, why)?,
                up_proj: r.linear(&format!("{b}.mlp.up_proj"), inter, d, true, why)?,
                down_proj: r.linear(&format!("{b}.mlp.down_proj"), d, inter, true, why)?,
                full: cfg.fullatt_block_indexes.contains(&i),
            });
        }
        let m = cfg.spatial_merge_size;
        let wide = d * m * m;
        let ln_q = norm(r, format!("{prefix}.merger.ln_q.weight"), d)?;
        let mlp0 = r.linear(
            &format!("{prefix}.merger.mlp.0"),
            wide,
            wide,
            true,
            "the merger",
        )?;
        let mlp2 = r.linear(
            &format!("{prefix}.merger.mlp.2"),
            cfg.out_hidden_size,
            wide,
            true,
            "the merger",
        )?;
        let hd = cfg.head_dim();
        let spatial = hd / 2;
        let theta = cfg.rope_theta();
        let inv_freq = (0..spatial)
            .step_by(2)
            .map(|i| (1.0 / theta.powf(i as f64 / spatial as f64)) as f32)
            .collect();
        Ok(QwenVisionTower {
            patch,
            blocks,
            ln_q,
            mlp0,
            mlp2,
            inv_freq,
            heads: cfg.num_heads,
            hidden: d,
            merge: m,
            window: cfg.merged_window(),
            patch_len: k,
        })
    }

    /// Values per patch vector the tower takes.
    pub fn patch_len(&self) -> usize {
        self.patch_len
    }

    /// Half-width cos/sin tables `[n, head_dim / 2]` for patches at `(row, col)`.
    fn rotary(&self, pos: &[(usize, usize)]) -> (Vec<f32>, Vec<f32>) {
        let q = self.inv_freq.len();
        let mut cos = Vec::with_capacity(pos.len() * 2 * q);
        let mut sin = Vec::with_capacity(pos.len() * 2 * q);
        for &(y, x) in pos {
            for coord in [y, x] {
                for f in &self.inv_freq {
                    // f32 product as transformers computes it.
                    let a = coord as f32 * f;
                    cos.push(a.cos());
                    sin.push(a.sin());
                }
            }
        }
        (cos, sin)
    }

    /// Encodes one preprocessed image to its language-model tokens `[tokens, text hidden]`
    /// (merged, in image order).
    pub fn encode(&self, image: &Patches) -> Result<Tensor<B, 2>> {
        let [t, gh, gw] = image.grid;
        let m = self.merge;
        let n = image.count();
        if image.patch_len != self.patch_len
            || image.pixels.len() != n * self.patch_len
            || n == 0
            || !gh.is_multiple_of(m)
            || !gw.is_multiple_of(m)
        {
            return Err(Error::Generation(format!(
                "{} pixel values for a {t}×{gh}×{gw} patch grid of {}-value patches; the tower \
                 takes {}-value patches on a grid divisible by {m}",
                image.pixels.len(),
                image.patch_len,
                self.patch_len
            )));
        }
        let unit = m * m;
        let win = window_layout(image.grid, m, self.window);
        // Patch rows and their (row, col) positions, reordered window by window.
        let (lh, lw) = (gh / m, gw / m);
        let mut rows = Vec::with_capacity(n * self.patch_len);
        let mut pos = Vec::with_capacity(n);
        for &u in &win.order {
            let src = u * unit * self.patch_len;
            rows.extend_from_slice(&image.pixels[src..src + unit * self.patch_len]);
            let within = u % (lh * lw);
            let (by, bx) = (within / lw, within % lw);
            for my in 0..m {
                for mx in 0..m {
                    pos.push((by * m + my, bx * m + mx));
                }
            }
        }
        let device = self.ln_q.weight.val().device();
        let x = Tensor::<B, 3>::from_data(TensorData::new(rows, [1, n, self.patch_len]), &device);
        let (cos, sin) = self.rotary(&pos);
        let (cos, sin) = full_tables::<B>(&cos, &sin, n, &device);
        let mut h = self.patch.forward(x);
        let whole = [n];
        for b in &self.blocks {
            let segments: &[usize] = if b.full { &whole } else { &win.lengths };
            h = b.forward(h, &cos, &sin, segments, self.heads);
        }
        let d = self.hidden;
        let y = self.ln_q.forward(h).reshape([1, n / unit, d * unit]);
        let y = self.mlp2.forward(gelu(self.mlp0.forward(y)));
        // Back to image order: window position j holds unit order[j].
        let mut back = vec![0i64; win.order.len()];
        for (j, &u) in win.order.iter().enumerate() {
            back[u] = j as i64;
        }
        let tokens = back.len();
        let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(back, [tokens]), &device);
        let [_, _, out] = y.dims();
        Ok(y.reshape([tokens, out]).select(0, idx))
    }
}

impl<B: Backend> QwenVisionBlock<B> {
    fn forward(
        &self,
        x: Tensor<B, 3>,
        cos: &Tensor<B, 4>,
        sin: &Tensor<B, 4>,
        segments: &[usize],
        heads: usize,
    ) -> Tensor<B, 3> {
        let [_, n, d] = x.dims();
        let hd = d / heads;
        let qkv = self
            .qkv
            .forward(self.norm1.forward(x.clone()))
            .reshape([1, n, 3 * heads, hd])
            .swap_dims(1, 2);
        let q = apply_rope(qkv.clone().narrow(1, 0, heads), cos, sin);
        let k = apply_rope(qkv.clone().narrow(1, heads, heads), cos, sin);
        let v = qkv.narrow(1, 2 * heads, heads);
        // Consecutive windows of equal length attend as one batch.
        let mut parts = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < segments.len() {
            let len = segments[i];
            let mut count = 1;
            while i + count < segments.len() && segments[i + count] == len {
                count += 1;
            }
            let batch = |t: &Tensor<B, 4>| {
                t.clone()
                    .narrow(2, start, len * count)
                    .reshape([heads, count, len, hd])
                    .swap_dims(0, 1)
            };
            let a = attention(
                batch(&q),
                batch(&k),
                batch(&v),
                None,
                None,
                AttentionModuleOptions {
                    scale: None,
                    softcap: None,
                    is_causal: false,
                },
            );
            parts.push(a.swap_dims(0, 1).reshape([1, heads, len * count, hd]));
            start += len * count;
            i += count;
        }
        let a = Tensor::cat(parts, 2).swap_dims(1, 2).reshape([1, n, d]);
        let x = x + self.proj.forward(a);
        let y = self.norm2.forward(x.clone());
        let g = silu(self.gate_proj.forward(y.clone())) * self.up_proj.forward(y);
        x + self.down_proj.forward(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_transformers() {
        // 8×12 patches, merge 2 → 4×6 units; windows of 2×2 units: 2×3 windows of 16 patches.
        let w = window_layout([1, 8, 12], 2, 2);
        assert_eq!(w.lengths, vec![16; 6]);
        assert_eq!(&w.order[..8], &[0, 1, 6, 7, 2, 3, 8, 9]);
        // 16×6 patches → 8×3 units: the last column of windows is one unit wide.
        let w = window_layout([1, 16, 6], 2, 2);
        assert_eq!(w.lengths, vec![16, 8, 16, 8, 16, 8, 16, 8]);
        assert_eq!(&w.order[..6], &[0, 1, 3, 4, 2, 5]);
        let mut sorted = w.order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..24).collect::<Vec<_>>());
    }
}
