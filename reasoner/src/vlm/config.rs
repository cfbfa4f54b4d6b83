//! What a vision-language model folder's `config.json` says: the family, the vision tower's
//! shape, the connector and the language model's [`LlamaConfig`].

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::config::LlamaConfig;
use crate::error::{Error, Result};

/// The `architectures` this crate runs, as `config.json` names them.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &[
    "SmolVLMForConditionalGeneration",
    "Idefics3ForConditionalGeneration",
];

/// Which model family a folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VlmFamily {
    /// Idefics3, SmolVLM and SmolVLM2: SigLIP tower, pixel-shuffle connector, Llama LM.
    Idefics3,
}

/// The vision tower's shape (SigLIP), with transformers' defaults for absent keys.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VisionConfig {
    /// Width of the tower.
    #[serde(default = "d_hidden")]
    pub hidden_size: usize,
    /// MLP inner width.
    #[serde(default = "d_inter")]
    pub intermediate_size: usize,
    /// Encoder layers.
    #[serde(default = "d_layers")]
    pub num_hidden_layers: usize,
    /// Attention heads.
    #[serde(default = "d_heads")]
    pub num_attention_heads: usize,
    /// Input channels (3).
    #[serde(default = "d_channels")]
    pub num_channels: usize,
    /// Tile edge in pixels.
    #[serde(default = "d_image")]
    pub image_size: usize,
    /// Patch edge in pixels.
    #[serde(default = "d_patch")]
    pub patch_size: usize,
    /// `gelu_pytorch_tanh` or `gelu`.
    #[serde(default = "d_act")]
    pub hidden_act: String,
    /// LayerNorm epsilon.
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
}

fn d_hidden() -> usize {
    1152
}
fn d_inter() -> usize {
    3072
}
fn d_layers() -> usize {
    12
}
fn d_heads() -> usize {
    16
}
fn d_channels() -> usize {
    3
}
fn d_image() -> usize {
    224
}
fn d_patch() -> usize {
    32
}
fn d_act() -> String {
    "gelu_pytorch_tanh".into()
}
fn d_eps() -> f64 {
    1e-6
}

impl VisionConfig {
    /// Patches along one edge of a tile.
    pub fn patches_per_side(&self) -> usize {
        self.image_size / self.patch_size.max(1)
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(format!("vision_config: {m}")));
        if self.patch_size == 0
            || self.image_size == 0
            || !self.image_size.is_multiple_of(self.patch_size)
        {
            return bad(format!(
                "`image_size` {} must be a positive multiple of `patch_size` {}",
                self.image_size, self.patch_size
            ));
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return bad(format!(
                "`hidden_size` {} must be a multiple of `num_attention_heads` {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.num_channels != 3 {
            return bad(format!(
                "`num_channels` is {}; only RGB (3) is supported",
                self.num_channels
            ));
        }
        if !matches!(
            self.hidden_act.as_str(),
            "gelu_pytorch_tanh" | "gelu" | "gelu_new"
        ) {
            return bad(format!(
                "`hidden_act` is `{}`; supported: gelu_pytorch_tanh, gelu_new, gelu",
                self.hidden_act
            ));
        }
        Ok(())
    }
}

/// Everything the model needs from `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct VlmConfig {
    /// Family.
    pub family: VlmFamily,
    /// The class name in `architectures`.
    pub architecture: String,
    /// The language model.
    pub text: LlamaConfig,
    /// The vision tower.
    pub vision: VisionConfig,
    /// Pixel-shuffle factor of the connector.
    pub scale_factor: usize,
    /// The `<image>` token id.
    pub image_token_id: u32,
}

/// transformers' `LlamaConfig` defaults, for keys a multimodal config leaves out of its
/// `text_config`.
const LLAMA_DEFAULTS: &[(&str, f64)] = &[
    ("vocab_size", 32000.0),
    ("hidden_size", 4096.0),
    ("intermediate_size", 11008.0),
    ("num_hidden_layers", 32.0),
    ("num_attention_heads", 32.0),
    ("rms_norm_eps", 1e-6),
];

impl VlmConfig {
    /// Reads `config.json` of a model folder.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        Self::from_str(&text).map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Parses the text of a `config.json`.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str) -> Result<Self> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| Error::Config(format!("invalid JSON: {e}")))?;
        let archs: Vec<String> = v
            .get("architectures")
            .and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let model_type = v.get("model_type").and_then(|m| m.as_str()).unwrap_or("");
        let architecture = archs
            .iter()
            .find(|a| SUPPORTED_ARCHITECTURES.contains(&a.as_str()))
            .cloned()
            .or_else(|| match model_type {
                "smolvlm" => Some("SmolVLMForConditionalGeneration".to_string()),
                "idefics3" => Some("Idefics3ForConditionalGeneration".to_string()),
                _ => None,
            })
            .ok_or_else(|| {
                Error::Config(format!(
                    "not a supported vision-language model: architectures {archs:?} \
                     (model_type `{model_type}`); supported: {}",
                    SUPPORTED_ARCHITECTURES.join(", ")
                ))
            })?;
        let mut text_cfg = v
            .get("text_config")
            .cloned()
            .ok_or_else(|| Error::Config("`text_config` is missing".into()))?;
        let obj = text_cfg
            .as_object_mut()
            .ok_or_else(|| Error::Config("`text_config` must be an object".into()))?;
        obj.entry("model_type").or_insert_with(|| "llama".into());
        for (k, d) in LLAMA_DEFAULTS {
            obj.entry(*k).or_insert_with(|| serde_json::json!(d));
        }
        for k in ["vocab_size", "hidden_size", "intermediate_size"] {
            if let Some(x) = obj.get(k).and_then(|x| x.as_f64()) {
                obj.insert(k.into(), serde_json::json!(x as u64));
            }
        }
        for k in ["num_hidden_layers", "num_attention_heads"] {
            if let Some(x) = obj.get(k).and_then(|x| x.as_f64()) {
                obj.insert(k.into(), serde_json::json!(x as u64));
            }
        }
        // The multimodal model's own flag decides whether lm_head is tied.
        if let Some(t) = v.get("tie_word_embeddings").filter(|t| t.is_boolean()) {
            obj.insert("tie_word_embeddings".into(), t.clone());
        }
        let text = LlamaConfig::from_hf_str(&text_cfg.to_string()).map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("text_config: {m}")),
            other => other,
        })?;
        let vision: VisionConfig = serde_json::from_value(
            v.get("vision_config")
                .cloned()
                .unwrap_or(Value::Object(Default::default())),
        )
        .map_err(|e| Error::Config(format!("vision_config: {e}")))?;
        vision.validate()?;
        let scale_factor = match v.get("scale_factor") {
            None | Some(Value::Null) => 2,
            Some(s) => s.as_u64().filter(|&s| s > 0).ok_or_else(|| {
                Error::Config(format!(
                    "`scale_factor` is {s}; expected a positive integer"
                ))
            })? as usize,
        };
        let side = vision.patches_per_side();
        if !side.is_multiple_of(scale_factor) {
            return Err(Error::Config(format!(
                "`scale_factor` {scale_factor} does not divide the {side} patches per tile edge"
            )));
        }
        let image_token_id = match v.get("image_token_id") {
            None | Some(Value::Null) => 128_257,
            Some(t) => t
                .as_u64()
                .and_then(|t| u32::try_from(t).ok())
                .ok_or_else(|| {
                    Error::Config(format!("`image_token_id` is {t}; expected a token id"))
                })?,
        };
        if image_token_id as usize >= text.vocab_size {
            return Err(Error::Config(format!(
                "`image_token_id` {image_token_id} is outside the vocabulary of {} tokens",
                text.vocab_size
            )));
        }
        Ok(VlmConfig {
            family: VlmFamily::Idefics3,
            architecture,
            text,
            vision,
            scale_factor,
            image_token_id,
        })
    }

    /// Image tokens one tile becomes after the connector.
    pub fn tokens_per_tile(&self) -> usize {
        let side = self.vision.patches_per_side() / self.scale_factor;
        side * side
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_architectures_are_named() {
        let e = VlmConfig::from_str(
            r#"{"architectures": ["LlavaForConditionalGeneration"], "model_type": "llava"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("LlavaForConditionalGeneration"), "{e}");
        assert!(e.contains("SmolVLMForConditionalGeneration"), "{e}");
    }

    #[test]
    fn defaults_fill_sparse_configs() {
        // The shape of SmolVLM-256M's config.json: most vision keys left at their defaults.
        let c = VlmConfig::from_str(
            r#"{"architectures": ["Idefics3ForConditionalGeneration"], "image_token_id": 49190,
                "scale_factor": 4,
                "text_config": {"vocab_size": 49280, "hidden_size": 576, "intermediate_size": 1536,
                  "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
                  "rms_norm_eps": 1e-5, "rope_theta": 100000, "max_position_embeddings": 8192},
                "vision_config": {"hidden_size": 768, "image_size": 512, "patch_size": 16,
                  "num_attention_heads": 12}}"#,
        )
        .unwrap();
        assert_eq!(c.tokens_per_tile(), 64);
        assert_eq!(c.vision.num_hidden_layers, 12);
        assert_eq!(c.text.head_dim, 64);
        let e = VlmConfig::from_str(
            r#"{"model_type": "smolvlm", "scale_factor": 3, "text_config": {},
                "vision_config": {"image_size": 512, "patch_size": 16}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("does not divide"), "{e}");
    }
}
