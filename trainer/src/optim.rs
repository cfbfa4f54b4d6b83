//! Optimiser plumbing burn leaves to the caller: the learning-rate schedule (linear warm-up
//! then cosine decay, as ms-swift's default) and clipping of the global gradient norm (burn
//! clips per tensor).

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// AdamW and schedule settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// Share of the steps spent warming up linearly from 0.
    pub warmup_ratio: f64,
    /// The cosine decays to `lr · min_lr_ratio`.
    pub min_lr_ratio: f64,
    /// Decoupled weight decay (0.1).
    pub weight_decay: f64,
    /// Adam β1.
    pub beta1: f64,
    /// Adam β2 (0.95).
    pub beta2: f64,
    /// Adam ε.
    pub epsilon: f64,
    /// Clip the global gradient norm to this (0 = off).
    pub max_grad_norm: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            lr: 1e-4,
            warmup_ratio: 0.05,
            min_lr_ratio: 0.0,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            epsilon: 1e-8,
            max_grad_norm: 1.0,
        }
    }
}

impl OptimConfig {
    /// Errors on values AdamW cannot use, naming the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |k: &str, v: f64, want: &str| {
            Err(TrainError::Config(format!(
                "optim.{k} = {v}: expected {want}"
            )))
        };
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", self.lr, "a positive number");
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return bad("warmup_ratio", self.warmup_ratio, "a number in [0, 1)");
        }
        if !(0.0..=1.0).contains(&self.min_lr_ratio) {
            return bad("min_lr_ratio", self.min_lr_ratio, "a number in [0, 1]");
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad("weight_decay", self.weight_decay, "a number ≥ 0");
        }
        for (k, v) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return bad(k, v, "a number in [0, 1)");
            }
        }
        if self.epsilon.is_nan() || self.epsilon <= 0.0 {
            return bad("epsilon", self.epsilon, "a positive number");
        }
        if self.max_grad_norm.is_nan() || self.max_grad_norm < 0.0 {
            return bad(
                "max_grad_norm",
                self.max_grad_norm,
                "a number ≥ 0 (0 = off)",
            );
        }
        Ok(())
    }

    /// The learning rate of optimiser step `step` (0-based) of `total`.
    pub fn lr_at(&self, step: u64, total: u64) -> f64 {
        let total = total.max(1) as f64;
        let warm = (self.warmup_ratio * total).ceil();
        let s = step as f64;
        if s < warm {
            return self.lr * (s + 1.0) / (warm + 1.0);
        }
        let span = (total - warm).max(1.0);
        let progress = ((s - warm) / span).clamp(0.0, 1.0);
        let min = self.lr * self.min_lr_ratio;
        min + (self.lr - min) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }

    /// burn's AdamW with these settings (burn's own defaults differ from PyTorch's).
    pub fn adamw(&self) -> burn::optim::AdamWConfig {
        burn::optim::AdamWConfig::new()
            .with_beta_1(self.beta1 as f32)
            .with_beta_2(self.beta2 as f32)
            .with_epsilon(self.epsilon as f32)
            .with_weight_decay(self.weight_decay as f32)
    }
}

struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    sum: f64,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let s: f64 = g
                .square()
                .sum()
                .into_data()
                .convert::<f64>()
                .to_vec::<f64>()
                .ok()
                .and_then(|v| v.first().copied())
                .unwrap_or(f64::NAN);
            self.sum += s;
        }
    }
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: f64,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            self.grads.register(param.id, g.mul_scalar(self.factor));
        }
    }
}

/// The global L2 norm of `grads` over `module`'s parameters.
pub fn grad_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &GradientsParams,
) -> f64 {
    let mut v = SquaredNorm { grads, sum: 0.0 };
    module.visit(&mut v);
    v.sum.sqrt()
}

/// Scales `grads` so that their global norm is at most `max` (0 = no clipping). Returns the
/// norm before clipping.
pub fn clip_grad_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &mut GradientsParams,
    max: f64,
) -> f64 {
    let norm = grad_norm::<B, M>(module, grads);
    if max > 0.0 && norm.is_finite() && norm > max {
        let mut s = Scale {
            grads,
            factor: max / (norm + 1e-6),
        };
        module.visit(&mut s);
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine() {
        let c = OptimConfig {
            lr: 1.0,
            warmup_ratio: 0.1,
            ..OptimConfig::default()
        };
        // 100 steps: 10 warm-up steps rising to just under the peak, then cosine to 0.
        assert!((c.lr_at(0, 100) - 1.0 / 11.0).abs() < 1e-12);
        assert!(c.lr_at(9, 100) < 1.0);
        assert!((c.lr_at(10, 100) - 1.0).abs() < 1e-12);
        assert!((c.lr_at(55, 100) - 0.5).abs() < 1e-12);
        assert!(c.lr_at(100, 100).abs() < 1e-12);
        let m = OptimConfig {
            min_lr_ratio: 0.1,
            warmup_ratio: 0.0,
            lr: 1.0,
            ..OptimConfig::default()
        };
        assert!((m.lr_at(0, 10) - 1.0).abs() < 1e-12);
        assert!((m.lr_at(10, 10) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = OptimConfig {
            beta2: 1.0,
            ..OptimConfig::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("optim.beta2"), "{e}");
        assert!(
            OptimConfig {
                lr: 0.0,
                ..OptimConfig::default()
            }
            .validate()
            .is_err()
        );
    }
}
