//! Training throughput on one GRPO group: rollout (G samples sharing one prefill) and update
//! (policy + reference log-probs, loss, backward, AdamW step), on synthetic prompts of a chosen
//! length, so a run compares with another framework's at equal shapes.

use std::time::Instant;

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use embodied_r_reasoner::{GenerationConfig, SamplingConfig};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::grpo::{self, Batch, Objective};
use crate::lora::{self, LoraConfig};
use crate::optim::OptimConfig;
use crate::train::{load_dense, rollout_model};

/// What to measure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainBenchConfig {
    /// The model (GGUF or Hugging Face folder).
    pub model: std::path::PathBuf,
    /// Completions per prompt (G).
    pub group: usize,
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Completion length in tokens (generation does not stop early).
    pub completion_tokens: usize,
    /// LoRA settings (`enabled = false`: full fine-tuning).
    pub lora: LoraConfig,
    /// Measured repetitions (the median is reported), after one warm-up.
    pub runs: usize,
    /// Seed of the synthetic prompt and the sampling.
    pub seed: u64,
}

/// What was measured (medians).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainBenchReport {
    /// Generated tokens per second in the rollout (G × completion tokens / rollout time).
    pub rollout_tok_s: f64,
    /// Tokens (G × (prompt + completion)) through the update per second.
    pub update_tok_s: f64,
    /// Rollout seconds.
    pub rollout_s: f64,
    /// Update seconds, and its parts.
    pub update_s: f64,
    /// Policy forward + log-probs + loss.
    pub forward_s: f64,
    /// Reference forward (no gradient).
    pub reference_s: f64,
    /// Backward.
    pub backward_s: f64,
    /// Optimiser step.
    pub optim_s: f64,
    /// Rollout + update: one GRPO group's whole step.
    pub step_s: f64,
    /// Trainable parameters.
    pub trainable_params: usize,
    /// The settings measured.
    pub config: TrainBenchConfig,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs the benchmark on backend `B` (the update on `Autodiff<B>`).
pub fn run<B: Backend>(cfg: &TrainBenchConfig, device: &B::Device) -> Result<TrainBenchReport> {
    type Ad<B> = Autodiff<B>;
    let lm = load_dense::<Ad<B>>(&cfg.model, device)?;
    let mut policy = lm.model().clone();
    if cfg.lora.enabled {
        policy = lora::attach(policy, &cfg.lora, cfg.seed, device)?.0;
    }
    let trainable = trainable_params(&policy);
    let mut rollout = rollout_model::<B>(&cfg.model, &cfg.lora, device)?;
    let base = policy.valid();
    let reference = if cfg.lora.enabled {
        lora::strip(base)
    } else {
        base
    };
    let vocab = lm.config().vocab_size as u32;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let prompt: Vec<u32> = (0..cfg.prompt_tokens.max(1))
        .map(|_| rng.random_range(0..vocab))
        .collect();
    let gen_cfg = GenerationConfig {
        max_tokens: cfg.completion_tokens.max(1),
        sampling: SamplingConfig {
            temperature: 1.0,
            top_k: Some(50),
            top_p: Some(0.9),
            repetition_penalty: 1.0,
            seed: cfg.seed,
        },
        stop: vec![],
        stop_on_eos: false,
    };
    let mut optim = OptimConfig::default()
        .adamw()
        .init::<Ad<B>, embodied_r_reasoner::Llama<Ad<B>>>();
    let obj = Objective::default();
    let (mut roll, mut upd, mut fwd, mut refs, mut bwd, mut opt) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for i in 0..=cfg.runs.max(1) {
        let t = Instant::now();
        if cfg.lora.enabled {
            lora::copy_adapters(&mut policy.valid(), rollout.model_mut());
        } else {
            *rollout.model_mut() = policy.valid();
        }
        let outs = rollout.generate_group(&prompt, cfg.group, &gen_cfg)?;
        let roll_s = t.elapsed().as_secs_f64();
        let batch = Batch {
            prompt: prompt.clone(),
            completions: outs.into_iter().map(|c| c.tokens).collect(),
        };
        let tokens: usize = batch.completions.iter().map(Vec::len).sum();
        let adv: Vec<f32> = (0..cfg.group)
            .map(|k| if k % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let t = Instant::now();
        let logp = grpo::token_logprobs(&policy, &batch, device)?;
        let old = logp.clone().detach();
        let f1 = t.elapsed().as_secs_f64();
        let t_ref = Instant::now();
        let r = grpo::token_logprobs(&reference, &batch, device)?;
        let ref_s = t_ref.elapsed().as_secs_f64();
        let t2 = Instant::now();
        let a = Tensor::<Ad<B>, 1>::from_data(TensorData::new(adv, [cfg.group]), device);
        let (loss, _) = grpo::loss(
            logp,
            old,
            Some(Tensor::from_inner(r)),
            a,
            batch.mask(device),
            &obj,
            tokens as f64,
        );
        let f2 = t2.elapsed().as_secs_f64();
        let t3 = Instant::now();
        let grads = GradientsParams::from_grads(loss.backward(), &policy);
        let b_s = t3.elapsed().as_secs_f64();
        let t4 = Instant::now();
        policy = optim.step(1e-5, policy, grads);
        let o_s = t4.elapsed().as_secs_f64();
        if i == 0 {
            continue; // warm-up
        }
        let u = f1 + ref_s + f2 + b_s + o_s;
        roll.push(roll_s);
        upd.push(u);
        fwd.push(f1 + f2);
        refs.push(ref_s);
        bwd.push(b_s);
        opt.push(o_s);
        tracing::info!(run = i, rollout_s = roll_s, update_s = u, "bench train run");
    }
    let (rollout_s, update_s) = (median(roll), median(upd));
    let gen_tokens = (cfg.group * cfg.completion_tokens) as f64;
    let upd_tokens = (cfg.group * (cfg.prompt_tokens + cfg.completion_tokens)) as f64;
    Ok(TrainBenchReport {
        rollout_tok_s: gen_tokens / rollout_s,
        update_tok_s: upd_tokens / update_s,
        rollout_s,
        update_s,
        forward_s: median(fwd),
        reference_s: median(refs),
        backward_s: median(bwd),
        optim_s: median(opt),
        step_s: rollout_s + update_s,
        trainable_params: trainable,
        config: cfg.clone(),
    })
}

struct CountTrainable(usize);

impl<B: Backend> burn::module::ModuleVisitor<B> for CountTrainable {
    fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<B, D>>) {
        let v = p.val();
        if v.is_require_grad() {
            self.0 += v.shape().num_elements();
        }
    }
}

/// Parameters that receive gradients.
pub fn trainable_params<B: Backend, M: burn::module::Module<B>>(m: &M) -> usize {
    let mut c = CountTrainable(0);
    m.visit(&mut c);
    c.0
}
