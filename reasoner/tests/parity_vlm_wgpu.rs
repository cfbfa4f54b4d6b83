//! The local VLM on the wgpu backend (Mesa's software Vulkan in CI) against the same
//! transformers fixtures as `parity_vlm.rs`. Run with `--features wgpu`.
#![cfg(feature = "wgpu")]
#![allow(clippy::unwrap_used, missing_docs)]

mod vlm_common;

use embodied_r_reasoner::backend::Wgpu;

#[test]
fn wgpu_vlm_matches_transformers() {
    // GPU reductions sum in another order: logits within 1e-3 of their range. Software Vulkan
    // compiles a kernel per new shape, so greedy decoding is checked on the first prompt only,
    // 6 tokens.
    vlm_common::check_prompts::<Wgpu>("smolvlm", 1e-3, 6, 1);
    vlm_common::check_prompts::<Wgpu>("idefics3", 1e-3, 0, 2);
    vlm_common::check_prompts::<Wgpu>("qwen2_5_vl", 1e-3, 4, 1);
}
