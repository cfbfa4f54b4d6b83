//! The model configuration of the Llama family (Llama, SmolLM2, Qwen2, Qwen2.5), read from a
//! Hugging Face `config.json` or from GGUF metadata, and the RoPE frequencies it implies.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gguf::GgufFile;

/// Which member of the family: decides bias defaults and the GGUF RoPE layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// Llama 2/3, SmolLM, SmolLM2, TinyLlama, Mistral-style dense models.
    Llama,
    /// Qwen2 and Qwen2.5 (q/k/v bias).
    Qwen2,
}

/// RoPE frequency scaling, as in `rope_scaling` of a Hugging Face config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rope_type", rename_all = "lowercase")]
pub enum RopeScaling {
    /// Positions divided by `factor` (all frequencies divided by `factor`).
    Linear {
        /// The divisor.
        factor: f64,
    },
    /// Llama 3.1's piecewise scaling of low and high frequencies.
    Llama3 {
        /// Divisor for low frequencies.
        factor: f64,
        /// Wavelength threshold (as a fraction of the original context) for low frequencies.
        low_freq_factor: f64,
        /// Wavelength threshold for high frequencies.
        high_freq_factor: f64,
        /// The context the model was pre-trained with.
        original_max_position_embeddings: usize,
    },
    /// YaRN (used by Qwen2.5 for long contexts).
    Yarn {
        /// Context extension factor.
        factor: f64,
        /// The context the model was pre-trained with.
        original_max_position_embeddings: usize,
        /// Scale applied to cos/sin; defaults to `0.1 ln(factor) + 1`.
        attention_factor: Option<f64>,
        /// Fast boundary of the ramp, in rotations (default 32).
        beta_fast: f64,
        /// Slow boundary of the ramp, in rotations (default 1).
        beta_slow: f64,
    },
}

/// Everything the model needs to know about its shapes and numerics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// Family member.
    pub architecture: Architecture,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// MLP inner width.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than query heads).
    pub num_key_value_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base.
    pub rope_theta: f64,
    /// RoPE scaling, if any.
    pub rope_scaling: Option<RopeScaling>,
    /// Longest context the model supports.
    pub max_position_embeddings: usize,
    /// Whether the output layer reuses the input embedding.
    pub tie_word_embeddings: bool,
    /// Bias on the q, k and v projections (Qwen2).
    pub qkv_bias: bool,
    /// Bias on the output projection.
    pub o_bias: bool,
    /// Beginning-of-sequence token, if the model has one.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence tokens (generation stops on any of them).
    pub eos_token_ids: Vec<u32>,
    /// Per-frequency divisors stored by some GGUFs (`rope_freqs.weight`, Llama 3.1).
    #[serde(default)]
    pub rope_freq_factors: Option<Vec<f32>>,
}

/// The subset of a Hugging Face `config.json` we read.
#[derive(Debug, Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    #[serde(default)]
    architectures: Vec<String>,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: f64,
    rope_theta: Option<f64>,
    rope_scaling: Option<serde_json::Value>,
    /// transformers 5 writes `rope_theta` and the scaling together here.
    rope_parameters: Option<serde_json::Value>,
    #[serde(default)]
    layer_types: Vec<String>,
    #[serde(default = "default_max_pos")]
    max_position_embeddings: usize,
    #[serde(default)]
    tie_word_embeddings: Option<bool>,
    #[serde(default)]
    attention_bias: Option<bool>,
    #[serde(default)]
    mlp_bias: Option<bool>,
    #[serde(default)]
    hidden_act: Option<String>,
    bos_token_id: Option<serde_json::Value>,
    eos_token_id: Option<serde_json::Value>,
    #[serde(default)]
    use_sliding_window: Option<bool>,
}

fn default_theta() -> f64 {
    10_000.0
}
fn default_max_pos() -> usize {
    2048
}

fn token_ids(v: &Option<serde_json::Value>, key: &str) -> Result<Vec<u32>> {
    let bad = || Error::Config(format!("`{key}` must be a token id or a list of token ids"));
    match v {
        None | Some(serde_json::Value::Null) => Ok(vec![]),
        Some(serde_json::Value::Number(n)) => Ok(vec![
            n.as_u64()
                .and_then(|x| u32::try_from(x).ok())
                .ok_or_else(bad)?,
        ]),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_u64()
                    .and_then(|x| u32::try_from(x).ok())
                    .ok_or_else(bad)
            })
            .collect(),
        Some(_) => Err(bad()),
    }
}

fn parse_rope_scaling(v: &serde_json::Value, max_pos: usize) -> Result<Option<RopeScaling>> {
    if v.is_null() {
        return Ok(None);
    }
    let obj = v
        .as_object()
        .ok_or_else(|| Error::Config("`rope_scaling` must be an object or null".into()))?;
    let kind = obj
        .get("rope_type")
        .or_else(|| obj.get("type"))
        .and_then(|t| t.as_str())
        .unwrap_or("default");
    let num = |k: &str| -> Result<f64> {
        obj.get(k).and_then(|x| x.as_f64()).ok_or_else(|| {
            Error::Config(format!(
                "`rope_scaling.{k}` is missing or not a number (rope_type {kind})"
            ))
        })
    };
    let opt = |k: &str| obj.get(k).and_then(|x| x.as_f64());
    Ok(match kind {
        "default" => None,
        "linear" => Some(RopeScaling::Linear {
            factor: num("factor")?,
        }),
        "llama3" => Some(RopeScaling::Llama3 {
            factor: num("factor")?,
            low_freq_factor: num("low_freq_factor")?,
            high_freq_factor: num("high_freq_factor")?,
            original_max_position_embeddings: num("original_max_position_embeddings")? as usize,
        }),
        "yarn" => Some(RopeScaling::Yarn {
            factor: num("factor")?,
            original_max_position_embeddings: opt("original_max_position_embeddings")
                .map(|x| x as usize)
                .unwrap_or(max_pos),
            attention_factor: opt("attention_factor"),
            beta_fast: opt("beta_fast").unwrap_or(32.0),
            beta_slow: opt("beta_slow").unwrap_or(1.0),
        }),
        other => {
            return Err(Error::Config(format!(
                "`rope_scaling.rope_type` is `{other}`; supported: default, linear, llama3, yarn"
            )));
        }
    })
}

impl LlamaConfig {
    /// Reads a Hugging Face `config.json`.
    pub fn from_hf_json(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_hf_str(&text).map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Parses the text of a Hugging Face `config.json`.
    pub fn from_hf_str(text: &str) -> Result<Self> {
        let c: HfConfig =
            serde_json::from_str(text).map_err(|e| Error::Config(format!("config.json: {e}")))?;
        let mt = c.model_type.clone().unwrap_or_default();
        let architecture = match mt.as_str() {
            "llama" | "mistral" => Architecture::Llama,
            "qwen2" => Architecture::Qwen2,
            _ if c.architectures.iter().any(|a| a == "LlamaForCausalLM") => Architecture::Llama,
            _ if c.architectures.iter().any(|a| a == "Qwen2ForCausalLM") => Architecture::Qwen2,
            other => {
                return Err(Error::Config(format!(
                    "`model_type` is `{other}`; supported: llama, mistral, qwen2"
                )));
            }
        };
        if c.mlp_bias == Some(true) {
            return Err(Error::Config("`mlp_bias: true` is not supported".into()));
        }
        if let Some(act) = &c.hidden_act
            && act != "silu"
        {
            return Err(Error::Config(format!(
                "`hidden_act` is `{act}`; only `silu` (SwiGLU) is supported"
            )));
        }
        if let Some(t) = c.layer_types.iter().find(|t| *t != "full_attention") {
            return Err(Error::Config(format!(
                "`layer_types` contains `{t}`; only full_attention layers are supported"
            )));
        }
        if c.use_sliding_window == Some(true) {
            return Err(Error::Config(
                "`use_sliding_window: true` is not supported (full attention only)".into(),
            ));
        }
        let attention_bias = c.attention_bias.unwrap_or(false);
        let (qkv_bias, o_bias) = match architecture {
            Architecture::Qwen2 => (true, false),
            Architecture::Llama => (attention_bias, attention_bias),
        };
        let head_dim = c
            .head_dim
            .unwrap_or(c.hidden_size / c.num_attention_heads.max(1));
        // Old configs: `rope_theta` + `rope_scaling`; transformers 5: `rope_parameters`.
        let (rope_theta, rope_scaling) = match &c.rope_parameters {
            Some(p) if !p.is_null() => {
                let theta = p
                    .get("rope_theta")
                    .and_then(|t| t.as_f64())
                    .or(c.rope_theta)
                    .unwrap_or_else(default_theta);
                (theta, parse_rope_scaling(p, c.max_position_embeddings)?)
            }
            _ => (
                c.rope_theta.unwrap_or_else(default_theta),
                match &c.rope_scaling {
                    Some(v) => parse_rope_scaling(v, c.max_position_embeddings)?,
                    None => None,
                },
            ),
        };
        let cfg = LlamaConfig {
            architecture,
            vocab_size: c.vocab_size,
            hidden_size: c.hidden_size,
            intermediate_size: c.intermediate_size,
            num_hidden_layers: c.num_hidden_layers,
            num_attention_heads: c.num_attention_heads,
            num_key_value_heads: c.num_key_value_heads.unwrap_or(c.num_attention_heads),
            head_dim,
            rms_norm_eps: c.rms_norm_eps,
            rope_theta,
            rope_scaling,
            max_position_embeddings: c.max_position_embeddings,
            tie_word_embeddings: c.tie_word_embeddings.unwrap_or(false),
            qkv_bias,
            o_bias,
            bos_token_id: token_ids(&c.bos_token_id, "bos_token_id")?.first().copied(),
            eos_token_ids: token_ids(&c.eos_token_id, "eos_token_id")?,
            rope_freq_factors: None,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The config as a Hugging Face `config.json` (transformers' Llama or Qwen2 classes), the
    /// inverse of [`LlamaConfig::from_hf_str`]. GGUF per-frequency RoPE factors have no
    /// `config.json` form and are an error.
    pub fn to_hf_json(&self) -> Result<serde_json::Value> {
        if self.rope_freq_factors.is_some() {
            return Err(Error::Config(
                "this model's RoPE uses per-frequency factors from GGUF (`rope_freqs`), which a \
                 Hugging Face config.json cannot express"
                    .into(),
            ));
        }
        if self.architecture == Architecture::Llama && self.qkv_bias != self.o_bias {
            return Err(Error::Config(
                "a Llama config.json has one `attention_bias` for q/k/v and o; this model has \
                 bias on only some of them"
                    .into(),
            ));
        }
        if self.architecture == Architecture::Qwen2 && (!self.qkv_bias || self.o_bias) {
            return Err(Error::Config(
                "a Qwen2 config.json implies q/k/v bias and no o bias; this model differs".into(),
            ));
        }
        let (model_type, class) = match self.architecture {
            Architecture::Llama => ("llama", "LlamaForCausalLM"),
            Architecture::Qwen2 => ("qwen2", "Qwen2ForCausalLM"),
        };
        let mut rope = serde_json::json!({"rope_theta": self.rope_theta, "rope_type": "default"});
        if let Some(sc) = &self.rope_scaling {
            let extra = serde_json::to_value(sc)
                .map_err(|e| Error::Config(format!("rope scaling: {e}")))?;
            if let (Some(r), Some(e)) = (rope.as_object_mut(), extra.as_object()) {
                for (k, v) in e {
                    if !v.is_null() {
                        r.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        let mut v = serde_json::json!({
            "architectures": [class],
            "model_type": model_type,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_parameters": rope.clone(),
            "rope_scaling": if self.rope_scaling.is_some() { rope } else { serde_json::Value::Null },
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": match self.eos_token_ids.as_slice() {
                [one] => serde_json::json!(one),
                many => serde_json::json!(many),
            },
            "torch_dtype": "float32",
            "dtype": "float32",
            "use_cache": true,
        });
        if let Some(o) = v.as_object_mut() {
            match self.architecture {
                Architecture::Llama => {
                    o.insert("attention_bias".into(), serde_json::json!(self.qkv_bias));
                    o.insert("mlp_bias".into(), serde_json::json!(false));
                }
                Architecture::Qwen2 => {
                    o.insert("use_sliding_window".into(), serde_json::json!(false));
                }
            }
        }
        Ok(v)
    }

    /// Reads the config from GGUF metadata (`general.architecture` and `<arch>.*` keys).
    ///
    /// Bias and tying are decided from which tensors the file holds.
    pub fn from_gguf(g: &GgufFile) -> Result<Self> {
        let arch = g.str("general.architecture")?;
        let architecture = match arch {
            "llama" => Architecture::Llama,
            "qwen2" => Architecture::Qwen2,
            other => {
                return Err(Error::Config(format!(
                    "{}: general.architecture is `{other}`; supported: llama, qwen2",
                    g.path().display()
                )));
            }
        };
        let key = |k: &str| format!("{arch}.{k}");
        let us = |k: &str| -> Result<usize> { Ok(g.u64(&key(k))? as usize) };
        let hidden_size = us("embedding_length")?;
        let heads = us("attention.head_count")?;
        let kv_heads = g
            .u64_opt(&key("attention.head_count_kv"))?
            .map(|v| v as usize)
            .unwrap_or(heads);
        let head_dim = match g.u64_opt(&key("attention.key_length"))? {
            Some(v) => v as usize,
            None => hidden_size / heads.max(1),
        };
        let vocab_size = match g.u64_opt(&key("vocab_size"))? {
            Some(v) => v as usize,
            None => g.str_array("tokenizer.ggml.tokens")?.len(),
        };
        let max_pos = us("context_length")?;
        let rope_scaling = match g.str_opt(&key("rope.scaling.type"))? {
            None | Some("none") => None,
            Some("linear") => Some(RopeScaling::Linear {
                factor: g.f64_opt(&key("rope.scaling.factor"))?.unwrap_or(1.0),
            }),
            Some("yarn") => Some(RopeScaling::Yarn {
                factor: g.f64_opt(&key("rope.scaling.factor"))?.unwrap_or(1.0),
                original_max_position_embeddings: g
                    .u64_opt(&key("rope.scaling.original_context_length"))?
                    .map(|v| v as usize)
                    .unwrap_or(max_pos),
                attention_factor: g.f64_opt(&key("rope.scaling.attn_factor"))?,
                beta_fast: 32.0,
                beta_slow: 1.0,
            }),
            Some(other) => {
                return Err(Error::Config(format!(
                    "{}: {arch}.rope.scaling.type is `{other}`; supported: none, linear, yarn",
                    g.path().display()
                )));
            }
        };
        let bos = g.u64_opt("tokenizer.ggml.bos_token_id")?.map(|v| v as u32);
        let mut eos: Vec<u32> = g
            .u64_opt("tokenizer.ggml.eos_token_id")?
            .map(|v| vec![v as u32])
            .unwrap_or_default();
        if let Some(eot) = g.u64_opt("tokenizer.ggml.eot_token_id")?
            && !eos.contains(&(eot as u32))
        {
            eos.push(eot as u32);
        }
        let cfg = LlamaConfig {
            architecture,
            vocab_size,
            hidden_size,
            intermediate_size: us("feed_forward_length")?,
            num_hidden_layers: us("block_count")?,
            num_attention_heads: heads,
            num_key_value_heads: kv_heads,
            head_dim,
            rms_norm_eps: g
                .f64_opt(&key("attention.layer_norm_rms_epsilon"))?
                .unwrap_or(1e-5),
            rope_theta: g.f64_opt(&key("rope.freq_base"))?.unwrap_or(10_000.0),
            rope_scaling,
            max_position_embeddings: max_pos,
            tie_word_embeddings: g.tensor("output.weight").is_none(),
            qkv_bias: g.tensor("blk.0.attn_q.bias").is_some(),
            o_bias: g.tensor("blk.0.attn_output.bias").is_some(),
            bos_token_id: bos,
            eos_token_ids: eos,
            rope_freq_factors: None,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks that the numbers are consistent with each other.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.num_attention_heads == 0 || self.num_key_value_heads == 0 {
            return bad("head counts must be positive".into());
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return bad(format!(
                "num_attention_heads ({}) must be a multiple of num_key_value_heads ({})",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) {
            return bad(format!(
                "head_dim ({}) must be even and positive",
                self.head_dim
            ));
        }
        if self.hidden_size == 0 || self.vocab_size == 0 || self.num_hidden_layers == 0 {
            return bad("hidden_size, vocab_size and num_hidden_layers must be positive".into());
        }
        if self.rope_theta.is_nan() || self.rope_theta <= 0.0 {
            return bad(format!("rope_theta ({}) must be positive", self.rope_theta));
        }
        Ok(())
    }

    /// Query heads per key/value head.
    pub fn kv_groups(&self) -> usize {
        self.num_attention_heads / self.num_key_value_heads
    }

    /// The RoPE inverse frequencies (`head_dim / 2` of them) and the cos/sin scale.
    pub fn rope_inv_freq(&self) -> (Vec<f64>, f64) {
        let (mut inv, scale) = self.scaled_inv_freq();
        if let Some(factors) = &self.rope_freq_factors {
            for (f, d) in inv.iter_mut().zip(factors) {
                *f /= *d as f64;
            }
        }
        (inv, scale)
    }

    fn scaled_inv_freq(&self) -> (Vec<f64>, f64) {
        let dim = self.head_dim;
        let base = self.rope_theta;
        let half = dim / 2;
        let plain: Vec<f64> = (0..half)
            .map(|i| 1.0 / base.powf((2 * i) as f64 / dim as f64))
            .collect();
        match &self.rope_scaling {
            None => (plain, 1.0),
            Some(RopeScaling::Linear { factor }) => {
                (plain.iter().map(|f| f / factor).collect(), 1.0)
            }
            Some(RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            }) => {
                let old = *original_max_position_embeddings as f64;
                let low_wl = old / low_freq_factor;
                let high_wl = old / high_freq_factor;
                let freqs = plain
                    .iter()
                    .map(|&f| {
                        let wl = 2.0 * std::f64::consts::PI / f;
                        if wl < high_wl {
                            f
                        } else if wl > low_wl {
                            f / factor
                        } else {
                            let smooth =
                                (old / wl - low_freq_factor) / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect();
                (freqs, 1.0)
            }
            Some(RopeScaling::Yarn {
                factor,
                original_max_position_embeddings,
                attention_factor,
                beta_fast,
                beta_slow,
            }) => {
                let orig = *original_max_position_embeddings as f64;
                let correction_dim = |rot: f64| {
                    (dim as f64 * (orig / (rot * 2.0 * std::f64::consts::PI)).ln())
                        / (2.0 * base.ln())
                };
                let low = correction_dim(*beta_fast).floor().max(0.0);
                let high = correction_dim(*beta_slow).ceil().min(dim as f64 - 1.0);
                let high = if low == high { high + 0.001 } else { high };
                let freqs = plain
                    .iter()
                    .enumerate()
                    .map(|(i, &extrap)| {
                        let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
                        let extrap_weight = 1.0 - ramp;
                        let interp = extrap / factor;
                        interp * (1.0 - extrap_weight) + extrap * extrap_weight
                    })
                    .collect();
                let scale = attention_factor.unwrap_or(if *factor <= 1.0 {
                    1.0
                } else {
                    0.1 * factor.ln() + 1.0
                });
                (freqs, scale)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_json_round_trips() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        for m in ["tiny-llama", "tiny-qwen2"] {
            let c = LlamaConfig::from_hf_json(&dir.join(m).join("config.json")).unwrap();
            let back = LlamaConfig::from_hf_str(&c.to_hf_json().unwrap().to_string()).unwrap();
            assert_eq!(back, c, "{m}");
        }
    }

    const QWEN: &str = r#"{"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","vocab_size":256,
        "hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,
        "num_key_value_heads":2,"rms_norm_eps":1e-6,"rope_theta":1000000.0,"max_position_embeddings":512,
        "tie_word_embeddings":true,"hidden_act":"silu","bos_token_id":1,"eos_token_id":[2,3],
        "use_sliding_window":false,"rope_scaling":null}"#;

    #[test]
    fn parses_qwen2() {
        let c = LlamaConfig::from_hf_str(QWEN).unwrap();
        assert_eq!(c.architecture, Architecture::Qwen2);
        assert!(c.qkv_bias && !c.o_bias && c.tie_word_embeddings);
        assert_eq!(c.head_dim, 16);
        assert_eq!(c.kv_groups(), 2);
        assert_eq!(c.eos_token_ids, vec![2, 3]);
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = LlamaConfig::from_hf_str(
            &QWEN
                .replace("\"qwen2\"", "\"gpt2\"")
                .replace("Qwen2ForCausalLM", "GPT2LMHeadModel"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("model_type"), "{e}");
        let e = LlamaConfig::from_hf_str(
            &QWEN.replace("\"num_key_value_heads\":2", "\"num_key_value_heads\":3"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("num_key_value_heads"), "{e}");
        let e = LlamaConfig::from_hf_str(&QWEN.replace(
            "\"rope_scaling\":null",
            "\"rope_scaling\":{\"type\":\"longrope\"}",
        ))
        .unwrap_err();
        assert!(e.to_string().contains("longrope"), "{e}");
        let e = LlamaConfig::from_hf_str("{").unwrap_err();
        assert!(e.to_string().contains("config.json"), "{e}");
    }

    #[test]
    fn transformers5_rope_parameters() {
        let j = QWEN.replace(
            "\"rope_theta\":1000000.0",
            "\"rope_parameters\":{\"rope_theta\":5000.0,\"rope_type\":\"linear\",\"factor\":2.0}",
        );
        let c = LlamaConfig::from_hf_str(&j).unwrap();
        assert_eq!(c.rope_theta, 5000.0);
        assert_eq!(c.rope_scaling, Some(RopeScaling::Linear { factor: 2.0 }));
        let j = QWEN.replace(
            "\"rope_scaling\":null",
            "\"layer_types\":[\"sliding_attention\"]",
        );
        assert!(
            LlamaConfig::from_hf_str(&j)
                .unwrap_err()
                .to_string()
                .contains("layer_types")
        );
    }

    #[test]
    fn linear_scaling_divides_frequencies() {
        let mut c = LlamaConfig::from_hf_str(QWEN).unwrap();
        let (plain, _) = c.rope_inv_freq();
        c.rope_scaling = Some(RopeScaling::Linear { factor: 4.0 });
        let (scaled, s) = c.rope_inv_freq();
        assert_eq!(s, 1.0);
        for (a, b) in plain.iter().zip(&scaled) {
            assert!((a / 4.0 - b).abs() < 1e-15);
        }
    }
}
