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

use super::config::VlmConfig;
use crate::error::{Error, Result};

/// A named full-size configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// SmolVLM-256M-Instruct / SmolVLM2-256M: SigLIP-B/16 at 512 px, SmolLM2-135M.
    SmolVlm256M,
    /// SmolVLM-500M-Instruct / SmolVLM2-500M: SigLIP-B/16 at 512 px, SmolLM2-360M.
    SmolVlm500M,
}

/// The image-token strings and ids of the synthetic tokenizer (the real checkpoints put their
/// image tokens above SmolLM2's 49152 ids too).
const FAKE_AROUND: u32 = 49_189;
const IMAGE: u32 = 49_190;
const END_OF_UTTERANCE: u32 = 49_191;
const GLOBAL: u32 = 49_192;
const ROW_COL: u32 = 49_193;

impl Preset {
    /// Every preset.
    pub const ALL: [Preset; 2] = [Preset::SmolVlm256M, Preset::SmolVlm500M];

    /// Its command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Preset::SmolVlm256M => "smolvlm-256m",
            Preset::SmolVlm500M => "smolvlm-500m",
        }
    }

    /// `config.json`.
    pub fn config_json(self) -> Value {
        let text = match self {
            Preset::SmolVlm256M => json!({
                "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                "num_attention_heads": 9, "num_key_value_heads": 3,
            }),
            Preset::SmolVlm500M => json!({
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

/// A word-level tokenizer of `vocab` ids: `<unk>`, `<|im_start|>`, `<|im_end|>`, filler words,
/// and the image tokens at the ids the config names.
fn tokenizer_json(vocab: u32) -> Value {
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

/// Every tensor of the model with its shape and how to fill it (`None`: ones, for norms).
fn tensors(cfg: &VlmConfig) -> Vec<(String, Vec<usize>, Option<f32>)> {
    let t = &cfg.text;
    let v = &cfg.vision;
    let (h, d) = (t.hidden_size, v.hidden_size);
    let scale = |fan_in: usize| Some(1.0 / (fan_in as f32).sqrt());
    let mut out = vec![
        (
            "model.text_model.embed_tokens.weight".to_string(),
            vec![t.vocab_size, h],
            Some(0.02),
        ),
        ("model.text_model.norm.weight".into(), vec![h], None),
        ("lm_head.weight".into(), vec![t.vocab_size, h], scale(h)),
    ];
    let (q, kv) = (
        t.num_attention_heads * t.head_dim,
        t.num_key_value_heads * t.head_dim,
    );
    for l in 0..t.num_hidden_layers {
        let p = format!("model.text_model.layers.{l}");
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
    let s = cfg.scale_factor;
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
    write_json(
        &dir.join("tokenizer.json"),
        &tokenizer_json(cfg.text.vocab_size as u32),
    )?;
    write_json(
        &dir.join("tokenizer_config.json"),
        &json!({"bos_token": "<|im_start|>", "eos_token": "<end_of_utterance>",
                "pad_token": "<|im_end|>", "unk_token": "<unk>",
                "tokenizer_class": "PreTrainedTokenizerFast"}),
    )?;
    std::fs::write(dir.join("chat_template.jinja"), SMOLVLM_CHAT_TEMPLATE)
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
            assert_eq!(c.tokens_per_tile(), 64, "{p:?}");
            assert_eq!(p.name().parse::<Preset>().unwrap(), p);
        }
        let e = "qwen".parse::<Preset>().unwrap_err().to_string();
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
