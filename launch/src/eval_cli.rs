//! `embodied-r eval`: accuracy per category and overall on a benchmark file or directory, with
//! format and consistency rates; resumable (per-example results are appended as they finish).

#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use embodied_r_perception::describe::openai::{OpenAiConfig, OpenAiDescriber};
use embodied_r_reasoner::backend::Backend;
use embodied_r_reasoner::reward::Extraction;
use embodied_r_reasoner::with_backend;
use embodied_r_sim::reading;
use embodied_r_trainer::data::{self, Example};
use embodied_r_trainer::eval::{self, EvalReport, EvalSettings, PriorAnswerer};
use embodied_r_trainer::train::LocalJudge;

use crate::ModelArgs;
use crate::sim_data::VideoDescriber;

/// `embodied-r eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Benchmark rows: Embodied-R JSON (`question` holding the whole prompt), GRPO JSONL, an
    /// episode log directory, or a directory of such files.
    #[arg(long)]
    pub data: PathBuf,
    /// Model, backend, weights, threads.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Where the video text comes from: `none` (it is already in the rows), `sim` (the data is
    /// a split file of a simulator benchmark: each video is re-rendered, key frames selected and
    /// described by the ground-truth describer) or `vlm` (the same key frames, sent as JPEGs to
    /// the OpenAI-compatible VLM at --vlm-url with the spec §2 prompts).
    #[arg(long, default_value = "none")]
    pub describer: String,
    /// With `--describer vlm`: the endpoint's base URL, e.g. `http://127.0.0.1:8000/v1`.
    #[arg(long)]
    pub vlm_url: Option<String>,
    /// With `--describer vlm`: the model name the endpoint knows.
    #[arg(long, default_value = "Qwen/Qwen2.5-VL-7B-Instruct")]
    pub vlm_model: String,
    /// With `--describer vlm`: the environment variable holding the API key, if any.
    #[arg(long)]
    pub vlm_key_env: Option<String>,
    /// With `--describer vlm`: the longest one request may take, in seconds.
    #[arg(long, default_value_t = 120.0)]
    pub vlm_timeout: f64,
    /// Completion budget per question.
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    /// Longest prompt; the oldest video text is trimmed beyond it (with a warning).
    #[arg(long, default_value_t = 3072)]
    pub max_prompt_tokens: usize,
    /// `strict` (the `<answer>` block) or `reference` (the method's normaliser).
    #[arg(long, default_value = "strict")]
    pub extraction: String,
    /// Text placed after the generation prompt and scored with the completion, e.g. `<think>`;
    /// use the `grpo.response_prefix` the model was trained with.
    #[arg(long, default_value = "")]
    pub response_prefix: String,
    /// Skip the consistency check (a second, 10-token pass of the same model per correct answer).
    #[arg(long)]
    pub no_consistency: bool,
    /// With `--answerer rules`: check the rules traces' consistency too, with the model that
    /// `--model`/`--adapter` name as the judge (what an `lm` run of that model uses). The rules
    /// traces conclude the option they answer by construction, so this measures the judge.
    #[arg(long, conflicts_with = "no_consistency")]
    pub judge_rules: bool,
    /// Who answers: `lm` (the model), `rules` (the simulator text's rules answerer: what the
    /// video text allows, per category) or `prior` (the letter prior: the most frequent letter
    /// per category and option count, the median number for numeric questions, fitted on
    /// --prior-data).
    #[arg(long, default_value = "lm")]
    pub answerer: String,
    /// With `--answerer prior`: the training rows the prior is fitted on (default: the
    /// `train_data.json` beside --data). Never the rows being scored.
    #[arg(long)]
    pub prior_data: Option<PathBuf>,
    /// Evaluate only the first N examples.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Write the report (per category and overall) as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Per-example results, appended as they finish; an interrupted run resumes from them
    /// (default: next to --json, else `eval-items.jsonl`).
    #[arg(long)]
    pub results: Option<PathBuf>,
}

/// Runs `eval`.
pub fn run(args: &EvalArgs) -> Result<()> {
    if !matches!(args.describer.as_str(), "none" | "sim" | "vlm") {
        anyhow::bail!(
            "--describer {}: expected `none`, `sim` or `vlm`",
            args.describer
        );
    }
    if args.describer == "vlm" && args.vlm_url.is_none() {
        anyhow::bail!("--describer vlm needs --vlm-url (e.g. http://127.0.0.1:8000/v1)");
    }
    if args.judge_rules && args.answerer != "rules" {
        anyhow::bail!(
            "--judge-rules applies to `--answerer rules` (got `--answerer {}`; the `lm` answerer is always judged unless --no-consistency)",
            args.answerer
        );
    }
    let extraction: Extraction = args
        .extraction
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--extraction: {e}"))?;
    match args.answerer.as_str() {
        "lm" => {
            args.model.init_threads();
            let kind = args.model.backend_kind()?;
            with_backend!(kind, B => eval_lm::<B>(args, extraction))
        }
        "rules" if args.judge_rules => {
            args.model.init_threads();
            let kind = args.model.backend_kind()?;
            with_backend!(kind, B => eval_rules_judged::<B>(args, extraction))
        }
        "rules" => {
            let examples = examples(args)?;
            let rep = score(args, &RulesAnswerer, &examples, extraction, None)?;
            show(args, &rep)
        }
        "prior" => {
            let train = match &args.prior_data {
                Some(p) => p.clone(),
                None => args.data.with_file_name("train_data.json"),
            };
            if train == args.data {
                anyhow::bail!(
                    "--prior-data {}: the prior must be fitted on other rows than the ones scored",
                    train.display()
                );
            }
            let (rows, _) = data::load(&train).with_context(|| {
                format!(
                    "loading the prior's training rows {} (set --prior-data)",
                    train.display()
                )
            })?;
            let prior = PriorAnswerer::fit(&rows);
            let examples = examples(args)?;
            let rep = score(args, &prior, &examples, extraction, None)?;
            show(args, &rep)
        }
        other => anyhow::bail!("--answerer {other}: expected `lm`, `rules` or `prior`"),
    }
}

/// The rules answerer over the simulator describer's text (`embodied_r_sim::reading`).
struct RulesAnswerer;

impl eval::Answerer for RulesAnswerer {
    fn complete(&self, ex: &Example) -> embodied_r_trainer::Result<String> {
        let q = ex.question();
        let q = q.strip_prefix("Question:").unwrap_or(&q).trim_start();
        let stem = q.split("\nChoices:").next().unwrap_or(q);
        Ok(reading::answer(&ex.category, &ex.user, stem, &ex.choices).completion())
    }
}

/// The describer `--describer sim|vlm` names.
fn video_describer(args: &EvalArgs) -> Result<VideoDescriber> {
    let Some(url) = args.vlm_url.as_ref().filter(|_| args.describer == "vlm") else {
        return Ok(VideoDescriber::Sim);
    };
    let cfg = OpenAiConfig {
        base_url: url.clone(),
        model: args.vlm_model.clone(),
        api_key_env: args.vlm_key_env.clone(),
        timeout_s: args.vlm_timeout,
        ..OpenAiConfig::default()
    };
    let describer = OpenAiDescriber::new(cfg).context("--describer vlm")?;
    Ok(VideoDescriber::Vlm {
        describer: Box::new(describer),
        // Every key frame is one request, up to four at once, each with its retries.
        deadline: std::time::Duration::from_secs_f64(args.vlm_timeout * 32.0),
    })
}

/// The rows to score, with their video text.
fn examples(args: &EvalArgs) -> Result<Vec<Example>> {
    let (mut examples, skipped) = if args.describer != "none" {
        let video = video_describer(args)?;
        let ex = crate::sim_data::sim_examples(&args.data, &video)
            .with_context(|| format!("building video text for {}", args.data.display()))?;
        (ex, 0)
    } else {
        let (ex, report) =
            data::load(&args.data).with_context(|| format!("loading {}", args.data.display()))?;
        (ex, report.skipped)
    };
    if let Some(n) = args.limit {
        examples.truncate(n);
    }
    tracing::info!(examples = examples.len(), skipped, "evaluation data");
    Ok(examples)
}

fn eval_lm<B: Backend>(args: &EvalArgs, extraction: Extraction) -> Result<()> {
    let examples = examples(args)?;
    let lm = Arc::new(args.model.load::<B>()?);
    let judge = LocalJudge::new(lm.clone());
    let settings = EvalSettings {
        max_tokens: args.max_tokens,
        max_prompt_tokens: args.max_prompt_tokens,
        extraction,
        response_prefix: args.response_prefix.clone(),
    };
    let answerer = eval::LmAnswerer::new(&lm, &settings);
    let rep = score(
        args,
        &answerer,
        &examples,
        extraction,
        (!args.no_consistency)
            .then_some(&judge as &dyn embodied_r_reasoner::reward::ConsistencyJudge),
    )?;
    show(args, &rep)
}

/// The rules answerer with the model's consistency judge (`--judge-rules`).
fn eval_rules_judged<B: Backend>(args: &EvalArgs, extraction: Extraction) -> Result<()> {
    let examples = examples(args)?;
    let lm = Arc::new(args.model.load::<B>()?);
    let judge = LocalJudge::new(lm);
    let rep = score(args, &RulesAnswerer, &examples, extraction, Some(&judge))?;
    show(args, &rep)
}

/// Scores `examples` with `answerer` (resuming from the results file) and aggregates.
fn score(
    args: &EvalArgs,
    answerer: &dyn eval::Answerer,
    examples: &[Example],
    extraction: Extraction,
    judge: Option<&dyn embodied_r_reasoner::reward::ConsistencyJudge>,
) -> Result<EvalReport> {
    let results = args.results.clone().unwrap_or_else(|| match &args.json {
        Some(j) => j.with_extension("items.jsonl"),
        None => PathBuf::from("eval-items.jsonl"),
    });
    let bar = indicatif::ProgressBar::new(examples.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let items = eval::evaluate(
        answerer,
        examples,
        extraction,
        judge,
        &results,
        |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )?;
    bar.finish_and_clear();
    let ids: std::collections::HashSet<&str> = examples.iter().map(|e| e.id.as_str()).collect();
    let items: Vec<_> = items
        .into_iter()
        .filter(|i| ids.contains(i.id.as_str()))
        .collect();
    let who = match args.answerer.as_str() {
        "lm" => args.model.describe()?,
        "rules" => "rules answerer (video text only)".to_string(),
        _ => "letter prior".to_string(),
    };
    Ok(eval::report(&who, extraction, &items))
}

/// Prints the report and writes it as JSON when asked.
fn show(args: &EvalArgs, rep: &EvalReport) -> Result<()> {
    println!(
        "{:<28} {:>5} {:>9} {:>7} {:>12}",
        "category", "n", "accuracy", "format", "consistency"
    );
    let pct = |x: f64| format!("{:.1}%", 100.0 * x);
    let cons = |c: Option<f64>| c.map_or("-".to_string(), pct);
    for (k, r) in &rep.categories {
        println!(
            "{:<28} {:>5} {:>9} {:>7} {:>12}",
            k,
            r.n,
            pct(r.accuracy),
            pct(r.format),
            cons(r.consistency)
        );
    }
    println!(
        "{:<28} {:>5} {:>9} {:>7} {:>12}",
        "overall (sample-weighted)",
        rep.overall.n,
        pct(rep.overall.accuracy),
        pct(rep.overall.format),
        cons(rep.overall.consistency)
    );
    println!(
        "mean of category accuracies: {}",
        pct(rep.category_mean_accuracy)
    );
    println!(
        "answers read by the {} rule",
        crate::verdict::eval_rule(rep.extraction)
    );
    if let Some(j) = &args.json {
        std::fs::write(j, serde_json::to_string_pretty(rep)?)
            .with_context(|| format!("writing {}", j.display()))?;
    }
    Ok(())
}
