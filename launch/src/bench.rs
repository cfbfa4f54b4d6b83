//! `embodied-r bench lm`: prefill and decode speed on a fixed ~580-token chat prompt.
//!
//! The prompt (`assets/bench_chat.json`) is the same one `tools/bench_llamacpp.py` feeds
//! llama.cpp, so the two figures are comparable in one run on one machine.

use std::ops::ControlFlow;
use std::time::Instant;

use anyhow::Result;
use embodied_r_reasoner::backend::Backend;
use embodied_r_reasoner::{ChatMessage, GenerationConfig, with_backend};
use serde::Serialize;

use crate::ModelArgs;

/// The benchmark conversation (system prompt, key-frame descriptions, question).
pub const BENCH_CHAT: &str = include_str!("../assets/bench_chat.json");

/// Arguments of `embodied-r bench lm`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Model, backend, weights, threads.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Tokens to decode after the prompt.
    #[arg(long, default_value_t = 128)]
    pub decode_tokens: usize,
    /// Measured repetitions (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Print the last line as a JSON object instead of key=value pairs.
    #[arg(long)]
    pub json: bool,
}

/// What `bench lm` measured.
#[derive(Debug, Clone, Serialize)]
pub struct LmBenchReport {
    /// Median prompt tokens per second.
    pub prefill_tok_s: f64,
    /// Median generated tokens per second.
    pub decode_tok_s: f64,
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Tokens decoded per run.
    pub decode_tokens: usize,
    /// Threads in the kernel pool.
    pub threads: usize,
    /// Backend name.
    pub backend: String,
    /// The model, with ` + adapter` when one is put on it.
    pub model: String,
    /// Weight layout.
    pub weights: String,
    /// Seconds to load the model.
    pub load_s: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

/// Runs `bench lm`.
pub fn run(args: &BenchArgs) -> Result<()> {
    let threads = args.model.init_threads();
    let kind = args.model.backend_kind()?;
    let report = with_backend!(kind, B => measure::<B>(args, threads))?;
    #[allow(clippy::print_stdout)]
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "prefill_tok_s={:.1} decode_tok_s={:.1}",
            report.prefill_tok_s, report.decode_tok_s
        );
    }
    Ok(())
}

fn measure<B: Backend>(args: &BenchArgs, threads: usize) -> Result<LmBenchReport> {
    let mode = args.model.weight_mode()?;
    let t0 = Instant::now();
    let lm = args.model.load::<B>()?;
    let load_s = t0.elapsed().as_secs_f64();
    let chat: serde_json::Value = serde_json::from_str(BENCH_CHAT)?;
    let msgs: Vec<ChatMessage> = serde_json::from_value(chat["messages"].clone())?;
    let ids = lm.encode_chat(&lm.render_messages(&msgs, true)?)?;
    let mut cfg = GenerationConfig::greedy(args.decode_tokens.max(1));
    cfg.stop_on_eos = false;
    // Warm-up: touches every weight and sizes the caches.
    lm.generate_ids(
        &ids[..ids.len().min(32)],
        &GenerationConfig {
            max_tokens: 4,
            ..cfg.clone()
        },
        |_| ControlFlow::Continue(()),
    )?;
    let mut prefill = vec![];
    let mut decode = vec![];
    for run in 0..args.runs.max(1) {
        let out = lm.generate_ids(&ids, &cfg, |_| ControlFlow::Continue(()))?;
        let t = out.timings;
        tracing::info!(
            run,
            prefill_tok_s = t.prefill_tok_s(),
            decode_tok_s = t.decode_tok_s(),
            "bench run"
        );
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "run {run}: prefill {} tok {:.1} tok/s, decode {} tok {:.1} tok/s",
                t.prefill_tokens,
                t.prefill_tok_s(),
                t.decode_tokens,
                t.decode_tok_s()
            );
        }
        prefill.push(t.prefill_tok_s());
        decode.push(t.decode_tok_s());
    }
    Ok(LmBenchReport {
        prefill_tok_s: median(prefill),
        decode_tok_s: median(decode),
        prompt_tokens: ids.len(),
        decode_tokens: args.decode_tokens,
        model: args.model.describe()?,
        threads,
        backend: args.model.backend.clone(),
        weights: format!("{mode:?}"),
        load_s,
    })
}
