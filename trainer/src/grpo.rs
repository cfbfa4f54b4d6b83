//! GRPO's arithmetic (spec §4.4): group-normalised advantages, per-token log-probabilities of
//! completions under a policy, and the token-level clipped objective with the k3 KL estimator.

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use embodied_r_reasoner::{Llama, LogitsFor};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Advantages of one group: `(R − mean) / (std + 1e-4)`, with the unbiased sample standard
/// deviation (ms-swift's and TRL's `scale_rewards`). A group of one has advantage 0.
pub fn advantages(rewards: &[f64]) -> Vec<f64> {
    let n = rewards.len();
    if n < 2 || zero_variance(rewards) {
        return vec![0.0; n];
    }
    let mean = rewards.iter().sum::<f64>() / n as f64;
    let var = rewards.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let std = var.sqrt();
    rewards.iter().map(|r| (r - mean) / (std + 1e-4)).collect()
}

/// Whether all rewards of a group are equal (its advantages are all 0: no learning signal).
pub fn zero_variance(rewards: &[f64]) -> bool {
    rewards.windows(2).all(|w| (w[0] - w[1]).abs() < 1e-12)
}

/// The clipped objective's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Objective {
    /// Lower clip: ratios below `1 − clip_low` stop helping (0.2).
    pub clip_low: f64,
    /// Upper clip: ratios above `1 + clip_high` stop helping (0.2; DAPO raises it).
    pub clip_high: f64,
    /// KL coefficient β against the reference policy (0.001; 0 skips the reference pass).
    pub beta: f64,
}

impl Default for Objective {
    fn default() -> Self {
        Objective {
            clip_low: 0.2,
            clip_high: 0.2,
            beta: 0.001,
        }
    }
}

/// Figures of one loss evaluation (sums over the tokens it covered).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LossStats {
    /// Tokens covered.
    pub tokens: f64,
    /// Sum of per-token k3 KL.
    pub kl_sum: f64,
    /// Tokens whose clipped term was the smaller one (no gradient flows through them).
    pub clipped: f64,
}

/// The token-level GRPO loss of a micro-batch, divided by `total_tokens` (the completion tokens
/// of the whole optimiser step, so micro-batch losses add up to the step's token mean).
///
/// `logp`, `old`, `reference`: `[n, t]` per-token log-probabilities under the policy (with
/// gradient), the policy that sampled (detached) and the reference policy; `mask`: `[n, t]`, 1 on
/// completion tokens; `adv`: `[n]`.
pub fn loss<B: Backend>(
    logp: Tensor<B, 2>,
    old: Tensor<B, 2>,
    reference: Option<Tensor<B, 2>>,
    adv: Tensor<B, 1>,
    mask: Tensor<B, 2>,
    obj: &Objective,
    total_tokens: f64,
) -> (Tensor<B, 1>, LossStats) {
    let adv = adv.unsqueeze_dim::<2>(1);
    let ratio = (logp.clone() - old).exp();
    let clipped_ratio = ratio.clone().clamp(1.0 - obj.clip_low, 1.0 + obj.clip_high);
    let unclipped = ratio.clone() * adv.clone();
    let clipped = clipped_ratio.clone() * adv;
    let surrogate = unclipped.clone().min_pair(clipped.clone());
    let mut per_token = surrogate.neg();
    let mut kl_sum = 0.0;
    if let Some(r) = reference
        && obj.beta > 0.0
    {
        let d = r - logp;
        let kl = d.clone().exp() - d - 1.0;
        kl_sum = scalar(&((kl.clone() * mask.clone()).detach().sum()));
        per_token = per_token + kl.mul_scalar(obj.beta);
    }
    // Tokens where the min picked the clipped term (their gradient is zero).
    let was_clipped = clipped.detach().lower(unclipped.detach()).float() * mask.clone();
    let stats = LossStats {
        tokens: scalar(&mask.clone().sum()),
        kl_sum,
        clipped: scalar(&was_clipped.sum()),
    };
    let loss = (per_token * mask).sum().div_scalar(total_tokens.max(1.0));
    (loss, stats)
}

/// The value of a one-element tensor.
pub(crate) fn scalar<B: Backend>(t: &Tensor<B, 1>) -> f64 {
    t.clone()
        .into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(f64::NAN)
}

/// Sequences that share a prompt: each is the prompt followed by its completion, right-padded.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Prompt tokens (shared).
    pub prompt: Vec<u32>,
    /// Completion tokens per sequence.
    pub completions: Vec<Vec<u32>>,
}

impl Batch {
    /// Longest completion.
    pub fn width(&self) -> usize {
        self.completions.iter().map(Vec::len).max().unwrap_or(0)
    }

    /// `[n, width]` mask, 1 on completion tokens.
    pub fn mask<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2> {
        let w = self.width();
        let mut m = vec![0f32; self.completions.len() * w];
        for (i, c) in self.completions.iter().enumerate() {
            m[i * w..i * w + c.len()].fill(1.0);
        }
        Tensor::from_data(TensorData::new(m, [self.completions.len(), w]), device)
    }
}

/// Per-token log-probabilities `[n, width]` of each completion under `model` (0 on padding).
///
/// The prompt is shared: it runs once (batch 1), its keys and values are repeated to the `n`
/// sequences, and only the completions run as a batch — a G-fold saving on the prompt in both
/// the forward and the backward pass (gradients of the repeated cache sum back into the single
/// prompt pass). The vocabulary head runs only on the positions that predict completion tokens.
pub fn token_logprobs<B: Backend>(
    model: &Llama<B>,
    batch: &Batch,
    device: &B::Device,
) -> Result<Tensor<B, 2>> {
    let p = batch.prompt.len();
    let w = batch.width();
    let n = batch.completions.len();
    if p == 0 || w == 0 || n == 0 {
        return Err(TrainError::Data(
            "a training batch needs a prompt and at least one non-empty completion".into(),
        ));
    }
    let padded: Vec<Vec<u32>> = batch
        .completions
        .iter()
        .map(|c| {
            let mut s = c.clone();
            s.resize(w, 0);
            s
        })
        .collect();
    let mut cache = model.new_cache(p + w);
    // The last prompt position predicts each completion's first token.
    let first = model
        .forward_ids(
            std::slice::from_ref(&batch.prompt),
            &mut cache,
            LogitsFor::Last,
            device,
        )
        .map_err(TrainError::Model)?
        .repeat_dim(0, n);
    let logits = if w > 1 {
        cache.repeat_batch(n);
        // Completion tokens 0..w−1 predict tokens 1..w.
        let inputs: Vec<Vec<u32>> = padded.iter().map(|c| c[..w - 1].to_vec()).collect();
        let rest = model
            .forward_ids(&inputs, &mut cache, LogitsFor::All, device)
            .map_err(TrainError::Model)?;
        Tensor::cat(vec![first, rest], 1)
    } else {
        first
    };
    let targets: Vec<i64> = padded.iter().flatten().map(|&t| i64::from(t)).collect();
    let targets = Tensor::<B, 2, Int>::from_data(TensorData::new(targets, [n, w]), device);
    let lp = log_softmax(logits, 2).gather(2, targets.unsqueeze_dim::<3>(2));
    Ok(lp.squeeze_dim::<2>(2) * batch.mask::<B>(device))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Autodiff;
    use embodied_r_reasoner::backend::Cpu;

    type A = Autodiff<Cpu>;

    #[test]
    fn advantages_by_hand() {
        // mean 0.5, unbiased std = sqrt(1/3) ≈ 0.57735
        let a = advantages(&[1.0, 0.0, 1.0, 0.0]);
        let s = (1.0f64 / 3.0).sqrt() + 1e-4;
        for (x, want) in a.iter().zip([0.5 / s, -0.5 / s, 0.5 / s, -0.5 / s]) {
            assert!((x - want).abs() < 1e-12, "{x} vs {want}");
        }
        assert_eq!(advantages(&[0.8, 0.8, 0.8]), vec![0.0; 3]);
        assert!(zero_variance(&[0.8, 0.8, 0.8]));
        assert!(!zero_variance(&[0.8, 0.1]));
        assert_eq!(advantages(&[1.0]), vec![0.0]);
        // Reward levels of the method: {0, 0.1, 0.7, 0.8, 0.9, 1.0}
        let a = advantages(&[1.0, 0.1, 0.8, 0.0]);
        let sum: f64 = a.iter().sum();
        assert!(sum.abs() < 1e-12);
    }

    fn t2(v: Vec<f32>, n: usize, w: usize) -> Tensor<A, 2> {
        Tensor::from_data(TensorData::new(v, [n, w]), &Default::default())
    }

    #[test]
    fn loss_and_gradient_by_hand() {
        let dev = Default::default();
        // Two sequences of widths 2 and 1; old == logp (ratio 1), so the clip is inert.
        let lp = vec![-1.0f32, -2.0, -0.5, 0.0];
        let logp = t2(lp.clone(), 2, 2).require_grad();
        let old = t2(lp.clone(), 2, 2);
        let refp = t2(vec![-1.5, -2.0, -0.25, 0.0], 2, 2);
        let adv = Tensor::<A, 1>::from_data(TensorData::new(vec![1.0f32, -2.0], [2]), &dev);
        let mask = t2(vec![1.0, 1.0, 1.0, 0.0], 2, 2);
        let obj = Objective {
            clip_low: 0.2,
            clip_high: 0.2,
            beta: 0.1,
        };
        let (l, stats) = loss(logp.clone(), old, Some(refp), adv, mask, &obj, 3.0);
        // k3(d) = e^d − d − 1 with d = ref − logp: d = −0.5, 0, 0.25
        let k3 = |d: f64| d.exp() - d - 1.0;
        let kls = [k3(-0.5), k3(0.0), k3(0.25)];
        let want = (-1.0 - 1.0 + 2.0 + 0.1 * kls.iter().sum::<f64>()) / 3.0;
        assert!((scalar(&l) - want).abs() < 1e-6, "{} vs {want}", scalar(&l));
        assert!((stats.kl_sum - kls.iter().sum::<f64>()).abs() < 1e-6);
        assert_eq!((stats.tokens, stats.clipped), (3.0, 0.0));
        // d/dlogp: (−A + β(1 − e^d)) / 3 on masked tokens, 0 on padding.
        let g = logp.grad(&l.backward()).expect("logp has a gradient");
        let g: Vec<f32> = g.into_data().to_vec().expect("f32");
        let dk = |d: f64| 0.1 * (1.0 - d.exp());
        let want = [
            (-1.0 + dk(-0.5)) / 3.0,
            (-1.0 + dk(0.0)) / 3.0,
            (2.0 + dk(0.25)) / 3.0,
            0.0,
        ];
        for (x, w) in g.iter().zip(want) {
            assert!((f64::from(*x) - w).abs() < 1e-6, "{g:?} vs {want:?}");
        }
    }

    #[test]
    fn clipping_stops_the_gradient_beyond_the_trust_region() {
        let dev = Default::default();
        // ratio e^0.5 ≈ 1.65 > 1.2 with a positive advantage: clipped, no gradient.
        // ratio e^−0.5 ≈ 0.61 < 0.8 with a positive advantage: min picks the unclipped term.
        let logp = t2(vec![0.5, -0.5], 1, 2).require_grad();
        let old = t2(vec![0.0, 0.0], 1, 2);
        let adv = Tensor::<A, 1>::from_data(TensorData::new(vec![1.0f32], [1]), &dev);
        let mask = t2(vec![1.0, 1.0], 1, 2);
        let obj = Objective {
            beta: 0.0,
            ..Objective::default()
        };
        let (l, stats) = loss(logp.clone(), old, None, adv, mask, &obj, 2.0);
        let want = -(1.2 + (-0.5f64).exp()) / 2.0;
        assert!((scalar(&l) - want).abs() < 1e-6);
        assert_eq!(stats.clipped, 1.0);
        let g: Vec<f32> = logp
            .grad(&l.backward())
            .expect("grad")
            .into_data()
            .to_vec()
            .expect("f32");
        assert!(g[0].abs() < 1e-7, "{g:?}");
        assert!(
            (f64::from(g[1]) + (-0.5f64).exp() / 2.0).abs() < 1e-6,
            "{g:?}"
        );
    }
}
