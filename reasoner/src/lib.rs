//! # embodied-r-reasoner
//!
//! The small language model that reasons over the text a VLM wrote about key frames, in burn.
//!
//! What this crate owns:
//! - the Llama-family decoder (Llama, SmolLM2, Qwen2, Qwen2.5) generic over burn's `Backend`
//!   ([`Llama`]), with a KV cache ([`KvCache`]);
//! - checkpoint readers: GGUF v2/v3 ([`gguf`]) with block-quantized types, and Hugging Face
//!   folders with (sharded) safetensors ([`Checkpoint`]);
//! - the packed CPU kernels that keep quantized weights quantized in memory ([`quant`]);
//! - tokenizers (from `tokenizer.json` or GGUF metadata) and Jinja chat templates;
//! - sampling and generation: one prompt, or G samples sharing one prefill (GRPO);
//! - the Embodied-R prompts ([`prompt`]), completion parsing ([`answer`]), the reward shared by
//!   the runtime and the trainer ([`reward`]) and the episode record with its crash-tolerant
//!   reader and trainer exports ([`episode`]);
//! - the local vision-language model ([`vlm`]: SmolVLM/Idefics3), which reuses the decoder
//!   above and takes images as plain RGB bytes.
//!
//! What it must not touch: cameras, frames, VLM servers, networking, tokio. `perception` and this
//! crate do not know about each other; the `agent` crate joins them.
//!
//! ```no_run
//! use embodied_r_reasoner::{LoadOptions, LanguageModel, GenerationConfig};
//! # fn main() -> embodied_r_reasoner::Result<()> {
//! let mut lm = LanguageModel::<embodied_r_reasoner::backend::Cpu>::load(
//!     "models/SmolLM2-135M-Instruct.Q4_1.gguf",
//!     &LoadOptions::default(),
//! )?;
//! let prompt = lm.render_chat(&[("user", "Is the tower to my left?")], true)?;
//! let out = lm.generate(&prompt, &GenerationConfig::greedy(32), |_| std::ops::ControlFlow::Continue(()))?;
//! println!("{}", out.text);
//! # Ok(()) }
//! ```

#![deny(unsafe_code)]

pub mod adapter;
pub mod answer;
pub mod backend;
mod cache;
mod chat;
mod config;
pub mod episode;
mod error;
mod generate;
pub mod gguf;
pub mod gguf_export;
pub mod gguf_write;
mod host;
pub mod labels;
mod layers;
mod mmap;
mod model;
pub mod prompt;
pub mod quant;
pub mod reward;
mod sampling;
mod tokenizer;
pub mod vlm;
mod weights;

pub use cache::KvCache;
pub use chat::{ChatMessage, ChatTemplate};
pub use config::{Architecture, LlamaConfig, RopeScaling};
pub use error::{Error, Result};
pub use generate::{
    Completion, FinishReason, GenerationConfig, LanguageModel, LoadOptions, Timings, TokenEvent,
    TokenizerConfig, chat_template_from_json,
};
pub use layers::{Embedding, Linear, Lora, RmsNorm, WeightMode};
pub use model::{Llama, LogitsFor, MultiPositions, NamedTensor, Rope};
pub use quant::ActivationMode;
pub use sampling::{Sampler, SamplingConfig};
pub use tokenizer::Tokenizer;
pub use weights::{Checkpoint, SafetensorsSet, load_model};

/// Sets how many threads the CPU kernels and burn's CPU backend use. Call once, early; later
/// calls keep the first size. Returns the size in effect for the kernel pool.
pub fn init_threads(threads: usize) -> usize {
    let threads = threads.max(1);
    // burn-flex parallelises through rayon's global pool; size it the same. It fails only if
    // the pool already exists, in which case the existing one is kept.
    if rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("er-rayon-{i}"))
        .build_global()
        .is_err()
    {
        tracing::debug!("rayon's global pool was already initialised");
    }
    quant::init_pool(threads)
}
