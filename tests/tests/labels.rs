//! Labels from people: a runtime on the simulator logs episodes without their truth (as a
//! robot in the field does); an operator finds them with `episodes ls --unlabelled`, labels
//! one on the command line and the rest from a file, and the labels reach `ls`, `show`,
//! `export` and the trainer's loader, while the recorded segments stay byte for byte.

#![allow(clippy::unwrap_used)]

use embodied_r_tests::{model, run};
use serde_json::Value;
use std::path::Path;

fn ls(log: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["episodes", "ls", "--json", "--dir", log.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (code, out, err) = run(&args, &[]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str::<Value>(out.trim())
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// `episodes label ID --answer ANSWER --by BY` on `log`.
fn label(log: &str, id: &str, answer: &str, by: &str) -> (i32, String, String) {
    run(
        &[
            "episodes", "label", id, "--answer", answer, "--by", by, "--dir", log,
        ],
        &[],
    )
}

/// `episodes label --from FILE --by BY` on `log`.
fn label_from(log: &str, file: &Path, by: &str) -> (i32, String, String) {
    run(
        &[
            "episodes",
            "label",
            "--from",
            file.to_str().unwrap(),
            "--by",
            by,
            "--dir",
            log,
        ],
        &[],
    )
}

fn segments(log: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(log)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("episodes-"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn operators_label_unlabelled_episodes_and_the_labels_reach_training_data() {
    let _ = model();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("episodes");
    let logs = log.to_str().unwrap();
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
    assert_eq!(code, 0, "demo failed: {err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{out}");
    let summary = &lines[3];
    assert_eq!(summary["answered"], 3, "{summary}");
    assert_eq!(summary["scored"], 0, "nothing is scored without truth");
    assert!(summary["accuracy"].is_null(), "{summary}");
    // The truths the simulator knows, by episode id; the runtime never saw them.
    let truths: Vec<(String, String)> = lines[..3]
        .iter()
        .map(|q| {
            assert_eq!(q["truth_sent"], false, "{q}");
            (
                q["reply"]["question_id"].as_str().unwrap().to_string(),
                q["truth"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let before = segments(&log);

    let open = ls(&log, &["--unlabelled"]);
    assert_eq!(open.len(), 3, "{open:?}");
    for e in &open {
        assert!(
            e["ground_truth"].is_null() && e["truth_source"].is_null(),
            "{e}"
        );
    }

    // Refused, and nothing written: an unknown id, an answer outside the options.
    let (code, _, err) = label(logs, "no-such-episode", "A", "ann");
    assert_ne!(code, 0);
    assert!(err.contains("no episode `no-such-episode`"), "{err}");
    let (code, _, err) = label(logs, &truths[0].0, "Z", "ann");
    assert_ne!(code, 0);
    assert!(err.contains("`Z` is not"), "{err}");
    assert!(!log.join("labels.jsonl").exists(), "a refused label wrote");

    // One on the command line.
    let (code, out, err) = label(logs, &truths[0].0, &truths[0].1, "ann");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("labelled 1 episodes"), "{out}");

    // The rest from a CSV file; a file with one bad row writes nothing.
    let csv = dir.path().join("labels.csv");
    std::fs::write(
        &csv,
        format!(
            "id,answer\n{},{}\n{},not-an-answer\n",
            truths[1].0, truths[1].1, truths[2].0
        ),
    )
    .unwrap();
    let (code, _, err) = label_from(logs, &csv, "bob");
    assert_ne!(code, 0);
    assert!(
        err.contains("line 3") && err.contains("nothing was written"),
        "{err}"
    );
    assert_eq!(ls(&log, &["--unlabelled"]).len(), 2);
    std::fs::write(
        &csv,
        format!(
            "id,answer\n{},{}\n{},{}\n",
            truths[1].0, truths[1].1, truths[2].0, truths[2].1
        ),
    )
    .unwrap();
    let (code, out, err) = label_from(logs, &csv, "bob");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("labelled 2 episodes"), "{out}");

    assert!(ls(&log, &["--unlabelled"]).is_empty());
    let all = ls(&log, &[]);
    for (id, truth) in &truths {
        let e = all.iter().find(|e| e["id"] == id.as_str()).unwrap();
        assert_eq!(e["truth_source"], "label", "{e}");
        assert_eq!(e["ground_truth"].as_str().unwrap(), truth.as_str(), "{e}");
        assert!(
            e["correct"].is_boolean(),
            "a labelled episode is scored: {e}"
        );
    }

    // A relabel keeps the history; the newest is the truth.
    let (code, _, err) = label(logs, &truths[0].0, &truths[0].1, "carl");
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(&["episodes", "show", &truths[0].0, "--dir", logs], &[]);
    assert_eq!(code, 0, "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    let history = shown["labels"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{shown}");
    assert_eq!(history[0]["by"], "ann");
    assert_eq!(history[1]["by"], "carl");
    assert_eq!(history[0]["source"], "cli");

    // Export and the trainer read the labels as gold.
    let (code, out, err) = run(
        &[
            "episodes",
            "export",
            "--format",
            "grpo-jsonl",
            "--dir",
            logs,
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("3 of them with a label"), "{err}");
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    for (id, truth) in &truths {
        let r = rows.iter().find(|r| r["episode"] == id.as_str()).unwrap();
        assert_eq!(r["solution"].as_str().unwrap(), truth.as_str());
    }
    let (examples, report) = embodied_r_trainer::data::load(&log).unwrap();
    assert_eq!(examples.len(), 3, "{report:?}");
    assert_eq!(report.skipped, 0);

    // The recorded episodes were never rewritten.
    assert_eq!(segments(&log), before);
}
