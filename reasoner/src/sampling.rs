//! Choosing the next token from logits: greedy, temperature, top-k, top-p, repetition penalty,
//! with a seeded RNG so that a run can be replayed.
//!
//! Order of operations is transformers' `generate`: repetition penalty, temperature, top-k,
//! top-p, then a draw from the renormalised distribution.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Sampling settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingConfig {
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (0 or `None`: off).
    pub top_k: Option<usize>,
    /// Keep the smallest set of tokens whose probability reaches `p` (1.0 or `None`: off).
    pub top_p: Option<f32>,
    /// > 1 discourages tokens already in the prompt or output (1.0: off).
    pub repetition_penalty: f32,
    /// RNG seed.
    pub seed: u64,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            repetition_penalty: 1.0,
            seed: 0,
        }
    }
}

impl SamplingConfig {
    /// Checks ranges; the error names the setting.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(Error::Generation(format!(
                "temperature must be a finite number >= 0, got {}",
                self.temperature
            )));
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(Error::Generation(format!(
                "top_p must be in (0, 1], got {p}"
            )));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return Err(Error::Generation(format!(
                "repetition_penalty must be > 0, got {}",
                self.repetition_penalty
            )));
        }
        Ok(())
    }
}

/// A sampler with its own RNG stream.
#[derive(Debug, Clone)]
pub struct Sampler {
    cfg: SamplingConfig,
    rng: ChaCha8Rng,
    scratch: Vec<(f32, u32)>,
    seen: Vec<bool>,
}

impl Sampler {
    /// A sampler seeded with `cfg.seed`.
    pub fn new(cfg: SamplingConfig) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        Sampler {
            cfg,
            rng,
            scratch: Vec::new(),
            seen: Vec::new(),
        }
    }

    /// A sampler for sample `i` of a group: same settings, an independent stream.
    pub fn for_sample(cfg: &SamplingConfig, i: usize) -> Self {
        let mut c = cfg.clone();
        c.seed = cfg
            .seed
            .wrapping_add((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        Sampler::new(c)
    }

    /// The settings.
    pub fn config(&self) -> &SamplingConfig {
        &self.cfg
    }

    /// Picks the next token. `logits` is modified in place; `history` is the prompt and the
    /// tokens generated so far (for the repetition penalty).
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        if self.cfg.repetition_penalty != 1.0 {
            self.seen.clear();
            self.seen.resize(logits.len(), false);
            for &t in history {
                let t = t as usize;
                if t < logits.len() && !self.seen[t] {
                    self.seen[t] = true;
                    let l = &mut logits[t];
                    *l = if *l < 0.0 {
                        *l * self.cfg.repetition_penalty
                    } else {
                        *l / self.cfg.repetition_penalty
                    };
                }
            }
        }
        if self.cfg.temperature == 0.0 {
            return argmax(logits);
        }
        let inv_t = 1.0 / self.cfg.temperature;
        let c = &mut self.scratch;
        c.clear();
        c.extend(
            logits
                .iter()
                .enumerate()
                .map(|(i, &l)| (l * inv_t, i as u32)),
        );
        // Candidates sorted by logit, highest first (ties: lower id first, like a stable sort).
        let k = match self.cfg.top_k {
            Some(k) if k > 0 && k < c.len() => k,
            _ => c.len(),
        };
        if k < c.len() {
            c.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            c.truncate(k);
        }
        c.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let max = c.first().map(|x| x.0).unwrap_or(0.0);
        let mut total = 0f64;
        for x in c.iter_mut() {
            x.0 = (x.0 - max).exp();
            total += x.0 as f64;
        }
        if let Some(p) = self.cfg.top_p
            && p < 1.0
        {
            let mut cum = 0f64;
            let mut keep = c.len();
            for (i, x) in c.iter().enumerate() {
                cum += x.0 as f64 / total;
                if cum >= p as f64 {
                    keep = i + 1;
                    break;
                }
            }
            c.truncate(keep.max(1));
            total = c.iter().map(|x| x.0 as f64).sum();
        }
        let r = self.rng.random::<f64>() * total;
        let mut acc = 0f64;
        for x in c.iter() {
            acc += x.0 as f64;
            if r < acc {
                return x.1;
            }
        }
        c.last().map(|x| x.1).unwrap_or(0)
    }
}

/// Index of the largest value; the first one on ties (as `torch.argmax`). NaN never wins.
pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut bv = f32::NEG_INFINITY;
    for (i, &x) in v.iter().enumerate() {
        if x > bv {
            bv = x;
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_first_max() {
        let mut s = Sampler::new(SamplingConfig::default());
        assert_eq!(s.sample(&mut [1.0, 3.0, 3.0, -1.0], &[]), 1);
    }

    #[test]
    fn repetition_penalty_follows_transformers() {
        let mut s = Sampler::new(SamplingConfig {
            repetition_penalty: 2.0,
            ..Default::default()
        });
        let mut l = [4.0, 3.0, -1.0];
        // token 0 is halved (2.0 < 3.0), token 2 doubled in magnitude.
        assert_eq!(s.sample(&mut l, &[0, 2, 0]), 1);
        assert_eq!(l, [2.0, 3.0, -2.0]);
    }

    #[test]
    fn top_k_one_is_greedy_and_seeds_repeat() {
        let cfg = SamplingConfig {
            temperature: 1.0,
            top_k: Some(1),
            ..Default::default()
        };
        let mut s = Sampler::new(cfg);
        for _ in 0..20 {
            assert_eq!(s.sample(&mut [0.1, 0.2, 5.0, 0.3], &[]), 2);
        }
        let cfg = SamplingConfig {
            temperature: 1.0,
            seed: 42,
            ..Default::default()
        };
        let draw = |cfg: &SamplingConfig| {
            let mut s = Sampler::new(cfg.clone());
            (0..50)
                .map(|_| s.sample(&mut [0.0; 10], &[]))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(&cfg), draw(&cfg));
        let mut other = cfg.clone();
        other.seed = 43;
        assert_ne!(draw(&cfg), draw(&other));
    }

    #[test]
    fn top_p_keeps_the_nucleus() {
        // probs ≈ [0.64, 0.24, 0.09, 0.03]: p = 0.8 keeps the first two only.
        let cfg = SamplingConfig {
            temperature: 1.0,
            top_p: Some(0.8),
            seed: 7,
            ..Default::default()
        };
        let mut s = Sampler::new(cfg);
        let logits = [3.0f32, 2.0, 1.0, 0.0];
        let mut counts = [0; 4];
        for _ in 0..2000 {
            counts[s.sample(&mut logits.clone(), &[]) as usize] += 1;
        }
        assert_eq!(counts[2] + counts[3], 0, "{counts:?}");
        assert!(counts[0] > counts[1] && counts[1] > 300, "{counts:?}");
    }

    #[test]
    fn bad_settings_are_named() {
        let e = SamplingConfig {
            top_p: Some(1.5),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("top_p"));
        let e = SamplingConfig {
            temperature: -1.0,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("temperature"));
    }
}
