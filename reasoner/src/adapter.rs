//! LoRA adapters in PEFT's folder layout (`adapter_config.json` + `adapter_model.safetensors`)
//! put onto a loaded model's projections, unmerged: a packed (quantized) base stays packed and
//! runs on its fast kernels, and the adapter's low-rank product is added beside it
//! (`y = W x + scale · B (A x)`), so the adapter's effect is exact rather than rounded into the
//! base's 4-bit blocks.

use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::layers::Lora;
use crate::model::Llama;
use crate::weights::SafetensorsSet;

/// The part of PEFT's `adapter_config.json` an adapter needs.
#[derive(Debug, Clone, Deserialize)]
struct PeftConfig {
    #[serde(default)]
    peft_type: Option<String>,
    r: usize,
    lora_alpha: f64,
    #[serde(default)]
    use_rslora: bool,
    #[serde(default)]
    use_dora: bool,
}

/// What [`attach_adapter`] put on the model.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterInfo {
    /// The adapter folder.
    pub path: PathBuf,
    /// LoRA rank.
    pub rank: usize,
    /// LoRA alpha (the update is scaled by alpha / rank).
    pub alpha: f64,
    /// Projections that carry an adapter.
    pub projections: usize,
}

fn bad(path: &Path, what: impl Into<String>) -> Error {
    Error::Adapter {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

/// Reads the adapter folder `dir` and attaches its low-rank pairs to `model`'s projections
/// (replacing any adapter there). Every tensor must belong to a projection of this model, in
/// pairs with shapes `[rank, in]` and `[out, rank]`; anything else is an error that names the
/// file and the tensor, and leaves the model unchanged.
pub fn attach_adapter<B: Backend>(
    model: &mut Llama<B>,
    dir: &Path,
    device: &B::Device,
) -> Result<AdapterInfo> {
    let cfg_path = dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
    let cfg: PeftConfig = serde_json::from_str(&text)
        .map_err(|e| bad(&cfg_path, format!("not a PEFT adapter config: {e}")))?;
    if let Some(t) = &cfg.peft_type
        && t != "LORA"
    {
        return Err(bad(
            &cfg_path,
            format!("peft_type is {t:?}; only LORA is supported"),
        ));
    }
    if cfg.use_dora {
        return Err(bad(&cfg_path, "DoRA adapters (use_dora) are not supported"));
    }
    if !(1..=1024).contains(&cfg.r) {
        return Err(bad(
            &cfg_path,
            format!("r = {}: expected a rank in 1..=1024", cfg.r),
        ));
    }
    if !(cfg.lora_alpha.is_finite() && cfg.lora_alpha > 0.0) {
        return Err(bad(
            &cfg_path,
            format!(
                "lora_alpha = {}: expected a positive number",
                cfg.lora_alpha
            ),
        ));
    }
    let scale = if cfg.use_rslora {
        cfg.lora_alpha / (cfg.r as f64).sqrt()
    } else {
        cfg.lora_alpha / cfg.r as f64
    };
    let st_path = dir.join("adapter_model.safetensors");
    let set = SafetensorsSet::open_files(std::slice::from_ref(&st_path))?;
    let mut names = set.tensor_names();
    names.sort();
    // Read and check every pair before touching the model.
    let mut pairs: Vec<(usize, Tensor<B, 2>, Tensor<B, 2>)> = Vec::new();
    let projections = model.projections_mut();
    let mut used = 0usize;
    for (i, (name, lin)) in projections.iter().enumerate() {
        let a_name = format!("base_model.model.{name}.lora_A.weight");
        let b_name = format!("base_model.model.{name}.lora_B.weight");
        let a = set.read_f32(&a_name)?;
        let b = set.read_f32(&b_name)?;
        let (a, b) = match (a, b) {
            (None, None) => continue,
            (Some(a), Some(b)) => (a, b),
            (Some(_), None) => return Err(bad(&st_path, format!("{a_name} has no {b_name}"))),
            (None, Some(_)) => return Err(bad(&st_path, format!("{b_name} has no {a_name}"))),
        };
        let (out, inp) = (lin.out_features(), lin.in_features());
        if a.0 != [cfg.r, inp] {
            return Err(bad(
                &st_path,
                format!(
                    "{a_name} has shape {:?}; rank {} and this model imply {:?}",
                    a.0,
                    cfg.r,
                    [cfg.r, inp]
                ),
            ));
        }
        if b.0 != [out, cfg.r] {
            return Err(bad(
                &st_path,
                format!(
                    "{b_name} has shape {:?}; rank {} and this model imply {:?}",
                    b.0,
                    cfg.r,
                    [out, cfg.r]
                ),
            ));
        }
        if let Some(v) = a.1.iter().chain(&b.1).find(|v| !v.is_finite()) {
            return Err(bad(
                &st_path,
                format!("{name}'s adapter holds a non-finite value ({v})"),
            ));
        }
        used += 2;
        let a = Tensor::<B, 2>::from_data(TensorData::new(a.1, a.0), device);
        let b = Tensor::<B, 2>::from_data(TensorData::new(b.1, b.0), device);
        pairs.push((i, a, b));
    }
    if used != names.len() {
        let known: Vec<String> = projections
            .iter()
            .flat_map(|(n, _)| {
                ["lora_A", "lora_B"].map(|w| format!("base_model.model.{n}.{w}.weight"))
            })
            .collect();
        let stray = names
            .iter()
            .find(|n| !known.contains(n))
            .cloned()
            .unwrap_or_default();
        return Err(bad(
            &st_path,
            format!(
                "{} tensor(s) belong to no projection of this model, e.g. `{stray}` (a different \
                 architecture, or an adapter of embeddings or heads, which is not supported)",
                names.len() - used
            ),
        ));
    }
    if pairs.is_empty() {
        return Err(bad(&st_path, "holds no LoRA pairs"));
    }
    drop(projections);
    let n = pairs.len();
    let mut projections = model.projections_mut();
    for (i, a, b) in pairs {
        projections[i].1.lora = Some(Lora {
            a: Param::from_tensor(a),
            b: Param::from_tensor(b),
            scale,
        });
    }
    tracing::info!(adapter = %dir.display(), rank = cfg.r, alpha = cfg.lora_alpha, projections = n, "LoRA adapter attached");
    Ok(AdapterInfo {
        path: dir.to_path_buf(),
        rank: cfg.r,
        alpha: cfg.lora_alpha,
        projections: n,
    })
}
