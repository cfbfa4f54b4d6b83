//! `embodied-r eval --answerer rules|prior`: the baselines every model's figure stands beside,
//! on a simulator benchmark the test generates.
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_embodied-r"))
}

fn eval(bench: &Path, answerer: &str, extra: &[&str]) -> (bool, serde_json::Value, String) {
    let json = bench.join(format!("{answerer}.json"));
    let o = bin()
        .args([
            "eval",
            "--describer",
            "sim",
            "--answerer",
            answerer,
            "--data",
        ])
        .arg(bench.join("test_data.json"))
        .arg("--json")
        .arg(&json)
        .args(extra)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    if !o.status.success() {
        return (false, serde_json::Value::Null, err);
    }
    let rep = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (true, rep, err)
}

#[test]
fn rules_and_prior_baselines_score_a_held_out_split() {
    let dir = tempfile::tempdir().unwrap();
    let bench = dir.path().join("bench");
    let o = bin()
        .args([
            "sim", "generate", "--kind", "both", "--scenes", "4", "--seed", "5", "--out",
        ])
        .arg(&bench)
        .args(["--width", "160", "--height", "120", "--no-mp4"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(bench.join("test_data.json")).unwrap())
            .unwrap();

    let (ok, rules, err) = eval(&bench, "rules", &[]);
    assert!(ok, "{err}");
    assert_eq!(rules["overall"]["n"], rows.len(), "{rules}");
    // Every rules answer is written in the layout, and some are right.
    assert_eq!(rules["overall"]["format"], 1.0, "{rules}");
    assert!(
        rules["overall"]["accuracy"].as_f64().unwrap() > 0.0,
        "{rules}"
    );
    assert!(
        rules["model"].as_str().unwrap().contains("rules"),
        "{rules}"
    );

    // The prior is fitted on the benchmark's train split, never on the rows it scores.
    let (ok, prior, err) = eval(&bench, "prior", &[]);
    assert!(ok, "{err}");
    assert_eq!(prior["overall"]["n"], rows.len(), "{prior}");
    assert_eq!(prior["overall"]["format"], 1.0, "{prior}");
    let test = bench.join("test_data.json");
    let (ok, _, err) = eval(
        &bench,
        "prior",
        &[
            "--prior-data",
            test.to_str().unwrap(),
            "--results",
            "x.jsonl",
        ],
    );
    assert!(!ok);
    assert!(err.contains("--prior-data"), "{err}");

    let (ok, _, err) = eval(&bench, "oracle", &[]);
    assert!(!ok);
    assert!(err.contains("--answerer oracle"), "{err}");
}
