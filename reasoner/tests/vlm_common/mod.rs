//! Shared checks of the local VLM against the transformers fixtures written by
//! `tools/fixtures_vlm.py` (SmolVLM, Idefics3 and Qwen2.5-VL, tiny random weights stored as
//! bf16).
#![allow(clippy::unwrap_used, clippy::print_stderr, dead_code, missing_docs)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use embodied_r_reasoner::vlm::{PreparedImage, Rgb8, VisionLanguageModel, load_image};
use embodied_r_reasoner::{GenerationConfig, LoadOptions, WeightMode};
use serde_json::Value;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vlm")
}

/// Reference tensors by name: shape and values.
pub type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

pub fn reference(model: &str) -> (Value, Tensors) {
    let dir = fixtures().join("reference");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{model}.json"))).unwrap())
            .unwrap();
    let bytes = std::fs::read(dir.join(format!("{model}.safetensors"))).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
        let v: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.insert(name.to_string(), (view.shape().to_vec(), v));
    }
    (json, out)
}

pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

pub fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

/// max |a − b| / (max(b) − min(b))
pub fn rel_err(ours: &[f32], reference: &[f32]) -> f32 {
    let (lo, hi) = reference
        .iter()
        .fold((f32::MAX, f32::MIN), |(l, h), &x| (l.min(x), h.max(x)));
    max_abs(ours, reference) / (hi - lo).max(1e-6)
}

pub fn image(name: &str) -> Rgb8 {
    load_image(&fixtures().join("images").join(name)).unwrap()
}

pub fn load<B: Backend>(model: &str) -> VisionLanguageModel<B> {
    VisionLanguageModel::<B>::load(
        fixtures().join(model),
        &LoadOptions {
            weights: WeightMode::Dense,
            adapter: None,
        },
        &Default::default(),
    )
    .unwrap()
}

fn host<B: Backend, const D: usize>(t: burn::tensor::Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec::<f32>().unwrap()
}

/// Checks every stage of every prompt: rendering, ids, vision tower, connector, logits
/// (within `logit_tol` of the logit range) and the first `greedy_tokens` greedy tokens.
pub fn check_prompts<B: Backend>(
    model: &str,
    feature_tol: f32,
    logit_tol: f32,
    greedy_tokens: usize,
    prompts: usize,
) {
    let vlm = load::<B>(model);
    let (json, tensors) = reference(model);
    for (i, case) in json["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .take(prompts)
    {
        let messages: Vec<Value> = case["messages"].as_array().unwrap().clone();
        let rendered = vlm.render_messages(&messages).unwrap();
        assert_eq!(
            rendered,
            case["rendered"].as_str().unwrap(),
            "{model} prompt {i}"
        );
        let images: Vec<Rgb8> = case["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| image(n.as_str().unwrap()))
            .collect();
        let prepared = vlm.prepare(&rendered, &images).unwrap();
        assert_eq!(
            prepared.ids,
            ids(&case["input_ids"]),
            "{model} prompt {i}: ids"
        );

        if let Some(want) = case.get("positions") {
            // Reference: [3][tokens]; ours: [tokens][3].
            let ours = prepared.positions.as_ref().unwrap();
            for (stream, row) in want.as_array().unwrap().iter().enumerate() {
                let got: Vec<u32> = ours.iter().map(|p| p[stream]).collect();
                assert_eq!(got, ids(row), "{model} prompt {i}: rotary stream {stream}");
            }
        }

        // The SigLIP tower alone (Idefics3 family), then the features the LM receives.
        let mut vision = Vec::new();
        for t in &prepared.images {
            if let PreparedImage::Tiles(t) = t {
                vision.extend(host(vlm.encode_tiles(t).unwrap()));
            }
        }
        let feats = host(vlm.image_features(&prepared.images).unwrap());
        let features_ref = if vision.is_empty() {
            "vision"
        } else {
            let (_, want) = &tensors[&format!("prompt{i}.vision")];
            let e = max_abs(&vision, want);
            eprintln!("{model} prompt {i}: vision tower max |diff| {e:.2e}");
            assert!(
                e <= feature_tol,
                "{model} prompt {i}: vision tower off by {e}"
            );
            "connector"
        };
        let (_, want) = &tensors[&format!("prompt{i}.{features_ref}")];
        let e = max_abs(&feats, want);
        eprintln!("{model} prompt {i}: image features max |diff| {e:.2e}");
        assert!(
            e <= feature_tol,
            "{model} prompt {i}: image features off by {e}"
        );

        let logits = vlm.last_logits(&rendered, &images).unwrap();
        let (_, want) = &tensors[&format!("prompt{i}.logits")];
        let e = rel_err(&logits, want);
        eprintln!("{model} prompt {i}: logits off by {e:.2e} of their range");
        assert!(
            e <= logit_tol,
            "{model} prompt {i}: logits off by {e} of the range"
        );

        if greedy_tokens > 0 {
            let want = ids(&case["greedy"]);
            let want = &want[..greedy_tokens.min(want.len())];
            let mut cfg = GenerationConfig::greedy(want.len());
            cfg.stop_on_eos = false;
            let out = vlm
                .generate_rendered(&rendered, &images, &cfg, |_| {
                    std::ops::ControlFlow::Continue(())
                })
                .unwrap();
            assert_eq!(
                out.completion.tokens, want,
                "{model} prompt {i}: greedy differs"
            );
        }
    }
}
