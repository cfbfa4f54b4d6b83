//! Self-traces by rejection sampling (STaR): sample completions from the model for questions
//! whose answer is known, keep one that is well formed, correct under the strict reader and —
//! when a judge is given — whose think alone implies the chosen option (a lucky letter after a
//! think that argues for another option is not kept), and write it as a GRPO JSONL row whose
//! trailing assistant message is the SFT target (`data::load` reads it back as such).
//!
//! Resumable: every question tried is logged in `OUT.attempts.jsonl` with its outcome, and a
//! restarted run skips those.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use embodied_r_reasoner::reward::{self, ConsistencyJudge, Extraction};
use serde::{Deserialize, Serialize};

use crate::data::Example;
use crate::error::{Result, TrainError};
use crate::train::Jsonl;

/// Draws completion number `attempt` for an example (different attempts, different samples).
pub trait Sampler {
    /// The completion, as the reward code reads it.
    fn sample(&self, ex: &Example, attempt: u64) -> Result<String>;
}

/// When a sampled completion is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct KeepRule {
    /// Samples drawn per question at most; the first that passes is kept.
    pub tries: usize,
    /// Numeric answers: the least mean relative accuracy kept.
    pub numeric_min: f64,
}

/// One question's outcome (a line of `OUT.attempts.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// Example id.
    pub id: String,
    /// Category.
    pub category: String,
    /// Samples drawn.
    pub tries: usize,
    /// Whether one was kept.
    pub kept: bool,
}

/// Kept / tried per category.
pub type Tally = BTreeMap<String, (usize, usize)>;

#[derive(Serialize)]
struct Msg<'a> {
    role: &'a str,
    content: &'a str,
}

#[derive(Serialize)]
struct Row<'a> {
    id: &'a str,
    category: &'a str,
    solution: &'a str,
    messages: [Msg<'a>; 3],
}

/// The attempts log beside `out`.
pub fn attempts_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".attempts.jsonl");
    out.with_file_name(name)
}

fn read_attempts(path: &Path) -> Result<Vec<Attempt>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(TrainError::io(path, e)),
    };
    // A torn last line (a killed run) is dropped: that question is tried again.
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// Whether `text` passes: well formed, correct, and (for options, with a judge) consistent.
fn passes(
    ex: &Example,
    text: &str,
    rule: &KeepRule,
    judge: Option<&dyn ConsistencyJudge>,
) -> Result<bool> {
    let (r, _) = reward::rewards(
        text,
        ex.gold()?,
        &ex.choices,
        &ex.question(),
        Extraction::Strict,
        judge,
    )
    .map_err(TrainError::Judge)?;
    let need = if ex.choices.is_empty() {
        rule.numeric_min
    } else {
        1.0
    };
    Ok(r.format >= 1.0 && r.accuracy >= need && r.consistency.is_none_or(|c| c >= 1.0))
}

/// Samples up to `rule.tries` completions per example and appends each kept one to `out` (GRPO
/// JSONL with the completion as the assistant message). Returns kept / tried per category over
/// this and earlier runs into the same file; `progress(done, total)` after each question.
pub fn rejection_sample(
    sampler: &dyn Sampler,
    examples: &[Example],
    rule: &KeepRule,
    judge: Option<&dyn ConsistencyJudge>,
    out: &Path,
    mut progress: impl FnMut(usize, usize),
) -> Result<Tally> {
    if rule.tries == 0 {
        return Err(TrainError::Config(
            "self-traces: tries = 0; expected at least one sample per question".into(),
        ));
    }
    let log = attempts_path(out);
    let before = read_attempts(&log)?;
    let mut tally = Tally::new();
    for a in &before {
        let t = tally.entry(a.category.clone()).or_default();
        t.0 += usize::from(a.kept);
        t.1 += 1;
    }
    let seen: HashSet<&str> = before.iter().map(|a| a.id.as_str()).collect();
    let mut rows = Jsonl::append(out)?;
    let mut attempts = Jsonl::append(&log)?;
    let total = examples.len();
    let mut done = examples
        .iter()
        .filter(|e| seen.contains(e.id.as_str()))
        .count();
    progress(done, total);
    for ex in examples.iter().filter(|e| !seen.contains(e.id.as_str())) {
        let mut kept = None;
        let mut tries = 0;
        while tries < rule.tries && kept.is_none() {
            let text = sampler.sample(ex, tries as u64)?;
            tries += 1;
            if passes(ex, &text, rule, judge)? {
                kept = Some(text);
            }
        }
        if let Some(text) = &kept {
            rows.push(&Row {
                id: &ex.id,
                category: &ex.category,
                solution: ex.gold()?,
                messages: [
                    Msg {
                        role: "system",
                        content: &ex.system,
                    },
                    Msg {
                        role: "user",
                        content: &ex.user,
                    },
                    Msg {
                        role: "assistant",
                        content: text,
                    },
                ],
            })?;
        }
        // The row first, then the attempt: a kill between the two retries the question and
        // may keep it twice, never loses it.
        attempts.push(&Attempt {
            id: ex.id.clone(),
            category: ex.category.clone(),
            tries,
            kept: kept.is_some(),
        })?;
        let t = tally.entry(ex.category.clone()).or_default();
        t.0 += usize::from(kept.is_some());
        t.1 += 1;
        done += 1;
        progress(done, total);
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Replies from a script per example id, one per attempt, and counts the calls.
    struct Script {
        replies: BTreeMap<String, Vec<String>>,
        calls: RefCell<usize>,
    }

    impl Sampler for Script {
        fn sample(&self, ex: &Example, attempt: u64) -> Result<String> {
            *self.calls.borrow_mut() += 1;
            Ok(self.replies[&ex.id][attempt as usize].clone())
        }
    }

    /// A judge that reads the last "option X" in the think.
    struct ReadsOption;

    impl ConsistencyJudge for ReadsOption {
        fn name(&self) -> String {
            "reads-option".into()
        }
        fn reply(&self, _: &str, think: &str) -> std::result::Result<String, String> {
            Ok(think
                .rsplit("option ")
                .next()
                .and_then(|s| s.chars().next())
                .map(String::from)
                .unwrap_or_default())
        }
    }

    fn ex(id: &str, solution: &str, numeric: bool) -> Example {
        let (user, choices) = if numeric {
            ("How far is the tower?".to_string(), vec![])
        } else {
            (
                "Where is the tower?\nChoices:\nA. left\nB. right".to_string(),
                vec!["left".to_string(), "right".to_string()],
            )
        };
        Example {
            id: id.into(),
            category: if numeric { "distance" } else { "position" }.into(),
            choices,
            system: "sys".into(),
            user,
            solution: Some(solution.into()),
            target: None,
            withheld: None,
        }
    }

    fn script(pairs: &[(&str, &[&str])]) -> Script {
        Script {
            replies: pairs
                .iter()
                .map(|(id, r)| (id.to_string(), r.iter().map(|s| s.to_string()).collect()))
                .collect(),
            calls: RefCell::new(0),
        }
    }

    #[test]
    fn keeps_the_first_passing_sample_and_reads_back_as_sft_targets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("self.jsonl");
        let good = "<think>It is on my right: option B.</think><answer>B</answer>";
        let lucky = "<think>It is on my left: option A.</think><answer>B</answer>";
        let s = script(&[
            // Malformed, then a lucky letter the think contradicts, then a good one.
            ("q1", &["B", lucky, good]),
            // Never right.
            ("q2", &["<think>option A</think><answer>A</answer>"; 3]),
            // Numeric: 12 against 10 is MRA 0.6 (< 0.75); 10.4 passes.
            (
                "q3",
                &[
                    "<think>About 12 m.</think><answer>12</answer>",
                    "<think>About 10.4 m.</think><answer>10.4</answer>",
                    "unused",
                ],
            ),
        ]);
        let exs = [
            ex("q1", "B", false),
            ex("q2", "B", false),
            ex("q3", "10", true),
        ];
        let rule = KeepRule {
            tries: 3,
            numeric_min: 0.75,
        };
        let tally = rejection_sample(&s, &exs, &rule, Some(&ReadsOption), &out, |_, _| {})
            .expect("sampled");
        assert_eq!(tally["position"], (1, 2));
        assert_eq!(tally["distance"], (1, 1));
        assert_eq!(*s.calls.borrow(), 3 + 3 + 2);
        let (rows, _) = crate::data::load(&out).expect("GRPO JSONL");
        let targets: Vec<_> = rows.iter().map(|r| r.target.as_deref()).collect();
        assert_eq!(
            targets,
            [
                Some(good),
                Some("<think>About 10.4 m.</think><answer>10.4</answer>")
            ]
        );
        assert_eq!(rows[0].user, exs[0].user);
        assert_eq!(rows[0].solution.as_deref(), Some("B"));

        // A second run over the same file tries nothing again and reports the same tally.
        let again = script(&[]);
        let t2 = rejection_sample(&again, &exs, &rule, Some(&ReadsOption), &out, |_, _| {})
            .expect("resumed");
        assert_eq!(t2, tally);
        assert_eq!(*again.calls.borrow(), 0);
    }

    #[test]
    fn without_a_judge_a_correct_well_formed_sample_is_enough() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("self.jsonl");
        let lucky = "<think>It is on my left: option A.</think><answer>B</answer>";
        let s = script(&[("q1", &[lucky])]);
        let rule = KeepRule {
            tries: 1,
            numeric_min: 0.75,
        };
        let tally = rejection_sample(&s, &[ex("q1", "B", false)], &rule, None, &out, |_, _| {})
            .expect("sampled");
        assert_eq!(tally["position"], (1, 1));
    }

    #[test]
    fn zero_tries_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rule = KeepRule {
            tries: 0,
            numeric_min: 0.75,
        };
        let err = rejection_sample(
            &script(&[]),
            &[],
            &rule,
            None,
            &dir.path().join("o"),
            |_, _| {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("tries = 0"), "{err}");
    }
}
