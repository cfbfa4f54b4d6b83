//! # embodied-r-trainer
//!
//! Fine-tunes the reasoning LM with GRPO (spec §4–§5), offline, from what robots recorded.
//!
//! What this crate owns:
//! - training examples from episode logs, Embodied-R JSON rows and GRPO JSONL ([`data`]);
//! - GRPO's arithmetic: group advantages, per-token log-probabilities, the clipped token-level
//!   objective with the k3 KL to a frozen reference ([`grpo`]);
//! - LoRA adapters and freezing ([`lora`]), AdamW settings, warm-up + cosine schedule and
//!   global-norm gradient clipping ([`optim`]);
//! - the training loop with rollouts, the consistency judges (a frozen in-process copy of the
//!   base LM, or an OpenAI-compatible endpoint), metrics and resumable checkpoints ([`train`]);
//! - evaluation: accuracy per category and overall, format and consistency rates ([`eval`]);
//! - self-traces by rejection sampling: the model's own correct, consistent completions as SFT
//!   targets ([`self_traces`]);
//! - writing tensors out ([`export`]); PNG curves of a run ([`plots`]);
//! - the training-throughput benchmark ([`bench`]).
//!
//! The reward itself lives in `embodied_r_reasoner::reward`, shared with the runtime; the model
//! and its sampler live in the reasoner crate. What it must not touch: cameras, networking of
//! the runtime, the episode log's writer.

#![deny(unsafe_code)]

pub mod bench;
pub mod data;
mod error;
pub mod eval;
pub mod export;
pub mod grpo;
pub mod lora;
pub mod optim;
pub mod plots;
pub mod self_traces;
pub mod train;

pub use error::{Result, TrainError};
pub use train::{StepMetrics, TrainConfig, Trainer};
