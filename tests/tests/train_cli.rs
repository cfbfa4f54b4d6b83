//! `embodied-r train` end to end on the reasoner's tiny random-weight Llama: the metrics
//! contract, checkpoints, exact resume, and configuration errors that name the key.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use embodied_r_tests::{run, workspace};

fn write_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let data = dir.join("rows.json");
    std::fs::write(
        &data,
        r#"[{"Question_id": 1, "question_category": "Landmark Position",
             "question": "Question: Where is the tower?\nChoices:\nA. left\nB. right", "answer": "A"},
            {"Question_id": 2, "question_category": "Counterfactual",
             "question": "Question: Which is closer?\nChoices:\nA. the door\nB. the lamp\nC. the sofa", "answer": "C"},
            {"Question_id": 3, "question_category": "object_counting",
             "question": "Question: How many chairs are there?", "answer": "3"}]"#,
    )
    .unwrap();
    let model = workspace().join("reasoner/tests/fixtures/tiny-llama");
    let cfg = dir.join("train.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"model = "{}"
data = ["{}"]
seed = 3
save_every = 1
[grpo]
group_size = 4
prompts_per_step = 2
max_completion_tokens = 12
[lora]
rank = 4
[reward]
judge = {{ kind = "local" }}
{extra}
"#,
            model.display(),
            data.display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn trains_writes_metrics_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "");
    let c = cfg.to_str().unwrap();
    let full = dir.path().join("full");
    let (code, _, err) = run(
        &[
            "train",
            "--config",
            c,
            "--steps",
            "3",
            "--threads",
            "1",
            "--out",
            full.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(full.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["step"], i as u64 + 1);
        for k in [
            "reward",
            "accuracy",
            "format",
            "consistency",
            "kl",
            "completion_len",
        ] {
            assert!(l[k].is_number(), "{k} missing in {l}");
        }
    }
    for f in [
        "model.mpk",
        "optim.mpk",
        "state.json",
        "adapter_model.safetensors",
    ] {
        assert!(full.join("checkpoint-3").join(f).exists(), "{f}");
    }

    // The checkpoint exports as a Hugging Face folder that our own CLI then chats with.
    let hf = dir.path().join("hf");
    let ck3 = full.join("checkpoint-3");
    let (code, out, err) = run(
        &[
            "train",
            "export",
            "--checkpoint",
            ck3.to_str().unwrap(),
            "--hf",
            hf.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"merged_lora\":true"), "{out}");
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert!(hf.join(f).exists(), "{f}");
    }
    let (code, _, err) = run(
        &[
            "chat",
            "--model",
            hf.to_str().unwrap(),
            "--weights",
            "dense",
            "--max-tokens",
            "4",
            "hello",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(
        &[
            "train",
            "export",
            "--checkpoint",
            dir.path().to_str().unwrap(),
            "--hf",
            hf.to_str().unwrap(),
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("state.json"), "{err}");

    // Two steps, then a resume to three: the third step is the same as in the straight run.
    let part = dir.path().join("part");
    let p = part.to_str().unwrap();
    let (code, _, err) = run(
        &[
            "train",
            "--config",
            c,
            "--steps",
            "2",
            "--threads",
            "1",
            "--out",
            p,
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let ck = part.join("checkpoint-2");
    let (code, _, err) = run(
        &[
            "train",
            "--config",
            c,
            "--steps",
            "3",
            "--threads",
            "1",
            "--out",
            p,
            "--resume",
            ck.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let resumed: Vec<serde_json::Value> = std::fs::read_to_string(part.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(resumed.len(), 3);
    for k in ["reward", "completion_len", "loss", "kl", "grad_norm"] {
        assert_eq!(resumed[2][k], lines[2][k], "{k} differs after resume");
    }
}

/// A runtime-style episode log: `labelled` of the `n` episodes carry a truth.
fn episode_log(dir: &Path, n: usize, labelled: usize) -> std::path::PathBuf {
    let log = dir.join("episodes");
    std::fs::create_dir_all(&log).unwrap();
    let mut lines = String::new();
    for i in 0..n {
        let mut r = embodied_r_reasoner::episode::EpisodeRecord::new(
            format!("ep{i}"),
            "bot",
            "Where is the tower?",
        );
        r.system = "Answer.".into();
        r.user = format!(
            "Frame {i}: a tower.\nQuestion: Where is the tower?\nChoices:\nA. left\nB. right"
        );
        r.choices = vec!["left".into(), "right".into()];
        r.ground_truth = (i < labelled).then(|| "A".to_string());
        lines.push_str(&serde_json::to_string(&r).unwrap());
        lines.push('\n');
    }
    std::fs::write(log.join("episodes-000001.jsonl"), lines).unwrap();
    log
}

#[test]
fn trains_on_episodes_nobody_labelled_by_majority_vote() {
    let dir = tempfile::tempdir().unwrap();
    let log = episode_log(dir.path(), 3, 1);
    let cfg = write_config(
        dir.path(),
        "labels = \"gold+majority\"\nmajority_min_share = 0.25",
    );
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(
            dir.path().join("rows.json").to_str().unwrap(),
            log.to_str().unwrap(),
        )
        .replace(
            "prompts_per_step = 2",
            "prompts_per_step = 3\ndynamic_sampling = false",
        );
    std::fs::write(&cfg, text).unwrap();
    let out = dir.path().join("run");
    let (code, _, err) = run(
        &[
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--steps",
            "1",
            "--threads",
            "1",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let m: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(out.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    // One pass over the shuffled log: the labelled episode by its gold, the two others by a
    // vote or, where the random model's group agrees on nothing, by none.
    assert_eq!(m["groups_gold"], 1, "{m}");
    assert_eq!(
        m["groups_majority"].as_u64().unwrap() + m["groups_unlabelled"].as_u64().unwrap(),
        2,
        "{m}"
    );
    let samples = std::fs::read_to_string(out.join("samples.jsonl")).unwrap();
    for l in samples.lines() {
        let s: serde_json::Value = serde_json::from_str(l).unwrap();
        let kind = s["label"].as_str().unwrap();
        assert!(["gold", "majority", "none"].contains(&kind), "{s}");
        assert_eq!(s["solution"].is_null(), kind == "none", "{s}");
    }

    // Gold only, over a log nobody labelled: a named error that says what to do.
    let none = episode_log(&dir.path().join("none"), 2, 0);
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(log.to_str().unwrap(), none.to_str().unwrap())
        .replace("labels = \"gold+majority\"", "labels = \"gold\"");
    std::fs::write(&cfg, text).unwrap();
    let (code, _, err) = run(&["train", "--config", cfg.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains("no usable examples") && err.contains("majority"),
        "{err}"
    );
}

#[test]
fn bad_training_configs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "extraction = \"loose\"");
    let (code, _, err) = run(&["train", "--config", cfg.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("loose") && err.contains("train.toml"), "{err}");

    let cfg = write_config(dir.path(), "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("kind = \"local\"", "kind = \"none\"");
    std::fs::write(&cfg, text).unwrap();
    let (code, _, err) = run(&["train", "--config", cfg.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains("reward.judge") && err.contains("consistency"),
        "{err}"
    );

    let cfg = write_config(dir.path(), "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("group_size = 4", "group_size = 1");
    std::fs::write(&cfg, text).unwrap();
    let (code, _, err) = run(&["train", "--config", cfg.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("grpo.group_size"), "{err}");
}

#[test]
fn eval_reports_per_category_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let _ = write_config(dir.path(), "");
    let rows = dir.path().join("rows.json");
    let model = workspace().join("reasoner/tests/fixtures/tiny-llama");
    let json = dir.path().join("report.json");
    let args = [
        "eval",
        "--data",
        rows.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--weights",
        "dense",
        "--max-tokens",
        "8",
        "--json",
        json.to_str().unwrap(),
    ];
    let (code, out, err) = run(&args, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("overall (sample-weighted)"), "{out}");
    let rep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(rep["overall"]["n"], 3);
    for c in ["Landmark Position", "Counterfactual", "object_counting"] {
        assert_eq!(rep["categories"][c]["n"], 1, "{rep}");
    }
    let items = dir.path().join("report.items.jsonl");
    let before = std::fs::read_to_string(&items).unwrap();
    assert_eq!(before.lines().count(), 3);
    // A second run finds every result and adds none.
    let (code, _, err) = run(&args, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&items).unwrap(), before);
    // A bad row is named.
    std::fs::write(&rows, r#"[{"question": "q", "answer": "maybe"}]"#).unwrap();
    let (code, _, err) = run(&args, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("row 0") && err.contains("maybe"), "{err}");
    // A VLM describer needs its endpoint; an unknown describer is named.
    let mut vlm = args.to_vec();
    vlm.extend(["--describer", "vlm"]);
    let (code, _, err) = run(&vlm, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("--vlm-url"), "{err}");
    let mut odd = args.to_vec();
    odd.extend(["--describer", "camera"]);
    let (code, _, err) = run(&odd, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("--describer camera"), "{err}");
}

#[test]
fn rules_answerer_is_judged_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let bench = dir.path().join("bench");
    let (code, _, err) = run(
        &[
            "sim",
            "generate",
            "--scenes",
            "1",
            "--seed",
            "5",
            "--out",
            bench.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let data = bench.join("test_data.json");
    let model = workspace().join("reasoner/tests/fixtures/tiny-llama");
    let report = |name: &str, extra: &[&str]| {
        let json = dir.path().join(format!("{name}.json"));
        let mut args = vec![
            "eval",
            "--answerer",
            "rules",
            "--describer",
            "sim",
            "--data",
            data.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--weights",
            "dense",
            // The tiny model's 512-token context holds the judge prompts of the first questions
            // (rel_distance, rel_direction, route_planning), not the long appearance-order lists.
            "--limit",
            "4",
            "--json",
            json.to_str().unwrap(),
        ];
        args.extend(extra);
        let (code, out, err) = run(&args, &[]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("overall (sample-weighted)"), "{out}");
        let rep: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        rep
    };
    // Unjudged by default: no model pass, no consistency figure.
    let plain = report("plain", &[]);
    assert!(plain["overall"]["consistency"].is_null(), "{plain}");
    // Judged: the model reads the rules traces' thinks, so the figure exists.
    let judged = report("judged", &["--judge-rules"]);
    let c = judged["overall"]["consistency"].as_f64();
    assert!(c.is_some_and(|c| (0.0..=1.0).contains(&c)), "{judged}");
    assert_eq!(judged["overall"]["accuracy"], plain["overall"]["accuracy"]);
    // The flag belongs to the rules answerer.
    let (code, _, err) = run(
        &[
            "eval",
            "--answerer",
            "prior",
            "--judge-rules",
            "--data",
            data.to_str().unwrap(),
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("--judge-rules"), "{err}");
}

#[test]
fn self_traces_logs_every_question_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let _ = write_config(dir.path(), "");
    let rows = dir.path().join("rows.json");
    let model = workspace().join("reasoner/tests/fixtures/tiny-llama");
    let out = dir.path().join("self.jsonl");
    let args = [
        "train",
        "self-traces",
        "--data",
        rows.to_str().unwrap(),
        "--describer",
        "none",
        "--model",
        model.to_str().unwrap(),
        "--weights",
        "dense",
        "--tries",
        "2",
        "--max-tokens",
        "8",
        "--out",
        out.to_str().unwrap(),
    ];
    let (code, _, err) = run(&args, &[]);
    assert_eq!(code, 0, "{err}");
    // The random-weight model never writes the layout: every question tried twice, none kept.
    let attempts = dir.path().join("self.jsonl.attempts.jsonl");
    let log = std::fs::read_to_string(&attempts).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{log}");
    for l in &lines {
        assert_eq!(
            (l["tries"].as_u64(), l["kept"].as_bool()),
            (Some(2), Some(false)),
            "{l}"
        );
    }
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "");
    // A second run finds every question tried and samples none.
    let (code, _, err) = run(&args, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&attempts).unwrap(), log);
    // Bad settings are named.
    let mut zero = args.to_vec();
    zero[11] = "0";
    let (code, _, err) = run(&zero, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("tries = 0"), "{err}");
    let mut cat = args.to_vec();
    cat.extend(["--category", "room_size"]);
    let (code, _, err) = run(&cat, &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains("--category") && err.contains("room_size"),
        "{err}"
    );
}
