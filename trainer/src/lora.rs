//! LoRA: low-rank adapters on the decoder's projections, the only trainable parameters when
//! enabled (the base weights are frozen).

use std::path::Path;

use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use embodied_r_reasoner::{Llama, Lora, NamedTensor};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Which projections get adapters, their rank and scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoraConfig {
    /// Train adapters (true) or every weight (false: full fine-tuning).
    pub enabled: bool,
    /// Rank r.
    pub rank: usize,
    /// Scale numerator: the update is `alpha / r · B A`.
    pub alpha: f64,
    /// Projection names (`q_proj`, `k_proj`, `v_proj`, `o_proj`, `gate_proj`, `up_proj`,
    /// `down_proj`) or `all-linear`.
    pub targets: Vec<String>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig {
            enabled: true,
            rank: 16,
            alpha: 32.0,
            targets: ["q_proj", "k_proj", "v_proj", "o_proj"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// The projection names adapters can target.
pub const PROJECTIONS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

impl LoraConfig {
    /// Errors on a zero rank, a non-positive alpha or an unknown target.
    pub fn validate(&self) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        if self.rank == 0 {
            return Err(TrainError::Config("lora.rank must be at least 1".into()));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(TrainError::Config(format!(
                "lora.alpha must be a positive number, got {}",
                self.alpha
            )));
        }
        if self.targets.is_empty() {
            return Err(TrainError::Config(
                "lora.targets is empty; name projections or `all-linear`".into(),
            ));
        }
        for t in &self.targets {
            if t != "all-linear" && !PROJECTIONS.contains(&t.as_str()) {
                return Err(TrainError::Config(format!(
                    "lora.targets: unknown projection `{t}`; expected `all-linear` or some of {}",
                    PROJECTIONS.join(", ")
                )));
            }
        }
        Ok(())
    }

    fn targets(&self, name: &str) -> bool {
        self.targets
            .iter()
            .any(|t| t == "all-linear" || name.ends_with(&format!(".{t}")))
    }
}

/// Freezes the model and attaches fresh adapters (A uniform in ±1/√in as PEFT's Kaiming
/// initialisation gives, B zero) to the targeted projections. Returns the model and how many
/// adapters were attached.
pub fn attach<B: Backend>(
    model: Llama<B>,
    cfg: &LoraConfig,
    seed: u64,
    device: &B::Device,
) -> Result<(Llama<B>, usize)> {
    cfg.validate()?;
    let mut model = model.no_grad();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x4c6f_5241);
    let mut n = 0;
    for (name, lin) in model.projections_mut() {
        if !cfg.targets(&name) {
            continue;
        }
        if lin.weight.is_none() {
            return Err(TrainError::Config(format!(
                "{name} is a packed (quantized) weight; training needs dense weights"
            )));
        }
        let (out, inp) = (lin.out_features(), lin.in_features());
        let bound = 1.0 / (inp as f64).sqrt();
        let a: Vec<f32> = (0..cfg.rank * inp)
            .map(|_| rng.random_range(-bound..bound) as f32)
            .collect();
        let a = Tensor::<B, 2>::from_data(TensorData::new(a, [cfg.rank, inp]), device);
        let b = Tensor::<B, 2>::zeros([out, cfg.rank], device);
        lin.lora = Some(Lora {
            a: Param::from_tensor(a).set_require_grad(true),
            b: Param::from_tensor(b).set_require_grad(true),
            scale: cfg.alpha / cfg.rank as f64,
        });
        n += 1;
    }
    Ok((model, n))
}

/// The model without its adapters (the frozen base: GRPO's reference policy under LoRA).
pub fn strip<B: Backend>(mut model: Llama<B>) -> Llama<B> {
    for (_, lin) in model.projections_mut() {
        lin.lora = None;
    }
    model
}

/// Puts `from`'s adapters (or their absence) on the same projections of `to` — e.g. from the
/// trained policy onto the packed-weight model that samples the rollouts.
pub fn copy_adapters<B: Backend>(from: &mut Llama<B>, to: &mut Llama<B>) {
    for ((_, src), (_, dst)) in from.projections_mut().into_iter().zip(to.projections_mut()) {
        dst.lora = src.lora.clone();
    }
}

/// The adapters' tensors under PEFT's names
/// (`base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`), row-major f32.
pub fn adapter_tensors<B: Backend>(model: &mut Llama<B>) -> Vec<NamedTensor> {
    let mut out = Vec::new();
    for (name, lin) in model.projections_mut() {
        if let Some(l) = &lin.lora {
            for (which, p) in [("lora_A", &l.a), ("lora_B", &l.b)] {
                let t = p.val();
                let dims = t.dims().to_vec();
                let v: Vec<f32> = t.into_data().convert::<f32>().to_vec().unwrap_or_default();
                out.push((format!("base_model.model.{name}.{which}.weight"), dims, v));
            }
        }
    }
    out
}

/// `init` from a PEFT adapter folder (e.g. the shipped `embodied-r-smollm2`, or one written by
/// `train adapter`): its pairs replace the fresh adapters, as trainable parameters. The folder
/// must carry exactly the projections this run's `[lora]` targets, with its rank and alpha.
pub fn init_from_adapter<B: Backend>(
    mut policy: Llama<B>,
    dir: &Path,
    lora: &LoraConfig,
    device: &B::Device,
) -> Result<Llama<B>> {
    let ck = |what: String| TrainError::Checkpoint {
        path: dir.to_path_buf(),
        what,
    };
    if !lora.enabled {
        return Err(ck(
            "is a LoRA adapter folder, but this run trains every weight (lora.enabled = false)"
                .into(),
        ));
    }
    let targeted = policy
        .projections_mut()
        .iter()
        .filter(|(name, _)| lora.targets(name))
        .count();
    let info = embodied_r_reasoner::adapter::attach_adapter(&mut policy, dir, device)
        .map_err(|e| ck(e.to_string()))?;
    if info.rank != lora.rank || (info.alpha - lora.alpha).abs() > 1e-9 {
        return Err(ck(format!(
            "adapter has rank {} and alpha {}, but this run's [lora] has rank {} and alpha {}",
            info.rank, info.alpha, lora.rank, lora.alpha
        )));
    }
    let with = policy
        .projections_mut()
        .iter()
        .filter(|(_, l)| l.lora.is_some())
        .count();
    if info.projections != targeted || with != targeted {
        return Err(ck(format!(
            "adapter covers {} projections, but this run's lora.targets {:?} select {targeted}",
            info.projections, lora.targets
        )));
    }
    for (_, lin) in policy.projections_mut() {
        if let Some(l) = lin.lora.as_mut() {
            l.a = Param::from_tensor(l.a.val()).set_require_grad(true);
            l.b = Param::from_tensor(l.b.val()).set_require_grad(true);
        }
    }
    tracing::info!(adapter = %dir.display(), projections = info.projections, "initialised from an adapter folder");
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use embodied_r_reasoner::backend::Cpu;

    type Ad = burn::backend::Autodiff<Cpu>;

    fn tiny() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../reasoner/tests/fixtures/tiny-llama")
    }

    /// An adapter folder with non-zero A and B on `cfg`'s targets, and its tensors.
    fn adapter_folder(dir: &Path, cfg: &LoraConfig) -> Vec<NamedTensor> {
        let dev = Default::default();
        let lm = crate::train::load_dense::<Cpu>(&tiny(), &dev).unwrap();
        let (mut m, _) = attach(lm.model().clone(), cfg, 7, &dev).unwrap();
        for (_, lin) in m.projections_mut() {
            if let Some(l) = lin.lora.as_mut() {
                let [o, r] = l.b.val().dims();
                let v: Vec<f32> = (0..o * r).map(|i| ((i % 13) as f32 - 6.0) * 0.01).collect();
                l.b = Param::from_tensor(Tensor::from_data(TensorData::new(v, [o, r]), &dev));
            }
        }
        let tensors = adapter_tensors(&mut m);
        crate::export::write_safetensors_as(
            &dir.join("adapter_model.safetensors"),
            &tensors,
            false,
        )
        .unwrap();
        let conf = crate::export::adapter_config(cfg, &tiny());
        std::fs::write(dir.join("adapter_config.json"), conf.to_string()).unwrap();
        tensors
    }

    #[test]
    fn init_from_an_adapter_folder_restores_its_pairs_as_trainable() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = LoraConfig {
            targets: vec!["all-linear".into()],
            ..LoraConfig::default()
        };
        let want = adapter_folder(tmp.path(), &cfg);
        let dev = Default::default();
        // Trainable means tracked by autodiff, so the policy lives on the autodiff backend.
        let lm = crate::train::load_dense::<Ad>(&tiny(), &dev).unwrap();
        let (fresh, n) = attach(lm.model().clone(), &cfg, 1, &dev).unwrap();
        assert_eq!(want.len(), 2 * n);
        let mut got = init_from_adapter(fresh, tmp.path(), &cfg, &dev).unwrap();
        for (_, lin) in got.projections_mut() {
            let l = lin
                .lora
                .as_ref()
                .expect("every projection keeps an adapter");
            assert!(l.a.is_require_grad() && l.b.is_require_grad());
        }
        let have = adapter_tensors(&mut got);
        assert_eq!(have.len(), want.len());
        for (h, w) in have.iter().zip(&want) {
            assert_eq!((&h.0, &h.1), (&w.0, &w.1));
            assert_eq!(h.2, w.2, "{}", h.0);
        }
    }

    #[test]
    fn init_from_an_adapter_folder_refuses_other_lora_settings() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = LoraConfig::default();
        adapter_folder(tmp.path(), &cfg);
        let dev = Default::default();
        let lm = crate::train::load_dense::<Cpu>(&tiny(), &dev).unwrap();
        let other = LoraConfig {
            rank: 8,
            ..cfg.clone()
        };
        let (m, _) = attach(lm.model().clone(), &other, 1, &dev).unwrap();
        let e = init_from_adapter(m, tmp.path(), &other, &dev)
            .unwrap_err()
            .to_string();
        assert!(e.contains("rank 16") && e.contains("rank 8"), "{e}");
        let wider = LoraConfig {
            targets: vec!["all-linear".into()],
            ..cfg.clone()
        };
        let (m, _) = attach(lm.model().clone(), &wider, 1, &dev).unwrap();
        let e = init_from_adapter(m, tmp.path(), &wider, &dev)
            .unwrap_err()
            .to_string();
        assert!(e.contains("covers") && e.contains("all-linear"), "{e}");
    }

    #[test]
    fn config_errors_name_the_key() {
        let mut c = LoraConfig::default();
        c.validate().expect("default is valid");
        c.targets = vec!["qproj".into()];
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("qproj") && e.contains("q_proj"), "{e}");
        c.rank = 0;
        c.targets = vec!["all-linear".into()];
        assert!(c.validate().unwrap_err().to_string().contains("lora.rank"));
        assert!(c.targets("model.layers.3.mlp.down_proj"));
        let d = LoraConfig::default();
        assert!(d.targets("model.layers.0.self_attn.v_proj"));
        assert!(!d.targets("model.layers.0.mlp.up_proj"));
    }
}
