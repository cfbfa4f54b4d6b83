//! Every way a checkpoint can be wrong gives an error that names the file or tensor and what
//! was expected, never a panic.
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use std::path::{Path, PathBuf};

use embodied_r_reasoner::backend::Cpu;
use embodied_r_reasoner::{Error, LanguageModel, LoadOptions};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn load(path: &Path) -> Result<LanguageModel<Cpu>, Error> {
    LanguageModel::<Cpu>::load(path, &LoadOptions::default())
}

/// A copy of the tiny Qwen2 folder with `config.json` edited by `edit`.
fn qwen_with_config(edit: impl Fn(&mut serde_json::Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("tiny-qwen2"), dir.path());
    let p = dir.path().join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&p, v.to_string()).unwrap();
    dir
}

#[test]
fn missing_tensor_is_named() {
    let d = qwen_with_config(|v| v["num_hidden_layers"] = 3.into());
    match load(d.path()) {
        Err(Error::MissingTensor { name, .. }) => {
            assert_eq!(name, "model.layers.2.input_layernorm.weight")
        }
        other => panic!("expected MissingTensor, got {other:?}"),
    }
}

#[test]
fn unexpected_tensors_are_named() {
    let d = qwen_with_config(|v| v["num_hidden_layers"] = 1.into());
    let e = load(d.path()).unwrap_err();
    assert!(matches!(e, Error::UnexpectedTensors { .. }), "{e:?}");
    assert!(e.to_string().contains("model.layers.1."), "{e}");
}

#[test]
fn shape_mismatch_names_both_shapes() {
    let d = qwen_with_config(|v| v["intermediate_size"] = 100.into());
    let e = load(d.path()).unwrap_err();
    match &e {
        Error::ShapeMismatch {
            name,
            expected,
            found,
        } => {
            assert_eq!(name, "model.layers.0.mlp.gate_proj.weight");
            assert_eq!(expected, &vec![100, 64]);
            assert_eq!(found, &vec![128, 64]);
        }
        other => panic!("expected ShapeMismatch, got {other:?}"),
    }
    assert!(e.to_string().contains("[100, 64]") && e.to_string().contains("[128, 64]"));
}

#[test]
fn bad_config_value_names_the_key() {
    let d = qwen_with_config(|v| v["rope_parameters"]["rope_type"] = "longrope".into());
    let e = load(d.path()).unwrap_err().to_string();
    assert!(e.contains("rope_type") && e.contains("longrope"), "{e}");
}

#[test]
fn missing_files_are_named() {
    let e = load(&fixtures().join("does-not-exist.gguf"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("does-not-exist.gguf"), "{e}");

    let d = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("tiny-llama"), d.path());
    std::fs::remove_file(d.path().join("model-00003-of-00014.safetensors")).unwrap();
    let e = load(d.path()).unwrap_err().to_string();
    assert!(e.contains("model-00003-of-00014.safetensors"), "{e}");

    let d = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("tiny-qwen2"), d.path());
    std::fs::remove_file(d.path().join("tokenizer.json")).unwrap();
    let e = load(d.path()).unwrap_err().to_string();
    assert!(e.contains("tokenizer.json"), "{e}");
}

#[test]
fn truncated_files_are_errors() {
    let d = tempfile::tempdir().unwrap();
    let full = std::fs::read(fixtures().join("tiny-qwen2-kquants.gguf")).unwrap();
    for frac in [0.0, 0.001, 0.05, 0.5, 0.999] {
        let p = d.path().join("cut.gguf");
        std::fs::write(&p, &full[..(full.len() as f64 * frac) as usize]).unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("cut.gguf"), "{e}");
    }
    let st = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("tiny-qwen2"), st.path());
    let p = st.path().join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
    let e = load(st.path()).unwrap_err().to_string();
    assert!(e.contains("model.safetensors"), "{e}");
}

#[test]
fn unknown_tensor_type_is_named() {
    // Patch the type id of `blk.0.attn_q.weight` to 13 (Q5_K, which we do not read).
    let mut bytes = std::fs::read(fixtures().join("tiny-qwen2-kquants.gguf")).unwrap();
    let name = b"blk.0.attn_q.weight";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len();
    let n_dims = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let ty_at = at + 4 + 8 * n_dims;
    bytes[ty_at..ty_at + 4].copy_from_slice(&13u32.to_le_bytes());
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("q5k.gguf");
    std::fs::write(&p, &bytes).unwrap();
    match load(&p) {
        Err(Error::UnsupportedTensorType {
            tensor, type_name, ..
        }) => {
            assert_eq!(tensor, "blk.0.attn_q.weight");
            assert_eq!(type_name, "Q5_K");
        }
        other => panic!("expected UnsupportedTensorType, got {other:?}"),
    }
}
