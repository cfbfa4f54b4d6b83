//! Parity of the embedded default model (SmolLM2-135M-Instruct, Q4_1 GGUF) with transformers,
//! from fixtures written by `tools/fixtures_smollm2.py`.
//!
//! Needs the model file: `embodied-r fetch-model` puts it at `models/` in the workspace
//! (or set `EMBODIED_R_MODEL`). CI fetches it before the tests run.
//!
//! Tolerances: last-position logits within 6e-6 of the reference logit range in the exact
//! modes (dense f32; packed weights with f32 activations; `EXACT`, about three times the worst
//! measured, 2.1e-6), and the greedy 32-token continuation identical. The fast mode (8-bit activations) must stay at least as close to
//! transformers as llama.cpp is on the same prompts (recorded in the fixture); its greedy drift
//! is printed, as the issue asks us to report it.
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use std::path::{Path, PathBuf};

use embodied_r_reasoner::backend::Cpu;
use embodied_r_reasoner::{
    ActivationMode, ChatMessage, GenerationConfig, LanguageModel, LoadOptions, WeightMode,
};
use serde_json::Value;

fn model_path() -> PathBuf {
    if let Ok(p) = std::env::var("EMBODIED_R_MODEL") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.exists(),
        "{} is missing: run `cargo run -p embodied-r-launch -- fetch-model` first (or set EMBODIED_R_MODEL)",
        p.display()
    );
    p
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/smollm2")
        .join(name)
}

fn json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn reference_logits(vocab: usize) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(fixture("logits.bin")).unwrap();
    let all: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    all.chunks_exact(vocab).map(|c| c.to_vec()).collect()
}

fn rel_err(ours: &[f32], reference: &[f32]) -> f32 {
    let (lo, hi) = reference
        .iter()
        .fold((f32::MAX, f32::MIN), |(l, h), &x| (l.min(x), h.max(x)));
    let max = ours
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    max / (hi - lo)
}

/// Runs every prompt; returns (worst logit error, greedy tokens matching before the first
/// difference, per prompt).
fn run(mode: WeightMode) -> (f32, Vec<(usize, usize)>) {
    let lm = LanguageModel::<Cpu>::load(
        model_path(),
        &LoadOptions {
            weights: mode,
            adapter: None,
        },
    )
    .unwrap();
    let fix = json("model.json");
    let vocab = fix["vocab_size"].as_u64().unwrap() as usize;
    let refs = reference_logits(vocab);
    let mut worst = 0f32;
    let mut greedy = vec![];
    for (p, want_logits) in fix["prompts"].as_array().unwrap().iter().zip(&refs) {
        let prompt = ids(&p["ids"]);
        if p["kind"] == "chat" {
            // Our template + tokenizer produce exactly the prompt transformers fed.
            let msgs: Vec<ChatMessage> = serde_json::from_value(p["messages"].clone()).unwrap();
            let text = lm.render_messages(&msgs, true).unwrap();
            assert_eq!(text, p["text"].as_str().unwrap());
            assert_eq!(lm.encode_chat(&text).unwrap(), prompt);
        } else {
            assert_eq!(lm.encode_raw(p["text"].as_str().unwrap()).unwrap(), prompt);
        }
        let logits = lm.last_logits(&prompt).unwrap();
        worst = worst.max(rel_err(&logits, want_logits));
        let want = ids(&p["greedy"]);
        let mut cfg = GenerationConfig::greedy(want.len());
        cfg.stop_on_eos = false;
        let out = lm
            .generate_ids(&prompt, &cfg, |_| std::ops::ControlFlow::Continue(()))
            .unwrap();
        let same = out
            .tokens
            .iter()
            .zip(&want)
            .take_while(|(a, b)| a == b)
            .count();
        greedy.push((same, want.len()));
    }
    (worst, greedy)
}

/// Bound on the exact modes' logit error, as a share of the reference logits' range.
const EXACT: f32 = 6e-6;

#[test]
fn smollm2_dense_matches_transformers() {
    let (err, greedy) = run(WeightMode::Dense);
    eprintln!("dense: worst logit error {err:.2e} of range; greedy {greedy:?}");
    assert!(err <= EXACT, "logits off by {err} of the range");
    assert!(
        greedy.iter().all(|(s, n)| s == n),
        "greedy differs: {greedy:?}"
    );
}

#[test]
fn smollm2_packed_exact_matches_transformers() {
    let (err, greedy) = run(WeightMode::Packed(ActivationMode::F32));
    eprintln!("packed f32: worst logit error {err:.2e} of range; greedy {greedy:?}");
    assert!(err <= EXACT, "logits off by {err} of the range");
    assert!(
        greedy.iter().all(|(s, n)| s == n),
        "greedy differs: {greedy:?}"
    );
}

#[test]
fn smollm2_packed_fast_stays_close() {
    let (err, greedy) = run(WeightMode::Packed(ActivationMode::Q8));
    let matched: usize = greedy.iter().map(|(s, _)| s).sum();
    let total: usize = greedy.iter().map(|(_, n)| n).sum();
    let fix = json("model.json");
    let prompts = fix["prompts"].as_array().unwrap();
    let lcpp_err = prompts
        .iter()
        .map(|p| p["llama_cpp_rel_err"].as_f64().unwrap() as f32)
        .fold(0f32, f32::max);
    let lcpp_matched: u64 = prompts
        .iter()
        .map(|p| p["llama_cpp_greedy_match"].as_u64().unwrap())
        .sum();
    eprintln!(
        "packed q8 (fast): worst logit error {err:.2e} of range (llama.cpp {lcpp_err:.2e}); \
         greedy tokens before first divergence {greedy:?} ({matched}/{total}; llama.cpp {lcpp_matched}/{total})"
    );
    assert!(
        err <= lcpp_err,
        "fast path is further from transformers ({err}) than llama.cpp ({lcpp_err})"
    );
}

#[test]
fn smollm2_gguf_tokenizer_matches_reference_and_llama_cpp() {
    let lm = LanguageModel::<Cpu>::load(model_path(), &LoadOptions::fast_cpu()).unwrap();
    let tok = lm.tokenizer();
    let fix = json("tokenizer.json");
    let strings = fix["strings"].as_array().unwrap();
    assert!(strings.len() >= 200);
    let mut differs_from_transformers_default = 0;
    for (i, s) in strings.iter().enumerate() {
        let s = s.as_str().unwrap();
        let got = tok.encode(s, false).unwrap();
        assert_eq!(got, ids(&fix["reference"][i]), "ids of {s:?}");
        assert_eq!(got, ids(&fix["llama_cpp"][i]), "llama.cpp ids of {s:?}");
        assert_eq!(
            tok.decode(&got, true).unwrap(),
            fix["decoded"][i].as_str().unwrap()
        );
        if got != ids(&fix["transformers_gguf_default"][i]) {
            differs_from_transformers_default += 1;
        }
    }
    // transformers' GGUF loader lacks SmolLM2's digit pre-tokenizer; these strings show it.
    assert_eq!(differs_from_transformers_default, 4);
    for r in fix["renders"].as_array().unwrap() {
        let msgs: Vec<ChatMessage> = serde_json::from_value(r["messages"].clone()).unwrap();
        let got = lm
            .render_messages(&msgs, r["add_generation_prompt"].as_bool().unwrap())
            .unwrap();
        assert_eq!(got, r["text"].as_str().unwrap());
    }
}
