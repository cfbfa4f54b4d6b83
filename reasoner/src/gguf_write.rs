//! A GGUF (v3) writer: metadata, the tensor directory and aligned tensor data, written to a
//! temporary file beside the target and renamed into place, so a failed export never leaves a
//! half-written model where a runtime would load it. The reader ([`crate::gguf`]) and
//! llama.cpp read what it writes; it is the other half of `embodied-r train export --gguf`.

use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::gguf::MetaValue;
use crate::quant::GgmlType;

/// The alignment of tensor data when the metadata does not set `general.alignment`.
pub const DEFAULT_ALIGNMENT: usize = 32;

/// One tensor to write.
#[derive(Debug, Clone)]
pub struct TensorOut {
    /// Name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions in ggml order (`dims[0]` contiguous).
    pub dims: Vec<usize>,
    /// Storage type.
    pub ty: GgmlType,
    /// The encoded data ([`crate::quant::quantize`]).
    pub data: Vec<u8>,
}

fn type_id(ty: GgmlType) -> u32 {
    match ty {
        GgmlType::F32 => 0,
        GgmlType::F16 => 1,
        GgmlType::Q4_0 => 2,
        GgmlType::Q4_1 => 3,
        GgmlType::Q8_0 => 8,
        GgmlType::Q4_K => 12,
        GgmlType::Q6_K => 14,
        GgmlType::BF16 => 30,
    }
}

fn value_type(v: &MetaValue) -> u32 {
    match v {
        MetaValue::U8(_) => 0,
        MetaValue::I8(_) => 1,
        MetaValue::U16(_) => 2,
        MetaValue::I16(_) => 3,
        MetaValue::U32(_) => 4,
        MetaValue::I32(_) => 5,
        MetaValue::F32(_) => 6,
        MetaValue::Bool(_) => 7,
        MetaValue::String(_) => 8,
        MetaValue::Array(_) => 9,
        MetaValue::U64(_) => 10,
        MetaValue::I64(_) => 11,
        MetaValue::F64(_) => 12,
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, key: &str, v: &MetaValue) -> Result<()> {
    match v {
        MetaValue::U8(x) => out.push(*x),
        MetaValue::I8(x) => out.push(*x as u8),
        MetaValue::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::Bool(x) => out.push(u8::from(*x)),
        MetaValue::String(s) => put_str(out, s),
        MetaValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::Array(items) => {
            // An empty array has no element to take a type from: u32, as gguf-py writes.
            let elem = items.first().map_or(4, value_type);
            if let Some(other) = items.iter().find(|i| value_type(i) != elem) {
                return Err(Error::Gguf {
                    path: "<writer>".into(),
                    what: format!(
                        "metadata `{key}`: an array mixes element types ({} and {})",
                        value_type(&items[0]),
                        value_type(other)
                    ),
                });
            }
            out.extend_from_slice(&elem.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for i in items {
                put_value(out, key, i)?;
            }
        }
    }
    Ok(())
}

/// Writes a GGUF v3 file at `path`: `metadata` in the order given, then `tensors` (their data
/// aligned to `general.alignment`, else 32 bytes). Checks that each tensor's data has the size
/// its dimensions and type require.
pub fn write_gguf(
    path: &Path,
    metadata: &[(String, MetaValue)],
    tensors: &[TensorOut],
) -> Result<()> {
    let err = |what: String| Error::Gguf {
        path: path.to_path_buf(),
        what,
    };
    let align = metadata
        .iter()
        .find(|(k, _)| k == "general.alignment")
        .and_then(|(_, v)| v.as_u64())
        .map_or(DEFAULT_ALIGNMENT, |a| a as usize);
    if align == 0 || !align.is_power_of_two() {
        return Err(err(format!(
            "general.alignment = {align}: expected a power of two"
        )));
    }
    let mut head = Vec::new();
    head.extend_from_slice(b"GGUF");
    head.extend_from_slice(&3u32.to_le_bytes());
    head.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    head.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        put_str(&mut head, k);
        head.extend_from_slice(&value_type(v).to_le_bytes());
        put_value(&mut head, k, v)?;
    }
    let mut offset = 0usize;
    let mut offsets = Vec::with_capacity(tensors.len());
    for t in tensors {
        let n: usize = t.dims.iter().product();
        let want = t.ty.bytes_for(n).ok_or_else(|| {
            err(format!(
                "tensor `{}`: {n} values are not whole {} blocks",
                t.name,
                t.ty.name()
            ))
        })?;
        if t.data.len() != want {
            return Err(err(format!(
                "tensor `{}`: {} bytes of data, its shape {:?} in {} needs {want}",
                t.name,
                t.data.len(),
                t.dims,
                t.ty.name()
            )));
        }
        put_str(&mut head, &t.name);
        head.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            head.extend_from_slice(&(*d as u64).to_le_bytes());
        }
        head.extend_from_slice(&type_id(t.ty).to_le_bytes());
        head.extend_from_slice(&(offset as u64).to_le_bytes());
        offsets.push(offset);
        offset = (offset + want).next_multiple_of(align);
    }
    head.resize(head.len().next_multiple_of(align), 0);

    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| {
        err(format!(
            "creating a temporary file in {}: {e}",
            dir.display()
        ))
    })?;
    {
        let mut w = BufWriter::new(tmp.as_file());
        let io = |e: std::io::Error| err(format!("writing: {e}"));
        w.write_all(&head).map_err(io)?;
        let mut at = 0usize;
        for (t, &o) in tensors.iter().zip(&offsets) {
            w.write_all(&vec![0u8; o - at]).map_err(io)?;
            w.write_all(&t.data).map_err(io)?;
            at = o + t.data.len();
        }
        w.write_all(&vec![0u8; at.next_multiple_of(align) - at])
            .map_err(io)?;
        w.flush().map_err(io)?;
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| err(format!("syncing: {e}")))?;
    // A model file is for others to read (the temporary file was created private).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(|e| err(format!("setting permissions: {e}")))?;
    }
    tmp.persist(path)
        .map_err(|e| err(format!("moving the written file into place: {}", e.error)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgufFile;
    use crate::quant::{dequantize_into, quantize};

    #[test]
    fn what_it_writes_reads_back() {
        let d = tempfile::tempdir().expect("tmp");
        let path = d.path().join("m.gguf");
        let meta = vec![
            (
                "general.architecture".to_string(),
                MetaValue::String("llama".into()),
            ),
            ("llama.block_count".to_string(), MetaValue::U32(2)),
            ("llama.rope.freq_base".to_string(), MetaValue::F32(10000.0)),
            ("x.i64".to_string(), MetaValue::I64(-5)),
            ("x.f64".to_string(), MetaValue::F64(0.25)),
            ("x.flag".to_string(), MetaValue::Bool(true)),
            (
                "tokenizer.ggml.tokens".to_string(),
                MetaValue::Array(vec![
                    MetaValue::String("a".into()),
                    MetaValue::String("bc".into()),
                ]),
            ),
            ("x.empty".to_string(), MetaValue::Array(vec![])),
        ];
        let w: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin()).collect();
        let tensors = vec![
            TensorOut {
                name: "a".into(),
                dims: vec![3],
                ty: GgmlType::F32,
                data: quantize(GgmlType::F32, &[1.0, 2.0, 3.0]).expect("q"),
            },
            TensorOut {
                name: "b".into(),
                dims: vec![32, 2],
                ty: GgmlType::Q4_1,
                data: quantize(GgmlType::Q4_1, &w).expect("q"),
            },
            TensorOut {
                name: "c".into(),
                dims: vec![32, 2],
                ty: GgmlType::Q8_0,
                data: quantize(GgmlType::Q8_0, &w).expect("q"),
            },
        ];
        write_gguf(&path, &meta, &tensors).expect("write");
        let f = GgufFile::open(&path).expect("read back");
        assert_eq!(f.version(), 3);
        for (k, v) in &meta {
            assert_eq!(f.get(k), Some(v), "{k}");
        }
        for t in &tensors {
            let info = f.tensor(&t.name).expect("tensor");
            assert_eq!((&info.dims, info.ty().expect("ty")), (&t.dims, t.ty));
            assert_eq!(
                f.tensor_bytes(info).expect("bytes"),
                &t.data[..],
                "{}",
                t.name
            );
            assert_eq!(info.offset % DEFAULT_ALIGNMENT, 0);
        }
        let mut back = vec![0f32; 64];
        dequantize_into(
            GgmlType::Q8_0,
            f.tensor_bytes(f.tensor("c").expect("c")).expect("b"),
            &mut back,
        )
        .expect("dq");
        assert!(w.iter().zip(&back).all(|(a, b)| (a - b).abs() < 0.01));
    }

    #[test]
    fn inconsistent_tensors_are_refused_and_nothing_is_left_behind() {
        let d = tempfile::tempdir().expect("tmp");
        let path = d.path().join("m.gguf");
        let t = TensorOut {
            name: "w".into(),
            dims: vec![32, 2],
            ty: GgmlType::Q8_0,
            data: vec![0; 10],
        };
        let e = write_gguf(&path, &[], &[t]).unwrap_err().to_string();
        assert!(e.contains("`w`") && e.contains("68"), "{e}");
        assert!(!path.exists());
        let mixed = MetaValue::Array(vec![MetaValue::U8(1), MetaValue::String("x".into())]);
        let e = write_gguf(&path, &[("k".into(), mixed)], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`k`") && e.contains("mixes"), "{e}");
        assert_eq!(
            std::fs::read_dir(d.path()).expect("ls").count(),
            0,
            "no temporary left"
        );
    }
}
