//! Writing tensors out of the trainer: safetensors files (adapters now; the Hugging Face folder
//! export builds on it).

use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use crate::error::{Result, TrainError};

/// Writes f32 tensors `(name, shape, values)` to a safetensors file.
pub fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let mut views = Vec::with_capacity(tensors.len());
    for ((name, shape, _), b) in tensors.iter().zip(&bytes) {
        let view = TensorView::new(Dtype::F32, shape.clone(), b)
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
