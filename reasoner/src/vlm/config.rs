//! What a vision-language model folder's `config.json` says: the family, the vision tower's
//! shape, the connector and the language model's [`LlamaConfig`] (plus Qwen2-VL's multimodal
//! rotary sections).

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::config::LlamaConfig;
use crate::error::{Error, Result};

/// The `architectures` this crate runs, as `config.json` names them.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &[
    "SmolVLMForConditionalGeneration",
    "Idefics3ForConditionalGeneration",
    "Qwen2_5_VLForConditionalGeneration",
];

/// Which model family a folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VlmFamily {
    /// Idefics3, SmolVLM and SmolVLM2: SigLIP tower, pixel-shuffle connector, Llama LM.
    Idefics3,
    /// Qwen2.5-VL: windowed ViT with 2-D RoPE and a 2×2 patch merger, Qwen2 LM with M-RoPE.
    Qwen2_5Vl,
}

/// Qwen2.5-VL's vision transformer (`vision_config`), with transformers' defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct QwenVisionConfig {
    /// Blocks.
    #[serde(default = "q_depth")]
    pub depth: usize,
    /// Width of the tower.
    #[serde(default = "q_hidden")]
    pub hidden_size: usize,
    /// SwiGLU inner width.
    #[serde(default = "q_inter")]
    pub intermediate_size: usize,
    /// Attention heads.
    #[serde(default = "d_heads")]
    pub num_heads: usize,
    /// Input channels (3); older configs call it `in_chans`.
    #[serde(default = "d_channels", alias = "in_chans")]
    pub in_channels: usize,
    /// Patch edge in pixels.
    #[serde(default = "q_patch")]
    pub patch_size: usize,
    /// Patches merged along each edge into one language-model token.
    #[serde(default = "q_merge")]
    pub spatial_merge_size: usize,
    /// Frames per patch (an image is repeated to fill them).
    #[serde(default = "q_temporal")]
    pub temporal_patch_size: usize,
    /// Window edge in pixels for the windowed blocks.
    #[serde(default = "q_window")]
    pub window_size: usize,
    /// The language model's width (the merger's output).
    #[serde(default = "q_hidden")]
    pub out_hidden_size: usize,
    /// Blocks that attend to the whole image; the others attend within windows.
    #[serde(default = "q_full")]
    pub fullatt_block_indexes: Vec<usize>,
    /// `silu` (SwiGLU).
    #[serde(default = "q_act")]
    pub hidden_act: String,
    /// Rotary settings (`rope_theta`).
    #[serde(default)]
    pub rope_parameters: Option<serde_json::Value>,
}

fn q_depth() -> usize {
    32
}
fn q_hidden() -> usize {
    3584
}
fn q_inter() -> usize {
    3420
}
fn q_patch() -> usize {
    14
}
fn q_merge() -> usize {
    2
}
fn q_temporal() -> usize {
    2
}
fn q_window() -> usize {
    112
}
fn q_full() -> Vec<usize> {
    vec![7, 15, 23, 31]
}
fn q_act() -> String {
    "silu".into()
}

impl QwenVisionConfig {
    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads.max(1)
    }

    /// The vision rotary base (`rope_parameters.rope_theta`, 10000 when absent).
    pub fn rope_theta(&self) -> f64 {
        self.rope_parameters
            .as_ref()
            .and_then(|p| p.get("rope_theta"))
            .and_then(|t| t.as_f64())
            .unwrap_or(10_000.0)
    }

    /// Merged tokens along a window's edge (`window_size / merge / patch`).
    pub fn merged_window(&self) -> usize {
        self.window_size / self.spatial_merge_size.max(1) / self.patch_size.max(1)
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(format!("vision_config: {m}")));
        if self.depth == 0 || self.patch_size == 0 || self.spatial_merge_size == 0 {
            return bad(format!(
                "`depth` {}, `patch_size` {} and `spatial_merge_size` {} must be positive",
                self.depth, self.patch_size, self.spatial_merge_size
            ));
        }
        if self.temporal_patch_size == 0 {
            return bad("`temporal_patch_size` must be positive".into());
        }
        if self.num_heads == 0 || !self.hidden_size.is_multiple_of(self.num_heads) {
            return bad(format!(
                "`hidden_size` {} must be a multiple of `num_heads` {}",
                self.hidden_size, self.num_heads
            ));
        }
        if !self.head_dim().is_multiple_of(4) {
            return bad(format!(
                "the head width {} must be a multiple of 4 (2-D rotary positions)",
                self.head_dim()
            ));
        }
        if self.in_channels != 3 {
            return bad(format!(
                "`in_channels` is {}; only RGB (3) is supported",
                self.in_channels
            ));
        }
        if self.merged_window() == 0 {
            return bad(format!(
                "`window_size` {} is smaller than one merged patch ({} pixels)",
                self.window_size,
                self.patch_size * self.spatial_merge_size
            ));
        }
        if let Some(&i) = self
            .fullatt_block_indexes
            .iter()
            .find(|&&i| i >= self.depth)
        {
            return bad(format!(
                "`fullatt_block_indexes` names block {i} but there are {} blocks",
                self.depth
            ));
        }
        if self.hidden_act != "silu" {
            return bad(format!(
                "`hidden_act` is `{}`; only silu is supported",
                self.hidden_act
            ));
        }
        Ok(())
    }
}

/// The vision side of a model.
#[derive(Debug, Clone, PartialEq)]
pub enum TowerConfig {
    /// SigLIP tower and pixel-shuffle connector (Idefics3 family).
    Siglip {
        /// The tower.
        vision: VisionConfig,
        /// Pixel-shuffle factor of the connector.
        scale_factor: usize,
    },
    /// Qwen2.5-VL's vision transformer and patch merger.
    Qwen(QwenVisionConfig),
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
    pub tower: TowerConfig,
    /// The image token id (`<image>`, `<|image_pad|>`).
    pub image_token_id: u32,
    /// Qwen2-VL's multimodal rotary sections (temporal, height, width frequencies).
    pub mrope_section: Option<[usize; 3]>,
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

/// transformers' `Qwen2_5_VLTextConfig` defaults.
const QWEN_TEXT_DEFAULTS: &[(&str, f64)] = &[
    ("vocab_size", 152_064.0),
    ("hidden_size", 8192.0),
    ("intermediate_size", 29_568.0),
    ("num_hidden_layers", 80.0),
    ("num_attention_heads", 64.0),
    ("num_key_value_heads", 8.0),
    ("rms_norm_eps", 1e-5),
    ("rope_theta", 1_000_000.0),
    ("max_position_embeddings", 32_768.0),
];

/// Reads an integer id key with a default.
fn token_id(v: &Value, key: &str, default: u32) -> Result<u32> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(t) => t
            .as_u64()
            .and_then(|t| u32::try_from(t).ok())
            .ok_or_else(|| Error::Config(format!("`{key}` is {t}; expected a token id"))),
    }
}

/// Takes Qwen2-VL's `mrope_section` out of the text config's rotary settings (leaving a
/// plain rotary type the language-model config understands).
fn take_mrope_section(obj: &mut serde_json::Map<String, Value>) -> Result<Option<[usize; 3]>> {
    let mut found = None;
    for key in ["rope_parameters", "rope_scaling"] {
        let Some(Value::Object(r)) = obj.get_mut(key) else {
            continue;
        };
        if let Some(sec) = r.remove("mrope_section") {
            let v: Vec<usize> = serde_json::from_value(sec.clone()).map_err(|_| {
                Error::Config(format!(
                    "`{key}.mrope_section` is {sec}; expected three non-negative integers"
                ))
            })?;
            let arr: [usize; 3] = v.try_into().map_err(|_| {
                Error::Config(format!(
                    "`{key}.mrope_section` is {sec}; expected three sections (t, h, w)"
                ))
            })?;
            found = Some(arr);
        }
        for k in ["type", "rope_type"] {
            if r.get(k).and_then(|t| t.as_str()) == Some("mrope") {
                r.insert(k.into(), "default".into());
            }
        }
    }
    Ok(found)
}

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
                "qwen2_5_vl" => Some("Qwen2_5_VLForConditionalGeneration".to_string()),
                _ => None,
            })
            .ok_or_else(|| {
                Error::Config(format!(
                    "not a supported vision-language model: architectures {archs:?} \
                     (model_type `{model_type}`); supported: {}",
                    SUPPORTED_ARCHITECTURES.join(", ")
                ))
            })?;
        if architecture.starts_with("Qwen2_5_VL") {
            return Self::qwen(&v, architecture);
        }
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
        integer_keys(obj);
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
        let image_token_id = token_id(&v, "image_token_id", 128_257)?;
        check_in_vocab(image_token_id, &text)?;
        Ok(VlmConfig {
            family: VlmFamily::Idefics3,
            architecture,
            text,
            tower: TowerConfig::Siglip {
                vision,
                scale_factor,
            },
            image_token_id,
            mrope_section: None,
        })
    }

    /// Qwen2.5-VL: the language model's keys sit in `text_config` (transformers 5) or at the
    /// top level (the checkpoints as published).
    fn qwen(v: &Value, architecture: String) -> Result<Self> {
        let mut text_cfg = match v.get("text_config") {
            Some(t) if t.is_object() => t.clone(),
            Some(other) => {
                return Err(Error::Config(format!(
                    "`text_config` is {other}; expected an object"
                )));
            }
            None => {
                let mut top = v.clone();
                if let Some(o) = top.as_object_mut() {
                    o.remove("vision_config");
                    o.remove("architectures");
                }
                top
            }
        };
        let obj = text_cfg
            .as_object_mut()
            .ok_or_else(|| Error::Config("config.json must be an object".into()))?;
        obj.insert("model_type".into(), "qwen2".into());
        for (k, d) in QWEN_TEXT_DEFAULTS {
            obj.entry(*k).or_insert_with(|| serde_json::json!(d));
        }
        integer_keys(obj);
        if let Some(t) = v.get("tie_word_embeddings").filter(|t| t.is_boolean()) {
            obj.insert("tie_word_embeddings".into(), t.clone());
        }
        let mrope = take_mrope_section(obj)?.unwrap_or([16, 24, 24]);
        let text = LlamaConfig::from_hf_str(&text_cfg.to_string()).map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("text_config: {m}")),
            other => other,
        })?;
        if mrope.iter().sum::<usize>() * 2 != text.head_dim {
            return Err(Error::Config(format!(
                "`mrope_section` {mrope:?} must sum to half the head width ({})",
                text.head_dim / 2
            )));
        }
        let vision: QwenVisionConfig = serde_json::from_value(
            v.get("vision_config")
                .cloned()
                .unwrap_or(Value::Object(Default::default())),
        )
        .map_err(|e| Error::Config(format!("vision_config: {e}")))?;
        vision.validate()?;
        if vision.out_hidden_size != text.hidden_size {
            return Err(Error::Config(format!(
                "vision_config.out_hidden_size {} differs from the language model's width {}",
                vision.out_hidden_size, text.hidden_size
            )));
        }
        let image_token_id = token_id(v, "image_token_id", 151_655)?;
        check_in_vocab(image_token_id, &text)?;
        Ok(VlmConfig {
            family: VlmFamily::Qwen2_5Vl,
            architecture,
            text,
            tower: TowerConfig::Qwen(vision),
            image_token_id,
            mrope_section: Some(mrope),
        })
    }

    /// Image tokens one tile becomes after the connector (Idefics3 family; 0 for Qwen2.5-VL,
    /// whose token count depends on each image's size).
    pub fn tokens_per_tile(&self) -> usize {
        match &self.tower {
            TowerConfig::Siglip {
                vision,
                scale_factor,
            } => {
                let side = vision.patches_per_side() / scale_factor;
                side * side
            }
            TowerConfig::Qwen(_) => 0,
        }
    }
}

fn integer_keys(obj: &mut serde_json::Map<String, Value>) {
    for k in [
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "max_position_embeddings",
    ] {
        if let Some(x) = obj.get(k).and_then(|x| x.as_f64()) {
            obj.insert(k.into(), serde_json::json!(x as u64));
        }
    }
}

fn check_in_vocab(id: u32, text: &LlamaConfig) -> Result<()> {
    if id as usize >= text.vocab_size {
        return Err(Error::Config(format!(
            "`image_token_id` {id} is outside the vocabulary of {} tokens",
            text.vocab_size
        )));
    }
    Ok(())
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
        let TowerConfig::Siglip { vision, .. } = &c.tower else {
            panic!("not SigLIP")
        };
        assert_eq!(vision.num_hidden_layers, 12);
        assert_eq!(c.text.head_dim, 64);
        let e = VlmConfig::from_str(
            r#"{"model_type": "smolvlm", "scale_factor": 3, "text_config": {},
                "vision_config": {"image_size": 512, "patch_size": 16}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("does not divide"), "{e}");
    }

    #[test]
    fn qwen_configs_as_published_and_as_transformers_5_writes_them() {
        // Qwen2.5-VL-3B-Instruct's config.json shape: text keys at the top level, `rope_scaling`
        // of type mrope, `in_chans`.
        let c = VlmConfig::from_str(
            r#"{"architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl",
                "hidden_size": 2048, "intermediate_size": 11008, "num_attention_heads": 16,
                "num_hidden_layers": 36, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
                "rope_theta": 1000000.0, "vocab_size": 151936, "tie_word_embeddings": true,
                "max_position_embeddings": 128000, "use_sliding_window": false,
                "image_token_id": 151655,
                "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
                "vision_config": {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420,
                  "num_heads": 16, "in_chans": 3, "out_hidden_size": 2048, "patch_size": 14,
                  "spatial_merge_size": 2, "window_size": 112,
                  "fullatt_block_indexes": [7, 15, 23, 31], "temporal_patch_size": 2}}"#,
        )
        .unwrap();
        assert_eq!(c.family, VlmFamily::Qwen2_5Vl);
        assert_eq!(c.mrope_section, Some([16, 24, 24]));
        assert!(c.text.qkv_bias && c.text.tie_word_embeddings);
        assert_eq!(c.text.head_dim, 128);
        let TowerConfig::Qwen(q) = &c.tower else {
            panic!("not Qwen")
        };
        assert_eq!((q.head_dim(), q.merged_window()), (80, 4));
        // Sections that do not fill half the head width are named.
        let e = VlmConfig::from_str(
            r#"{"model_type": "qwen2_5_vl", "text_config": {"hidden_size": 64,
                "num_attention_heads": 4, "num_key_value_heads": 2, "rope_parameters": {"rope_type": "default",
                "mrope_section": [2, 2, 2]}}, "vision_config": {"out_hidden_size": 64}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("mrope_section") && e.contains("half the head width (8)"),
            "{e}"
        );
        let e = VlmConfig::from_str(
            r#"{"model_type": "qwen2_5_vl", "text_config": {"hidden_size": 64,
                "num_attention_heads": 4, "num_key_value_heads": 2, "rope_parameters": {"mrope_section": [2, 3, 3]}},
                "vision_config": {"out_hidden_size": 64, "depth": 2}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("block 7") && e.contains("2 blocks"), "{e}");
    }
}
