//! `embodied-r demo`: the README's first command after set-up runs end to end — simulator,
//! runtime, zenoh console, default LM, episode log.

#![allow(clippy::unwrap_used)]

use embodied_r_tests::{model, run};
use serde_json::Value;

#[test]
fn the_demo_flies_asks_answers_and_logs() {
    let _ = model();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("episodes");
    let (code, out, err) = run(
        &[
            "demo",
            "--fast",
            "--questions",
            "2",
            "--max-tokens",
            "12",
            "--threads",
            "1",
            "--json",
            "--log-dir",
            log.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "demo failed: {err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    for q in &lines[..2] {
        assert!(q["reply"]["nav_hint"]["action"].is_string(), "{q}");
        assert!(q["truth"].is_string(), "{q}");
    }
    let summary = &lines[2];
    assert_eq!(summary["answered"], 2, "{summary}");
    assert_eq!(summary["episodes_logged"], 2, "{summary}");
    // The log has the rewards the ground truth allows.
    let (code, out, err) = run(
        &["episodes", "ls", "--json", "--dir", log.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let eps: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(eps.as_array().unwrap().len(), 2);
    assert!(eps[0]["correct"].is_boolean(), "{eps}");
    // One verdict for one reply: what the demo printed is what the log says, by one rule.
    for (q, e) in lines[..2].iter().zip(eps.as_array().unwrap()) {
        assert_eq!(q["accuracy"], e["accuracy"], "demo {q} vs episodes {e}");
        assert_eq!(
            q["reply"]["choice"], e["choice"],
            "demo {q} vs episodes {e}"
        );
        assert_eq!(
            q["reply"]["lenient_choice"].as_str(),
            e["lenient_choice"].as_str(),
            "demo {q} vs episodes {e}"
        );
        assert_eq!(e["rule"], "strict");
    }
    let (code, out, _) = run(
        &[
            "episodes",
            "export",
            "--format",
            "grpo-jsonl",
            "--dir",
            log.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0);
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert!(
        rows[0]["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("Video content:")
    );
}
