//! `embodied-r train self-traces`: the model's own completions as SFT targets (rejection
//! sampling, STaR). For each question it samples up to `--tries` completions and keeps the first
//! that is well formed, correct under the strict reader and — unless `--no-judge` — whose think,
//! read without the answer by the same model as judge, implies the chosen option. Kept rows are
//! GRPO JSONL with the completion as the assistant message: `data = ["self.jsonl"]` in an SFT
//! config trains on them. Resumable (`OUT.attempts.jsonl`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use embodied_r_reasoner::backend::Backend;
use embodied_r_reasoner::reward::{ConsistencyJudge, Extraction};
use embodied_r_reasoner::{SamplingConfig, with_backend};
use embodied_r_trainer::data::{self, Example};
use embodied_r_trainer::eval::{EvalSettings, LmAnswerer};
use embodied_r_trainer::self_traces::{KeepRule, attempts_path, rejection_sample};
use embodied_r_trainer::train::LocalJudge;

use crate::ModelArgs;
use crate::sim_data::{VideoDescriber, sim_examples};

/// `embodied-r train self-traces`.
#[derive(Debug, Args)]
pub struct SelfTracesArgs {
    /// Questions with known answers: a simulator benchmark split (with `--describer sim`), or
    /// rows that hold their video text (Embodied-R JSON, GRPO JSONL, an episode log).
    #[arg(long)]
    pub data: PathBuf,
    /// `sim` (re-render and describe the benchmark's videos) or `none`.
    #[arg(long, default_value = "sim")]
    pub describer: String,
    /// Model, backend, weights, threads, adapter (the model to sample from).
    #[command(flatten)]
    pub model: ModelArgs,
    /// Samples per question at most.
    #[arg(long, default_value_t = 4)]
    pub tries: usize,
    /// Sampling temperature.
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f32,
    /// Nucleus sampling mass.
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Sampling seed (each question and attempt derive theirs from it).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Completion budget.
    #[arg(long, default_value_t = 192)]
    pub max_tokens: usize,
    /// Longest prompt (the oldest video text is trimmed beyond it).
    #[arg(long, default_value_t = 1536)]
    pub max_prompt_tokens: usize,
    /// Numeric answers: the least mean relative accuracy kept.
    #[arg(long, default_value_t = 0.75)]
    pub numeric_min: f64,
    /// Keep correct, well-formed samples without the consistency check.
    #[arg(long)]
    pub no_judge: bool,
    /// Only these categories (repeatable; default all).
    #[arg(long = "category")]
    pub categories: Vec<String>,
    /// Only the first N questions (after the category filter).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Where kept rows are appended (GRPO JSONL).
    #[arg(long)]
    pub out: PathBuf,
}

fn examples(args: &SelfTracesArgs) -> Result<Vec<Example>> {
    let mut ex = match args.describer.as_str() {
        "sim" => sim_examples(&args.data, &VideoDescriber::Sim)
            .with_context(|| format!("building video text for {}", args.data.display()))?,
        "none" => {
            data::load(&args.data)
                .with_context(|| format!("loading {}", args.data.display()))?
                .0
        }
        other => anyhow::bail!("--describer {other}: expected `sim` or `none`"),
    };
    if !args.categories.is_empty() {
        ex.retain(|e| args.categories.contains(&e.category));
        anyhow::ensure!(
            !ex.is_empty(),
            "--category {:?}: no question of {} is in these categories",
            args.categories,
            args.data.display()
        );
    }
    if let Some(n) = args.limit {
        ex.truncate(n);
    }
    Ok(ex)
}

/// Runs `train self-traces`.
pub fn run(args: &SelfTracesArgs) -> Result<()> {
    args.model.init_threads();
    let kind = args.model.backend_kind()?;
    with_backend!(kind, B => sample::<B>(args))
}

fn sample<B: Backend>(args: &SelfTracesArgs) -> Result<()> {
    let examples = examples(args)?;
    let lm = Arc::new(args.model.load::<B>()?);
    let settings = EvalSettings {
        max_tokens: args.max_tokens,
        max_prompt_tokens: args.max_prompt_tokens,
        extraction: Extraction::Strict,
        response_prefix: String::new(),
    };
    let sampler = LmAnswerer::new(&lm, &settings).sampling(SamplingConfig {
        temperature: args.temperature,
        top_p: Some(args.top_p),
        seed: args.seed,
        ..SamplingConfig::default()
    });
    let judge = LocalJudge::new(lm.clone());
    let rule = KeepRule {
        tries: args.tries,
        numeric_min: args.numeric_min,
    };
    tracing::info!(
        questions = examples.len(),
        model = %args.model.describe()?,
        tries = args.tries,
        "sampling self-traces"
    );
    let bar = indicatif::ProgressBar::new(examples.len() as u64);
    let tally = rejection_sample(
        &sampler,
        &examples,
        &rule,
        (!args.no_judge).then_some(&judge as &dyn ConsistencyJudge),
        &args.out,
        |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )
    .with_context(|| format!("writing self-traces to {}", args.out.display()))?;
    bar.finish_and_clear();
    for (category, (kept, of)) in &tally {
        tracing::info!(%category, kept, of, "self-traces kept");
    }
    let (kept, of) = tally.values().fold((0, 0), |(k, n), (a, b)| (k + a, n + b));
    tracing::info!(
        kept,
        of,
        out = %args.out.display(),
        attempts = %attempts_path(&args.out).display(),
        "done"
    );
    Ok(())
}
