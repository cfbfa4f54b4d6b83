//! Broken model files through the real binary: `embodied-r chat` and `embodied-r run` given a
//! truncated GGUF, a file with the wrong magic, a checkpoint whose tensor has the wrong shape,
//! and a config that disagrees with its weights. Each is a clear error naming the file or the
//! tensor and what was expected, with a non-zero exit — never a panic, never a `ready` line.

#![allow(clippy::print_stderr, clippy::unwrap_used)]

use embodied_r_tests::{free_port, model, run, sim_config, workspace};
use std::path::{Path, PathBuf};

fn tiny_qwen2() -> PathBuf {
    workspace().join("reasoner/tests/fixtures/tiny-qwen2")
}

/// A copy of the tiny Qwen2 checkpoint with its `config.json` edited.
fn qwen_with_config(dir: &Path, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let to = dir.join("qwen");
    std::fs::create_dir_all(&to).unwrap();
    for e in std::fs::read_dir(tiny_qwen2()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    let p = to.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&p, v.to_string()).unwrap();
    to
}

/// `chat` on `model` fails cleanly with every `needles` in its error.
fn chat_refuses(model: &Path, needles: &[&str]) {
    let (code, out, err) = run(
        &[
            "chat",
            "--model",
            model.to_str().unwrap(),
            "--max-tokens",
            "4",
            "Hello",
        ],
        &[],
    );
    eprintln!("chat {}: exit {code}: {}", model.display(), err.trim());
    assert!(code != 0 && code != 101, "exit {code}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.trim().is_empty(), "nothing generated: {out}");
    for n in needles {
        assert!(err.contains(n), "{n:?} missing from: {err}");
    }
}

#[test]
fn broken_model_files_are_named_errors_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::read(model()).unwrap();

    // Truncated: the header survives, the tensor data does not.
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &full[..full.len() * 2 / 5]).unwrap();
    chat_refuses(&cut, &["cut.gguf"]);

    // Cut inside the header.
    let stub = dir.path().join("stub.gguf");
    std::fs::write(&stub, &full[..100]).unwrap();
    chat_refuses(&stub, &["stub.gguf"]);

    // Wrong magic.
    let mut bytes = full[..1 << 20].to_vec();
    bytes[..4].copy_from_slice(b"GGUX");
    let magic = dir.path().join("magic.gguf");
    std::fs::write(&magic, &bytes).unwrap();
    chat_refuses(
        &magic,
        &["magic.gguf", "starts with \"GGUX\"", "expected \"GGUF\""],
    );

    // A tensor whose shape is not the one the config implies.
    let shape = qwen_with_config(dir.path(), |v| v["intermediate_size"] = 100.into());
    chat_refuses(
        &shape,
        &[
            "model.layers.0.mlp.gate_proj.weight",
            "[100, 64]",
            "[128, 64]",
        ],
    );

    // A config that asks for more layers than the weights hold.
    std::fs::remove_dir_all(&shape).unwrap();
    let layers = qwen_with_config(dir.path(), |v| v["num_hidden_layers"] = 3.into());
    chat_refuses(&layers, &["model.layers.2"]);
}

#[test]
fn the_runtime_refuses_to_start_on_a_broken_model() {
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::read(model()).unwrap();
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &full[..full.len() / 2]).unwrap();
    let cfg = sim_config(dir.path(), free_port(), "");
    let model_set = format!("reasoner.model={:?}", cut.display().to_string());
    let (code, out, err) = run(
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--set",
            &model_set,
        ],
        &[],
    );
    eprintln!("run: exit {code}: {}", err.trim());
    assert!(code != 0 && code != 101, "exit {code}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!out.contains("ready "), "it must not claim to serve: {out}");
    assert!(err.contains("cut.gguf"), "{err}");
}
