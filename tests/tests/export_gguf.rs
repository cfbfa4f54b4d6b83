//! `embodied-r train export --gguf`: the shipped adapter merged into the default SmolLM2 GGUF
//! and written as a GGUF that our own `chat` then loads with no adapter. Written in f32, the
//! merged file must give the same greedy text as the base with the adapter applied at load
//! (the merge, the Hugging Face ↔ llama.cpp row order of q and k, and the writer are all
//! exercised); written in q8_0 it must load on the fast path and answer. Bad requests are
//! named errors.

#![allow(clippy::unwrap_used)]

use embodied_r_tests::{model, run, workspace};

const PROMPTS: [&str; 2] = [
    "Question: Where is the red door? Choices: A. left B. right. Think step by step.",
    "The tower was ahead, then I turned left. Where is the tower now?",
];

fn chat(args: &[&str], prompt: &str) -> String {
    let mut all = vec!["chat", "--max-tokens", "32", "--threads", "1"];
    all.extend_from_slice(args);
    all.push(prompt);
    let (code, out, err) = run(&all, &[]);
    assert_eq!(code, 0, "chat {args:?}: {err}");
    out
}

#[test]
fn an_adapter_merged_into_a_gguf_answers_as_the_adapter_does() {
    let dir = tempfile::tempdir().unwrap();
    let base = model();
    let adapter = workspace().join("launch/models/embodied-r-smollm2");
    let (b, a) = (base.to_str().unwrap(), adapter.to_str().unwrap());
    let export = |quant: &str| {
        let out = dir.path().join(format!("merged-{quant}.gguf"));
        let (code, stdout, err) = run(
            &[
                "train",
                "export",
                "--adapter",
                a,
                "--base",
                b,
                "--gguf",
                out.to_str().unwrap(),
                "--quant",
                quant,
            ],
            &[],
        );
        assert_eq!(code, 0, "{err}");
        let r: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        // 30 layers × 7 adapted projections changed; embeddings and norms kept as they were.
        assert_eq!(r["changed"], 210, "{r}");
        assert_eq!(r["copied"], 62, "{r}");
        out
    };
    let f32 = export("f32");
    for p in PROMPTS {
        let want = chat(&["--model", b, "--adapter", a, "--weights", "dense"], p);
        let got = chat(
            &[
                "--model",
                f32.to_str().unwrap(),
                "--no-adapter",
                "--weights",
                "dense",
            ],
            p,
        );
        assert_eq!(got, want, "prompt {p:?}");
        assert!(!want.trim().is_empty());
    }
    let q8 = export("q8_0");
    let text = chat(
        &["--model", q8.to_str().unwrap(), "--no-adapter"],
        PROMPTS[0],
    );
    assert!(!text.trim().is_empty());

    // An adapter without --base, a Hugging Face base, and an unknown type are named.
    let out = dir.path().join("x.gguf");
    let o = out.to_str().unwrap();
    let (code, _, err) = run(&["train", "export", "--adapter", a, "--gguf", o], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("--base"), "{err}");
    let hf = workspace().join("reasoner/tests/fixtures/tiny-llama");
    let (code, _, err) = run(
        &[
            "train",
            "export",
            "--adapter",
            a,
            "--base",
            hf.to_str().unwrap(),
            "--gguf",
            o,
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("GGUF"), "{err}");
    let (code, _, err) = run(
        &[
            "train",
            "export",
            "--adapter",
            a,
            "--base",
            b,
            "--gguf",
            o,
            "--quant",
            "q5_k",
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("q5_k") && err.contains("q8_0"), "{err}");
    assert!(!out.exists(), "nothing written on a refused export");
}
