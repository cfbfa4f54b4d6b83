//! Writing tensors out of the trainer: safetensors files (adapters now; the Hugging Face folder
//! export builds on it).

use std::path::Path;

use embodied_r_reasoner::NamedTensor;
use safetensors::tensor::{Dtype, TensorView};

use crate::error::{Result, TrainError};

/// Writes f32 tensors `(name, shape, values)` to a safetensors file.
pub fn write_safetensors(path: &Path, tensors: &[NamedTensor]) -> Result<()> {
    write_safetensors_as(path, tensors, false)
}

/// Writes tensors to a safetensors file as f32, or with `f16` as IEEE half precision (values
/// rounded to nearest; an adapter's values are far inside f16's range).
pub fn write_safetensors_as(path: &Path, tensors: &[NamedTensor], f16: bool) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| {
            if f16 {
                v.iter()
                    .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
                    .collect()
            } else {
                v.iter().flat_map(|x| x.to_le_bytes()).collect()
            }
        })
        .collect();
    let dtype = if f16 { Dtype::F16 } else { Dtype::F32 };
    let mut views = Vec::with_capacity(tensors.len());
    for ((name, shape, _), b) in tensors.iter().zip(&bytes) {
        let view = TensorView::new(dtype, shape.clone(), b)
            .map_err(|e| TrainError::Data(format!("tensor {name} with shape {shape:?}: {e}")))?;
        views.push((name.clone(), view));
    }
    safetensors::serialize_to_file(views, None, path).map_err(|e| TrainError::Checkpoint {
        path: path.to_path_buf(),
        what: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_safetensors_reader() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("a.safetensors");
        let t = vec![
            (
                "x.lora_A.weight".to_string(),
                vec![2, 3],
                vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            ),
            ("x.lora_B.weight".to_string(), vec![1, 2], vec![-1.0, 0.5]),
        ];
        write_safetensors(&p, &t).expect("write");
        let bytes = std::fs::read(&p).expect("read");
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("parse");
        let a = st.tensor("x.lora_A.weight").expect("A");
        assert_eq!(a.shape(), &[2, 3]);
        let v: Vec<f32> = a
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(v, t[0].2);
    }
}

/// PEFT's `adapter_config.json` for adapters trained with `lora` on `base`.
pub fn adapter_config(lora: &crate::lora::LoraConfig, base: &Path) -> serde_json::Value {
    serde_json::json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base.file_name().map(|n| n.to_string_lossy().to_string()),
        "r": lora.rank,
        "lora_alpha": lora.alpha,
        "lora_dropout": 0.0,
        "bias": "none",
        "use_rslora": false,
        "use_dora": false,
        // PEFT reads a list as module names: spell `all-linear` out as the projections it
        // means here (the string form would also take in modules we never adapt).
        "target_modules": if lora.targets.iter().any(|t| t == "all-linear") {
            crate::lora::PROJECTIONS.map(String::from).to_vec()
        } else {
            lora.targets.clone()
        },
    })
}

/// What [`export_adapter`] wrote.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AdapterReport {
    /// The folder.
    pub dir: std::path::PathBuf,
    /// Tensors written.
    pub tensors: usize,
    /// Bytes of `adapter_model.safetensors`.
    pub bytes: u64,
    /// Training steps of the checkpoint.
    pub step: u64,
    /// Largest absolute change rounding to f16 made, relative to the largest value.
    pub f16_rel_error: f64,
}

/// Writes a LoRA checkpoint's adapter as a PEFT folder (`adapter_config.json`,
/// `adapter_model.safetensors`), in f16 unless `f32`: what `--adapter DIR` and
/// `reasoner.adapter` load, and what PEFT's `PeftModel.from_pretrained` reads.
pub fn export_adapter(checkpoint: &Path, out: &Path, f32: bool) -> Result<AdapterReport> {
    let ck = |what: String| TrainError::Checkpoint {
        path: checkpoint.to_path_buf(),
        what,
    };
    let state = crate::train::TrainState::read(checkpoint)?;
    if !state.lora.enabled {
        return Err(ck(
            "was trained without LoRA (full fine-tuning): export it with `train export --hf`"
                .into(),
        ));
    }
    let src = checkpoint.join("adapter_model.safetensors");
    let set = embodied_r_reasoner::SafetensorsSet::open_files(std::slice::from_ref(&src))?;
    let mut names = set.tensor_names();
    names.sort();
    let mut tensors: Vec<NamedTensor> = Vec::with_capacity(names.len());
    let (mut max_abs, mut max_err) = (0f64, 0f64);
    for n in names {
        let Some((shape, v)) = set.read_f32(&n)? else {
            continue;
        };
        for x in &v {
            max_abs = max_abs.max(f64::from(x.abs()));
            let r = half::f16::from_f32(*x).to_f32();
            max_err = max_err.max(f64::from((r - x).abs()));
        }
        tensors.push((n, shape, v));
    }
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    let dst = out.join("adapter_model.safetensors");
    write_safetensors_as(&dst, &tensors, !f32)?;
    crate::train::write_json(
        &out.join("adapter_config.json"),
        &adapter_config(&state.lora, &state.model),
    )?;
    let bytes = std::fs::metadata(&dst)
        .map_err(|e| TrainError::io(&dst, e))?
        .len();
    Ok(AdapterReport {
        dir: out.to_path_buf(),
        tensors: tensors.len(),
        bytes,
        step: state.step,
        f16_rel_error: if f32 {
            0.0
        } else {
            max_err / max_abs.max(1e-30)
        },
    })
}

/// `model` (the base, dense) with a checkpoint's weights: its adapters attached as the run
/// attached them when it trained with LoRA, then every parameter read from `dir/model.mpk`.
fn checkpoint_weights<B: burn::tensor::backend::Backend>(
    mut model: embodied_r_reasoner::Llama<B>,
    dir: &Path,
    state: &crate::train::TrainState,
    device: &B::Device,
) -> Result<embodied_r_reasoner::Llama<B>> {
    use burn::module::Module;
    use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
    if state.lora.enabled {
        model = crate::lora::attach(model, &state.lora, state.seed, device)?.0;
    }
    let rec = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    model
        .load_file(dir.join("model"), &rec, device)
        .map_err(|e| TrainError::Checkpoint {
            path: dir.to_path_buf(),
            what: format!("model.mpk: {e}"),
        })
}

/// What [`export_hf`] wrote.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ExportReport {
    /// The folder.
    pub dir: std::path::PathBuf,
    /// Tensors written.
    pub tensors: usize,
    /// Parameters written.
    pub parameters: usize,
    /// Training steps of the checkpoint.
    pub step: u64,
    /// Whether LoRA adapters were merged.
    pub merged_lora: bool,
}

/// Writes a checkpoint as a Hugging Face folder that transformers loads: `config.json`,
/// `generation_config.json`, `tokenizer.json`, `tokenizer_config.json` (with the chat
/// template) and `model.safetensors` (f32, LoRA merged into the base weights).
///
/// `base` overrides the base model path recorded in the checkpoint (e.g. after moving files).
pub fn export_hf<B: burn::tensor::backend::Backend>(
    checkpoint: &Path,
    out: &Path,
    base: Option<&Path>,
    device: &B::Device,
) -> Result<ExportReport> {
    let state = crate::train::TrainState::read(checkpoint)?;
    let base = base.unwrap_or(&state.model);
    let lm = crate::train::load_dense::<B>(base, device)?;
    let model = checkpoint_weights(lm.model().clone(), checkpoint, &state, device)?;
    let mut merged = model.merge_lora()?;
    let tensors = merged.hf_state_dict()?;
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    write_safetensors(&out.join("model.safetensors"), &tensors)?;
    let cfg = lm.config().to_hf_json()?;
    crate::train::write_json(&out.join("config.json"), &cfg)?;
    let gen_cfg = serde_json::json!({
        "bos_token_id": lm.config().bos_token_id,
        "eos_token_id": lm.config().eos_token_ids,
    });
    crate::train::write_json(&out.join("generation_config.json"), &gen_cfg)?;
    lm.tokenizer().save(&out.join("tokenizer.json"))?;
    let tok = lm.tokenizer();
    let name = |id: Option<u32>| id.and_then(|i| tok.token_str(i));
    let mut tc = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": name(tok.bos()),
        "eos_token": name(tok.eos().first().copied()),
        "add_bos_token": tok.adds_bos(),
        "model_max_length": lm.config().max_position_embeddings,
    });
    if let (Some(t), Some(o)) = (lm.chat_template(), tc.as_object_mut()) {
        o.insert("chat_template".into(), serde_json::json!(t.source()));
    }
    crate::train::write_json(&out.join("tokenizer_config.json"), &tc)?;
    Ok(ExportReport {
        dir: out.to_path_buf(),
        tensors: tensors.len(),
        parameters: tensors.iter().map(|(_, _, v)| v.len()).sum(),
        step: state.step,
        merged_lora: state.lora.enabled,
    })
}

/// What a GGUF export merges: a training checkpoint or a PEFT adapter folder.
#[derive(Debug, Clone, PartialEq)]
pub enum Trained {
    /// `OUT/checkpoint-N` (LoRA or full fine-tuning).
    Checkpoint(std::path::PathBuf),
    /// A PEFT adapter folder (`adapter_config.json` + `adapter_model.safetensors`), e.g. the
    /// shipped `embodied-r-smollm2` or one `train adapter` wrote.
    Adapter(std::path::PathBuf),
}

/// Merges a checkpoint's or an adapter's weights into its base and writes them as a GGUF
/// shaped like the base (which must be a GGUF: its metadata, tokenizer and tensor layout are
/// kept), the changed matrices encoded as `quant` or as the base stored them. What llama.cpp,
/// Ollama and our own runtime load at full speed.
pub fn export_gguf<B: burn::tensor::backend::Backend>(
    trained: &Trained,
    base: Option<&Path>,
    out: &Path,
    quant: Option<embodied_r_reasoner::quant::GgmlType>,
    device: &B::Device,
) -> Result<embodied_r_reasoner::gguf_export::GgufExport> {
    let base: std::path::PathBuf = match (trained, base) {
        (_, Some(b)) => b.to_path_buf(),
        (Trained::Checkpoint(dir), None) => crate::train::TrainState::read(dir)?.model,
        (Trained::Adapter(dir), None) => {
            return Err(TrainError::Config(format!(
                "{}: an adapter folder does not say which GGUF it was trained on; name it with \
                 --base",
                dir.display()
            )));
        }
    };
    if base.extension().is_none_or(|e| e != "gguf") {
        return Err(TrainError::Config(format!(
            "{}: a GGUF export needs a GGUF base (its tokenizer and layout are copied); export \
             a Hugging Face base with --hf",
            base.display()
        )));
    }
    let lm = crate::train::load_dense::<B>(&base, device)?;
    let mut model = lm.model().clone();
    match trained {
        Trained::Checkpoint(dir) => {
            let state = crate::train::TrainState::read(dir)?;
            model = checkpoint_weights(model, dir, &state, device)?;
        }
        Trained::Adapter(dir) => {
            embodied_r_reasoner::adapter::attach_adapter(&mut model, dir, device).map_err(|e| {
                TrainError::Checkpoint {
                    path: dir.clone(),
                    what: e.to_string(),
                }
            })?;
        }
    }
    model = model.merge_lora()?;
    let weights = model.hf_state_dict()?;
    Ok(embodied_r_reasoner::gguf_export::export_gguf(
        &base, &weights, quant, out,
    )?)
}
