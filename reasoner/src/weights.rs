//! Loading checkpoints into [`Llama`]: the one place that knows tensor names (Hugging Face and
//! GGUF), GGUF's Q/K row order for Llama, and the shape checks.
//!
//! Every failure names the tensor: missing, unexpected, wrong shape (both shapes), or a type we
//! cannot read.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::module::Param;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use memmap2::Mmap;

use crate::config::{Architecture, LlamaConfig};
use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use crate::layers::{Embedding, Linear, RmsNorm, WeightMode};
use crate::model::{Attention, DecoderLayer, Llama, Mlp};
use crate::quant::{ActivationMode, GgmlType, PackedMatrix, dequantize_into};

/// A part of the model that has a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Embed,
    FinalNorm,
    LmHead,
    AttnNorm,
    Q,
    K,
    V,
    O,
    QBias,
    KBias,
    VBias,
    OBias,
    MlpNorm,
    Gate,
    Up,
    Down,
}

/// The naming scheme of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    HuggingFace,
    Gguf,
}

/// The tensor name of `part` (of `layer`, where it has one) in `scheme`.
fn tensor_name(scheme: Scheme, part: Part, layer: usize) -> String {
    use Part::*;
    match scheme {
        Scheme::HuggingFace => {
            let l = format!("model.layers.{layer}");
            match part {
                Embed => "model.embed_tokens.weight".into(),
                FinalNorm => "model.norm.weight".into(),
                LmHead => "lm_head.weight".into(),
                AttnNorm => format!("{l}.input_layernorm.weight"),
                Q => format!("{l}.self_attn.q_proj.weight"),
                K => format!("{l}.self_attn.k_proj.weight"),
                V => format!("{l}.self_attn.v_proj.weight"),
                O => format!("{l}.self_attn.o_proj.weight"),
                QBias => format!("{l}.self_attn.q_proj.bias"),
                KBias => format!("{l}.self_attn.k_proj.bias"),
                VBias => format!("{l}.self_attn.v_proj.bias"),
                OBias => format!("{l}.self_attn.o_proj.bias"),
                MlpNorm => format!("{l}.post_attention_layernorm.weight"),
                Gate => format!("{l}.mlp.gate_proj.weight"),
                Up => format!("{l}.mlp.up_proj.weight"),
                Down => format!("{l}.mlp.down_proj.weight"),
            }
        }
        Scheme::Gguf => {
            let l = format!("blk.{layer}");
            match part {
                Embed => "token_embd.weight".into(),
                FinalNorm => "output_norm.weight".into(),
                LmHead => "output.weight".into(),
                AttnNorm => format!("{l}.attn_norm.weight"),
                Q => format!("{l}.attn_q.weight"),
                K => format!("{l}.attn_k.weight"),
                V => format!("{l}.attn_v.weight"),
                O => format!("{l}.attn_output.weight"),
                QBias => format!("{l}.attn_q.bias"),
                KBias => format!("{l}.attn_k.bias"),
                VBias => format!("{l}.attn_v.bias"),
                OBias => format!("{l}.attn_output.bias"),
                MlpNorm => format!("{l}.ffn_norm.weight"),
                Gate => format!("{l}.ffn_gate.weight"),
                Up => format!("{l}.ffn_up.weight"),
                Down => format!("{l}.ffn_down.weight"),
            }
        }
    }
}

/// Every part, for mapping names from one scheme to the other.
const PARTS: [Part; 16] = [
    Part::Embed,
    Part::FinalNorm,
    Part::LmHead,
    Part::AttnNorm,
    Part::Q,
    Part::K,
    Part::V,
    Part::O,
    Part::QBias,
    Part::KBias,
    Part::VBias,
    Part::OBias,
    Part::MlpNorm,
    Part::Gate,
    Part::Up,
    Part::Down,
];

/// The Hugging Face name of a GGUF tensor (`blk.3.attn_q.weight` →
/// `model.layers.3.self_attn.q_proj.weight`), with whether it is a Llama q or k tensor (whose
/// rows llama.cpp reorders); `None` for a tensor the model does not have.
pub(crate) fn hf_name_of_gguf(name: &str) -> Option<(String, bool)> {
    let layer = name
        .strip_prefix("blk.")
        .and_then(|r| r.split_once('.'))
        .and_then(|(l, _)| l.parse().ok())
        .unwrap_or(0);
    PARTS
        .iter()
        .find(|&&p| tensor_name(Scheme::Gguf, p, layer) == name)
        .map(|&p| {
            let qk = matches!(p, Part::Q | Part::K | Part::QBias | Part::KBias);
            (tensor_name(Scheme::HuggingFace, p, layer), qk)
        })
}

/// Tensors a checkpoint may hold that the model does not need, and that are not an error.
fn ignorable(scheme: Scheme, name: &str) -> bool {
    match scheme {
        Scheme::HuggingFace => name.ends_with("rotary_emb.inv_freq"),
        Scheme::Gguf => name == "rope_freqs.weight",
    }
}

/// llama.cpp's converter reorders the rows of Llama's q and k projections so that RoPE rotates
/// adjacent pairs; Hugging Face rotates halves. Returns, for each Hugging Face row, the GGUF
/// row that holds it. (Qwen2 GGUFs keep Hugging Face's order.)
pub(crate) fn gguf_llama_qk_order(rows: usize, heads: usize) -> Vec<usize> {
    let hd = rows / heads;
    let half = hd / 2;
    let mut order = Vec::with_capacity(rows);
    for h in 0..heads {
        for j in 0..2 {
            for i in 0..half {
                order.push(h * hd + 2 * i + j);
            }
        }
    }
    order
}

/// A tensor as stored: type, row-major shape, bytes.
struct RawTensor<'a> {
    ty: GgmlType,
    shape: Vec<usize>,
    bytes: &'a [u8],
}

/// Where tensors come from.
trait TensorSource {
    fn scheme(&self) -> Scheme;
    fn names(&self) -> Vec<String>;
    fn raw(&self, name: &str) -> Result<Option<RawTensor<'_>>>;
}

impl TensorSource for GgufFile {
    fn scheme(&self) -> Scheme {
        Scheme::Gguf
    }
    fn names(&self) -> Vec<String> {
        self.tensors().iter().map(|t| t.name.clone()).collect()
    }
    fn raw(&self, name: &str) -> Result<Option<RawTensor<'_>>> {
        let Some(t) = self.tensor(name) else {
            return Ok(None);
        };
        Ok(Some(RawTensor {
            ty: t.ty()?,
            shape: t.shape(),
            bytes: self.tensor_bytes(t)?,
        }))
    }
}

/// The safetensors files of a Hugging Face model folder (one file, or shards with an index).
pub struct SafetensorsSet {
    files: Vec<(PathBuf, Mmap, usize)>,
    index: HashMap<String, (usize, safetensors::tensor::TensorInfo)>,
}

impl std::fmt::Debug for SafetensorsSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsSet")
            .field(
                "files",
                &self.files.iter().map(|f| &f.0).collect::<Vec<_>>(),
            )
            .field("tensors", &self.index.len())
            .finish()
    }
}

impl SafetensorsSet {
    /// Opens `model.safetensors.index.json` (sharded) or the folder's single `*.safetensors`.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let index_path = dir.join("model.safetensors.index.json");
        let files: Vec<PathBuf> = if index_path.exists() {
            let text =
                std::fs::read_to_string(&index_path).map_err(|e| Error::io(&index_path, e))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| Error::Safetensors {
                    path: index_path.clone(),
                    what: format!("invalid JSON: {e}"),
                })?;
            let map = v
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| Error::Safetensors {
                    path: index_path.clone(),
                    what: "has no `weight_map` object".into(),
                })?;
            let mut shards: Vec<String> = map
                .values()
                .filter_map(|f| f.as_str().map(String::from))
                .collect();
            shards.sort();
            shards.dedup();
            if shards.is_empty() {
                return Err(Error::Safetensors {
                    path: index_path,
                    what: "`weight_map` names no files".into(),
                });
            }
            for s in &shards {
                if s.contains('/') || s.contains('\\') || s.starts_with('.') {
                    return Err(Error::Safetensors {
                        path: index_path,
                        what: format!(
                            "shard name `{s}` must be a plain file name in the model folder"
                        ),
                    });
                }
            }
            shards.into_iter().map(|s| dir.join(s)).collect()
        } else {
            let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| Error::io(dir, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
                .collect();
            found.sort();
            match found.len() {
                0 => {
                    return Err(Error::Safetensors {
                        path: dir.to_path_buf(),
                        what: "no *.safetensors file in this folder".into(),
                    });
                }
                1 => found,
                n => {
                    return Err(Error::Safetensors {
                        path: dir.to_path_buf(),
                        what: format!(
                            "{n} *.safetensors files but no model.safetensors.index.json to say how they fit"
                        ),
                    });
                }
            }
        };
        Self::open_files(&files)
    }

    /// Opens the given safetensors files as one set.
    pub fn open_files(paths: &[PathBuf]) -> Result<Self> {
        let mut files = Vec::new();
        let mut index = HashMap::new();
        for (fi, path) in paths.iter().enumerate() {
            let map = crate::mmap::map_read_only(path)?;
            let (header, meta) =
                safetensors::SafeTensors::read_metadata(&map).map_err(|e| Error::Safetensors {
                    path: path.clone(),
                    what: format!("bad header: {e}"),
                })?;
            let data_start = 8 + header;
            for (name, info) in meta.tensors() {
                let (a, b) = info.data_offsets;
                if a > b || data_start + b > map.len() {
                    return Err(Error::Safetensors {
                        path: path.clone(),
                        what: format!("tensor `{name}` data [{a}, {b}) lies outside the file"),
                    });
                }
                if index.insert(name.clone(), (fi, info.clone())).is_some() {
                    return Err(Error::Safetensors {
                        path: path.clone(),
                        what: format!("tensor `{name}` appears in more than one shard"),
                    });
                }
            }
            files.push((path.clone(), map, data_start));
        }
        Ok(SafetensorsSet { files, index })
    }
}

impl TensorSource for SafetensorsSet {
    fn scheme(&self) -> Scheme {
        Scheme::HuggingFace
    }
    fn names(&self) -> Vec<String> {
        self.index.keys().cloned().collect()
    }
    fn raw(&self, name: &str) -> Result<Option<RawTensor<'_>>> {
        let Some((fi, info)) = self.index.get(name) else {
            return Ok(None);
        };
        let (path, map, start) = &self.files[*fi];
        use safetensors::Dtype;
        let ty = match info.dtype {
            Dtype::F32 => GgmlType::F32,
            Dtype::F16 => GgmlType::F16,
            Dtype::BF16 => GgmlType::BF16,
            other => {
                return Err(Error::Safetensors {
                    path: path.clone(),
                    what: format!("tensor `{name}` has dtype {other:?}; supported: F32, F16, BF16"),
                });
            }
        };
        let (a, b) = info.data_offsets;
        let bytes = &map[start + a..start + b];
        let n: usize = info.shape.iter().product();
        if Some(bytes.len()) != ty.bytes_for(n) {
            return Err(Error::Safetensors {
                path: path.clone(),
                what: format!(
                    "tensor `{name}` of shape {:?} {:?} holds {} bytes",
                    info.shape,
                    info.dtype,
                    bytes.len()
                ),
            });
        }
        Ok(Some(RawTensor {
            ty,
            shape: info.shape.clone(),
            bytes,
        }))
    }
}

impl SafetensorsSet {
    /// The tensor `name` as f32 values with its shape, or `None` when the files lack it.
    pub fn read_f32(&self, name: &str) -> Result<Option<(Vec<usize>, Vec<f32>)>> {
        let Some(raw) = self.raw(name)? else {
            return Ok(None);
        };
        let mut v = vec![0f32; raw.shape.iter().product()];
        dequantize_into(raw.ty, raw.bytes, &mut v)?;
        Ok(Some((raw.shape, v)))
    }

    /// Every tensor name in the files.
    pub fn tensor_names(&self) -> Vec<String> {
        self.names()
    }
}

/// The language model inside a multimodal checkpoint: its tensors live under `prefix`
/// (`model.text_model.`) instead of `model.`; `lm_head.weight` keeps its name. Names outside
/// the language model are invisible, so the loader's "unused tensor" check covers only it.
struct TextSubset<'a> {
    inner: &'a SafetensorsSet,
    prefix: &'a str,
}

impl TensorSource for TextSubset<'_> {
    fn scheme(&self) -> Scheme {
        Scheme::HuggingFace
    }
    fn names(&self) -> Vec<String> {
        self.inner
            .names()
            .into_iter()
            .filter_map(|n| {
                if n == "lm_head.weight" {
                    Some(n)
                } else {
                    n.strip_prefix(self.prefix)
                        .map(|rest| format!("model.{rest}"))
                }
            })
            .collect()
    }
    fn raw(&self, name: &str) -> Result<Option<RawTensor<'_>>> {
        match name.strip_prefix("model.") {
            Some(rest) => self.inner.raw(&format!("{}{rest}", self.prefix)),
            None => self.inner.raw(name),
        }
    }
}

/// Loads the language model of a multimodal checkpoint whose decoder tensors are named
/// `{prefix}layers.…` (e.g. `model.text_model.`) into a [`Llama`].
pub(crate) fn load_text_model<B: Backend>(
    tensors: &SafetensorsSet,
    prefix: &str,
    config: &LlamaConfig,
    mode: WeightMode,
    device: &B::Device,
) -> Result<Llama<B>> {
    let src = TextSubset {
        inner: tensors,
        prefix,
    };
    let mut loader = Loader {
        src: &src,
        mode,
        device,
        used: HashSet::new(),
        permute_qk: false,
    };
    loader.build(config.clone()).map_err(|e| match e {
        // Report the names as the file holds them.
        Error::MissingTensor { name, needed_for } => Error::MissingTensor {
            name: name
                .strip_prefix("model.")
                .map(|r| format!("{prefix}{r}"))
                .unwrap_or(name),
            needed_for,
        },
        Error::ShapeMismatch {
            name,
            expected,
            found,
        } => Error::ShapeMismatch {
            name: name
                .strip_prefix("model.")
                .map(|r| format!("{prefix}{r}"))
                .unwrap_or(name),
            expected,
            found,
        },
        other => other,
    })
}

/// A checkpoint on disk.
#[derive(Debug)]
pub enum Checkpoint {
    /// A GGUF file (weights, config and tokenizer in one).
    Gguf(Arc<GgufFile>),
    /// A Hugging Face folder.
    HuggingFace {
        /// The folder.
        dir: PathBuf,
        /// Its safetensors.
        tensors: SafetensorsSet,
    },
}

/// Loads the model weights of `ckpt` into a [`Llama`] on `device`.
pub fn load_model<B: Backend>(
    ckpt: &Checkpoint,
    config: &LlamaConfig,
    mode: WeightMode,
    device: &B::Device,
) -> Result<Llama<B>> {
    let src: &dyn TensorSource = match ckpt {
        Checkpoint::Gguf(g) => g.as_ref(),
        Checkpoint::HuggingFace { tensors, .. } => tensors,
    };
    let mut config = config.clone();
    if let Checkpoint::Gguf(g) = ckpt
        && let Some(t) = g.tensor("rope_freqs.weight")
    {
        let raw = g.tensor_bytes(t)?;
        let mut f = vec![0f32; t.len()];
        dequantize_into(t.ty()?, raw, &mut f)?;
        config.rope_freq_factors = Some(f);
    }
    let mut loader = Loader {
        src,
        mode,
        device,
        used: HashSet::new(),
        permute_qk: src.scheme() == Scheme::Gguf && config.architecture == Architecture::Llama,
    };
    loader.build(config)
}

struct Loader<'a, B: Backend> {
    src: &'a dyn TensorSource,
    mode: WeightMode,
    device: &'a B::Device,
    used: HashSet<String>,
    permute_qk: bool,
}

impl<B: Backend> Loader<'_, B> {
    fn fetch(
        &mut self,
        part: Part,
        layer: usize,
        needed_for: &str,
    ) -> Result<(String, RawTensor<'_>)> {
        let name = tensor_name(self.src.scheme(), part, layer);
        let raw = self.src.raw(&name)?.ok_or_else(|| Error::MissingTensor {
            name: name.clone(),
            needed_for: needed_for.to_string(),
        })?;
        self.used.insert(name.clone());
        Ok((name, raw))
    }

    fn check_shape(name: &str, expected: &[usize], found: &[usize]) -> Result<()> {
        if expected != found {
            return Err(Error::ShapeMismatch {
                name: name.to_string(),
                expected: expected.to_vec(),
                found: found.to_vec(),
            });
        }
        Ok(())
    }

    fn vector(
        &mut self,
        part: Part,
        layer: usize,
        len: usize,
        needed_for: &str,
    ) -> Result<Tensor<B, 1>> {
        let permute = self.permute_qk && matches!(part, Part::QBias | Part::KBias);
        let device = self.device;
        let (name, raw) = self.fetch(part, layer, needed_for)?;
        Self::check_shape(&name, &[len], &raw.shape)?;
        let mut v = vec![0f32; len];
        dequantize_into(raw.ty, raw.bytes, &mut v)?;
        if permute {
            return Err(Error::Config(format!(
                "tensor `{name}`: q/k biases in a Llama GGUF are not supported"
            )));
        }
        Ok(Tensor::from_data(TensorData::new(v, [len]), device))
    }

    fn optional_vector(
        &mut self,
        part: Part,
        layer: usize,
        len: usize,
        wanted: bool,
    ) -> Result<Option<Tensor<B, 1>>> {
        if !wanted {
            return Ok(None);
        }
        self.vector(part, layer, len, "a bias the config asks for")
            .map(Some)
    }

    /// Loads an `[out, in]` matrix as dense f32 or packed, reordering q/k rows when needed.
    fn matrix(
        &mut self,
        part: Part,
        layer: usize,
        out: usize,
        inp: usize,
        heads: usize,
    ) -> Result<MatrixData> {
        let mode = self.mode;
        let permute = self.permute_qk && matches!(part, Part::Q | Part::K);
        let (name, raw) = self.fetch(part, layer, "a projection")?;
        Self::check_shape(&name, &[out, inp], &raw.shape)?;
        let packed = PackedMatrix::new(raw.ty, out, inp, raw.bytes.to_vec())?;
        let packed = if permute {
            if !out.is_multiple_of(heads) || !(out / heads).is_multiple_of(2) {
                return Err(Error::ShapeMismatch {
                    name,
                    expected: vec![heads * (out / heads.max(1)), inp],
                    found: vec![out, inp],
                });
            }
            packed.permute_rows(&gguf_llama_qk_order(out, heads))?
        } else {
            packed
        };
        Ok(match mode {
            WeightMode::Dense => MatrixData::Dense(packed.dequantize()),
            WeightMode::Packed(act) => MatrixData::Packed(Arc::new(packed), act),
        })
    }

    fn linear(
        &mut self,
        part: Part,
        bias: Option<Tensor<B, 1>>,
        layer: usize,
        out: usize,
        inp: usize,
        heads: usize,
    ) -> Result<Linear<B>> {
        Ok(match self.matrix(part, layer, out, inp, heads)? {
            MatrixData::Dense(v) => Linear::dense(
                Tensor::from_data(TensorData::new(v, [out, inp]), self.device),
                bias,
            ),
            MatrixData::Packed(m, act) => Linear::packed(m, act, bias),
        })
    }

    fn norm(&mut self, part: Part, layer: usize, cfg: &LlamaConfig) -> Result<RmsNorm<B>> {
        Ok(RmsNorm {
            weight: Param::from_tensor(self.vector(part, layer, cfg.hidden_size, "a norm")?),
            eps: cfg.rms_norm_eps,
        })
    }

    fn build(&mut self, cfg: LlamaConfig) -> Result<Llama<B>> {
        let (h, v) = (cfg.hidden_size, cfg.vocab_size);
        let (nh, nkv, hd) = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim,
        );
        let embed = match self.matrix(Part::Embed, 0, v, h, 1)? {
            MatrixData::Dense(w) => Embedding {
                weight: Some(Param::from_tensor(Tensor::from_data(
                    TensorData::new(w, [v, h]),
                    self.device,
                ))),
                packed: None,
            },
            MatrixData::Packed(m, act) => Embedding {
                weight: None,
                packed: Some(crate::layers::PackedWeight {
                    matrix: m,
                    mode: act,
                }),
            },
        };
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let span = tracing::trace_span!("load_layer", layer = l);
            let _e = span.enter();
            let input_layernorm = self.norm(Part::AttnNorm, l, &cfg)?;
            let qb = self.optional_vector(Part::QBias, l, nh * hd, cfg.qkv_bias)?;
            let kb = self.optional_vector(Part::KBias, l, nkv * hd, cfg.qkv_bias)?;
            let vb = self.optional_vector(Part::VBias, l, nkv * hd, cfg.qkv_bias)?;
            let ob = self.optional_vector(Part::OBias, l, h, cfg.o_bias)?;
            let q = self.linear(Part::Q, qb, l, nh * hd, h, nh)?;
            let k = self.linear(Part::K, kb, l, nkv * hd, h, nkv)?;
            let vv = self.linear(Part::V, vb, l, nkv * hd, h, nkv)?;
            let o = self.linear(Part::O, ob, l, h, nh * hd, 1)?;
            let post_attention_layernorm = self.norm(Part::MlpNorm, l, &cfg)?;
            let gate = self.linear(Part::Gate, None, l, cfg.intermediate_size, h, 1)?;
            let up = self.linear(Part::Up, None, l, cfg.intermediate_size, h, 1)?;
            let down = self.linear(Part::Down, None, l, h, cfg.intermediate_size, 1)?;
            layers.push(DecoderLayer {
                input_layernorm,
                self_attn: Attention::new(&cfg, q, k, vv, o),
                post_attention_layernorm,
                mlp: Mlp {
                    gate_proj: gate,
                    up_proj: up,
                    down_proj: down,
                },
            });
        }
        let norm = self.norm(Part::FinalNorm, 0, &cfg)?;
        let lm_head = if cfg.tie_word_embeddings {
            // Some tied checkpoints also store the head; it is the embedding, so skip it.
            self.used
                .insert(tensor_name(self.src.scheme(), Part::LmHead, 0));
            None
        } else {
            Some(self.linear(Part::LmHead, None, 0, v, h, 1)?)
        };
        let scheme = self.src.scheme();
        let mut extra: Vec<String> = self
            .src
            .names()
            .into_iter()
            .filter(|n| !self.used.contains(n) && !ignorable(scheme, n))
            .collect();
        if !extra.is_empty() {
            extra.sort();
            return Err(Error::UnexpectedTensors {
                count: extra.len(),
                example: extra.swap_remove(0),
            });
        }
        Ok(Llama::from_parts(cfg, embed, layers, norm, lm_head))
    }
}

enum MatrixData {
    Dense(Vec<f32>),
    Packed(Arc<PackedMatrix>, ActivationMode),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qk_order_inverts_llama_cpp_permute() {
        // llama.cpp: reshape(heads, 2, hd/2, in).swapaxes(1, 2): GGUF row h*hd + 2i + j holds
        // HF row h*hd + j*hd/2 + i.
        let (heads, hd) = (3, 8);
        let order = gguf_llama_qk_order(heads * hd, heads);
        let mut gguf_of_hf = vec![0; heads * hd];
        for h in 0..heads {
            for i in 0..hd / 2 {
                for j in 0..2 {
                    gguf_of_hf[h * hd + j * hd / 2 + i] = h * hd + 2 * i + j;
                }
            }
        }
        assert_eq!(order, gguf_of_hf);
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, (0..heads * hd).collect::<Vec<_>>());
    }

    #[test]
    fn names_are_distinct_per_layer() {
        use Part::*;
        let parts = [
            Embed, FinalNorm, LmHead, AttnNorm, Q, K, V, O, QBias, KBias, VBias, OBias, MlpNorm,
            Gate, Up, Down,
        ];
        for scheme in [Scheme::HuggingFace, Scheme::Gguf] {
            let mut all = HashSet::new();
            for l in 0..2 {
                for p in parts {
                    all.insert(tensor_name(scheme, p, l));
                }
            }
            assert_eq!(all.len(), 3 + 13 * 2);
        }
    }
}
