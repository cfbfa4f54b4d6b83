//! `embodied-r train`: GRPO fine-tuning from a `train.toml`, and `train sft` (supervised
//! fine-tuning on traces), with a progress bar and `OUT/metrics.jsonl`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use embodied_r_reasoner::backend::{Backend, BackendKind};
use embodied_r_reasoner::with_backend;
use embodied_r_trainer::train::Mode;
use embodied_r_trainer::{TrainConfig, Trainer, data};

/// `embodied-r train`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TrainArgs {
    /// `sft`: supervised fine-tuning; `self-traces`: the model's own correct completions as
    /// SFT targets; `export`: a checkpoint as a Hugging Face folder; `adapter`: its LoRA as a
    /// PEFT folder; `plot`: redraw a run's curves.
    #[command(subcommand)]
    pub action: Option<TrainAction>,
    /// The run (GRPO without a subcommand).
    #[command(flatten)]
    pub run: RunArgs,
}

/// A training run's options (`train` and `train sft`).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The training configuration (TOML; see docs/training.md).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override `steps`.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Override `out` (metrics, checkpoints).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override `seed`.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Continue from a checkpoint directory (`OUT/checkpoint-N`) of the same configuration.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// flex (CPU), wgpu or cuda.
    #[arg(long, default_value = "flex")]
    pub backend: String,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// `embodied-r train` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TrainAction {
    /// Supervised fine-tuning on prompt → completion pairs (the cold start before GRPO): the
    /// rows' assistant messages, or with `describer = "sim"` the rules answerer's traces that
    /// reach the gold answer. Same checkpoints, curves, resume and export as GRPO.
    Sft(RunArgs),
    /// Sample the model's own completions for questions with known answers and keep the
    /// correct, well-formed, consistent ones as SFT targets (rejection sampling; GRPO JSONL).
    SelfTraces(crate::self_traces_cli::SelfTracesArgs),
    /// Write a checkpoint as a Hugging Face folder (LoRA merged; transformers loads it).
    Export(ExportArgs),
    /// Write a LoRA checkpoint's adapter as a PEFT folder (f16 by default): what `--adapter`
    /// and `reasoner.adapter` load on top of the base GGUF.
    Adapter(AdapterArgs),
    /// Draw a run's curves from its `metrics.jsonl` into `RUN/curves.png` (training does
    /// this at its end; use it for an interrupted run or while one is going).
    Plot(PlotArgs),
}

/// `embodied-r train plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// The run's output directory (holding `metrics.jsonl`).
    #[arg(long)]
    pub run: PathBuf,
}

/// `embodied-r train adapter`.
#[derive(Debug, Args)]
pub struct AdapterArgs {
    /// The checkpoint directory (`OUT/checkpoint-N`).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The folder to write (`adapter_config.json`, `adapter_model.safetensors`).
    #[arg(long)]
    pub out: PathBuf,
    /// Keep f32 values (default: f16, half the size).
    #[arg(long)]
    pub f32: bool,
}

/// `embodied-r train export`: a checkpoint (or, for `--gguf`, an adapter folder) merged into
/// its base, as a Hugging Face folder (`--hf`) or a GGUF file (`--gguf`).
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("from").required(true).args(["checkpoint", "adapter"])))]
#[command(group(clap::ArgGroup::new("to").required(true).args(["hf", "gguf"])))]
pub struct ExportArgs {
    /// The checkpoint directory (`OUT/checkpoint-N`).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// A PEFT adapter folder instead of a checkpoint (with `--gguf` and `--base`).
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// The Hugging Face folder to write (f32).
    #[arg(long)]
    pub hf: Option<PathBuf>,
    /// The GGUF file to write: llama.cpp, Ollama and `embodied-r` load it.
    #[arg(long)]
    pub gguf: Option<PathBuf>,
    /// With `--gguf`: the type of the merged matrices (`q8_0`, `q4_1`, `q4_0`, `f16`, `f32`);
    /// default: each as the base stored it.
    #[arg(long)]
    pub quant: Option<String>,
    /// The base model, when not at the path the checkpoint records (required with --adapter).
    #[arg(long)]
    pub base: Option<PathBuf>,
}

fn parse_quant(q: &str) -> Result<embodied_r_reasoner::quant::GgmlType> {
    use embodied_r_reasoner::quant::GgmlType;
    Ok(match q.to_ascii_lowercase().as_str() {
        "q8_0" => GgmlType::Q8_0,
        "q4_1" => GgmlType::Q4_1,
        "q4_0" => GgmlType::Q4_0,
        "f16" => GgmlType::F16,
        "bf16" => GgmlType::BF16,
        "f32" => GgmlType::F32,
        other => bail!("--quant {other}: expected q8_0, q4_1, q4_0, f16, bf16 or f32"),
    })
}

/// Runs `train`.
pub fn run(args: &TrainArgs) -> Result<()> {
    match &args.action {
        Some(TrainAction::Export(e)) => return export(e),
        Some(TrainAction::Plot(p)) => {
            let png = embodied_r_trainer::plots::plot_run(&p.run)
                .with_context(|| format!("plotting the run in {}", p.run.display()))?;
            tracing::info!(png = %png.display(), "curves written");
            #[allow(clippy::print_stdout)]
            {
                println!("{}", png.display());
            }
            return Ok(());
        }
        Some(TrainAction::Sft(r)) => return run_mode(r, Mode::Sft),
        Some(TrainAction::SelfTraces(a)) => return crate::self_traces_cli::run(a),
        Some(TrainAction::Adapter(a)) => {
            let report = embodied_r_trainer::export::export_adapter(&a.checkpoint, &a.out, a.f32)
                .with_context(|| {
                format!(
                    "writing the adapter of {} to {}",
                    a.checkpoint.display(),
                    a.out.display()
                )
            })?;
            #[allow(clippy::print_stdout)]
            {
                println!("{}", serde_json::to_string(&report)?);
            }
            return Ok(());
        }
        None => {}
    }
    run_mode(&args.run, Mode::Grpo)
}

fn run_mode(args: &RunArgs, mode: Mode) -> Result<()> {
    let Some(config) = &args.config else {
        anyhow::bail!(
            "`embodied-r train` needs --config FILE (or the `sft`, `export` or `plot` subcommand)"
        );
    };
    let mut cfg = TrainConfig::from_file(config, mode)
        .with_context(|| format!("reading {}", config.display()))?;
    if let Some(s) = args.steps {
        cfg.steps = s;
    }
    if let Some(o) = &args.out {
        cfg.out = o.clone();
    }
    if let Some(s) = args.seed {
        cfg.seed = s;
    }
    cfg.validate()?;
    crate::init_threads(args.threads);
    let kind: BackendKind = args.backend.parse()?;
    with_backend!(kind, B => train_on::<B>(cfg, args))
}

fn train_on<B: Backend>(cfg: TrainConfig, args: &RunArgs) -> Result<()> {
    let mut examples = Vec::new();
    for p in &cfg.data {
        if cfg.describer == "sim" {
            let mut ex = crate::sim_data::sim_examples(p, &crate::sim_data::VideoDescriber::Sim)
                .with_context(|| format!("building video text for {}", p.display()))?;
            tracing::info!(path = %p.display(), examples = ex.len(), "simulator training data");
            if cfg.mode == Mode::Sft {
                let (kept, counts) = crate::sim_data::with_rules_traces(ex);
                for (cat, (k, n)) in &counts {
                    tracing::info!(category = %cat, kept = k, of = n, "rules traces that reach the gold answer");
                }
                ex = kept;
            }
            examples.extend(ex);
            continue;
        }
        // Episodes nobody labelled are kept when GRPO may label them by majority vote.
        let keep_unlabelled = cfg.mode == Mode::Grpo && cfg.reward.labels.majority();
        let (ex, report) = data::load_with(p, keep_unlabelled)
            .with_context(|| format!("loading {}", p.display()))?;
        tracing::info!(
            path = %p.display(),
            examples = ex.len(),
            unlabelled = report.unlabelled,
            skipped = report.skipped,
            warnings = report.warnings.len(),
            "training data"
        );
        examples.extend(ex);
    }
    let out = cfg.out.clone();
    let steps = cfg.steps;
    let mode = cfg.mode;
    let mut trainer =
        Trainer::<B>::new(cfg, examples, Default::default()).context("setting up the trainer")?;
    if let Some(dir) = &args.resume {
        trainer
            .resume(dir)
            .with_context(|| format!("resuming from {}", dir.display()))?;
        tracing::info!(step = trainer.step(), "resumed");
    }
    let bar = indicatif::ProgressBar::new(steps);
    bar.set_position(trainer.step());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    trainer.run(|m| {
        bar.set_position(m.step);
        if mode == Mode::Sft {
            bar.set_message(format!(
                "loss {:.4} len {:.0} upd {:.0} tok/s",
                m.loss, m.completion_len, m.update_tok_s
            ));
            return;
        }
        bar.set_message(format!(
            "reward {:.3} acc {:.3} fmt {:.3} cons {:.3} kl {:.4} len {:.0} roll {:.0} tok/s upd {:.0} tok/s",
            m.reward,
            m.accuracy,
            m.format,
            m.consistency,
            m.kl,
            m.completion_len,
            m.rollout_tok_s,
            m.update_tok_s
        ));
    })?;
    bar.finish();
    tracing::info!(out = %out.display(), "training finished; metrics in metrics.jsonl");
    // The curves are a by-product: failing to draw them loses nothing recorded.
    match embodied_r_trainer::plots::plot_run(&out) {
        Ok(png) => tracing::info!(png = %png.display(), "curves written"),
        Err(e) => {
            tracing::warn!(error = %e, "curves not drawn (metrics.jsonl is complete; `embodied-r train plot --run DIR` redraws them)")
        }
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
fn export(args: &ExportArgs) -> Result<()> {
    use embodied_r_trainer::export::{Trained, export_gguf, export_hf};
    type Cpu = embodied_r_reasoner::backend::Cpu;
    let from = match (&args.checkpoint, &args.adapter) {
        (Some(c), _) => Trained::Checkpoint(c.clone()),
        (None, Some(a)) => Trained::Adapter(a.clone()),
        (None, None) => bail!("name --checkpoint DIR or --adapter DIR"),
    };
    let (Trained::Checkpoint(src) | Trained::Adapter(src)) = &from;
    if let Some(gguf) = &args.gguf {
        let quant = args.quant.as_deref().map(parse_quant).transpose()?;
        let report = export_gguf::<Cpu>(
            &from,
            args.base.as_deref(),
            gguf,
            quant,
            &Default::default(),
        )
        .with_context(|| format!("exporting {} to {}", src.display(), gguf.display()))?;
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let (Trained::Checkpoint(ck), Some(hf)) = (&from, &args.hf) else {
        bail!(
            "--hf exports a checkpoint (--checkpoint DIR); an adapter folder exports with --gguf"
        );
    };
    if args.quant.is_some() {
        bail!("--quant applies to --gguf only (a Hugging Face export is f32)");
    }
    let report = export_hf::<Cpu>(ck, hf, args.base.as_deref(), &Default::default())
        .with_context(|| format!("exporting {} to {}", ck.display(), hf.display()))?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use embodied_r_reasoner::reward::Extraction;

    #[test]
    fn the_shipped_training_config_is_valid() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/train.toml");
        let cfg = TrainConfig::from_file(&p, Mode::Grpo).expect("valid");
        assert_eq!(cfg.describer, "sim");
        assert!(cfg.lora.enabled);
    }

    #[test]
    fn the_shipped_grpo_after_sft_config_starts_from_sft_and_reads_strictly() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/grpo.toml");
        let cfg = TrainConfig::from_file(&p, Mode::Grpo).expect("valid");
        let sft = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sft.toml");
        let sft = TrainConfig::from_file(&sft, Mode::Sft).expect("valid");
        // It starts from the shipped SFT adapter, with the adapter shape SFT trains.
        assert_eq!(
            cfg.init.as_deref(),
            Some(std::path::Path::new("models/embodied-r-smollm2"))
        );
        assert_eq!(
            (cfg.lora.rank, &cfg.lora.targets),
            (sft.lora.rank, &sft.lora.targets)
        );
        assert_eq!(cfg.reward.extraction, Extraction::Strict);
        assert_eq!(cfg.grpo.objective.beta, 0.0);
        assert!(cfg.grpo.dynamic_sampling);
        assert!(cfg.grpo.response_prefix.is_empty());
    }

    #[test]
    fn the_continue_config_starts_from_the_shipped_adapter_with_its_lora_settings() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let cfg = TrainConfig::from_file(&dir.join("config/sft-continue.toml"), Mode::Sft)
            .expect("valid");
        // `fetch-model` writes the shipped adapter to models/embodied-r-smollm2.
        assert_eq!(
            cfg.init.as_deref(),
            Some(std::path::Path::new("models/embodied-r-smollm2"))
        );
        let text =
            std::fs::read_to_string(dir.join("models/embodied-r-smollm2/adapter_config.json"))
                .expect("the shipped adapter's config");
        let peft: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(peft["r"].as_u64(), Some(cfg.lora.rank as u64));
        assert_eq!(peft["lora_alpha"].as_f64(), Some(cfg.lora.alpha));
        let targets: Vec<&str> = peft["target_modules"]
            .as_array()
            .expect("target_modules")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(targets, cfg.lora.targets);
    }

    #[test]
    fn the_shipped_sft_config_is_valid_for_sft_only() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sft.toml");
        let cfg = TrainConfig::from_file(&p, Mode::Sft).expect("valid");
        assert_eq!(cfg.mode, Mode::Sft);
        assert!(cfg.lora.enabled);
        // Its default reward (consistency weighed, no judge) is no GRPO recipe.
        let err = TrainConfig::from_file(&p, Mode::Grpo).unwrap_err();
        assert!(err.to_string().contains("reward.judge"), "{err}");
    }
}
