//! `embodied-r bench train`: GRPO training throughput (rollout and update) on one group of
//! synthetic prompts; `tools/bench_trl.py` measures TRL's GRPOTrainer at the same shapes.

#![allow(clippy::print_stdout)]
use std::path::PathBuf;

use anyhow::{Context, Result};
use embodied_r_reasoner::backend::{Backend, BackendKind};
use embodied_r_reasoner::with_backend;
use embodied_r_trainer::bench::{TrainBenchConfig, TrainBenchReport, run as bench_run};
use embodied_r_trainer::lora::LoraConfig;

/// Arguments of `embodied-r bench train`.
#[derive(Debug, clap::Args)]
pub struct TrainBenchArgs {
    /// The model (GGUF file or Hugging Face folder).
    #[arg(long, default_value = "models/SmolLM2-135M-Instruct.Q4_1.gguf")]
    pub model: PathBuf,
    /// Completions per prompt (G).
    #[arg(long, default_value_t = 8)]
    pub group: usize,
    /// Prompt tokens.
    #[arg(long, default_value_t = 256)]
    pub prompt_tokens: usize,
    /// Completion tokens (generation does not stop early).
    #[arg(long, default_value_t = 128)]
    pub completion_tokens: usize,
    /// LoRA rank (0: full fine-tuning).
    #[arg(long, default_value_t = 16)]
    pub lora_rank: usize,
    /// LoRA alpha.
    #[arg(long, default_value_t = 32.0)]
    pub lora_alpha: f64,
    /// LoRA targets (comma-separated projection names or `all-linear`).
    #[arg(long, default_value = "q_proj,k_proj,v_proj,o_proj")]
    pub lora_targets: String,
    /// Measured runs after one warm-up (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// CPU threads.
    #[arg(long)]
    pub threads: Option<usize>,
    /// flex (CPU), wgpu or cuda.
    #[arg(long, default_value = "flex")]
    pub backend: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `bench train`.
pub fn run(args: &TrainBenchArgs) -> Result<()> {
    let threads = crate::init_threads(args.threads);
    let cfg = TrainBenchConfig {
        model: args.model.clone(),
        group: args.group,
        prompt_tokens: args.prompt_tokens,
        completion_tokens: args.completion_tokens,
        lora: LoraConfig {
            enabled: args.lora_rank > 0,
            rank: args.lora_rank.max(1),
            alpha: args.lora_alpha,
            targets: args
                .lora_targets
                .split(',')
                .map(|s| s.trim().to_string())
                .collect(),
        },
        runs: args.runs,
        seed: 0,
    };
    let kind: BackendKind = args.backend.parse()?;
    let report = with_backend!(kind, B => measure::<B>(&cfg))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "G={} prompt={} completion={} lora_rank={} threads={threads}: rollout {:.1} tok/s ({:.2} s), update {:.1} tok/s ({:.2} s: forward {:.2}, reference {:.2}, backward {:.2}, optimiser {:.3}), step {:.2} s",
            cfg.group,
            cfg.prompt_tokens,
            cfg.completion_tokens,
            args.lora_rank,
            report.rollout_tok_s,
            report.rollout_s,
            report.update_tok_s,
            report.update_s,
            report.forward_s,
            report.reference_s,
            report.backward_s,
            report.optim_s,
            report.step_s
        );
    }
    Ok(())
}

fn measure<B: Backend>(cfg: &TrainBenchConfig) -> Result<TrainBenchReport> {
    bench_run::<B>(cfg, &Default::default())
        .with_context(|| format!("benchmarking training on {}", cfg.model.display()))
}
