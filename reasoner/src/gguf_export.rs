//! A model's weights, given in Hugging Face names and layout (e.g. a LoRA-merged
//! [`crate::Llama::hf_state_dict`]), written as a GGUF file in the layout of a base GGUF: the
//! base's metadata (architecture, tokenizer, chat template) and tensor directory, each tensor
//! taken from the new weights, put back into llama.cpp's q/k row order for Llama, and encoded
//! as the base stored it or as a chosen type. Tensors whose values did not change keep the
//! base's bytes exactly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{Architecture, LlamaConfig};
use crate::error::{Error, Result};
use crate::gguf::{GgufFile, MetaValue};
use crate::gguf_write::{TensorOut, write_gguf};
use crate::model::NamedTensor;
use crate::quant::{GgmlType, dequantize_into, quantize};
use crate::weights::{gguf_llama_qk_order, hf_name_of_gguf};

/// What [`export_gguf`] wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GgufExport {
    /// The file.
    pub path: PathBuf,
    /// Tensors written.
    pub tensors: usize,
    /// Of those, tensors whose values changed (re-encoded from the new weights).
    pub changed: usize,
    /// Tensors copied byte for byte from the base (values unchanged).
    pub copied: usize,
    /// The type the changed matrices were written in (`null`: each kept its base type).
    pub quant: Option<String>,
    /// Bytes of the file.
    pub bytes: u64,
}

/// llama.cpp's `general.file_type` (`LLAMA_FTYPE_*`) for a file whose matrices are `ty`.
fn file_type(ty: GgmlType) -> Option<u32> {
    Some(match ty {
        GgmlType::F32 => 0,
        GgmlType::F16 => 1,
        GgmlType::Q4_0 => 2,
        GgmlType::Q4_1 => 3,
        GgmlType::Q8_0 => 7,
        GgmlType::BF16 => 32,
        GgmlType::Q4_K | GgmlType::Q6_K => return None,
    })
}

/// Hugging Face rows → llama.cpp's order for a Llama q or k weight (or bias, `cols` = 1): GGUF
/// row `order[r]` holds Hugging Face row `r` (the order the loader undoes).
fn to_gguf_rows(hf: &[f32], rows: usize, cols: usize, heads: usize) -> Vec<f32> {
    let mut out = vec![0f32; hf.len()];
    for (r, g) in gguf_llama_qk_order(rows, heads).into_iter().enumerate() {
        out[g * cols..(g + 1) * cols].copy_from_slice(&hf[r * cols..(r + 1) * cols]);
    }
    out
}

/// Writes `weights` (Hugging Face names and layout) as a GGUF at `out` shaped like `base`.
/// Tensors whose values did not change keep the base's bytes. Matrices whose values changed
/// are encoded as `quant`, or as the base stored them (a K-quant
/// base tensor becomes Q8_0: we do not write K-quants); vectors (norms, biases) stay F32 unless
/// the base stored them otherwise. Every base tensor must have its counterpart in `weights`,
/// with the same number of values.
pub fn export_gguf(
    base: &Path,
    weights: &[NamedTensor],
    quant: Option<GgmlType>,
    out: &Path,
) -> Result<GgufExport> {
    let g = GgufFile::open(base)?;
    let cfg = LlamaConfig::from_gguf(&g)?;
    let err = |what: String| Error::Gguf {
        path: out.to_path_buf(),
        what,
    };
    let by_name: HashMap<&str, &NamedTensor> = weights.iter().map(|t| (t.0.as_str(), t)).collect();
    let mut tensors = Vec::with_capacity(g.tensors().len());
    let (mut changed, mut copied) = (0, 0);
    for info in g.tensors() {
        let ty = info.ty()?;
        let raw = g.tensor_bytes(info)?;
        let mapped = hf_name_of_gguf(&info.name);
        let hf = mapped.as_ref().map(|(n, _)| n.clone());
        let as_stored = || TensorOut {
            name: info.name.clone(),
            dims: info.dims.clone(),
            ty,
            data: raw.to_vec(),
        };
        // Tied embeddings: the base has no output.weight, the state dict may still hold one.
        let Some(src) = hf.as_deref().and_then(|n| by_name.get(n)) else {
            if hf.is_some() {
                return Err(err(format!(
                    "the new weights have no `{}` for the base's `{}`",
                    hf.unwrap_or_default(),
                    info.name
                )));
            }
            // A tensor the model does not use (rope_freqs): the base's bytes.
            tensors.push(as_stored());
            copied += 1;
            continue;
        };
        let n = info.len();
        if src.2.len() != n {
            return Err(err(format!(
                "`{}` has {} values, the base's `{}` {n}",
                src.0,
                src.2.len(),
                info.name
            )));
        }
        let permute =
            cfg.architecture == Architecture::Llama && mapped.as_ref().is_some_and(|(_, qk)| *qk);
        let values = if permute {
            let heads = if info.name.contains("attn_q") {
                cfg.num_attention_heads
            } else {
                cfg.num_key_value_heads
            };
            let rows = info.dims.last().copied().unwrap_or(1);
            let cols = if info.dims.len() > 1 { info.dims[0] } else { 1 };
            if info.dims.len() == 1 {
                to_gguf_rows(&src.2, n, 1, heads)
            } else {
                to_gguf_rows(&src.2, rows, cols, heads)
            }
        } else {
            src.2.clone()
        };
        let mut base_values = vec![0f32; n];
        dequantize_into(ty, raw, &mut base_values)?;
        // Unchanged values keep the base's bytes whatever `quant` says: re-encoding them could
        // only lose precision.
        if base_values == values {
            tensors.push(as_stored());
            copied += 1;
            continue;
        }
        let target = if info.dims.len() == 1 {
            ty
        } else {
            match quant {
                Some(q) => q,
                None if matches!(ty, GgmlType::Q4_K | GgmlType::Q6_K) => GgmlType::Q8_0,
                None => ty,
            }
        };
        // A row length that is not whole blocks of the target (rare) stays exact in F16.
        let target = if target.bytes_for(info.dims[0]).is_some() {
            target
        } else {
            GgmlType::F16
        };
        tensors.push(TensorOut {
            name: info.name.clone(),
            dims: info.dims.clone(),
            ty: target,
            data: quantize(target, &values)?,
        });
        changed += 1;
    }
    let mut meta: Vec<(String, MetaValue)> = g
        .metadata()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    meta.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(ft) = quant.and_then(file_type) {
        match meta.iter_mut().find(|(k, _)| k == "general.file_type") {
            Some((_, v)) => *v = MetaValue::U32(ft),
            None => meta.push(("general.file_type".into(), MetaValue::U32(ft))),
        }
    }
    write_gguf(out, &meta, &tensors)?;
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    Ok(GgufExport {
        path: out.to_path_buf(),
        tensors: tensors.len(),
        changed,
        copied,
        quant: quant.map(|q| q.name().to_string()),
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_hugging_face() {
        let name = |n: &str| hf_name_of_gguf(n);
        assert_eq!(
            name("blk.12.attn_k.weight"),
            Some(("model.layers.12.self_attn.k_proj.weight".into(), true))
        );
        assert_eq!(
            name("blk.0.ffn_down.weight"),
            Some(("model.layers.0.mlp.down_proj.weight".into(), false))
        );
        assert_eq!(
            name("token_embd.weight"),
            Some(("model.embed_tokens.weight".into(), false))
        );
        assert_eq!(name("rope_freqs.weight"), None);
        assert_eq!(name("blk.x.attn_k.weight"), None);
    }

    #[test]
    fn rows_go_back_to_llama_cpp_order() {
        // 2 heads of 4 rows, 3 columns: HF row r holds r in every column.
        let (rows, cols, heads) = (8, 3, 2);
        let hf: Vec<f32> = (0..rows * cols).map(|i| (i / cols) as f32).collect();
        let g = to_gguf_rows(&hf, rows, cols, heads);
        // llama.cpp interleaves each head's halves: GGUF rows (0,1,2,3) hold HF (0,2,1,3).
        let firsts: Vec<f32> = g.chunks(cols).map(|r| r[0]).collect();
        assert_eq!(firsts, [0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]);
        assert!(g.chunks(cols).all(|r| r.iter().all(|v| *v == r[0])));
    }
}
