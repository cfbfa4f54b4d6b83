//! The local VLM (SmolVLM, Idefics3, Qwen2.5-VL) against transformers, on the CPU backend:
//! preprocessing within 1e-5, vision tower and image features within 5e-6 (`FEATURES`), Qwen's
//! rotary positions identical, last-position logits within 1.2e-6 of their range (`LOGITS`),
//! the greedy 16-token continuation identical; and the errors a user meets. Each bound is about
//! three times the worst error measured (the README quotes these bounds).
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

mod vlm_common;

use std::ops::ControlFlow;

use embodied_r_reasoner::backend::Cpu;
use embodied_r_reasoner::vlm::{PreparedImage, VisionLanguageModel, load_image};
use embodied_r_reasoner::{GenerationConfig, LoadOptions};
use vlm_common::*;

#[test]
fn preprocessing_matches_the_pil_processor() {
    for model in ["smolvlm", "idefics3", "qwen2_5_vl"] {
        let vlm = load::<Cpu>(model);
        let (json, tensors) = reference(model);
        for (name, info) in json["images"].as_object().unwrap() {
            let (shape, want) = &tensors[&format!("pixels.{name}")];
            let pixels = match vlm.preprocess(&image(name)).unwrap() {
                PreparedImage::Tiles(tiles) => {
                    assert_eq!(tiles.rows as u64, info["rows"].as_u64().unwrap(), "{name}");
                    assert_eq!(tiles.cols as u64, info["cols"].as_u64().unwrap(), "{name}");
                    assert_eq!(shape[0], tiles.count, "{model} {name}: tiles");
                    tiles.pixels
                }
                PreparedImage::Patches(p) => {
                    let grid: Vec<usize> = ids(&info["grid"]).iter().map(|&x| x as usize).collect();
                    assert_eq!(p.grid.to_vec(), grid, "{model} {name}: grid");
                    assert_eq!(
                        shape.as_slice(),
                        &[p.count(), p.patch_len],
                        "{model} {name}"
                    );
                    p.pixels
                }
            };
            let e = max_abs(&pixels, want);
            eprintln!("{model} {name}: pixels max |diff| {e:.2e}");
            assert!(e <= 1e-5, "{model} {name}: pixels off by {e}");
        }
    }
}

/// Vision tower output and image features, max |ours − transformers| (measured: ≤ 1.8e-6).
const FEATURES: f32 = 5e-6;
/// Last-position logits, max error over the logit range (measured: ≤ 3.9e-7).
const LOGITS: f32 = 1.2e-6;

#[test]
fn smolvlm_matches_transformers() {
    check_prompts::<Cpu>("smolvlm", FEATURES, LOGITS, 16, usize::MAX);
}

#[test]
fn idefics3_matches_transformers() {
    check_prompts::<Cpu>("idefics3", FEATURES, LOGITS, 16, usize::MAX);
}

#[test]
fn qwen2_5_vl_matches_transformers() {
    check_prompts::<Cpu>("qwen2_5_vl", FEATURES, LOGITS, 16, usize::MAX);
}

#[test]
fn user_turn_and_streaming() {
    let vlm = load::<Cpu>("idefics3");
    let rendered = vlm.render_prompt(2, "Which object is closest?").unwrap();
    assert_eq!(
        rendered,
        "<|im_start|>User:<image><image>Which object is closest?<end_of_utterance>\nAssistant:"
    );
    let images = [image("wide.png"), image("tall.png")];
    let mut streamed = String::new();
    let mut cfg = GenerationConfig::greedy(8);
    cfg.stop_on_eos = false;
    let out = vlm
        .generate(&images, "Which object is closest?", &cfg, |ev| {
            streamed.push_str(&ev.text);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(out.completion.tokens.len(), 8);
    assert_eq!(streamed, out.completion.text);
    assert_eq!((out.images, out.tiles, out.image_tokens), (2, 8, 32));
    assert!(vlm.label().contains("Idefics3ForConditionalGeneration"));
}

fn copy_fixture(model: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixtures().join(model)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), tmp.path().join(e.file_name())).unwrap();
    }
    tmp
}

fn load_err(dir: &std::path::Path) -> String {
    VisionLanguageModel::<Cpu>::load(dir, &LoadOptions::default(), &Default::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn clear_errors() {
    // A language-only folder: the architectures found and the supported ones are named.
    let lm_dir = fixtures().join("../tiny-llama");
    let e = load_err(&lm_dir);
    assert!(e.contains("LlamaForCausalLM"), "{e}");
    assert!(e.contains("SmolVLMForConditionalGeneration"), "{e}");

    // Missing processor settings and tokenizer.
    let tmp = copy_fixture("idefics3");
    std::fs::remove_file(tmp.path().join("processor_config.json")).unwrap();
    let e = load_err(tmp.path());
    assert!(e.contains("preprocessor_config.json"), "{e}");
    let tmp = copy_fixture("idefics3");
    std::fs::remove_file(tmp.path().join("tokenizer.json")).unwrap();
    let e = load_err(tmp.path());
    assert!(e.contains("tokenizer.json"), "{e}");

    // A weight of the wrong shape names the tensor.
    let tmp = copy_fixture("idefics3");
    let cfg = std::fs::read_to_string(tmp.path().join("config.json")).unwrap();
    std::fs::write(
        tmp.path().join("config.json"),
        cfg.replace(
            "\"intermediate_size\": 64,\n    \"layer_norm_eps\"",
            "\"intermediate_size\": 48,\n    \"layer_norm_eps\"",
        ),
    )
    .unwrap();
    let e = load_err(tmp.path());
    assert!(
        e.contains("model.vision_model.encoder.layers.0.mlp.fc1.weight"),
        "{e}"
    );

    // An image that is not an image.
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("frame.png");
    std::fs::write(&bad, b"not a png at all").unwrap();
    let e = load_image(&bad).unwrap_err().to_string();
    assert!(e.contains("frame.png") && e.contains("PNG or JPEG"), "{e}");

    // A prompt that overflows the context says by how much.
    let tmp = copy_fixture("idefics3");
    let cfg = std::fs::read_to_string(tmp.path().join("config.json")).unwrap();
    std::fs::write(
        tmp.path().join("config.json"),
        cfg.replace(
            "\"max_position_embeddings\": 2048",
            "\"max_position_embeddings\": 40",
        ),
    )
    .unwrap();
    let vlm =
        VisionLanguageModel::<Cpu>::load(tmp.path(), &LoadOptions::default(), &Default::default())
            .unwrap();
    let e = vlm
        .generate(
            &[image("wide.png")],
            "Describe.",
            &GenerationConfig::greedy(4),
            |_| ControlFlow::Continue(()),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("context is 40") && e.contains("too many"), "{e}");

    // More images than placeholders.
    let vlm = load::<Cpu>("idefics3");
    let e = vlm
        .prepare(
            "<|im_start|>User:<image>x",
            &[image("wide.png"), image("tall.png")],
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("1 `<image>` placeholders but 2 images"), "{e}");
}

#[test]
fn qwen_errors_are_named() {
    // A processor that cuts other patches than the tower takes.
    let tmp = copy_fixture("qwen2_5_vl");
    let p = std::fs::read_to_string(tmp.path().join("processor_config.json")).unwrap();
    std::fs::write(
        tmp.path().join("processor_config.json"),
        p.replacen("\"patch_size\": 4", "\"patch_size\": 7", 1),
    )
    .unwrap();
    let e = load_err(tmp.path());
    assert!(
        e.contains("7-pixel patches") && e.contains("4-pixel patches"),
        "{e}"
    );

    // A config that disagrees with the weights names the tensor.
    let tmp = copy_fixture("qwen2_5_vl");
    let c = std::fs::read_to_string(tmp.path().join("config.json")).unwrap();
    std::fs::write(
        tmp.path().join("config.json"),
        c.replace("\"intermediate_size\": 48", "\"intermediate_size\": 40"),
    )
    .unwrap();
    let e = load_err(tmp.path());
    assert!(e.contains("visual.blocks.0.mlp.gate_proj.weight"), "{e}");

    // The prompt's placeholders are Qwen's.
    let vlm = load::<Cpu>("qwen2_5_vl");
    assert_eq!(vlm.image_placeholder(), "<|image_pad|>");
    let e = vlm
        .prepare("<|im_start|>user\nno image here", &[image("wide.png")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("0 `<|image_pad|>` placeholders but 1 images"),
        "{e}"
    );
    // An image more than 200 times wider than tall is refused as transformers refuses it.
    let thin = embodied_r_reasoner::vlm::Rgb8::new(402, 2, vec![9; 402 * 2 * 3]).unwrap();
    let e = vlm
        .generate(&[thin], "Describe.", &GenerationConfig::greedy(2), |_| {
            ControlFlow::Continue(())
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("402×2") && e.contains("200"), "{e}");
}
