//! Full-size configurations of the checkpoints a robot runs, for benchmarks: speed does not
//! depend on weight values, so [`write_random_folder`] writes a Hugging Face folder with the
//! real shapes and random bf16 weights (and a synthetic word-level tokenizer holding the image
//! tokens). transformers loads the same folder, so both sides of a comparison run identical
//! models.

use std::collections::BTreeMap;
use std::path::Path;

use half::bf16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::config::{TowerConfig, VlmConfig};
use crate::error::{Error, Result};

/// A named full-size configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// SmolVLM-256M-Instruct / SmolVLM2-256M: SigLIP-B/16 at 512 px, SmolLM2-135M.
    SmolVlm256M,
    /// SmolVLM-500M-Instruct / SmolVLM2-500M: SigLIP-B/16 at 512 px, SmolLM2-360M.
    SmolVlm500M,
    /// Qwen2.5-VL-3B-Instruct: 32-block windowed ViT (1280 wide), Qwen2.5-3B language model.
    Qwen25Vl3B,
}

/// The image-token strings and ids of the synthetic tokenizer (the real checkpoints put their
/// image tokens above SmolLM2's 49152 ids too).
const FAKE_AROUND: u32 = 49_189;
const IMAGE: u32 = 49_190;
const END_OF_UTTERANCE: u32 = 49_191;
const GLOBAL: u32 = 49_192;
const ROW_COL: u32 = 49_193;

/// Qwen2.5-VL's special-token ids.
const QWEN_SPECIALS: &[(u32, &str)] = &[
    (151_643, "<|endoftext|>"),
    (151_644, "<|im_start|>"),
    (151_645, "<|im_end|>"),
    (151_652, "<|vision_start|>"),
    (151_653, "<|vision_end|>"),
    (151_655, "<|image_pad|>"),
    (151_656, "<|video_pad|>"),
];

impl Preset {
    /// Every preset.
    pub const ALL: [Preset; 3] = [Preset::SmolVlm256M, Preset::SmolVlm500M, Preset::Qwen25Vl3B];

    /// Its command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Preset::SmolVlm256M => "smolvlm-256m",
            Preset::SmolVlm500M => "smolvlm-500m",
            Preset::Qwen25Vl3B => "qwen2.5-vl-3b",
        }
    }

    /// `config.json`.
    pub fn config_json(self) -> Value {
        if self == Preset::Qwen25Vl3B {
            // The published config.json's shape: text keys at the top level.
            return json!({
                "architectures": ["Qwen2_5_VLForConditionalGeneration"],
                "model_type": "qwen2_5_vl",
                "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
                "num_attention_heads": 16, "num_key_value_heads": 2, "vocab_size": 151_936,
                "rms_norm_eps": 1e-6, "rope_theta": 1_000_000.0,
                "max_position_embeddings": 128_000, "hidden_act": "silu",
                "tie_word_embeddings": true, "use_sliding_window": false,
                "bos_token_id": 151_643, "eos_token_id": 151_645,
                "vision_start_token_id": 151_652, "vision_end_token_id": 151_653,
                "image_token_id": 151_655, "video_token_id": 151_656,
                "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
                "vision_config": {
                    "depth": 32, "hidden_size": 1280, "intermediate_size": 3420,
                    "num_heads": 16, "in_chans": 3, "out_hidden_size": 2048, "patch_size": 14,
                    "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
                    "fullatt_block_indexes": [7, 15, 23, 31], "hidden_act": "silu",
                    "tokens_per_second": 2,
                },
            });
        }
        let text = match self {
            Preset::SmolVlm256M => json!({
                "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                "num_attention_heads": 9, "num_key_value_heads": 3,
            }),
            _ => json!({
                "hidden_size": 960, "intermediate_size": 2560, "num_hidden_layers": 32,
                "num_attention_heads": 15, "num_key_value_heads": 5,
            }),
        };
        let mut text = text;
        if let Some(o) = text.as_object_mut() {
            for (k, v) in [
                ("model_type", json!("llama")),
                ("vocab_size", json!(49_280)),
                ("rms_norm_eps", json!(1e-5)),
                ("rope_theta", json!(100_000.0)),
                ("max_position_embeddings", json!(8192)),
                ("hidden_act", json!("silu")),
                ("tie_word_embeddings", json!(false)),
                ("bos_token_id", json!(1)),
                ("eos_token_id", json!(END_OF_UTTERANCE)),
                ("pad_token_id", json!(2)),
            ] {
                o.insert(k.into(), v);
            }
        }
        json!({
            "architectures": ["SmolVLMForConditionalGeneration"],
            "model_type": "smolvlm",
            "image_token_id": IMAGE,
            "scale_factor": 4,
            "tie_word_embeddings": false,
            "text_config": text,
            "vision_config": {
                "model_type": "smolvlm_vision", "hidden_size": 768, "intermediate_size": 3072,
                "num_hidden_layers": 12, "num_attention_heads": 12, "image_size": 512,
                "patch_size": 16, "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6,
            },
        })
    }

    /// `processor_config.json` (the image processor nested, as transformers 5 writes it).
    pub fn processor_json(self) -> Value {
        if self == Preset::Qwen25Vl3B {
            return json!({
                "processor_class": "Qwen2_5_VLProcessor",
                "image_processor": {
                    "image_processor_type": "Qwen2VLImageProcessor",
                    "min_pixels": 3136, "max_pixels": 12_845_056, "patch_size": 14,
                    "temporal_patch_size": 2, "merge_size": 2, "resample": 3,
                    "do_rescale": true, "rescale_factor": 1.0 / 255.0, "do_normalize": true,
                    "image_mean": [0.481_454_66, 0.457_827_5, 0.408_210_73],
                    "image_std": [0.268_629_54, 0.261_302_58, 0.275_777_11],
                    "do_convert_rgb": true,
                },
            });
        }
        json!({
            "processor_class": "SmolVLMProcessor",
            "image_seq_len": 64,
            "image_processor": {
                "image_processor_type": "SmolVLMImageProcessor",
                "do_resize": true, "size": {"longest_edge": 2048},
                "do_image_splitting": true, "max_image_size": {"longest_edge": 512},
                "resample": 1, "do_rescale": true, "rescale_factor": 1.0 / 255.0,
                "do_normalize": true, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
                "do_convert_rgb": true, "do_pad": true,
            },
        })
    }
}

impl std::str::FromStr for Preset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                Error::Config(format!(
                    "no preset `{s}`; available: {}",
                    Preset::ALL.map(Preset::name).join(", ")
                ))
            })
    }
}

/// The SmolVLM chat template (user turns as `User:<image>…text<end_of_utterance>`).
pub const SMOLVLM_CHAT_TEMPLATE: &str = "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'] is string %}{{': ' + message['content']}}{% else %}{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}{% endif %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

/// Qwen2-VL's chat template (a default system turn; images as
/// `<|vision_start|><|image_pad|><|vision_end|>`).
pub const QWEN2_VL_CHAT_TEMPLATE: &str = "{% set image_count = namespace(value=0) %}{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// SmolVLM's special tokens in the synthetic tokenizer.
fn smolvlm_specials() -> Vec<(u32, String)> {
    let mut specials: Vec<(u32, String)> = vec![
        (0, "<unk>".into()),
        (1, "<|im_start|>".into()),
        (2, "<|im_end|>".into()),
        (FAKE_AROUND, "<fake_token_around_image>".into()),
        (IMAGE, "<image>".into()),
        (END_OF_UTTERANCE, "<end_of_utterance>".into()),
        (GLOBAL, "<global-img>".into()),
    ];
    let mut id = ROW_COL;
    for r in 1..=6 {
        for c in 1..=6 {
            specials.push((id, format!("<row_{r}_col_{c}>")));
            id += 1;
        }
    }
    specials
}

/// A word-level tokenizer of `vocab` ids: filler words, and `specials` at their ids.
fn tokenizer_json(vocab: u32, specials: &[(u32, String)]) -> Value {
    let special_ids: BTreeMap<u32, String> = specials.iter().cloned().collect();
    let mut words = serde_json::Map::new();
    for i in 0..vocab {
        let w = special_ids
            .get(&i)
            .cloned()
            .unwrap_or_else(|| format!("w{i}"));
        words.insert(w, json!(i));
    }
    let added: Vec<Value> = specials
        .iter()
        .map(|(id, s)| {
            json!({"id": id, "content": s, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null, "model": {"type": "WordLevel", "vocab": words, "unk_token": "<unk>"},
    })
}

/// A tensor's name, shape and fill (`None`: ones, for norms; `Some(a)`: uniform in ±a).
type Spec = (String, Vec<usize>, Option<f32>);

fn scale(fan_in: usize) -> Option<f32> {
    Some(1.0 / (fan_in as f32).sqrt())
}

/// Every tensor of the model with its shape and how to fill it.
fn tensors(cfg: &VlmConfig) -> Vec<Spec> {
    let (prefix, mut out) = match &cfg.tower {
        TowerConfig::Siglip {
            vision,
            scale_factor,
        } => (
            "model.text_model.",
            siglip_tensors(vision, *scale_factor, cfg.text.hidden_size),
        ),
        TowerConfig::Qwen(v) => ("model.", qwen_tensors(v)),
    };
    out.extend(text_tensors(&cfg.text, prefix));
    out
}

fn text_tensors(t: &crate::LlamaConfig, prefix: &str) -> Vec<Spec> {
    let h = t.hidden_size;
    let mut out = vec![
        (
            format!("{prefix}embed_tokens.weight"),
            vec![t.vocab_size, h],
            Some(0.02),
        ),
        (format!("{prefix}norm.weight"), vec![h], None),
    ];
    if !t.tie_word_embeddings {
        out.push(("lm_head.weight".into(), vec![t.vocab_size, h], scale(h)));
    }
    let (q, kv) = (
        t.num_attention_heads * t.head_dim,
        t.num_key_value_heads * t.head_dim,
    );
    for l in 0..t.num_hidden_layers {
        let p = format!("{prefix}layers.{l}");
        if t.qkv_bias {
            for (n, len) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
                out.push((format!("{p}.self_attn.{n}.bias"), vec![len], Some(0.02)));
            }
        }
        for (n, shape, fill) in [
            ("input_layernorm.weight", vec![h], None),
            ("post_attention_layernorm.weight", vec![h], None),
            ("self_attn.q_proj.weight", vec![q, h], scale(h)),
            ("self_attn.k_proj.weight", vec![kv, h], scale(h)),
            ("self_attn.v_proj.weight", vec![kv, h], scale(h)),
            ("self_attn.o_proj.weight", vec![h, q], scale(q)),
            (
                "mlp.gate_proj.weight",
                vec![t.intermediate_size, h],
                scale(h),
            ),
            ("mlp.up_proj.weight", vec![t.intermediate_size, h], scale(h)),
            (
                "mlp.down_proj.weight",
                vec![h, t.intermediate_size],
                scale(t.intermediate_size),
            ),
        ] {
            out.push((format!("{p}.{n}"), shape, fill));
        }
    }
    out
}

fn qwen_tensors(v: &super::config::QwenVisionConfig) -> Vec<Spec> {
    let (d, p, t, i) = (
        v.hidden_size,
        v.patch_size,
        v.temporal_patch_size,
        v.intermediate_size,
    );
    let mut out = vec![(
        "visual.patch_embed.proj.weight".to_string(),
        vec![d, 3, t, p, p],
        scale(3 * t * p * p),
    )];
    for l in 0..v.depth {
        let b = format!("visual.blocks.{l}");
        for (nm, shape, fill) in [
            ("norm1.weight", vec![d], None),
            ("norm2.weight", vec![d], None),
            ("attn.qkv.weight", vec![3 * d, d], scale(d)),
            ("attn.qkv.bias", vec![3 * d], Some(0.0)),
            ("attn.proj.weight", vec![d, d], scale(d)),
            ("attn.proj.bias", vec![d], Some(0.0)),
            ("mlp.gate_proj.weight", vec![i, d], scale(d)),
            ("mlp.gate_proj.bias", vec![i], Some(0.0)),
            ("mlp.up_proj.weight", vec![i, d], scale(d)),
            ("mlp.up_proj.bias", vec![i], Some(0.0)),
            ("mlp.down_proj.weight", vec![d, i], scale(i)),
            ("mlp.down_proj.bias", vec![d], Some(0.0)),
        ] {
            out.push((format!("{b}.{nm}"), shape, fill));
        }
    }
    let m = v.spatial_merge_size;
    let wide = d * m * m;
    out.push(("visual.merger.ln_q.weight".into(), vec![d], None));
    out.push((
        "visual.merger.mlp.0.weight".into(),
        vec![wide, wide],
        scale(wide),
    ));
    out.push(("visual.merger.mlp.0.bias".into(), vec![wide], Some(0.0)));
    out.push((
        "visual.merger.mlp.2.weight".into(),
        vec![v.out_hidden_size, wide],
        scale(wide),
    ));
    out.push((
        "visual.merger.mlp.2.bias".into(),
        vec![v.out_hidden_size],
        Some(0.0),
    ));
    out
}

fn siglip_tensors(v: &super::config::VisionConfig, s: usize, h: usize) -> Vec<Spec> {
    let d = v.hidden_size;
    let mut out = Vec::new();
    let pv = "model.vision_model";
    let p = v.patch_size;
    let n = v.patches_per_side() * v.patches_per_side();
    out.push((
        format!("{pv}.embeddings.patch_embedding.weight"),
        vec![d, 3, p, p],
        scale(3 * p * p),
    ));
    out.push((
        format!("{pv}.embeddings.patch_embedding.bias"),
        vec![d],
        Some(0.02),
    ));
    out.push((
        format!("{pv}.embeddings.position_embedding.weight"),
        vec![n, d],
        Some(0.02),
    ));
    for l in 0..v.num_hidden_layers {
        let e = format!("{pv}.encoder.layers.{l}");
        for (nm, shape, fill) in [
            ("layer_norm1.weight", vec![d], None),
            ("layer_norm1.bias", vec![d], Some(0.0)),
            ("layer_norm2.weight", vec![d], None),
            ("layer_norm2.bias", vec![d], Some(0.0)),
            ("self_attn.q_proj.weight", vec![d, d], scale(d)),
            ("self_attn.k_proj.weight", vec![d, d], scale(d)),
            ("self_attn.v_proj.weight", vec![d, d], scale(d)),
            ("self_attn.out_proj.weight", vec![d, d], scale(d)),
            ("self_attn.q_proj.bias", vec![d], Some(0.0)),
            ("self_attn.k_proj.bias", vec![d], Some(0.0)),
            ("self_attn.v_proj.bias", vec![d], Some(0.0)),
            ("self_attn.out_proj.bias", vec![d], Some(0.0)),
            ("mlp.fc1.weight", vec![v.intermediate_size, d], scale(d)),
            ("mlp.fc1.bias", vec![v.intermediate_size], Some(0.0)),
            (
                "mlp.fc2.weight",
                vec![d, v.intermediate_size],
                scale(v.intermediate_size),
            ),
            ("mlp.fc2.bias", vec![d], Some(0.0)),
        ] {
            out.push((format!("{e}.{nm}"), shape, fill));
        }
    }
    out.push((format!("{pv}.post_layernorm.weight"), vec![d], None));
    out.push((format!("{pv}.post_layernorm.bias"), vec![d], Some(0.0)));
    out.push((
        "model.connector.modality_projection.proj.weight".into(),
        vec![h, d * s * s],
        scale(d * s * s),
    ));
    out
}

fn write_json(path: &Path, v: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(|e| Error::Config(e.to_string()))?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Writes `preset` with random bf16 weights (uniform, scaled by 1/√fan-in; norms 1) into `dir`
/// as a Hugging Face folder. Returns the number of parameters.
pub fn write_random_folder(preset: Preset, dir: &Path, seed: u64) -> Result<usize> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let config = preset.config_json();
    let cfg = VlmConfig::from_str(&config.to_string())?;
    write_json(&dir.join("config.json"), &config)?;
    write_json(&dir.join("processor_config.json"), &preset.processor_json())?;
    let (specials, tok_cfg, template) = match preset {
        Preset::Qwen25Vl3B => {
            let mut sp: Vec<(u32, String)> = vec![(0, "<unk>".into())];
            sp.extend(QWEN_SPECIALS.iter().map(|(i, s)| (*i, s.to_string())));
            (
                sp,
                json!({"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                       "unk_token": "<unk>", "tokenizer_class": "PreTrainedTokenizerFast"}),
                QWEN2_VL_CHAT_TEMPLATE,
            )
        }
        _ => (
            smolvlm_specials(),
            json!({"bos_token": "<|im_start|>", "eos_token": "<end_of_utterance>",
                   "pad_token": "<|im_end|>", "unk_token": "<unk>",
                   "tokenizer_class": "PreTrainedTokenizerFast"}),
            SMOLVLM_CHAT_TEMPLATE,
        ),
    };
    write_json(
        &dir.join("tokenizer.json"),
        &tokenizer_json(cfg.text.vocab_size as u32, &specials),
    )?;
    write_json(&dir.join("tokenizer_config.json"), &tok_cfg)?;
    std::fs::write(dir.join("chat_template.jinja"), template)
        .map_err(|e| Error::io(dir.join("chat_template.jinja"), e))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let specs = tensors(&cfg);
    let mut data: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(specs.len());
    let mut params = 0;
    for (name, shape, fill) in specs {
        let n: usize = shape.iter().product();
        params += n;
        let mut bytes = Vec::with_capacity(n * 2);
        for _ in 0..n {
            let x = match fill {
                None => 1.0,
                Some(0.0) => 0.0,
                Some(a) => rng.random_range(-a..a),
            };
            bytes.extend_from_slice(&bf16::from_f32(x).to_le_bytes());
        }
        data.push((name, shape, bytes));
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::BF16, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::Config(format!("tensor {name}: {e}")))
        })
        .collect::<Result<_>>()?;
    let path = dir.join("model.safetensors");
    safetensors::serialize_to_file(views, None, &path).map_err(|e| Error::Safetensors {
        path: path.clone(),
        what: e.to_string(),
    })?;
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_and_name_round_trip() {
        for p in Preset::ALL {
            let c = VlmConfig::from_str(&p.config_json().to_string()).unwrap();
            let per_tile = if p == Preset::Qwen25Vl3B { 0 } else { 64 };
            assert_eq!(c.tokens_per_tile(), per_tile, "{p:?}");
            assert_eq!(p.name().parse::<Preset>().unwrap(), p);
        }
        let e = "qwen".parse::<Preset>().unwrap_err().to_string();
        // Qwen2.5-VL-3B: 3.75 B parameters with the tied head.
        let c = VlmConfig::from_str(&Preset::Qwen25Vl3B.config_json().to_string()).unwrap();
        let n: usize = tensors(&c)
            .iter()
            .map(|(_, s, _)| s.iter().product::<usize>())
            .sum();
        assert!((3_600_000_000..3_900_000_000).contains(&n), "{n}");
        assert!(e.contains("smolvlm-256m"), "{e}");
        // SmolVLM-256M: about 256 M parameters with the untied head.
        let c = VlmConfig::from_str(&Preset::SmolVlm256M.config_json().to_string()).unwrap();
        let n: usize = tensors(&c)
            .iter()
            .map(|(_, s, _)| s.iter().product::<usize>())
            .sum();
        assert!((240_000_000..275_000_000).contains(&n), "{n}");
    }
}
