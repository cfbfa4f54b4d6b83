//! The GRPO training loop: rollouts (G samples sharing one prefill, on the inner backend's fast
//! decode path), rewards, group advantages, the clipped token-level objective with KL to a
//! frozen reference, gradient accumulation over the step's prompts, global-norm clipping,
//! AdamW with warm-up + cosine, metrics JSONL and resumable checkpoints.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Module};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, GradientsAccumulator, GradientsParams, Optimizer};
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use embodied_r_reasoner::episode::Rewards;
use embodied_r_reasoner::prompt::REFERENCE_SYSTEM;
use embodied_r_reasoner::reward::{
    self, ConsistencyJudge, Extraction, RewardWeights, Schedule, Stage,
};
use embodied_r_reasoner::{
    ActivationMode, ChatMessage, FinishReason, GenerationConfig, LanguageModel, Llama, LoadOptions,
    SamplingConfig, WeightMode,
};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::data::Example;
use crate::error::{Result, TrainError};
use crate::grpo::{self, Batch, Objective};
use crate::lora::{self, LoraConfig};
use crate::optim::{OptimConfig, clip_grad_norm};

/// Rollout and objective settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpoConfig {
    /// Completions per prompt (G).
    pub group_size: usize,
    /// Prompts per optimiser step (gradients accumulate over them).
    pub prompts_per_step: usize,
    /// Sequences per forward/backward pass in the update.
    pub micro_batch: usize,
    /// Longest prompt; longer ones lose the oldest video text (with a warning), never the
    /// system prompt.
    pub max_prompt_tokens: usize,
    /// Longest completion.
    pub max_completion_tokens: usize,
    /// Text placed after the assistant turn's opening and before the sampled completion, e.g.
    /// `"<think>"` to start a small model inside the tag format it does not yet know. The
    /// rewards score the prefix plus the completion; only the completion is trained. Use the
    /// same prefix in evaluation (`eval --response-prefix`). Empty: none (the method's setting).
    pub response_prefix: String,
    /// Sampling temperature of the rollouts.
    pub temperature: f32,
    /// Nucleus sampling of the rollouts (1 = off).
    pub top_p: f32,
    /// Top-k sampling of the rollouts (0 = off).
    pub top_k: usize,
    /// DAPO's dynamic sampling: replace a group whose rewards are all equal by the next
    /// prompt, up to `max_resample` times per step.
    pub dynamic_sampling: bool,
    /// Replacement budget per step for dynamic sampling.
    pub max_resample: usize,
    /// Optimisation passes over one batch of rollouts (GRPO's μ; TRL's `num_iterations`).
    /// With 1 (the default) the policy that sampled is the policy being updated, every ratio
    /// is 1 and the clip never acts. With μ > 1, each pass is an optimiser step, the old
    /// log-probabilities come from the rollout policy (computed once, before the first pass),
    /// and the clip bounds how far later passes move from it.
    pub updates_per_batch: usize,
    /// The clipped objective and KL coefficient.
    #[serde(flatten)]
    pub objective: Objective,
}

impl Default for GrpoConfig {
    fn default() -> Self {
        GrpoConfig {
            group_size: 8,
            prompts_per_step: 4,
            micro_batch: 8,
            max_prompt_tokens: 1536,
            max_completion_tokens: 256,
            response_prefix: String::new(),
            temperature: 1.0,
            top_p: 0.9,
            top_k: 50,
            dynamic_sampling: true,
            max_resample: 8,
            updates_per_batch: 1,
            objective: Objective::default(),
        }
    }
}

/// What a run optimises.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// GRPO with the Embodied-R reward (`embodied-r train`).
    #[default]
    Grpo,
    /// Supervised fine-tuning on prompt → completion pairs, loss on the completion tokens only
    /// (`embodied-r train sft`).
    Sft,
}

/// Supervised fine-tuning settings (`[sft]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SftConfig {
    /// Examples per optimiser step (gradients accumulate over them).
    pub batch: usize,
    /// Longest prompt; longer ones lose the oldest video text (with a warning).
    pub max_prompt_tokens: usize,
    /// Longest target completion, in tokens; a longer trace is an error naming the example.
    pub max_completion_tokens: usize,
}

impl Default for SftConfig {
    fn default() -> Self {
        SftConfig {
            batch: 8,
            max_prompt_tokens: 1536,
            max_completion_tokens: 256,
        }
    }
}

/// Where the consistency reward's judge comes from.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
pub enum JudgeConfig {
    /// No consistency reward (its weight must then be 0 or it is reported as unchecked).
    #[default]
    None,
    /// A frozen copy of the base LM, in process (greedy, 10 tokens).
    Local,
    /// An OpenAI-compatible chat endpoint (temperature 0.1, 10 tokens, as the method).
    Openai {
        /// e.g. `http://127.0.0.1:8000/v1`.
        base_url: String,
        /// Model name sent to the endpoint.
        model: String,
        /// Environment variable holding the API key, if any.
        #[serde(default)]
        api_key_env: Option<String>,
        /// Per-request timeout.
        #[serde(default = "default_timeout")]
        timeout_s: f64,
    },
}

fn default_timeout() -> f64 {
    30.0
}

/// Where the answer the accuracy reward compares against comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Labels {
    /// Only gold answers (the truth recorded with the episode, or an operator's label);
    /// unlabelled episodes are left out.
    #[default]
    #[serde(rename = "gold")]
    Gold,
    /// Only the group's majority vote (test-time RL): gold answers are ignored, as on a robot
    /// nobody labels.
    #[serde(rename = "majority")]
    Majority,
    /// The gold answer where there is one, the majority vote elsewhere.
    #[serde(rename = "gold+majority")]
    GoldMajority,
}

impl Labels {
    /// Whether gold answers are used.
    pub fn gold(self) -> bool {
        matches!(self, Labels::Gold | Labels::GoldMajority)
    }

    /// Whether majority votes are used.
    pub fn majority(self) -> bool {
        matches!(self, Labels::Majority | Labels::GoldMajority)
    }
}

/// Which label scored a group (in `samples.jsonl`; counted per step in the metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelKind {
    /// A gold answer.
    #[default]
    Gold,
    /// The group's majority vote.
    Majority,
    /// None: the vote did not reach `reward.majority_min_share`, so only format (and, with a
    /// judge, self-consistency) rewards counted.
    None,
}

/// The reward settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RewardConfig {
    /// `gold`, `majority` or `gold+majority` (see [`Labels`]).
    pub labels: Labels,
    /// A majority vote becomes a group's label when the winner's share of the G completions
    /// (abstentions counted) reaches this; below it the group has no label.
    pub majority_min_share: f64,
    /// For measuring what unlabelled training recovers where the truth is known (the
    /// simulator): the share of gold-labelled examples whose gold answer the trainer may use,
    /// chosen with the run's seed; the others are treated as unlabelled. 1 = all.
    pub gold_fraction: f64,
    /// `strict` (the `<answer>` block only) or `reference` (the method's normaliser).
    pub extraction: Extraction,
    /// `fixed` (use `weights`), `staged` (the paper's three stages over the run) or `custom`
    /// (use `stages`).
    pub schedule: String,
    /// Fixed weights.
    pub weights: RewardWeights,
    /// Custom stages.
    pub stages: Vec<Stage>,
    /// The consistency judge.
    pub judge: JudgeConfig,
}

impl Default for RewardConfig {
    fn default() -> Self {
        RewardConfig {
            labels: Labels::Gold,
            majority_min_share: 0.5,
            gold_fraction: 1.0,
            extraction: Extraction::Strict,
            schedule: "fixed".into(),
            weights: RewardWeights::default(),
            stages: vec![],
            judge: JudgeConfig::None,
        }
    }
}

impl RewardConfig {
    /// The schedule over `steps`.
    pub fn schedule(&self, steps: u64) -> Result<Schedule> {
        match self.schedule.as_str() {
            "fixed" => {
                self.weights.validate().map_err(TrainError::Config)?;
                Ok(Schedule::fixed(self.weights))
            }
            "staged" => Ok(Schedule::staged(steps)),
            "custom" => Schedule::new(self.stages.clone()).map_err(TrainError::Config),
            other => Err(TrainError::Config(format!(
                "reward.schedule = `{other}`: expected `fixed`, `staged` or `custom`"
            ))),
        }
    }
}

/// A whole training run's settings (`train.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// The base model: a GGUF file or a Hugging Face folder.
    pub model: PathBuf,
    /// Training data: files or directories (see [`crate::data::load`]).
    pub data: Vec<PathBuf>,
    /// Where the video text comes from: `none` (already in the rows) or `sim` (the data are
    /// split files of a simulator benchmark; the binary renders each video, selects key frames
    /// and runs the ground-truth describer).
    #[serde(default = "default_describer")]
    pub describer: String,
    /// Output directory (metrics, checkpoints, plots).
    #[serde(default = "default_out")]
    pub out: PathBuf,
    /// Optimiser steps.
    #[serde(default = "default_steps")]
    pub steps: u64,
    /// Seed of data order, adapters and sampling.
    #[serde(default)]
    pub seed: u64,
    /// Write a checkpoint every this many steps (0 = only at the end).
    #[serde(default)]
    pub save_every: u64,
    /// GRPO.
    #[serde(default)]
    pub grpo: GrpoConfig,
    /// AdamW and schedule.
    #[serde(default)]
    pub optim: OptimConfig,
    /// LoRA (the default) or full fine-tuning.
    #[serde(default)]
    pub lora: LoraConfig,
    /// Rewards.
    #[serde(default)]
    pub reward: RewardConfig,
    /// GRPO (the default) or supervised fine-tuning; `embodied-r train sft` sets `sft`.
    #[serde(default)]
    pub mode: Mode,
    /// Supervised fine-tuning.
    #[serde(default)]
    pub sft: SftConfig,
    /// Start from the weights of this checkpoint (`OUT/checkpoint-N` of a run with the same
    /// LoRA settings, e.g. GRPO on top of SFT) or of a PEFT adapter folder with the same rank,
    /// alpha and targets (e.g. the shipped adapter), with a fresh optimiser at step 0. Unlike
    /// `--resume`, nothing else of that run carries over.
    #[serde(default)]
    pub init: Option<PathBuf>,
}

fn default_describer() -> String {
    "none".into()
}
fn default_out() -> PathBuf {
    PathBuf::from("runs/grpo")
}
fn default_steps() -> u64 {
    100
}

impl TrainConfig {
    /// Reads a TOML file for a run of `mode` (which decides the sections that matter); unknown
    /// keys and bad values are errors that name them.
    pub fn from_file(path: &Path, mode: Mode) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        let mut cfg: TrainConfig = toml::from_str(&text)
            .map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))?;
        // Relative paths are relative to the file.
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |p: &mut PathBuf| {
            if p.is_relative() && !p.exists() && base.join(&*p).exists() {
                *p = base.join(&*p);
            }
        };
        fix(&mut cfg.model);
        cfg.data.iter_mut().for_each(fix);
        if let Some(p) = cfg.init.as_mut() {
            fix(p);
        }
        cfg.mode = mode;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every section.
    pub fn validate(&self) -> Result<()> {
        let g = &self.grpo;
        let bad = |k: &str, v: String, want: &str| {
            Err(TrainError::Config(format!("{k} = {v}: expected {want}")))
        };
        if g.group_size < 2 {
            return bad(
                "grpo.group_size",
                g.group_size.to_string(),
                "at least 2 (advantages compare samples of one prompt)",
            );
        }
        if g.prompts_per_step == 0 {
            return bad("grpo.prompts_per_step", "0".into(), "at least 1");
        }
        if g.micro_batch == 0 {
            return bad("grpo.micro_batch", "0".into(), "at least 1");
        }
        if !(1..=16).contains(&g.updates_per_batch) {
            return bad(
                "grpo.updates_per_batch",
                g.updates_per_batch.to_string(),
                "1 to 16 optimisation passes over one batch of rollouts",
            );
        }
        if g.max_completion_tokens == 0 {
            return bad("grpo.max_completion_tokens", "0".into(), "at least 1");
        }
        if !(g.temperature > 0.0 && g.temperature.is_finite()) {
            return bad(
                "grpo.temperature",
                g.temperature.to_string(),
                "a positive number (GRPO samples)",
            );
        }
        if !(g.top_p > 0.0 && g.top_p <= 1.0) {
            return bad("grpo.top_p", g.top_p.to_string(), "a number in (0, 1]");
        }
        let o = &g.objective;
        if !(o.clip_low >= 0.0 && o.clip_low < 1.0) {
            return bad(
                "grpo.clip_low",
                o.clip_low.to_string(),
                "a number in [0, 1)",
            );
        }
        if !(o.clip_high >= 0.0 && o.clip_high.is_finite()) {
            return bad("grpo.clip_high", o.clip_high.to_string(), "a number ≥ 0");
        }
        if !(o.beta >= 0.0 && o.beta.is_finite()) {
            return bad("grpo.beta", o.beta.to_string(), "a number ≥ 0");
        }
        if self.steps == 0 {
            return bad("steps", "0".into(), "at least 1");
        }
        if !matches!(self.describer.as_str(), "none" | "sim") {
            return bad(
                "describer",
                format!("`{}`", self.describer),
                "`none` or `sim`",
            );
        }
        if self.data.is_empty() {
            return Err(TrainError::Config(
                "data is empty: name at least one file or directory".into(),
            ));
        }
        self.optim.validate()?;
        self.lora.validate()?;
        if self.sft.batch == 0 {
            return bad("sft.batch", "0".into(), "at least 1");
        }
        if self.sft.max_completion_tokens == 0 {
            return bad("sft.max_completion_tokens", "0".into(), "at least 1");
        }
        let sched = self.reward.schedule(self.steps)?;
        let r = &self.reward;
        if !(r.majority_min_share > 0.0 && r.majority_min_share <= 1.0) {
            return bad(
                "reward.majority_min_share",
                r.majority_min_share.to_string(),
                "a share in (0, 1]",
            );
        }
        if !(0.0..=1.0).contains(&r.gold_fraction) {
            return bad(
                "reward.gold_fraction",
                r.gold_fraction.to_string(),
                "a share in [0, 1]",
            );
        }
        if r.labels == Labels::Gold && r.gold_fraction == 0.0 {
            return bad(
                "reward.gold_fraction",
                "0".into(),
                "more than 0 with reward.labels = \"gold\" (nothing would be labelled); use \
                 \"majority\" or \"gold+majority\"",
            );
        }
        if self.mode == Mode::Sft {
            return Ok(());
        }
        let wants_consistency = sched.stages().iter().any(|s| s.weights.consistency > 0.0);
        if wants_consistency && self.reward.judge == JudgeConfig::None {
            return Err(TrainError::Config(
                "the reward weighs consistency but reward.judge is `none`; set \
                 reward.judge.kind = \"local\" (a frozen copy of the base LM) or \"openai\", or \
                 set the consistency weight to 0"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// The examples as GRPO may see them under `reward.labels` and `reward.gold_fraction`: gold
/// answers hidden where votes alone are asked for or beyond the gold share (a seeded choice),
/// unlabelled examples left out where only gold counts. Errors when nothing is left to train on.
pub fn apply_labels(mut data: Vec<Example>, r: &RewardConfig, seed: u64) -> Result<Vec<Example>> {
    let labelled: Vec<usize> = (0..data.len())
        .filter(|&i| data[i].solution.is_some())
        .collect();
    let keep = if r.labels.gold() {
        (labelled.len() as f64 * r.gold_fraction).round() as usize
    } else {
        0
    };
    if keep < labelled.len() {
        let mut hide = labelled.clone();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x6c61_6265_6c73);
        hide.shuffle(&mut rng);
        for &i in &hide[keep..] {
            data[i].withheld = data[i].solution.take();
        }
    }
    let unlabelled = data.iter().filter(|e| e.solution.is_none()).count();
    if !r.labels.majority() {
        data.retain(|e| e.solution.is_some());
    }
    tracing::info!(
        labels = ?r.labels,
        gold = keep,
        unlabelled,
        "training labels"
    );
    if data.is_empty() {
        return Err(TrainError::Data(format!(
            "no example has a gold answer ({unlabelled} unlabelled) and reward.labels = \"gold\": \
             label episodes with `embodied-r episodes label`, or set reward.labels = \"majority\" \
             or \"gold+majority\""
        )));
    }
    Ok(data)
}

/// The example as a group of its completions (`texts`) is scored: with its gold answer; when it
/// has none and votes are on, with the group's majority vote if the winner's share reaches
/// `reward.majority_min_share`; else with no label. Also returns the vote's share (0 unless
/// the label is a vote).
pub fn label_group(ex: &Example, texts: &[String], r: &RewardConfig) -> (Example, LabelKind, f64) {
    let mut out = ex.clone();
    if ex.solution.is_some() {
        return (out, LabelKind::Gold, 0.0);
    }
    if r.labels.majority() {
        let answers: Vec<Option<String>> = texts
            .iter()
            .map(|t| reward::read_answer(t, &ex.choices))
            .collect();
        let vote = reward::majority_vote(&answers);
        if let Some(label) = vote.label(r.majority_min_share) {
            out.solution = Some(label.to_string());
            return (out, LabelKind::Majority, vote.share);
        }
    }
    (out, LabelKind::None, 0.0)
}

/// Scores one completion of an example.
pub trait Scorer {
    /// The rewards of `completion` (its text and token ids). `ex.solution` is the group's
    /// label (gold or majority; the loop decides), `None` when it has none.
    fn score(&self, ex: &Example, text: &str, tokens: &[u32]) -> Result<Rewards>;
}

/// The Embodied-R reward (format, accuracy, consistency through a judge).
pub struct EmbodiedReward {
    /// Answer extraction.
    pub extraction: Extraction,
    /// The consistency judge, if any.
    pub judge: Option<Box<dyn ConsistencyJudge>>,
}

impl Scorer for EmbodiedReward {
    fn score(&self, ex: &Example, text: &str, _: &[u32]) -> Result<Rewards> {
        let Some(label) = ex.solution.as_deref() else {
            return reward::unlabelled_rewards(
                text,
                &ex.choices,
                &ex.question(),
                self.judge.as_deref(),
            )
            .map_err(TrainError::Judge);
        };
        let (r, _) = reward::rewards(
            text,
            label,
            &ex.choices,
            &ex.question(),
            self.extraction,
            self.judge.as_deref(),
        )
        .map_err(TrainError::Judge)?;
        Ok(r)
    }
}

/// An in-process LM as the consistency judge (greedy, 10 tokens): the frozen base in training,
/// the evaluated model itself in evaluation (as the runtime's check).
pub struct LocalJudge<B: Backend> {
    lm: Arc<LanguageModel<B>>,
}

impl<B: Backend> LocalJudge<B> {
    /// A judge backed by `lm`.
    pub fn new(lm: Arc<LanguageModel<B>>) -> Self {
        LocalJudge { lm }
    }
}

impl<B: Backend> ConsistencyJudge for LocalJudge<B> {
    fn name(&self) -> String {
        format!("local:{}", self.lm.source().display())
    }
    fn reply(&self, question: &str, think: &str) -> Result<String, String> {
        let msgs = [
            ChatMessage::new("system", REFERENCE_SYSTEM),
            ChatMessage::new(
                "user",
                embodied_r_reasoner::prompt::reference_message(question, think),
            ),
        ];
        let prompt = self
            .lm
            .render_messages(&msgs, true)
            .map_err(|e| e.to_string())?;
        let ids = self.lm.encode_chat(&prompt).map_err(|e| e.to_string())?;
        let out = self
            .lm
            .generate_ids(&ids, &GenerationConfig::greedy(10), |_| {
                std::ops::ControlFlow::Continue(())
            })
            .map_err(|e| e.to_string())?;
        Ok(out.text)
    }
}

/// An OpenAI-compatible endpoint as the judge.
pub struct OpenAiJudge {
    url: String,
    model: String,
    key: Option<String>,
    agent: ureq::Agent,
}

impl OpenAiJudge {
    /// From the config's fields; the key is read from `api_key_env` now.
    pub fn new(
        base_url: &str,
        model: &str,
        api_key_env: Option<&str>,
        timeout_s: f64,
    ) -> Result<Self> {
        let key = match api_key_env {
            Some(var) => Some(std::env::var(var).map_err(|_| {
                TrainError::Config(format!(
                    "reward.judge.api_key_env names `{var}`, which is not set"
                ))
            })?),
            None => None,
        };
        let agent = ureq::AgentBuilder::new()
            .timeout(std::time::Duration::from_secs_f64(timeout_s.max(0.1)))
            .build();
        Ok(OpenAiJudge {
            url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            model: model.to_string(),
            key,
            agent,
        })
    }
}

impl ConsistencyJudge for OpenAiJudge {
    fn name(&self) -> String {
        format!("{} at {}", self.model, self.url)
    }
    fn reply(&self, question: &str, think: &str) -> Result<String, String> {
        let body = serde_json::json!({
            "model": self.model,
            "messages": [
                {"role": "system", "content": REFERENCE_SYSTEM},
                {"role": "user", "content": embodied_r_reasoner::prompt::reference_message(question, think)},
            ],
            "temperature": 0.1,
            "max_tokens": 10,
        });
        let mut req = self.agent.post(&self.url);
        if let Some(k) = &self.key {
            req = req.set("Authorization", &format!("Bearer {k}"));
        }
        let resp = req.send_json(body).map_err(|e| e.to_string())?;
        let v: serde_json::Value = resp
            .into_json()
            .map_err(|e| format!("reply is not JSON: {e}"))?;
        v["choices"][0]["message"]["content"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("reply has no choices[0].message.content: {v}"))
    }
}

/// One scored completion of a step's first group (a line of `samples.jsonl`), to read what the
/// model writes as it learns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The step.
    pub step: u64,
    /// The example's id.
    pub example: String,
    /// The label the group was scored against (`null`: none).
    pub solution: Option<String>,
    /// Where that label came from.
    #[serde(default)]
    pub label: LabelKind,
    /// The scored text (response prefix + completion).
    pub text: String,
    /// Its rewards.
    pub rewards: Rewards,
    /// Its weighted reward.
    pub reward: f64,
}

/// One step's figures (a line of `metrics.jsonl`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// 1-based step number.
    pub step: u64,
    /// Mean weighted reward of the step's completions.
    pub reward: f64,
    /// Mean accuracy reward against gold labels (groups scored by a majority vote or by no
    /// label are not in it; 0 when the step had no gold group).
    pub accuracy: f64,
    /// Groups scored against a gold answer.
    #[serde(default)]
    pub groups_gold: usize,
    /// Groups scored against their own majority vote.
    #[serde(default)]
    pub groups_majority: usize,
    /// Groups without a label (the vote below `reward.majority_min_share`).
    #[serde(default)]
    pub groups_unlabelled: usize,
    /// Mean winning share of the majority-labelled groups (0 when none).
    #[serde(default)]
    pub majority_share: f64,
    /// An audit, not a reward: of the majority-labelled groups whose gold answer the run
    /// withheld (`reward.gold_fraction`, `labels = "majority"` on labelled data), the share whose
    /// vote equals it. Absent when there were none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub majority_correct: Option<f64>,
    /// Mean format reward.
    pub format: f64,
    /// Mean consistency reward over the completions it was checked on (0 when none).
    pub consistency: f64,
    /// Mean per-token KL to the reference.
    pub kl: f64,
    /// Mean completion length in tokens.
    pub completion_len: f64,
    /// Groups whose rewards were all equal.
    pub zero_variance_groups: usize,
    /// Groups replaced by dynamic sampling.
    pub resampled: usize,
    /// Prompts whose video text was trimmed to fit.
    pub trimmed_prompts: usize,
    /// Share of completion tokens whose clipped term was taken (no gradient through them),
    /// over all passes. Always 0 with `updates_per_batch = 1`: the first pass's ratios are 1.
    pub clip_fraction: f64,
    /// Optimiser steps taken on this batch of rollouts (`updates_per_batch`).
    #[serde(default = "one")]
    pub updates: usize,
    /// The step's loss (sum of micro-batch losses), mean over the passes.
    pub loss: f64,
    /// Global gradient norm before clipping, mean over the passes.
    pub grad_norm: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Rollout: generated tokens per second.
    pub rollout_tok_s: f64,
    /// Update: tokens (prompt + completion) through forward and backward per second.
    pub update_tok_s: f64,
    /// Wall time of the step.
    pub seconds: f64,
    /// What the step optimised (absent in metrics written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
}

/// What a checkpoint records besides the weights and the optimiser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Steps done.
    pub step: u64,
    /// The run's seed.
    pub seed: u64,
    /// Examples consumed so far (the data position).
    pub cursor: u64,
    /// LoRA or full.
    pub lora: LoraConfig,
    /// The base model.
    pub model: PathBuf,
    /// GRPO or SFT.
    #[serde(default)]
    pub mode: Mode,
}

impl TrainState {
    /// Reads `dir/state.json` of a checkpoint; an unreadable or malformed file names the
    /// checkpoint.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("state.json");
        let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| TrainError::Checkpoint {
            path: dir.to_path_buf(),
            what: format!("state.json: {e}"),
        })
    }
}

fn one() -> usize {
    1
}

type Ad<B> = Autodiff<B>;
type Optim<B> = OptimizerAdaptor<AdamW, Llama<Ad<B>>, Ad<B>>;

/// A GRPO run in progress.
pub struct Trainer<B: Backend> {
    cfg: TrainConfig,
    policy: Llama<Ad<B>>,
    optim: Optim<B>,
    rollout: LanguageModel<B>,
    /// Frozen base: reference policy for the KL and, with a local judge, the judge.
    base: Arc<LanguageModel<B>>,
    scorer: Box<dyn Scorer>,
    schedule: Schedule,
    data: Vec<Example>,
    step: u64,
    cursor: u64,
    /// The shuffled order of the epoch `cursor` is in (derived from the seed and the epoch, so
    /// a resumed run rebuilds it).
    order: Option<(u64, Vec<usize>)>,
    /// The completions of the last step's first group.
    samples: Vec<Sample>,
    device: B::Device,
}

impl<B: Backend> Trainer<B> {
    /// Loads the model (dense f32), attaches adapters or unfreezes everything, and builds the
    /// scorer from the config (the Embodied-R reward).
    pub fn new(cfg: TrainConfig, data: Vec<Example>, device: B::Device) -> Result<Self> {
        let base = Arc::new(load_dense::<B>(&cfg.model, &device)?);
        let scorer: Box<dyn Scorer> = Box::new(EmbodiedReward {
            extraction: cfg.reward.extraction,
            judge: match &cfg.reward.judge {
                JudgeConfig::None => None,
                JudgeConfig::Local => Some(Box::new(LocalJudge { lm: base.clone() })),
                JudgeConfig::Openai {
                    base_url,
                    model,
                    api_key_env,
                    timeout_s,
                } => Some(Box::new(OpenAiJudge::new(
                    base_url,
                    model,
                    api_key_env.as_deref(),
                    *timeout_s,
                )?)),
            },
        });
        Self::with_scorer(cfg, data, device, base, scorer)
    }

    /// As [`Trainer::new`] with a caller's scorer (tests, custom tasks).
    pub fn with_scorer(
        cfg: TrainConfig,
        data: Vec<Example>,
        device: B::Device,
        base: Arc<LanguageModel<B>>,
        scorer: Box<dyn Scorer>,
    ) -> Result<Self> {
        cfg.validate()?;
        if data.is_empty() {
            return Err(TrainError::Data("no training examples".into()));
        }
        let data = if cfg.mode == Mode::Grpo {
            apply_labels(data, &cfg.reward, cfg.seed)?
        } else {
            data
        };
        if cfg.mode == Mode::Sft {
            let missing: Vec<&str> = data
                .iter()
                .filter(|e| e.target.is_none())
                .map(|e| e.id.as_str())
                .collect();
            if let Some(first) = missing.first() {
                return Err(TrainError::Data(format!(
                    "supervised fine-tuning needs a target completion for every example; {} of \
                     {} have none (first: {first}). Give GRPO JSONL rows an assistant message, \
                     or use describer = \"sim\" (its traces come from the rules answerer)",
                    missing.len(),
                    data.len()
                )));
            }
        }
        let schedule = cfg.reward.schedule(cfg.steps)?;
        let adev: burn::tensor::Device<Ad<B>> = device.clone();
        let policy_lm = load_dense::<Ad<B>>(&cfg.model, &adev)?;
        let mut policy = policy_lm.model().clone();
        if cfg.lora.enabled {
            let (m, n) = lora::attach(policy, &cfg.lora, cfg.seed, &adev)?;
            tracing::info!(adapters = n, rank = cfg.lora.rank, "LoRA attached");
            policy = m;
        }
        let rollout = rollout_model::<B>(&cfg.model, &cfg.lora, &device)?;
        if let Some(dir) = &cfg.init {
            policy = load_policy(policy, dir, &cfg.lora, &adev)?;
            tracing::info!(from = %dir.display(), "weights initialised from a checkpoint");
        }
        let optim = cfg.optim.adamw().init::<Ad<B>, Llama<Ad<B>>>();
        Ok(Trainer {
            cfg,
            policy,
            optim,
            rollout,
            base,
            scorer,
            schedule,
            data,
            step: 0,
            cursor: 0,
            order: None,
            samples: Vec::new(),
            device,
        })
    }

    /// Steps done.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The config.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// The trained model (adapters attached, not merged) on the inner backend.
    pub fn policy(&self) -> Llama<B> {
        self.policy.valid()
    }

    /// The example at data position `cursor`: epochs are reshuffled with the run's seed.
    fn example_at(&mut self, cursor: u64) -> usize {
        let n = self.data.len() as u64;
        let epoch = cursor / n;
        let seed = self.cfg.seed;
        let len = self.data.len();
        let (_, order) = match &mut self.order {
            Some(o) if o.0 == epoch => o,
            slot => slot.insert((epoch, {
                let mut order: Vec<usize> = (0..len).collect();
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
                    seed ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                );
                order.shuffle(&mut rng);
                order
            })),
        };
        order[(cursor % n) as usize]
    }

    /// Runs one optimiser step and returns its figures.
    pub fn train_step(&mut self) -> Result<StepMetrics> {
        let t0 = Instant::now();
        let g = self.cfg.grpo.clone();
        let weights = self.schedule.at(self.step);
        let lr = self.cfg.optim.lr_at(self.step, self.cfg.steps);
        if self.cfg.lora.enabled {
            lora::copy_adapters(&mut self.policy.valid(), self.rollout.model_mut());
        } else {
            *self.rollout.model_mut() = self.policy.valid();
        }
        let mut m = StepMetrics {
            step: self.step + 1,
            lr,
            mode: Some(Mode::Grpo),
            ..StepMetrics::default()
        };

        // Rollouts.
        let t_roll = Instant::now();
        let mut groups: Vec<(Batch, Vec<f64>)> = Vec::with_capacity(g.prompts_per_step);
        let mut rewards_all: Vec<(LabelKind, Rewards)> = Vec::new();
        let mut generated = 0usize;
        let mut resample_budget = if g.dynamic_sampling {
            g.max_resample
        } else {
            0
        };
        let mut slot = 0usize;
        // Majority-labelled groups with a withheld truth, and how many votes equal it.
        let mut audited = (0usize, 0usize);
        while groups.len() < g.prompts_per_step {
            let idx = self.example_at(self.cursor);
            self.cursor += 1;
            let ex = self.data[idx].clone();
            let (prompt, trimmed) =
                fit_prompt(&self.rollout, &ex, g.max_prompt_tokens, &g.response_prefix)?;
            m.trimmed_prompts += usize::from(trimmed);
            let gen_cfg = GenerationConfig {
                max_tokens: g.max_completion_tokens,
                sampling: SamplingConfig {
                    temperature: g.temperature,
                    top_k: (g.top_k > 0).then_some(g.top_k),
                    top_p: (g.top_p < 1.0).then_some(g.top_p),
                    repetition_penalty: 1.0,
                    seed: mix(self.cfg.seed, self.step, slot as u64),
                },
                // The layout ends at `</answer>`: what follows earns nothing and costs time.
                stop: vec!["</answer>".into()],
                stop_on_eos: true,
            };
            slot += 1;
            let outs = self
                .rollout
                .generate_group(&prompt, g.group_size, &gen_cfg)?;
            let eos = self.rollout.tokenizer().eos().first().copied();
            let mut comps = Vec::with_capacity(outs.len());
            let mut totals = Vec::with_capacity(outs.len());
            let mut rs = Vec::with_capacity(outs.len());
            let first_group = slot == 1;
            if first_group {
                self.samples.clear();
            }
            let texts: Vec<String> = outs
                .iter()
                .map(|c| {
                    let mut text = format!("{}{}", g.response_prefix, c.text);
                    // The stop string is cut from the text (its tokens stay in the
                    // completion); put it back so the format rule sees the closed layout.
                    if c.finish == FinishReason::Stop {
                        text.push_str("</answer>");
                    }
                    text
                })
                .collect();
            let (labelled, kind, share) = label_group(&ex, &texts, &self.cfg.reward);
            match kind {
                LabelKind::Gold => m.groups_gold += 1,
                LabelKind::Majority => {
                    m.groups_majority += 1;
                    m.majority_share += share;
                    if let Some(w) = &ex.withheld {
                        audited.0 += 1;
                        audited.1 += usize::from(labelled.solution.as_ref() == Some(w));
                    }
                }
                LabelKind::None => m.groups_unlabelled += 1,
            }
            for (c, text) in outs.iter().zip(texts) {
                let r = self.scorer.score(&labelled, &text, &c.tokens)?;
                let total = weights.total(&r);
                totals.push(total);
                if first_group {
                    self.samples.push(Sample {
                        step: self.step + 1,
                        example: ex.id.clone(),
                        solution: labelled.solution.clone(),
                        label: kind,
                        text,
                        rewards: r,
                        reward: total,
                    });
                }
                rs.push((kind, r));
                let mut toks = c.tokens.clone();
                if c.finish == FinishReason::Eos
                    && let Some(e) = eos
                {
                    toks.push(e);
                }
                if toks.is_empty() {
                    toks.push(eos.unwrap_or(0));
                }
                generated += c.tokens.len();
                comps.push(toks);
            }
            if grpo::zero_variance(&totals) {
                m.zero_variance_groups += 1;
                if resample_budget > 0 {
                    resample_budget -= 1;
                    m.resampled += 1;
                    rewards_all.extend(rs);
                    continue;
                }
            }
            rewards_all.extend(rs);
            let adv = grpo::advantages(&totals);
            groups.push((
                Batch {
                    prompt,
                    completions: comps,
                },
                adv,
            ));
        }
        let roll_s = t_roll.elapsed().as_secs_f64();
        m.rollout_tok_s = generated as f64 / roll_s.max(1e-9);

        // Update: μ optimisation passes over this batch of rollouts.
        let t_upd = Instant::now();
        let total_tokens: usize = groups
            .iter()
            .flat_map(|(b, _)| b.completions.iter().map(Vec::len))
            .sum();
        let micro: Vec<(Batch, Vec<f32>)> = groups
            .iter()
            .flat_map(|(batch, adv)| {
                (0..batch.completions.len())
                    .step_by(g.micro_batch)
                    .map(move |start| {
                        let end = (start + g.micro_batch).min(batch.completions.len());
                        let mb = Batch {
                            prompt: batch.prompt.clone(),
                            completions: batch.completions[start..end].to_vec(),
                        };
                        (mb, adv[start..end].iter().map(|&x| x as f32).collect())
                    })
            })
            .collect();
        // The rollout policy's log-probabilities, before any pass moves the weights. One pass
        // needs none: its old log-probabilities are its own, detached.
        let olds: Option<Vec<Tensor<B, 2>>> = if g.updates_per_batch > 1 {
            let rollout_policy = self.policy.valid();
            Some(
                micro
                    .iter()
                    .map(|(mb, _)| grpo::token_logprobs(&rollout_policy, mb, &self.device))
                    .collect::<Result<_>>()?,
            )
        } else {
            None
        };
        // β = 0: no KL term, so no reference model and no reference pass at all.
        let refs: Option<Vec<Tensor<B, 2>>> = if g.objective.beta > 0.0 {
            let reference = if self.cfg.lora.enabled {
                lora::strip(self.policy.valid())
            } else {
                self.base.model().clone()
            };
            Some(
                micro
                    .iter()
                    .map(|(mb, _)| grpo::token_logprobs(&reference, mb, &self.device))
                    .collect::<Result<_>>()?,
            )
        } else {
            None
        };
        let mut processed = 0usize;
        let (mut loss_sum, mut kl_sum, mut clipped, mut norm_sum) = (0.0, 0.0, 0.0, 0.0);
        for pass in 0..g.updates_per_batch {
            let mut accum = GradientsAccumulator::<Llama<Ad<B>>>::new();
            for (i, (mb, adv)) in micro.iter().enumerate() {
                let adev: burn::tensor::Device<Ad<B>> = self.device.clone();
                let logp = grpo::token_logprobs(&self.policy, mb, &adev)?;
                let old = match &olds {
                    Some(o) => Tensor::<Ad<B>, 2>::from_inner(o[i].clone()),
                    None => logp.clone().detach(),
                };
                let refp = refs
                    .as_ref()
                    .map(|r| Tensor::<Ad<B>, 2>::from_inner(r[i].clone()));
                let a = Tensor::<Ad<B>, 1>::from_data(
                    burn::tensor::TensorData::new(adv.clone(), [adv.len()]),
                    &adev,
                );
                let mask = mb.mask::<Ad<B>>(&adev);
                let (loss, st) =
                    grpo::loss(logp, old, refp, a, mask, &g.objective, total_tokens as f64);
                loss_sum += grpo::scalar(&loss.clone().detach());
                kl_sum += st.kl_sum;
                clipped += st.clipped;
                let grads = GradientsParams::from_grads(loss.backward(), &self.policy);
                accum.accumulate(&self.policy, grads);
                processed += (mb.prompt.len() + mb.width()) * mb.completions.len();
            }
            let mut grads = accum.grads();
            let norm =
                clip_grad_norm::<Ad<B>, _>(&self.policy, &mut grads, self.cfg.optim.max_grad_norm);
            if !norm.is_finite() {
                return Err(TrainError::Data(format!(
                    "step {} (pass {} of {}): the gradient norm is {norm} (learning rate {lr}); \
                     the update was skipped and the run stops so that no checkpoint holds \
                     damaged weights",
                    m.step,
                    pass + 1,
                    g.updates_per_batch
                )));
            }
            norm_sum += norm;
            self.policy = self.optim.step(lr, self.policy.clone(), grads);
        }
        let passes = g.updates_per_batch as f64;
        m.updates = g.updates_per_batch;
        m.grad_norm = norm_sum / passes;
        m.update_tok_s = processed as f64 / t_upd.elapsed().as_secs_f64().max(1e-9);

        let n = rewards_all.len().max(1) as f64;
        m.reward = rewards_all
            .iter()
            .map(|(_, r)| weights.total(r))
            .sum::<f64>()
            / n;
        let gold: Vec<f64> = rewards_all
            .iter()
            .filter(|(k, _)| *k == LabelKind::Gold)
            .map(|(_, r)| r.accuracy)
            .collect();
        // (An empty float sum is -0.0.)
        m.accuracy = if gold.is_empty() {
            0.0
        } else {
            gold.iter().sum::<f64>() / gold.len() as f64
        };
        if m.groups_majority > 0 {
            m.majority_share /= m.groups_majority as f64;
        }
        m.majority_correct = (audited.0 > 0).then(|| audited.1 as f64 / audited.0 as f64);
        m.format = rewards_all.iter().map(|(_, r)| r.format).sum::<f64>() / n;
        let checked: Vec<f64> = rewards_all
            .iter()
            .filter_map(|(_, r)| r.consistency)
            .collect();
        m.consistency = if checked.is_empty() {
            0.0
        } else {
            checked.iter().sum::<f64>() / checked.len() as f64
        };
        let token_passes = (total_tokens.max(1) as f64) * passes;
        m.kl = kl_sum / token_passes;
        m.clip_fraction = clipped / token_passes;
        m.completion_len = total_tokens as f64
            / groups
                .iter()
                .map(|(b, _)| b.completions.len())
                .sum::<usize>()
                .max(1) as f64;
        m.loss = loss_sum / passes;
        m.seconds = t0.elapsed().as_secs_f64();
        self.step += 1;
        Ok(m)
    }

    /// One supervised step: `sft.batch` examples, the mean negative log-likelihood of their
    /// target completions' tokens (the end-of-turn token included; prompt tokens carry no
    /// loss), one optimiser step. `loss` in the metrics is that mean per token.
    pub fn sft_step(&mut self) -> Result<StepMetrics> {
        let t0 = Instant::now();
        let s = self.cfg.sft.clone();
        let lr = self.cfg.optim.lr_at(self.step, self.cfg.steps);
        let mut m = StepMetrics {
            step: self.step + 1,
            lr,
            updates: 1,
            mode: Some(Mode::Sft),
            ..StepMetrics::default()
        };
        let eot = self.rollout.tokenizer().eos().first().copied();
        let mut batches = Vec::with_capacity(s.batch);
        for _ in 0..s.batch {
            let idx = self.example_at(self.cursor);
            self.cursor += 1;
            let ex = &self.data[idx];
            let (prompt, trimmed) = fit_prompt(&self.rollout, ex, s.max_prompt_tokens, "")?;
            m.trimmed_prompts += usize::from(trimmed);
            let target = ex.target.as_deref().unwrap_or_default();
            let mut ids = self.rollout.encode_chat(target)?;
            ids.extend(eot);
            if ids.len() > s.max_completion_tokens {
                return Err(TrainError::Data(format!(
                    "example {}: the target completion has {} tokens, over \
                     sft.max_completion_tokens = {}",
                    ex.id,
                    ids.len(),
                    s.max_completion_tokens
                )));
            }
            batches.push(Batch {
                prompt,
                completions: vec![ids],
            });
        }
        let total: usize = batches.iter().map(|b| b.width()).sum();
        let adev: burn::tensor::Device<Ad<B>> = self.device.clone();
        let mut accum = GradientsAccumulator::<Llama<Ad<B>>>::new();
        let mut processed = 0usize;
        for b in &batches {
            let logp = grpo::token_logprobs(&self.policy, b, &adev)?;
            let loss = logp.sum().neg().div_scalar(total as f64);
            m.loss += grpo::scalar(&loss.clone().detach());
            let grads = GradientsParams::from_grads(loss.backward(), &self.policy);
            accum.accumulate(&self.policy, grads);
            processed += b.prompt.len() + b.width();
        }
        let mut grads = accum.grads();
        let norm =
            clip_grad_norm::<Ad<B>, _>(&self.policy, &mut grads, self.cfg.optim.max_grad_norm);
        if !norm.is_finite() {
            return Err(TrainError::Data(format!(
                "step {}: the gradient norm is {norm} (learning rate {lr}); the update was \
                 skipped and the run stops so that no checkpoint holds damaged weights",
                m.step
            )));
        }
        self.policy = self.optim.step(lr, self.policy.clone(), grads);
        m.grad_norm = norm;
        m.completion_len = total as f64 / batches.len().max(1) as f64;
        m.update_tok_s = processed as f64 / t0.elapsed().as_secs_f64().max(1e-9);
        m.seconds = t0.elapsed().as_secs_f64();
        self.samples.clear();
        self.step += 1;
        Ok(m)
    }

    /// Runs to `cfg.steps`, appending each step to `out/metrics.jsonl` (and its first group's
    /// scored completions to `out/samples.jsonl`), and checkpointing every
    /// `save_every` steps and at the end. `on_step` sees each step's figures.
    pub fn run(&mut self, mut on_step: impl FnMut(&StepMetrics)) -> Result<()> {
        let out = self.cfg.out.clone();
        std::fs::create_dir_all(&out).map_err(|e| TrainError::io(&out, e))?;
        let mut metrics = Jsonl::append(&out.join("metrics.jsonl"))?;
        let mut samples = Jsonl::append(&out.join("samples.jsonl"))?;
        while self.step < self.cfg.steps {
            let m = match self.cfg.mode {
                Mode::Grpo => self.train_step()?,
                Mode::Sft => self.sft_step()?,
            };
            metrics.push(&m)?;
            for s in &self.samples {
                samples.push(s)?;
            }
            on_step(&m);
            let every = self.cfg.save_every;
            if (every > 0 && self.step.is_multiple_of(every)) || self.step == self.cfg.steps {
                self.save(&out.join(format!("checkpoint-{}", self.step)))?;
            }
        }
        Ok(())
    }

    /// Writes a checkpoint directory: `model.mpk` (the policy, adapters included),
    /// `optim.mpk` (AdamW moments), `state.json` (step, data position, seed), `train.json` (the
    /// config) and, with LoRA, `adapter_model.safetensors` under PEFT's tensor names.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let ck = |what: String| TrainError::Checkpoint {
            path: dir.to_path_buf(),
            what,
        };
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        let rec = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
        self.policy
            .clone()
            .save_file(dir.join("model"), &rec)
            .map_err(|e| ck(format!("model: {e}")))?;
        rec.record(self.optim.to_record(), dir.join("optim"))
            .map_err(|e| ck(format!("optimiser: {e}")))?;
        let state = TrainState {
            step: self.step,
            seed: self.cfg.seed,
            cursor: self.cursor,
            lora: self.cfg.lora.clone(),
            model: self.cfg.model.clone(),
            mode: self.cfg.mode,
        };
        write_json(&dir.join("state.json"), &state)?;
        write_json(&dir.join("train.json"), &self.cfg)?;
        if self.cfg.lora.enabled {
            let mut p = self.policy.valid();
            let tensors = lora::adapter_tensors(&mut p);
            crate::export::write_safetensors(&dir.join("adapter_model.safetensors"), &tensors)?;
            write_json(
                &dir.join("adapter_config.json"),
                &crate::export::adapter_config(&self.cfg.lora, &self.cfg.model),
            )?;
        }
        tracing::info!(dir = %dir.display(), step = self.step, "checkpoint written");
        Ok(())
    }

    /// Continues from a checkpoint written by [`Trainer::save`] of the same configuration.
    pub fn resume(&mut self, dir: &Path) -> Result<()> {
        let ck = |what: String| TrainError::Checkpoint {
            path: dir.to_path_buf(),
            what,
        };
        let state = TrainState::read(dir)?;
        if state.lora != self.cfg.lora {
            return Err(ck(format!(
                "was trained with LoRA settings {:?}, but this run has {:?}",
                state.lora, self.cfg.lora
            )));
        }
        if state.mode != self.cfg.mode {
            return Err(ck(format!(
                "is a {:?} checkpoint, but this run is {:?}; to start one from the other's \
                 weights, set `init` instead of resuming",
                state.mode, self.cfg.mode
            )));
        }
        if state.seed != self.cfg.seed {
            return Err(ck(format!(
                "was trained with seed {}, but this run has seed {}; the data order and samples \
                 would not continue",
                state.seed, self.cfg.seed
            )));
        }
        let rec = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
        let adev: burn::tensor::Device<Ad<B>> = self.device.clone();
        self.policy = load_policy(self.policy.clone(), dir, &self.cfg.lora, &adev)?;
        let orec = rec
            .load(dir.join("optim"), &adev)
            .map_err(|e| ck(format!("optimiser: {e}")))?;
        let optim = std::mem::replace(&mut self.optim, self.cfg.optim.adamw().init());
        self.optim = optim.load_record(orec);
        self.step = state.step;
        self.cursor = state.cursor;
        Ok(())
    }
}

/// The policy weights of checkpoint `dir` (written with LoRA settings `lora`) loaded into
/// `policy`.
fn load_policy<B: Backend>(
    policy: Llama<Ad<B>>,
    dir: &Path,
    lora: &LoraConfig,
    device: &burn::tensor::Device<Ad<B>>,
) -> Result<Llama<Ad<B>>> {
    let ck = |what: String| TrainError::Checkpoint {
        path: dir.to_path_buf(),
        what,
    };
    if dir.join("adapter_config.json").is_file() && !dir.join("state.json").exists() {
        return lora::init_from_adapter(policy, dir, lora, device);
    }
    let state = TrainState::read(dir)?;
    if &state.lora != lora {
        return Err(ck(format!(
            "was trained with LoRA settings {:?}, but this run has {:?}",
            state.lora, lora
        )));
    }
    let rec = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    policy
        .load_file(dir.join("model"), &rec, device)
        .map_err(|e| ck(format!("model: {e}")))
}

/// A JSON-lines file written a record at a time, each line flushed as it is written so that a
/// killed run loses at most the line in flight.
pub(crate) struct Jsonl {
    path: std::path::PathBuf,
    file: std::fs::File,
}

impl Jsonl {
    /// Opens `path` for appending (created when missing).
    pub(crate) fn append(path: &Path) -> Result<Jsonl> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| TrainError::io(path, e))?;
        Ok(Jsonl {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Writes `v` as one line and flushes it.
    pub(crate) fn push<T: Serialize>(&mut self, v: &T) -> Result<()> {
        let line = serde_json::to_string(v).map_err(|e| TrainError::Data(e.to_string()))?;
        writeln!(self.file, "{line}").map_err(|e| TrainError::io(&self.path, e))?;
        self.file.flush().map_err(|e| TrainError::io(&self.path, e))
    }
}

pub(crate) fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let s = serde_json::to_string_pretty(v).map_err(|e| TrainError::Data(e.to_string()))?;
    std::fs::write(path, s).map_err(|e| TrainError::io(path, e))
}

/// A dense (f32) model, as training needs.
pub fn load_dense<B: Backend>(path: &Path, device: &B::Device) -> Result<LanguageModel<B>> {
    Ok(LanguageModel::<B>::load_on(
        path,
        &LoadOptions {
            weights: WeightMode::Dense,
            adapter: None,
        },
        device,
    )?)
}

/// The model that samples rollouts. With LoRA on the CPU backend the frozen base stays in its
/// file's block format and runs through the packed kernels with f32 activations (the same
/// numbers as the dense weights the update uses, at a fraction of the memory traffic); the
/// adapters are copied onto it before each step. Otherwise dense f32, replaced after each step.
pub fn rollout_model<B: Backend>(
    path: &Path,
    lora: &LoraConfig,
    device: &B::Device,
) -> Result<LanguageModel<B>> {
    if lora.enabled && embodied_r_reasoner::backend::is_cpu::<B>() {
        Ok(LanguageModel::<B>::load_on(
            path,
            &LoadOptions {
                weights: WeightMode::Packed(ActivationMode::F32),
                adapter: None,
            },
            device,
        )?)
    } else {
        load_dense(path, device)
    }
}

/// A per-(seed, step, slot) sampling seed.
fn mix(seed: u64, step: u64, slot: u64) -> u64 {
    let mut x =
        seed ^ step.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ slot.wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^ (x >> 33)
}

/// The prompt's token ids, fitted to `max` tokens: when too long, the oldest lines of the video
/// text (after its first line) are dropped, with a warning; the system prompt and the question
/// are never cut. Errors when even that cannot fit. `prefix` (the response prefix) follows the
/// generation prompt and counts toward `max`.
pub fn fit_prompt<B: Backend>(
    lm: &LanguageModel<B>,
    ex: &Example,
    max: usize,
    prefix: &str,
) -> Result<(Vec<u32>, bool)> {
    let encode = |user: &str| -> Result<Vec<u32>> {
        let msgs = [
            ChatMessage::new("system", ex.system.clone()),
            ChatMessage::new("user", user.to_string()),
        ];
        let mut text = lm.render_messages(&msgs, true)?;
        text.push_str(prefix);
        Ok(lm.encode_chat(&text)?)
    };
    let ids = encode(&ex.user)?;
    if ids.len() <= max {
        return Ok((ids, false));
    }
    const OPEN: &str = "Video content: \n<\n";
    const CLOSE: &str = "\n>\n";
    let too_long = |why: &str| {
        TrainError::Data(format!(
            "example {}: the prompt has {} tokens, over grpo.max_prompt_tokens = {max}, {why}",
            ex.id,
            ids.len()
        ))
    };
    let Some(open) = ex.user.find(OPEN).map(|i| i + OPEN.len()) else {
        return Err(too_long("and it has no video text to trim"));
    };
    let Some(close) = ex.user[open..].find(CLOSE).map(|i| i + open) else {
        return Err(too_long("and its video text is not closed by `>`"));
    };
    let video: Vec<&str> = ex.user[open..close].lines().collect();
    let rebuild = |drop: usize| {
        let mut kept: Vec<&str> = video.iter().take(1).copied().collect();
        kept.extend(video.iter().skip(1 + drop));
        format!(
            "{}{}{}",
            &ex.user[..open],
            kept.join("\n"),
            &ex.user[close..]
        )
    };
    // Binary search for the fewest dropped lines that fit.
    let (mut lo, mut hi) = (1usize, video.len().saturating_sub(1));
    let mut best = None;
    while lo <= hi {
        let mid = (lo + hi) / 2;
        let cand = encode(&rebuild(mid))?;
        if cand.len() <= max {
            best = Some((mid, cand));
            hi = mid - 1;
        } else {
            lo = mid + 1;
        }
    }
    match best {
        Some((dropped, ids)) => {
            tracing::warn!(
                example = %ex.id,
                dropped_lines = dropped,
                of = video.len(),
                "prompt over grpo.max_prompt_tokens: dropped the oldest video-text lines (the system prompt and question are kept)"
            );
            Ok((ids, true))
        }
        None => Err(too_long(
            "even with the video text cut to its first line; raise grpo.max_prompt_tokens",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(id: &str, gold: Option<&str>) -> Example {
        Example {
            id: id.into(),
            category: "c".into(),
            system: "s".into(),
            user: "Question: where?\nChoices:\nA. left\nB. right".into(),
            solution: gold.map(str::to_string),
            choices: vec!["left".into(), "right".into()],
            target: None,
            withheld: None,
        }
    }

    fn reward_cfg(labels: Labels, gold_fraction: f64) -> RewardConfig {
        RewardConfig {
            labels,
            gold_fraction,
            ..RewardConfig::default()
        }
    }

    fn says(letters: &[&str]) -> Vec<String> {
        letters
            .iter()
            .map(|l| format!("<think>t</think><answer>{l}</answer>"))
            .collect()
    }

    #[test]
    fn groups_are_labelled_by_gold_then_by_a_vote_that_reaches_its_share() {
        let gm = reward_cfg(Labels::GoldMajority, 1.0);
        // Gold wins over any vote.
        let (e, k, _) = label_group(&ex("a", Some("A")), &says(&["B", "B", "B"]), &gm);
        assert_eq!((e.solution.as_deref(), k), (Some("A"), LabelKind::Gold));
        // No gold: 3 of 4 say B.
        let (e, k, share) = label_group(&ex("b", None), &says(&["B", "B", "x", "B"]), &gm);
        assert_eq!((e.solution.as_deref(), k), (Some("B"), LabelKind::Majority));
        assert!((share - 0.75).abs() < 1e-12);
        // 2 of 5 is under the default 0.5: no label.
        let (e, k, _) = label_group(&ex("c", None), &says(&["B", "B", "A", "x", "y"]), &gm);
        assert_eq!((e.solution, k), (None, LabelKind::None));
        // Votes off: no label, whatever the group says.
        let gold = reward_cfg(Labels::Gold, 1.0);
        let (_, k, _) = label_group(&ex("d", None), &says(&["B", "B"]), &gold);
        assert_eq!(k, LabelKind::None);
    }

    #[test]
    fn the_label_policy_hides_gold_by_seed_and_refuses_an_empty_set() {
        let data: Vec<Example> = (0..10)
            .map(|i| ex(&i.to_string(), (i < 8).then_some("A")))
            .collect();
        // Gold only: the two unlabelled examples are left out.
        let g = apply_labels(data.clone(), &reward_cfg(Labels::Gold, 1.0), 1).expect("gold");
        assert_eq!(g.len(), 8);
        // Majority only: every gold answer hidden, nothing left out.
        let m = apply_labels(data.clone(), &reward_cfg(Labels::Majority, 1.0), 1).expect("maj");
        assert_eq!(
            (m.len(), m.iter().filter(|e| e.solution.is_some()).count()),
            (10, 0)
        );
        // ... and kept aside for the audit only.
        assert_eq!(m.iter().filter(|e| e.withheld.is_some()).count(), 8);
        // 25 % of the 8 gold answers kept, the same ones for the same seed.
        let cfg = reward_cfg(Labels::GoldMajority, 0.25);
        let a = apply_labels(data.clone(), &cfg, 3).expect("a");
        let b = apply_labels(data.clone(), &cfg, 3).expect("b");
        let kept = |d: &[Example]| -> Vec<String> {
            d.iter()
                .filter(|e| e.solution.is_some())
                .map(|e| e.id.clone())
                .collect()
        };
        assert_eq!(kept(&a).len(), 2);
        assert_eq!(kept(&a), kept(&b));
        assert_eq!(a.len(), 10);
        // Gold only over unlabelled episodes: an error that says what to do.
        let none: Vec<Example> = (0..3).map(|i| ex(&i.to_string(), None)).collect();
        let e = apply_labels(none, &reward_cfg(Labels::Gold, 1.0), 1)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("episodes label") && e.contains("majority"),
            "{e}"
        );
    }

    #[test]
    fn label_settings_parse_and_bad_ones_are_named() {
        let r: RewardConfig =
            toml::from_str("labels = \"gold+majority\"\nmajority_min_share = 0.6").expect("toml");
        assert_eq!(r.labels, Labels::GoldMajority);
        let e = toml::from_str::<RewardConfig>("labels = \"vote\"").unwrap_err();
        assert!(e.to_string().contains("gold+majority"), "{e}");
    }
}
