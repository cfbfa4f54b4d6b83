//! `embodied-r train export --gguf`: the shipped adapter merged into the default SmolLM2 GGUF
//! and written as a GGUF that our own `chat` then loads with no adapter. Written in f32, the
//! merged file must give the same greedy text as the base with the adapter applied at load
//! (the merge, the Hugging Face ↔ llama.cpp row order of q and k, and the writer are all
//! exercised); written in q8_0 it must load on the fast path and answer. Bad requests are
//! named errors. And llama.cpp runs the q8_0 file as we do: `tools/fixtures_gguf_export.py`
//! recorded llama.cpp's greedy tokens on it (tests/fixtures/gguf_export.json).

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

/// The llama.cpp fixture's export, written again (the same command), and our fast path
/// on llama.cpp's prompt ids: the same greedy tokens up to the first step where llama.cpp's own
/// top two logits were within `NEAR_TIE` (there, 8-bit rounding on either side may pick either).
#[test]
fn llama_cpp_answers_the_exported_file_as_we_do() {
    use embodied_r_reasoner::backend::Cpu;
    use embodied_r_reasoner::{GenerationConfig, LanguageModel, LoadOptions};
    use sha2::Digest;
    const NEAR_TIE: f64 = 1.0;

    let fix: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("tests/fixtures/gguf_export.json")).unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("merged-q8_0.gguf");
    let (b, a) = (
        model(),
        workspace().join(fix["export"]["adapter"].as_str().unwrap()),
    );
    let (code, _, err) = run(
        &[
            "train",
            "export",
            "--adapter",
            a.to_str().unwrap(),
            "--base",
            b.to_str().unwrap(),
            "--gguf",
            out.to_str().unwrap(),
            "--quant",
            "q8_0",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    // The merge runs on whatever matmul kernels this CPU gets, so its last bits (and a rare
    // q8_0 rounding) may differ from the machine that wrote the fixture: the hash is reported,
    // the comparison below is what must hold.
    let sha = hex::encode(sha2::Sha256::digest(std::fs::read(&out).unwrap()));
    if sha != fix["export"]["sha256"].as_str().unwrap() {
        eprintln!("this export's bytes differ from the fixture's (another CPU's rounding?)");
    }
    let lm = LanguageModel::<Cpu>::load(&out, &LoadOptions::fast_cpu()).unwrap();
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    let (mut compared, mut agreed, mut total) = (0, 0, 0);
    for p in fix["prompts"].as_array().unwrap() {
        let prompt = ids(&p["ids"]);
        let want = ids(&p["greedy"]);
        let margins: Vec<f64> = p["margins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_f64().unwrap())
            .collect();
        let firm = margins.iter().take_while(|m| **m >= NEAR_TIE).count();
        let mut cfg = GenerationConfig::greedy(want.len());
        cfg.stop_on_eos = false;
        let got = lm
            .generate_ids(&prompt, &cfg, |_| std::ops::ControlFlow::Continue(()))
            .unwrap()
            .tokens;
        assert_eq!(
            got[..firm],
            want[..firm],
            "{:?}: ours vs llama.cpp over the {firm} steps before its first near tie",
            p["greedy_text"]
        );
        compared += firm;
        agreed += got.iter().zip(&want).take_while(|(a, b)| a == b).count();
        total += want.len();
    }
    eprintln!(
        "compared {compared} greedy tokens with llama.cpp (before its near ties); the same \
         prefix over all steps: {agreed} of {total}"
    );
    assert!(compared >= 8, "only {compared} tokens were far from a tie");
}
