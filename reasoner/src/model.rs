//! The Llama-family decoder (Llama 2/3, SmolLM2, Qwen2, Qwen2.5) in burn, generic over the
//! backend.
//!
//! Follows Hugging Face `modeling_llama.py` / `modeling_qwen2.py` numerically: RMSNorm in f32,
//! rotate-half RoPE with the configured theta and scaling, grouped-query attention, SwiGLU MLP,
//! optional q/k/v (and o) bias, tied or separate output embedding. Parameter layout follows the
//! checkpoint (`[out, in]` matrices); see `weights.rs` for where names are mapped.

use burn::module::Module;
use burn::tensor::activation::{silu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Int, Tensor, TensorData};

use crate::cache::KvCache;
use crate::config::LlamaConfig;
use crate::error::{Error, Result};
use crate::host::{from_host, is_flex};
use crate::layers::host_f32;
use crate::layers::{Embedding, Linear, RmsNorm};
use crate::quant::attention::{AttnShape, causal_attention, rope_apply, write_kv};

/// RoPE frequencies, computed once from the config.
#[derive(Debug, Clone)]
pub struct Rope {
    /// `head_dim / 2` inverse frequencies, in f32 as transformers computes them.
    inv_freq: Vec<f32>,
    /// cos/sin multiplier (YaRN's attention factor; 1 otherwise).
    scale: f32,
}

impl Rope {
    /// From a config.
    pub fn new(cfg: &LlamaConfig) -> Self {
        let (inv, scale) = cfg.rope_inv_freq();
        Rope {
            inv_freq: inv.into_iter().map(|f| f as f32).collect(),
            scale: scale as f32,
        }
    }

    /// The inverse frequencies.
    pub fn inv_freq(&self) -> &[f32] {
        &self.inv_freq
    }

    /// The cos/sin multiplier.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// Half-width cos and sin tables `[s, head_dim / 2]` (scaled) for `s` positions, where
    /// `pos(p, i)` is position `p`'s position for frequency `i` (the same for every `i` except
    /// under multimodal RoPE).
    fn half_tables(&self, s: usize, pos: impl Fn(usize, usize) -> f32) -> (Vec<f32>, Vec<f32>) {
        let half = self.inv_freq.len();
        let mut cos = vec![0f32; s * half];
        let mut sin = vec![0f32; s * half];
        for p in 0..s {
            for (i, f) in self.inv_freq.iter().enumerate() {
                let a = pos(p, i) * f;
                cos[p * half + i] = a.cos() * self.scale;
                sin[p * half + i] = a.sin() * self.scale;
            }
        }
        (cos, sin)
    }
}

/// Full-width tables `[1, 1, s, head_dim]` (each half repeated) from half-width ones.
pub(crate) fn full_tables<B: Backend>(
    cos: &[f32],
    sin: &[f32],
    s: usize,
    device: &B::Device,
) -> (Tensor<B, 4>, Tensor<B, 4>) {
    let half = cos.len() / s.max(1);
    let widen = |t: &[f32]| -> Vec<f32> {
        t.chunks_exact(half.max(1))
            .flat_map(|row| row.iter().chain(row.iter()).copied())
            .collect()
    };
    (
        Tensor::from_data(TensorData::new(widen(cos), [1, 1, s, 2 * half]), device),
        Tensor::from_data(TensorData::new(widen(sin), [1, 1, s, 2 * half]), device),
    )
}

/// Multimodal rotary positions (Qwen2-VL's M-RoPE) for one prompt: a temporal, height and
/// width position per token, and how the rotary frequencies are split among the three.
#[derive(Debug, Clone, Copy)]
pub struct MultiPositions<'a> {
    /// `[t, h, w]` per prompt token.
    pub ids: &'a [[u32; 3]],
    /// Frequencies per stream (`mrope_section`), summing to `head_dim / 2`.
    pub section: [usize; 3],
}

impl MultiPositions<'_> {
    /// Which of the three streams frequency `i` takes its position from.
    fn stream(&self, i: usize) -> usize {
        let [a, b, _] = self.section;
        if i < a {
            0
        } else if i < a + b {
            1
        } else {
            2
        }
    }
}

/// `x·cos + rotate_half(x)·sin` on `x: [b, heads, s, head_dim]`.
pub(crate) fn apply_rope<B: Backend>(
    x: Tensor<B, 4>,
    cos: &Tensor<B, 4>,
    sin: &Tensor<B, 4>,
) -> Tensor<B, 4> {
    let d = x.dims()[3];
    let half = d / 2;
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.clone().narrow(3, half, half);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos.clone() + rotated * sin.clone()
}

/// Self-attention with grouped-query heads.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// Query projection.
    pub q_proj: Linear<B>,
    /// Key projection.
    pub k_proj: Linear<B>,
    /// Value projection.
    pub v_proj: Linear<B>,
    /// Output projection.
    pub o_proj: Linear<B>,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
}

impl<B: Backend> Attention<B> {
    /// Assembles the block from its projections.
    pub fn new(cfg: &LlamaConfig, q: Linear<B>, k: Linear<B>, v: Linear<B>, o: Linear<B>) -> Self {
        Attention {
            q_proj: q,
            k_proj: k,
            v_proj: v,
            o_proj: o,
            n_heads: cfg.num_attention_heads,
            n_kv_heads: cfg.num_key_value_heads,
            head_dim: cfg.head_dim,
        }
    }

    fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeAt<B>,
        cache: &mut KvCache<B>,
        layer: usize,
    ) -> Tensor<B, 3> {
        let [b, s, _] = x.dims();
        let (nh, nkv, hd) = (self.n_heads, self.n_kv_heads, self.head_dim);
        let q = self.q_proj.forward(x.clone());
        let k = self.k_proj.forward(x.clone());
        let v = self.v_proj.forward(x);
        let out = match rope {
            RopeAt::Host { cos, sin, start } => {
                // CPU backend: RoPE and attention on the host, straight from the cache buffers.
                let device = q.device();
                let mut q = host_f32(q);
                let mut k = host_f32(k);
                let v = host_f32(v);
                rope_apply(&mut q, [b, s, nh, hd], cos, sin);
                rope_apply(&mut k, [b, s, nkv, hd], cos, sin);
                let mut out = vec![0f32; b * s * nh * hd];
                let done = cache.with_host_layer(layer, [b, nkv, hd], s, &device, |kc, vc, cap| {
                    let sh = AttnShape {
                        batch: b,
                        seq: s,
                        heads: nh,
                        kv_heads: nkv,
                        head_dim: hd,
                        start: *start,
                        capacity: cap,
                    };
                    write_kv(kc, &k, sh);
                    write_kv(vc, &v, sh);
                    causal_attention(&q, kc, vc, sh, &mut out);
                });
                match done {
                    Some(()) => from_host(out, [b, s, nh * hd], &device),
                    None => {
                        let t = |v: Vec<f32>, h: usize| {
                            from_host::<B, 4>(v, [b, s, h, hd], &device).swap_dims(1, 2)
                        };
                        self.attend(t(q, nh), t(k, nkv), t(v, nkv), cache, layer)
                    }
                }
            }
            RopeAt::Tables { cos, sin } => {
                let q = apply_rope(q.reshape([b, s, nh, hd]).swap_dims(1, 2), cos, sin);
                let k = apply_rope(k.reshape([b, s, nkv, hd]).swap_dims(1, 2), cos, sin);
                let v = v.reshape([b, s, nkv, hd]).swap_dims(1, 2);
                self.attend(q, k, v, cache, layer)
            }
        };
        self.o_proj.forward(out)
    }

    /// Attention with burn ops on rotated `q, k, v: [b, heads, s, hd]`; returns `[b, s, nh·hd]`.
    fn attend(
        &self,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        cache: &mut KvCache<B>,
        layer: usize,
    ) -> Tensor<B, 3> {
        let [b, _, s, _] = q.dims();
        let (nh, nkv, hd) = (self.n_heads, self.n_kv_heads, self.head_dim);
        let (k, v) = cache.append(layer, k, v);
        let groups = nh / nkv;
        let out = if s == 1 {
            // Decode: one query per head. Group the query heads that share a key/value head
            // and use plain matmuls on the cache views (no copy of the history).
            let q = q.reshape([b, nkv, groups, hd]);
            let scores = q
                .matmul(k.swap_dims(2, 3))
                .mul_scalar(1.0 / (hd as f64).sqrt());
            let probs = softmax(scores, 3);
            probs.matmul(v).reshape([b, nh, 1, hd])
        } else {
            let (k, v) = if groups > 1 {
                (repeat_kv(k, groups), repeat_kv(v, groups))
            } else {
                (k, v)
            };
            attention(
                q,
                k,
                v,
                None,
                None,
                AttentionModuleOptions {
                    scale: None,
                    softcap: None,
                    is_causal: true,
                },
            )
        };
        out.swap_dims(1, 2).reshape([b, s, nh * hd])
    }
}

/// A tensor by name: Hugging Face name, shape, row-major f32 values.
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// How RoPE reaches the attention block: half-width cos/sin tables on the host, for the host
/// kernels (with the cache position the new keys go to), or full-width tables as tensors, for
/// the burn path.
enum RopeAt<B: Backend> {
    Host {
        cos: Vec<f32>,
        sin: Vec<f32>,
        start: usize,
    },
    Tables {
        cos: Tensor<B, 4>,
        sin: Tensor<B, 4>,
    },
}

/// Merges `lin`'s adapter in place.
fn take_merge<B: Backend>(lin: &mut Linear<B>) -> Result<()> {
    let owned = std::mem::replace(lin, Linear::empty());
    *lin = owned.merge_lora()?;
    Ok(())
}

/// `[b, kv, s, d]` → `[b, kv·n, s, d]`, each key/value head repeated for its query group.
fn repeat_kv<B: Backend>(x: Tensor<B, 4>, n: usize) -> Tensor<B, 4> {
    let [b, h, s, d] = x.dims();
    x.unsqueeze_dim::<5>(2)
        .expand([b, h, n, s, d])
        .reshape([b, h * n, s, d])
}

/// SwiGLU feed-forward block.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// Gate projection.
    pub gate_proj: Linear<B>,
    /// Up projection.
    pub up_proj: Linear<B>,
    /// Down projection.
    pub down_proj: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let g = silu(self.gate_proj.forward(x.clone()));
        self.down_proj.forward(g * self.up_proj.forward(x))
    }
}

/// One decoder layer: pre-norm attention and pre-norm MLP with residuals.
#[derive(Module, Debug)]
pub struct DecoderLayer<B: Backend> {
    /// Norm before attention.
    pub input_layernorm: RmsNorm<B>,
    /// Attention block.
    pub self_attn: Attention<B>,
    /// Norm before the MLP.
    pub post_attention_layernorm: RmsNorm<B>,
    /// MLP block.
    pub mlp: Mlp<B>,
}

/// Which positions get logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitsFor {
    /// Only the last position of each sequence (generation).
    Last,
    /// Every position (scoring).
    All,
    /// Positions `from..` of each sequence (training: only the completion's positions, which
    /// keeps the vocabulary-sized head off the prompt).
    From(usize),
}

/// The whole decoder.
#[derive(Module, Debug)]
pub struct Llama<B: Backend> {
    /// Token embedding.
    pub embed_tokens: Embedding<B>,
    /// Decoder layers.
    pub layers: Vec<DecoderLayer<B>>,
    /// Final norm.
    pub norm: RmsNorm<B>,
    /// Output projection; `None` when tied to the embedding.
    pub lm_head: Option<Linear<B>>,
    config: LlamaConfig,
    rope: Rope,
}

impl<B: Backend> Llama<B> {
    /// Assembles a model from loaded parts (see `weights::load_model`).
    pub fn from_parts(
        config: LlamaConfig,
        embed_tokens: Embedding<B>,
        layers: Vec<DecoderLayer<B>>,
        norm: RmsNorm<B>,
        lm_head: Option<Linear<B>>,
    ) -> Self {
        let rope = Rope::new(&config);
        Llama {
            embed_tokens,
            layers,
            norm,
            lm_head,
            config,
            rope,
        }
    }

    /// The model's config.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// The RoPE frequencies in use.
    pub fn rope(&self) -> &Rope {
        &self.rope
    }

    /// Every projection of the decoder layers with its Hugging Face name
    /// (`model.layers.{i}.self_attn.q_proj`, `….mlp.down_proj`, …), for attaching adapters.
    pub fn projections_mut(&mut self) -> Vec<(String, &mut Linear<B>)> {
        let mut out = Vec::with_capacity(self.layers.len() * 7);
        for (i, l) in self.layers.iter_mut().enumerate() {
            let a = &mut l.self_attn;
            for (n, lin) in [
                ("self_attn.q_proj", &mut a.q_proj),
                ("self_attn.k_proj", &mut a.k_proj),
                ("self_attn.v_proj", &mut a.v_proj),
                ("self_attn.o_proj", &mut a.o_proj),
            ] {
                out.push((format!("model.layers.{i}.{n}"), lin));
            }
            let m = &mut l.mlp;
            for (n, lin) in [
                ("mlp.gate_proj", &mut m.gate_proj),
                ("mlp.up_proj", &mut m.up_proj),
                ("mlp.down_proj", &mut m.down_proj),
            ] {
                out.push((format!("model.layers.{i}.{n}"), lin));
            }
        }
        out
    }

    /// Every weight under its Hugging Face name with its shape and f32 values (row-major), as
    /// `model.safetensors` holds them. Adapters must be merged first; packed weights are
    /// dequantized.
    pub fn hf_state_dict(&mut self) -> Result<Vec<NamedTensor>> {
        fn dense<B: Backend>(name: &str, lin: &Linear<B>) -> Result<Vec<NamedTensor>> {
            if lin.lora.is_some() {
                return Err(Error::Config(format!(
                    "{name} still has a LoRA adapter; merge adapters before exporting"
                )));
            }
            let mut out = Vec::new();
            match (&lin.weight, &lin.packed) {
                (Some(w), _) => {
                    let t = w.val();
                    out.push((format!("{name}.weight"), t.dims().to_vec(), host_f32(t)));
                }
                (None, Some(p)) => out.push((
                    format!("{name}.weight"),
                    vec![p.matrix.rows(), p.matrix.cols()],
                    p.matrix.dequantize(),
                )),
                (None, None) => {}
            }
            if let Some(b) = &lin.bias {
                let t = b.val();
                out.push((format!("{name}.bias"), t.dims().to_vec(), host_f32(t)));
            }
            Ok(out)
        }
        let vec1 = |t: Tensor<B, 1>| (t.dims().to_vec(), host_f32(t));
        let mut out = Vec::new();
        let emb = self.embed_tokens.as_linear();
        out.extend(dense("model.embed_tokens", &emb)?);
        for (i, l) in self.layers.iter().enumerate() {
            let (d, v) = vec1(l.input_layernorm.weight.val());
            out.push((format!("model.layers.{i}.input_layernorm.weight"), d, v));
            let (d, v) = vec1(l.post_attention_layernorm.weight.val());
            out.push((
                format!("model.layers.{i}.post_attention_layernorm.weight"),
                d,
                v,
            ));
        }
        for (name, lin) in self.projections_mut() {
            out.extend(dense(&name, lin)?);
        }
        let (d, v) = vec1(self.norm.weight.val());
        out.push(("model.norm.weight".into(), d, v));
        if let Some(head) = &self.lm_head {
            out.extend(dense("lm_head", head)?);
        }
        Ok(out)
    }

    /// Folds every attached LoRA adapter into its dense weight.
    pub fn merge_lora(mut self) -> Result<Self> {
        for l in &mut self.layers {
            let a = &mut l.self_attn;
            for lin in [&mut a.q_proj, &mut a.k_proj, &mut a.v_proj, &mut a.o_proj] {
                take_merge(lin)?;
            }
            let m = &mut l.mlp;
            for lin in [&mut m.gate_proj, &mut m.up_proj, &mut m.down_proj] {
                take_merge(lin)?;
            }
        }
        Ok(self)
    }

    /// An empty cache sized for `capacity` positions.
    pub fn new_cache(&self, capacity: usize) -> KvCache<B> {
        KvCache::new(self.layers.len(), capacity)
    }

    /// Runs `tokens: [batch, seq]` at the cache's position, appends their keys and values to
    /// the cache, and returns logits `[batch, 1 or seq, vocab]`.
    pub fn forward(
        &self,
        tokens: Tensor<B, 2, Int>,
        cache: &mut KvCache<B>,
        logits_for: LogitsFor,
    ) -> Tensor<B, 3> {
        let h = self.embed_tokens.forward(tokens);
        self.forward_embeds(h, cache, logits_for)
    }

    /// Runs input embeddings `h: [batch, seq, hidden]` (token embeddings, or a mix of token and
    /// image embeddings from a vision-language model) at the cache's position, like
    /// [`Llama::forward`].
    pub fn forward_embeds(
        &self,
        h: Tensor<B, 3>,
        cache: &mut KvCache<B>,
        logits_for: LogitsFor,
    ) -> Tensor<B, 3> {
        self.forward_embeds_at(h, cache, logits_for, None)
    }

    /// [`Llama::forward_embeds`] with explicit multimodal rotary positions for the new tokens
    /// (`None`: sequential from the cache's rotary position). After a multimodal prefill the
    /// cache remembers the offset between its length and the next rotary position (Qwen2-VL's
    /// `rope_deltas`), so the tokens generated after it continue from the largest position.
    pub fn forward_embeds_at(
        &self,
        mut h: Tensor<B, 3>,
        cache: &mut KvCache<B>,
        logits_for: LogitsFor,
        positions: Option<MultiPositions<'_>>,
    ) -> Tensor<B, 3> {
        let [_, s, _] = h.dims();
        let device = h.device();
        let start = cache.len();
        let (cos, sin) = match positions {
            Some(mp) if mp.ids.len() == s => {
                let next = mp.ids.iter().flatten().copied().max().map_or(0, |m| m + 1);
                cache.set_rope_offset(i64::from(next) - (start + s) as i64);
                self.rope
                    .half_tables(s, |p, i| mp.ids[p][mp.stream(i)] as f32)
            }
            _ => {
                let first = start as i64 + cache.rope_offset();
                self.rope.half_tables(s, |p, _| (first + p as i64) as f32)
            }
        };
        let rope = if is_flex::<B>() {
            RopeAt::Host { cos, sin, start }
        } else {
            let (cos, sin) = full_tables::<B>(&cos, &sin, s, &device);
            RopeAt::Tables { cos, sin }
        };
        for (i, layer) in self.layers.iter().enumerate() {
            let a =
                layer
                    .self_attn
                    .forward(layer.input_layernorm.forward(h.clone()), &rope, cache, i);
            h = h + a;
            let m = layer
                .mlp
                .forward(layer.post_attention_layernorm.forward(h.clone()));
            h = h + m;
        }
        cache.advance(s);
        let h = match logits_for {
            LogitsFor::Last if s > 1 => h.narrow(1, s - 1, 1),
            LogitsFor::From(from) if from > 0 => h.narrow(1, from.min(s - 1), s - from.min(s - 1)),
            _ => h,
        };
        let h = self.norm.forward(h);
        match &self.lm_head {
            Some(head) => head.forward(h),
            None => self.embed_tokens.as_linear().forward(h),
        }
    }

    /// `forward` from host token ids, checking them against the vocabulary and the context.
    pub fn forward_ids(
        &self,
        ids: &[Vec<u32>],
        cache: &mut KvCache<B>,
        logits_for: LogitsFor,
        device: &B::Device,
    ) -> Result<Tensor<B, 3>> {
        let b = ids.len();
        let s = ids.first().map(|r| r.len()).unwrap_or(0);
        if b == 0 || s == 0 {
            return Err(Error::Generation("no tokens to run".into()));
        }
        if ids.iter().any(|r| r.len() != s) {
            return Err(Error::Generation(
                "all sequences in a batch must have the same length".into(),
            ));
        }
        if let Some(bad) = ids
            .iter()
            .flatten()
            .find(|&&t| t as usize >= self.config.vocab_size)
        {
            return Err(Error::Generation(format!(
                "token id {bad} is outside the vocabulary of {} tokens",
                self.config.vocab_size
            )));
        }
        if cache.batch() != 0 && cache.batch() != b {
            return Err(Error::Generation(format!(
                "batch of {b} sequences does not match the cache's {}",
                cache.batch()
            )));
        }
        let flat: Vec<i64> = ids.iter().flatten().map(|&t| t as i64).collect();
        let tokens = Tensor::<B, 2, Int>::from_data(TensorData::new(flat, [b, s]), device);
        Ok(self.forward(tokens, cache, logits_for))
    }
}
