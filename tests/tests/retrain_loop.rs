//! The loop from the robot back to the robot, end to end with the real binary: a runtime on the
//! simulator logs episodes without their truth (`demo --withhold-truth`), an operator labels one
//! of them on the command line, `train` runs a GRPO step on that log directory with gold labels
//! where there are some and majority votes elsewhere, `train export --gguf` writes the merged
//! model, and a second runtime started on that file answers over zenoh and says which model it
//! ran. Tiny step counts: the figures that matter are measured in docs/training.md.

#![allow(clippy::unwrap_used)]

use embodied_r_tests::{
    Proc, ask_when_ready, free_port, model, question, run, sim_config, zenoh_peer,
};
use serde_json::Value;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_labelled_trained_exported_and_answering_again() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("episodes");
    let logs = log.to_str().unwrap();

    // 1. The robot answers three questions; nobody tells it the truth.
    let (code, out, err) = run(
        &[
            "demo",
            "--fast",
            "--questions",
            "3",
            "--max-tokens",
            "8",
            "--threads",
            "1",
            "--json",
            "--withhold-truth",
            "--log-dir",
            logs,
        ],
        &[],
    );
    assert_eq!(code, 0, "demo: {err}");
    let first: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let (id, truth) = (
        first["reply"]["question_id"].as_str().unwrap().to_string(),
        first["truth"].as_str().unwrap().to_string(),
    );

    // 2. An operator labels one of them.
    let (code, _, err) = run(
        &["episodes", "label", &id, "--answer", &truth, "--dir", logs],
        &[],
    );
    assert_eq!(code, 0, "label: {err}");

    // 3. One GRPO step on the log: the labelled episode by its gold answer, the others by vote.
    let out = dir.path().join("run");
    let cfg = dir.path().join("train.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"model = "{model}"
data = ["{logs}"]
out = "{out}"
steps = 1
seed = 1
[grpo]
group_size = 2
prompts_per_step = 3
micro_batch = 2
max_completion_tokens = 8
dynamic_sampling = false
[lora]
rank = 4
alpha = 8.0
targets = ["q_proj", "v_proj"]
[optim]
lr = 1e-3
warmup_ratio = 0.0
[reward]
labels = "gold+majority"
majority_min_share = 0.5
weights = {{ accuracy = 0.9, format = 0.1, consistency = 0.0 }}
"#,
            model = model().display(),
            out = out.display(),
        ),
    )
    .unwrap();
    let (code, _, err) = run(
        &["train", "--config", cfg.to_str().unwrap(), "--threads", "2"],
        &[],
    );
    assert_eq!(code, 0, "train: {err}");
    let m: Value = serde_json::from_str(
        std::fs::read_to_string(out.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(m["groups_gold"], 1, "{m}");
    assert_eq!(
        m["groups_majority"].as_u64().unwrap() + m["groups_unlabelled"].as_u64().unwrap(),
        2,
        "{m}"
    );

    // 4. The checkpoint merged and written as one GGUF.
    let gguf = dir.path().join("retrained.gguf");
    let (code, report, err) = run(
        &[
            "train",
            "export",
            "--checkpoint",
            out.join("checkpoint-1").to_str().unwrap(),
            "--gguf",
            gguf.to_str().unwrap(),
            "--quant",
            "q8_0",
        ],
        &[],
    );
    assert_eq!(code, 0, "export: {err}");
    let report: Value = serde_json::from_str(report.trim()).unwrap();
    // 30 layers × (q, v) adapted.
    assert_eq!(report["changed"], 60, "{report}");

    // 5. A runtime on the new file answers over zenoh and names the model it ran.
    let port = free_port();
    let rt_dir = dir.path().join("robot");
    std::fs::create_dir_all(&rt_dir).unwrap();
    let rt_cfg = sim_config(&rt_dir, port, "");
    let mut rt = Proc::spawn(
        &["run", "--config", rt_cfg.to_str().unwrap()],
        &[
            ("EMBODIED_R_REASONER__MODEL", gguf.to_str().unwrap()),
            ("EMBODIED_R_REASONER__ADAPTER", ""),
        ],
    );
    rt.wait_line("ready ", Duration::from_secs(180));
    let s = zenoh_peer(port).await;
    let v = ask_when_ready(
        &s,
        "robots/sim/embodied-r/ask",
        &question("What is ahead of me?", 60_000),
    )
    .await;
    assert!(v.get("error").is_none(), "{v}");
    assert!(
        v["model"].as_str().unwrap().contains("retrained.gguf"),
        "the answer names its model: {v}"
    );
    rt.terminate();
    assert_eq!(
        rt.wait_exit(Duration::from_secs(30)),
        Some(0),
        "{}",
        rt.stderr()
    );
}
